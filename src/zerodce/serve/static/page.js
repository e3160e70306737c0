// zerodce's page: send photos to POST /api/enhance on this server and compare before/after.
// Nothing is loaded from anywhere else (the server's Content-Security-Policy enforces it).
"use strict";

const $ = (id) => document.getElementById(id);
const PARALLEL = 2;         // requests in flight from this page; the server queues or refuses the rest
const MAX_RETRIES = 5;      // retries of a "server busy" (503) answer, each after its Retry-After
const RERUN_DELAY_MS = 350; // settle time after a control changes before the photos are redone

const items = [];           // {file, el, xhr, resultUrl, beforeUrl, tries, wanted, state}
let limits = { max_upload_bytes: Infinity };
let token = sessionStorage.getItem("zerodce-token") || "";
let rerunTimer = null;

function settings() {
  const options = {};
  if (!$("strength-auto").checked) options.strength = $("strength").value;
  const denoise = $("denoise").value;
  options.denoise = denoise === "level" ? $("denoise-level").value : denoise;
  if ($("format").value) options.format = $("format").value;
  return options;
}

function formatBytes(n) {
  return n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MB` : `${Math.ceil(n / 1024)} kB`;
}

function setStatus(text) {
  $("status").textContent = text;
}

function updateOverallStatus() {
  const busy = items.filter((it) => it.state === "working" || it.state === "waiting").length;
  const failed = items.filter((it) => it.state === "failed").length;
  const done = items.filter((it) => it.state === "done").length;
  if (!items.length) return setStatus("");
  setStatus(busy ? `Working on ${busy} photo(s)…` : `${done} done${failed ? `, ${failed} failed` : ""}.`);
}

function part(item, cls) {
  return item.el.querySelector(`.${cls}`);
}

function showError(item, message) {
  const error = part(item, "error");
  error.textContent = message;
  error.hidden = !message;
}

function setProgress(item, fraction) {
  const bar = part(item, "progress");
  bar.classList.toggle("done", fraction === 1);
  if (fraction === null) bar.removeAttribute("value"); // indeterminate: the server is enhancing
  else bar.value = fraction;
}

function setState(item, state, label) {
  item.state = state;
  part(item, "state").textContent = label;
  part(item, "retry").hidden = state !== "failed";
  updateOverallStatus();
}

function fileNameFrom(disposition, fallback) {
  const utf8 = /filename\*=UTF-8''([^;]+)/i.exec(disposition || "");
  if (utf8) return decodeURIComponent(utf8[1]);
  const plain = /filename="([^"]+)"/i.exec(disposition || "");
  return plain ? plain[1] : fallback;
}

async function errorMessage(xhr) {
  try {
    const body = JSON.parse(await xhr.response.text());
    if (body && body.error) return body.error;
  } catch (e) { /* not our JSON: fall back to the status line */ }
  return `the server answered ${xhr.status} ${xhr.statusText}`;
}

// ---------------------------------------------------------------- requests

function pump() {
  let running = items.filter((it) => it.xhr).length;
  for (const item of items) {
    if (running >= PARALLEL) break;
    if (item.wanted && !item.xhr) {
      item.wanted = false;
      send(item);
      running += 1;
    }
  }
}

function request(item) {
  if (item.xhr) { item.xhr.abort(); item.xhr = null; }
  item.wanted = true;
  setState(item, "waiting", "waiting…");
  setProgress(item, 0);
  pump();
}

function send(item) {
  const form = new FormData();
  form.append("file", item.file, item.file.name);
  const options = settings();
  for (const [key, value] of Object.entries(options)) form.append(key, value);
  const xhr = new XMLHttpRequest();
  item.xhr = xhr;
  xhr.open("POST", "/api/enhance");
  xhr.responseType = "blob";
  if (token) xhr.setRequestHeader("Authorization", `Bearer ${token}`);
  setState(item, "working", "uploading…");
  xhr.upload.onprogress = (e) => {
    if (e.lengthComputable) {
      setProgress(item, 0.5 * e.loaded / e.total);
      part(item, "state").textContent = `uploading ${Math.round(100 * e.loaded / e.total)}%`;
    }
  };
  xhr.upload.onload = () => {
    setProgress(item, null);
    part(item, "state").textContent = "enhancing…";
  };
  xhr.onload = async () => {
    if (item.xhr !== xhr) return; // superseded by a newer run
    item.xhr = null;
    if (xhr.status === 200) {
      item.tries = 0;
      showResult(item, xhr.response, fileNameFrom(xhr.getResponseHeader("Content-Disposition"), item.file.name), options);
    } else if (xhr.status === 503 && item.tries < MAX_RETRIES) {
      item.tries += 1;
      const wait = Math.max(1, Number(xhr.getResponseHeader("Retry-After")) || 2);
      setState(item, "waiting", `server busy, retrying in ${wait} s…`);
      setTimeout(() => { if (item.state === "waiting" && !item.xhr) request(item); }, wait * 1000);
    } else {
      if (xhr.status === 401) {
        $("token-box").hidden = false;
        $("token").focus();
      }
      fail(item, await errorMessage(xhr));
    }
    pump();
  };
  xhr.onerror = () => {
    if (item.xhr !== xhr) return;
    item.xhr = null;
    fail(item, "could not reach the server; is zerodce serve still running?");
    pump();
  };
  xhr.send(form);
}

function fail(item, message) {
  item.tries = 0;
  setProgress(item, 1);
  setState(item, "failed", "failed");
  showError(item, message);
}

// ---------------------------------------------------------------- results

function showResult(item, blob, name, options) {
  item.el.dataset.options = JSON.stringify(options); // the settings of the result shown
  if (item.resultUrl) URL.revokeObjectURL(item.resultUrl);
  item.resultUrl = URL.createObjectURL(blob);
  showError(item, "");
  const after = part(item, "after");
  const note = part(item, "note");
  after.onload = () => {
    part(item, "compare").hidden = false;
    part(item, "zoom").hidden = false;
    note.hidden = true;
  };
  after.onerror = () => {
    note.textContent = "This browser cannot show this format (e.g. TIFF); the download works.";
    note.hidden = false;
    part(item, "compare").hidden = false;
  };
  after.src = item.resultUrl;
  const link = part(item, "download");
  link.href = item.resultUrl;
  link.download = name;
  link.textContent = `Download ${name}`;
  link.hidden = false;
  setProgress(item, 1);
  setState(item, "done", `done (${formatBytes(blob.size)})`);
}

function setSplit(item, percent) {
  const value = Math.min(100, Math.max(0, percent));
  part(item, "frame").style.setProperty("--split", `${value}%`);
  part(item, "split").value = String(Math.round(value));
}

function addFile(file) {
  const el = $("result-template").content.firstElementChild.cloneNode(true);
  const item = { file, el, xhr: null, resultUrl: null, beforeUrl: URL.createObjectURL(file), tries: 0, wanted: false, state: "" };
  items.push(item);
  part(item, "name").textContent = file.name;
  part(item, "before").src = item.beforeUrl;
  part(item, "split").setAttribute("aria-label", `Before / after split for ${file.name}`);
  part(item, "split").addEventListener("input", (e) => setSplit(item, Number(e.target.value)));
  const frame = part(item, "frame");
  const follow = (e) => {
    const box = frame.getBoundingClientRect();
    setSplit(item, 100 * (e.clientX - box.left) / box.width);
  };
  frame.addEventListener("pointerdown", (e) => { frame.setPointerCapture(e.pointerId); follow(e); });
  frame.addEventListener("pointermove", (e) => { if (frame.hasPointerCapture(e.pointerId)) follow(e); });
  part(item, "zoom").addEventListener("click", (e) => {
    const actual = part(item, "viewport").classList.toggle("actual");
    e.target.setAttribute("aria-pressed", String(actual));
    e.target.textContent = actual ? "Fit to width" : "Actual size";
  });
  part(item, "retry").addEventListener("click", () => request(item));
  part(item, "remove").addEventListener("click", () => remove(item));
  $("results").append(el);
  if (file.size > limits.max_upload_bytes) {
    fail(item, `${file.name} is ${formatBytes(file.size)}; this server takes at most ${formatBytes(limits.max_upload_bytes)}`);
    return;
  }
  request(item);
}

function remove(item) {
  if (item.xhr) item.xhr.abort();
  item.xhr = null;
  for (const url of [item.beforeUrl, item.resultUrl]) if (url) URL.revokeObjectURL(url);
  item.el.remove();
  items.splice(items.indexOf(item), 1);
  updateOverallStatus();
  pump();
  $("choose").focus();
}

function addFiles(files) {
  for (const file of files) addFile(file);
}

function rerunAll() {
  clearTimeout(rerunTimer);
  rerunTimer = setTimeout(() => {
    for (const item of items) if (item.state !== "failed" || item.resultUrl) request(item);
  }, RERUN_DELAY_MS);
}

// ---------------------------------------------------------------- controls

function syncControls() {
  const auto = $("strength-auto").checked;
  $("strength").disabled = auto;
  $("strength-value").textContent = auto ? "" : Number($("strength").value).toFixed(2);
  const level = $("denoise").value === "level";
  $("denoise-level").disabled = !level;
  $("denoise-value").textContent = level ? Number($("denoise-level").value).toFixed(1) : "";
}

function init() {
  const drop = $("drop");
  $("choose").addEventListener("click", () => $("files").click());
  $("files").addEventListener("change", (e) => { addFiles(e.target.files); e.target.value = ""; });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    addFiles(e.dataTransfer.files);
  });
  // Dropping anywhere else would make the browser open the photo instead of this page.
  document.addEventListener("dragover", (e) => e.preventDefault());
  document.addEventListener("drop", (e) => e.preventDefault());
  for (const id of ["strength-auto", "strength", "denoise", "denoise-level", "format"]) {
    $(id).addEventListener("input", () => { syncControls(); rerunAll(); });
  }
  $("controls").addEventListener("submit", (e) => e.preventDefault());
  $("token-apply").addEventListener("click", () => {
    token = $("token").value.trim();
    sessionStorage.setItem("zerodce-token", token);
    for (const item of items) if (item.state === "failed") request(item);
  });
  syncControls();
  fetch("/healthz").then((r) => r.json()).then((health) => {
    limits = health;
    $("limits").textContent = `Model ${health.model}. Up to ${formatBytes(health.max_upload_bytes)} and `
      + `${Math.round(health.max_pixels / 1e6)} megapixels per photo.`;
  }).catch(() => setStatus("The server does not answer; is zerodce serve running?"));
}

init();
