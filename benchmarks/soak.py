"""Soak: ``zerodce enhance`` over a library of small files with broken ones among them, killed and run again.

A library of ``--files`` files (default 10,000; 32x24 PNG and JPEG copies of a few
distinct dark images, in subfolders) with one broken file in ``--bad-every``: truncated
PNG and JPEG, empty, not an image, a decompression bomb (a real 16384x16384 PNG of
zeros, 268 megapixels, a few hundred kilobytes), unreadable (mode 000; as root the
command runs without CAP_DAC_OVERRIDE, through ``setpriv``, so permissions hold) and
symbolic-link loops (and a folder link back up the tree). Then:

1. ``zerodce enhance LIB -o OUT --manifest`` is SIGKILLed once ``--kill-at`` of the
   inputs are in its manifest;
2. the same command runs again to the end;
3. with ``--rss-run``, the same command on the whole library into a fresh folder,
   sampling its resident memory as files finish (peak at 2,000 files and at the end).

It checks that every good file's output exists once, decodes and is byte-identical
to the other copies of its image; that no output of the killed run was written again
(same inode and modification time) and the manifests say so; that every bad file is
named in the second run's errors and manifest; that the inputs are byte-identical;
and that no temporary file (hidden ones included) is left. Prints the figures, and
exits 1 if any check fails.

Usage: ``python benchmarks/soak.py [--files 10000] [--json figures.json]``
(``tests/test_soak.py`` runs it with 2,000 files.)
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
#: What the command is run with: the model exactly as trained is the cheapest per file; the defaults
#: (exposure-adaptive strength, denoising) only add arithmetic on pixels, which is not what a soak tests.
ENHANCE_OPTIONS = ("--strength", "1", "--denoise", "off")
BAD_KINDS = ("truncated_png", "truncated_jpeg", "empty", "not_image", "bomb", "unreadable", "link_loop")
#: Side of the decompression bomb: 16384^2 = 268 megapixels, over the default --max-pixels (179).
BOMB_SIDE = 16384
#: Files per subfolder of the library.
PER_FOLDER = 500
DROP_CAPS = ("setpriv", "--inh-caps=-dac_override,-dac_read_search",
             "--bounding-set=-dac_override,-dac_read_search", "--")


@dataclass
class Library:
    root: Path
    good: dict[str, int] = field(default_factory=dict)  # relative path -> index of its base image
    bad: dict[str, str] = field(default_factory=dict)  # relative path -> kind


def _bomb_png() -> bytes:
    """A genuine PNG of BOMB_SIDE^2 black gray pixels: tiny on disk, 268 MB decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    packer, row = zlib.compressobj(9), bytes(BOMB_SIDE + 1)  # filter byte 0, then the row
    data = b"".join(packer.compress(row) for _ in range(BOMB_SIDE)) + packer.flush()
    header = BOMB_SIDE.to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def make_library(root: Path, files: int, bad_every: int, bases: int = 16, seed: int = 0) -> Library:
    """``files`` inputs under ``root``: one in ``bad_every`` broken (cycling through BAD_KINDS)."""
    rng = np.random.default_rng(seed)
    encoded = []
    for i in range(bases):
        pixels = (rng.random((24, 32, 3)) * (30 + 4 * i)).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG" if i % 2 else "JPEG", quality=90)
        encoded.append((".png" if i % 2 else ".jpg", buffer.getvalue()))
    bomb = _bomb_png()
    library = Library(root)
    for n in range(files):
        folder = root / f"part{n // PER_FOLDER:03d}"
        if n % PER_FOLDER == 0:
            folder.mkdir(parents=True)
            (folder / "up").symlink_to("..", target_is_directory=True)  # a folder loop: must not be followed
        if n % bad_every == bad_every - 1:
            kind = BAD_KINDS[(n // bad_every) % len(BAD_KINDS)]
            suffix, data = encoded[n % bases]
            path = folder / f"bad{n:05d}_{kind}{'.png' if kind in ('bomb', 'truncated_png', 'not_image') else suffix}"
            if kind == "truncated_png":
                path.write_bytes(encoded[1][1][: len(encoded[1][1]) // 2])
            elif kind == "truncated_jpeg":
                path.write_bytes(encoded[0][1][: len(encoded[0][1]) // 2])
            elif kind == "empty":
                path.write_bytes(b"")
            elif kind == "not_image":
                path.write_text("this is a text file with an image's name\n")
            elif kind == "bomb":
                path.write_bytes(bomb)
            elif kind == "unreadable":
                path.write_bytes(data)
                path.chmod(0)
            else:  # two links pointing at each other
                partner = path.with_name(f"bad{n:05d}_link_partner{suffix}")
                path.symlink_to(partner.name)
                partner.symlink_to(path.name)
                library.bad[str(partner.relative_to(root))] = kind
            library.bad[str(path.relative_to(root))] = kind
        else:
            suffix, data = encoded[n % bases]
            path = folder / f"img{n:05d}{suffix}"
            path.write_bytes(data)
            library.good[str(path.relative_to(root))] = n % bases
    return library


def tree(root: Path) -> dict[str, tuple]:
    """Every entry under ``root`` (hidden ones too, links not followed): kind, mode, size, content hash."""
    entries = {}
    for folder, dirs, names in os.walk(root):
        for name in dirs + names:
            path = Path(folder, name)
            info = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(info.st_mode):
                entries[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                entries[rel] = ("dir", stat.S_IMODE(info.st_mode))
            else:
                try:
                    digest = hashlib.sha256(path.read_bytes()).hexdigest()
                except PermissionError:  # mode 000 and not root: size, time and inode must do
                    digest = None
                entries[rel] = ("file", stat.S_IMODE(info.st_mode), info.st_size, info.st_mtime_ns, digest,
                                info.st_ino)
    return entries


@dataclass
class Run:
    returncode: int
    seconds: float
    stderr: str
    killed_after: int | None = None  # manifest lines when SIGKILL was sent
    rss: list[tuple[int, int]] = field(default_factory=list)  # (inputs finished, peak RSS in kB)


def _lines(path: Path) -> int:
    try:
        with open(path, "rb") as file:
            return file.read().count(b"\n")
    except FileNotFoundError:
        return 0


def _peak_rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def run_enhance(library: Path, out: Path, manifest: Path, workers: int, kill_after: int | None = None,
                sample: bool = False) -> Run:
    """One ``zerodce enhance`` process; SIGKILLed once ``kill_after`` inputs are in the manifest."""
    command = [sys.executable, "-m", "zerodce.cli", "enhance", str(library), "-o", str(out), "--manifest",
               str(manifest), "--workers", str(workers), *ENHANCE_OPTIONS]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            raise SystemExit("soak: as root, file permissions hold only without CAP_DAC_OVERRIDE; "
                             "install setpriv (util-linux)")
        command = [*DROP_CAPS, *command]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    before = _lines(manifest)
    with tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, env=env)
        result = Run(0, 0.0, "")
        while process.poll() is None:
            finished = _lines(manifest) - before
            if sample:
                peak = _peak_rss_kb(process.pid)
                if peak is not None:
                    result.rss.append((finished, peak))
            if kill_after is not None and finished >= kill_after:
                process.send_signal(signal.SIGKILL)
                result.killed_after = finished
                process.wait()
                break
            time.sleep(0.05)
        result.returncode, result.seconds = process.wait(), time.perf_counter() - start
        stderr.seek(0)
        result.stderr = stderr.read().decode(errors="replace")
    return result


def _manifest(path: Path, skip: int = 0) -> list[dict]:
    lines = path.read_bytes().splitlines()[skip:]
    return [json.loads(line) for line in lines if line.strip()]


def _rel(path: str | None, root: Path) -> str | None:
    return None if path is None else str(Path(path).relative_to(root))


def soak(work: Path, files: int, bad_every: int, kill_at: float, workers: int, rss_run: bool) -> tuple[dict, list[str]]:
    """Build the library under ``work``, run the command twice (killed, then whole); ``(figures, problems)``."""
    problems: list[str] = []
    started = time.perf_counter()
    library = make_library(work / "library", files, bad_every)
    inputs_before = tree(library.root)
    out, manifest = work / "out", work / "run.jsonl"

    first = run_enhance(library.root, out, manifest, workers, kill_after=int(kill_at * files))
    if first.killed_after is None:
        problems.append(f"the first run ended (exit {first.returncode}) before it could be killed")
    first_lines = _lines(manifest)
    after_first = {rel: entry for rel, entry in tree(out).items() if entry[0] == "file"}
    leftover_after_kill = sorted(rel for rel in after_first if Path(rel).name.startswith("."))

    second = run_enhance(library.root, out, manifest, workers, sample=True)
    if second.returncode != 1:
        problems.append(f"the second run exited {second.returncode}, expected 1 (bad files among the inputs)")
    if "Traceback" in second.stderr or "Traceback" in first.stderr:
        problems.append("a traceback was printed")

    outputs = tree(out)
    expected = set(library.good)
    written = {rel for rel, entry in outputs.items() if entry[0] == "file"}
    if written != expected:
        extra, missing = sorted(written - expected), sorted(expected - written)
        problems.append(f"outputs differ from the good inputs: {len(missing)} missing (e.g. {missing[:3]}), "
                        f"{len(extra)} unexpected (e.g. {extra[:3]}; temporaries are hidden names)")
    by_base: dict[int, set[str]] = {}
    for rel in expected & written:
        by_base.setdefault(library.good[rel], set()).add(outputs[rel][4])
    if any(len(hashes) != 1 for hashes in by_base.values()):
        problems.append("copies of one image gave different outputs: some output is incomplete or wrong")
    existed = {rel for rel in after_first if not Path(rel).name.startswith(".")}
    # Written again = a new file under the name: atomic writes give a new inode and time.
    rewritten = [rel for rel in existed if rel in outputs and outputs[rel][3:] != after_first[rel][3:]]
    if rewritten:
        problems.append(f"{len(rewritten)} outputs of the killed run were written again (e.g. {rewritten[:3]})")

    lines_first, lines_second = _manifest(manifest)[:first_lines], _manifest(manifest, skip=first_lines)
    done_counts: dict[str, int] = {}
    for line in lines_first + lines_second:
        if line["status"] == "done":
            rel = _rel(line["source"], library.root)
            done_counts[rel] = done_counts.get(rel, 0) + 1
    if any(count > 1 for count in done_counts.values()):
        problems.append("a file was enhanced twice (two 'done' lines)")
    second_status = {_rel(line["source"], library.root): line for line in lines_second}
    for rel in expected:
        line = second_status.get(rel)
        want = "skipped" if rel in existed else "done"
        if line is None or line["status"] != want:
            problems.append(f"second manifest: {rel} is {line and line['status']!r}, expected {want!r}")
            break
        if want == "done" and line["sha256"] != outputs[rel][4]:
            problems.append(f"second manifest: the sha256 of {rel} is not its output's")
            break
    unlogged = len(existed - {rel for rel, count in done_counts.items() if count})

    failed_lines = [line for line in second.stderr.splitlines() if "zerodce enhance: failed:" in line]
    for rel, kind in library.bad.items():
        named = [line for line in failed_lines if str(library.root / rel) in line]
        if len(named) != 1:
            problems.append(f"bad file {rel} ({kind}) is named {len(named)} times in the second run's errors")
        if second_status.get(rel, {}).get("status") != "failed":
            problems.append(f"bad file {rel} ({kind}) is not 'failed' in the second manifest")
    if len(failed_lines) != len(library.bad):
        problems.append(f"{len(failed_lines)} failures reported for {len(library.bad)} bad files")
    if tree(library.root) != inputs_before:
        problems.append("the inputs changed")

    figures = {
        "files": files, "good": len(library.good), "bad": len(library.bad),
        "bad_kinds": {kind: sum(k == kind for k in library.bad.values()) for kind in BAD_KINDS},
        "options": " ".join(ENHANCE_OPTIONS), "workers": workers,
        "killed_after_inputs": first.killed_after, "killed_after_seconds": round(first.seconds, 1),
        "outputs_after_kill": len(existed), "temporaries_left_by_kill": len(leftover_after_kill),
        "written_but_not_in_manifest_at_kill": unlogged,
        "second_run_seconds": round(second.seconds, 1),
        "second_run_inputs_per_second": round(len(lines_second) / second.seconds, 1),
        "leftover_files_after_second_run": len(written - expected),
    }
    if rss_run:
        third = run_enhance(library.root, work / "out_rss", work / "rss.jsonl", workers, sample=True)
        figures.update(_rss_figures(third, files))
        figures["rss_run_seconds"] = round(third.seconds, 1)
        figures["rss_run_inputs_per_second"] = round(files / third.seconds, 1)
        shutil.rmtree(work / "out_rss")
    else:
        figures.update(_rss_figures(second, len(lines_second), prefix="second_run_"))
    figures["total_seconds"] = round(time.perf_counter() - started, 1)
    return figures, problems


def _rss_figures(run: Run, total: int, prefix: str = "") -> dict:
    """Peak RSS when a fifth of the inputs were done (2,000 of 10,000) and at the end, in MB."""
    mark = total // 5
    at_mark = next((peak for finished, peak in run.rss if finished >= mark), None)
    end = run.rss[-1][1] if run.rss else None
    return {f"{prefix}peak_rss_mb_at_{mark}": at_mark and round(at_mark / 1024, 1),
            f"{prefix}peak_rss_mb_at_{total}": end and round(end / 1024, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--bad-every", type=int, default=50, help="one broken file in this many (default: 50)")
    parser.add_argument("--kill-at", type=float, default=0.5, help="fraction of the inputs done at SIGKILL")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-rss-run", dest="rss_run", action="store_false",
                        help="skip the third, uninterrupted run that samples memory")
    parser.add_argument("--work", type=Path, help="folder to work in (default: a temporary one, removed)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="zerodce-soak-"))
    try:
        figures, problems = soak(work, args.files, args.bad_every, args.kill_at, args.workers, args.rss_run)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps({**figures, "problems": problems}, indent=2) + "\n")
    for problem in problems:
        print(f"soak: FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
