"""The page in a real browser: Debian's headless Chromium driven by Playwright (never a browser it downloads).

Set ``ZERODCE_SCREENSHOT=docs/serve_page.png`` to keep the screenshot (the README's picture comes from here).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from PIL import Image

from conftest import missing
from serve_helpers import REPO, Server, require

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-default-apps", "--disable-sync"]
DARK_PHOTO = REPO / "demo" / "coffee.jpg"

#: Mean brightness (0-255) and size of an <img>'s pixels as the browser decoded them.
MEASURE = """(selector) => {
  const img = document.querySelector(selector);
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  const g = canvas.getContext("2d");
  g.drawImage(img, 0, 0);
  const d = g.getImageData(0, 0, canvas.width, canvas.height).data;
  let sum = 0;
  for (let i = 0; i < d.length; i += 4) sum += d[i] + d[i + 1] + d[i + 2];
  return {width: canvas.width, height: canvas.height, mean: sum / (3 * d.length / 4)};
}"""


def wait_until(page, predicate: str, timeout: float = 120) -> None:
    """Poll ``predicate`` (a JS function) in the page. Not ``page.wait_for_function``: it evaluates strings,
    which the page's Content-Security-Policy forbids (as it should)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(predicate):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {predicate}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def browser():
    require("playwright")
    if not CHROMIUM.exists():
        missing(f"{CHROMIUM} not found: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require("fastapi")
    srv = Server(tmp_path_factory.mktemp("serve-browser"), "--workers", "1", "--queue", "4")
    yield srv
    srv.stop()


def test_page_enhances_a_dark_photo(browser, server, tmp_path):
    base = f"http://127.0.0.1:{server.port}"
    page = browser.new_page(viewport={"width": 1100, "height": 1000})
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    # Anything not from this server is refused (and recorded above, so the test sees it).
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(base) else route.abort())
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    page.goto(base + "/")
    wait_until(page, "() => document.querySelector('#limits').textContent.includes('zero_dce_pp')")
    page.set_input_files("#files", [str(DARK_PHOTO)])
    page.wait_for_selector(".result .download:not([hidden])", timeout=120_000)
    wait_until(page, "() => document.querySelector('.result .after').complete")

    with Image.open(DARK_PHOTO) as im:
        size = im.size
    before = page.evaluate(MEASURE, ".result .before")
    after = page.evaluate(MEASURE, ".result .after")
    assert (after["width"], after["height"]) == (before["width"], before["height"]) == size  # full resolution
    assert after["mean"] > before["mean"] + 20, (before, after)
    download = page.locator(".result .download")
    assert download.get_attribute("download") == "coffee_enhanced.jpg"
    assert page.locator(".result .state").text_content().startswith("done")

    shot = tmp_path / "serve_page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("ZERODCE_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["ZERODCE_SCREENSHOT"])

    # Keyboard only: move the before/after slider, then turn strength from auto to a higher value.
    page.focus(".result .split")
    page.keyboard.press("Home")
    assert page.locator(".result .split").input_value() == "0"
    page.keyboard.press("End")
    assert page.locator(".result .frame").evaluate("f => f.style.getPropertyValue('--split')") == "100%"
    page.focus("#strength-auto")
    page.keyboard.press("Space")
    page.focus("#strength")
    for _ in range(20):
        page.keyboard.press("ArrowRight")  # 1.00 -> 2.00
    assert page.locator("#strength-value").text_content() == "2.00"
    wait_until(page, "() => JSON.parse(document.querySelector('.result').dataset.options).strength === '2'")
    wait_until(page, "() => document.querySelector('.result .after').complete")
    stronger = page.evaluate(MEASURE, ".result .after")
    assert stronger["mean"] > after["mean"] + 5, (after, stronger)

    # An API error is shown as its message.
    not_image = tmp_path / "notes.txt"
    not_image.write_text("not a photo\n" * 20)
    page.set_input_files("#files", [str(not_image)])
    error = page.locator(".result").nth(1).locator(".error")
    error.wait_for(state="visible", timeout=60_000)
    assert "notes.txt" in error.text_content() and "format" in error.text_content()
    page.locator(".result").nth(1).locator(".remove").click()
    assert page.locator(".result").count() == 1

    # Several photos dropped at once (made in the page from the first one's pixels: no file or network involved).
    page.evaluate("""async () => {
      const img = document.querySelector(".result .before");
      const canvas = document.createElement("canvas");
      canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
      canvas.getContext("2d").drawImage(img, 0, 0);
      const blob = await new Promise((done) => canvas.toBlob(done, "image/png"));
      const dt = new DataTransfer();
      for (const name of ["one.png", "two.png"]) dt.items.add(new File([blob], name, {type: "image/png"}));
      document.querySelector("#drop").dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
    }""")
    wait_until(page, "() => [...document.querySelectorAll('.result .state')].filter(s => s.textContent.startsWith('done')).length === 3")
    names = page.locator(".result .download").evaluate_all("links => links.map(a => a.download)")
    assert names == ["coffee_enhanced.jpg", "one_enhanced.png", "two_enhanced.png"]

    # A phone's width: nothing wider than the screen.
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390

    assert errors == []
    outside = [url for url in requested if not url.startswith((base, "blob:", "data:"))]
    assert outside == [] and any(url.endswith("/api/enhance") for url in requested)
    page.close()
