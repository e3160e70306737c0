"""``zerodce enhance``: brighten photos, folders and globs; ``-`` for stdin/stdout.

Outputs go beside each input with ``--suffix`` (default ``_enhanced``), or
under ``-o`` (a file for one input, else a folder, where folder inputs keep
their relative paths). An output never replaces an input; existing outputs are
skipped unless ``--overwrite``. Exit code 0 if every input succeeded, 1 if any
failed (each listed with its reason), 2 for usage errors.
"""

from __future__ import annotations

import argparse
import glob
import io
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from zerodce.cli import CommandError, UsageError, set_torch_threads
from zerodce.cli._options import (add_enhancer_options, add_max_pixels_option, add_overwrite_option,
                                 enhancer_from_args, int_range)
from zerodce.enhance import enhance_files
from zerodce.io import EXTENSIONS, FORMATS, IMAGE_SUFFIXES, ImageError, read_image, write_image

DEFAULT_SUFFIX = "_enhanced"
#: Bytes read from stdin per pixel --max-pixels allows (16-bit RGBA, uncompressed), plus room for metadata.
STDIN_BYTES_PER_PIXEL, STDIN_HEADROOM = 8, 1 << 20

EXAMPLES = """\
examples:
  zerodce enhance dark.jpg                      writes dark_enhanced.jpg
  zerodce enhance photos/ -o bright/            keeps photos/'s subfolders in bright/
  zerodce enhance "shots/*.png" --format jpg --quality 90 -o out/
  cat dark.jpg | zerodce enhance - > bright.jpg
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``enhance`` subcommand."""
    parser = subparsers.add_parser(
        "enhance", help="brighten images, folders and globs",
        description="Brighten low-light images with Zero-DCE / Zero-DCE++, keeping bit depth, alpha, "
                    "orientation and metadata.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="image files, folders (searched recursively), globs, or - for stdin")
    parser.add_argument("-o", "--output", metavar="OUT",
                        help="output file (one input), folder, or - for stdout "
                             "(default: beside each input; stdout for stdin)")
    add_enhancer_options(parser)
    parser.add_argument("--format", choices=sorted({ext[1:] for ext in EXTENSIONS.values()}),
                        help="output format (default: the input's)")
    parser.add_argument("--quality", type=int_range(1, 100), metavar="Q",
                        help="JPEG/WebP quality, 1-100 (default: JPEG 95, WebP 90)")
    parser.add_argument("--suffix", metavar="TEXT",
                        help=f"added to output file names (default: {DEFAULT_SUFFIX!r} beside the inputs, "
                             "nothing under -o)")
    add_overwrite_option(parser)
    add_max_pixels_option(parser)
    parser.add_argument("--workers", type=int_range(1), default=2, metavar="N",
                        help="files processed at once, each on its own thread (default: %(default)s)")
    parser.set_defaults(func=run)


@dataclass
class Plan:
    """Inputs resolved into work: jobs to run, outputs to skip, inputs already failed."""

    jobs: list[tuple[Path, Path]] = field(default_factory=list)
    skipped: list[tuple[Path, Path]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def _expand(arg: str, exclude: Path | None) -> tuple[list[tuple[Path, Path, bool]], str | None]:
    """``(file, path relative to the output folder, found by a search)`` for one INPUT, or a failure reason."""
    path = Path(arg)
    if path.is_dir():
        found = []
        for file in sorted(path.rglob("*")):
            rel = file.relative_to(path)
            # Hidden names include our own temporary files (".name.xxx.part").
            if (file.suffix.lower() in IMAGE_SUFFIXES and file.is_file() and not any(p.startswith(".") for p in rel.parts)
                    and not (exclude is not None and file.resolve().is_relative_to(exclude))):
                found.append((file, rel, True))
        return found, None if found else f"cannot read {arg}: no images in this folder"
    if path.exists() or path.is_symlink():
        return [(path, Path(path.name), False)], None
    if glob.has_magic(arg):
        matches = [m for m in _glob(arg) if m.is_file()]
        return [(m, Path(m.name), True) for m in matches], None if matches else f"cannot read {arg}: no files match"
    return [], f"cannot read {arg}: no such file or folder"


def _glob(pattern: str) -> list[Path]:
    """Files matching ``pattern``, sorted; ``**`` does not follow symbolic links to folders.

    ``glob.glob`` follows them, so two links to a parent folder make its search
    take exponential time. Hidden names match only where the pattern spells them.
    """
    parts = Path(pattern).parts
    first = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    base, rest = Path(*parts[:first]) if first else Path("."), Path(*parts[first:])
    hidden_ok = any(part.startswith(".") for part in rest.parts)
    return sorted(m for m in base.glob(str(rest))
                  if hidden_ok or not any(p.startswith(".") for p in m.relative_to(base).parts))


def _resolve(path: Path) -> Path:
    """``path.resolve()``, or its absolute path for a symbolic link loop (reading it then fails, named)."""
    try:
        return path.resolve()
    except (RuntimeError, OSError):  # RuntimeError: Python < 3.13's report of a loop
        return path.absolute()


def plan(inputs: list[str], output: str | None, fmt: str | None, suffix: str | None, overwrite: bool) -> Plan:
    """Map INPUT arguments to ``(input, output)`` pairs, applying the never-overwrite-an-input and skip rules."""
    out = Path(output) if output else None
    single_file = len(inputs) == 1 and Path(inputs[0]).is_file()
    to_file = out is not None and single_file and not out.is_dir() and out.suffix.lower() in FORMATS
    if out is not None and not to_file and out.suffix.lower() in FORMATS and not out.is_dir():
        raise UsageError(f"-o {output} names a file, but the inputs can be several images; give a folder")
    out_dir = None if out is None or to_file else _resolve(out)
    suffix = suffix if suffix is not None else ("" if out is not None else DEFAULT_SUFFIX)

    result = Plan()
    candidates: list[tuple[Path, Path, bool]] = []
    for arg in inputs:
        found, failure = _expand(arg, exclude=out_dir)
        candidates += found
        if failure:
            result.failed.append(failure)

    def target(file: Path, rel: Path) -> Path:
        if to_file:
            return out
        ext = f".{fmt}" if fmt else (file.suffix if file.suffix.lower() in FORMATS else ".png")
        name = rel.with_name(f"{rel.stem}{suffix}{ext}")
        return (out / name) if out is not None else file.with_name(name.name)

    pairs = [(file, target(file, rel), searched) for file, rel, searched in candidates]
    planned_outputs = {_resolve(dst) for _, dst, _ in pairs}
    # An earlier run's output found beside its input is not an input itself.
    pairs = [(file, dst) for file, dst, searched in pairs if not (searched and _resolve(file) in planned_outputs)]
    resolved_inputs = {_resolve(file) for file, _ in pairs}
    seen: dict[Path, Path] = {}
    for file, dst in pairs:
        key = _resolve(dst)
        if out_dir is not None and not _resolve(dst.parent).is_relative_to(out_dir):
            # A symbolic link among the output's subfolders would take the write elsewhere.
            result.failed.append(f"cannot write {dst}: its folder leads out of {output} (a symbolic link)")
        elif key in resolved_inputs:
            result.failed.append(f"cannot write {dst}: it is an input; use -o or --suffix")
        elif key in seen:
            result.failed.append(f"cannot write {dst}: also the output of {seen[key]}")
        elif dst.is_dir():
            result.failed.append(f"cannot write {dst}: is a folder")
        elif dst.exists() and not overwrite:
            result.skipped.append((file, dst))
            seen[key] = file
        else:
            result.jobs.append((file, dst))
            seen[key] = file
    return result


def _read_stdin(max_pixels: int) -> bytes:
    """All of stdin, refused past what an image of ``max_pixels`` can take (0: no limit)."""
    if not max_pixels:
        return sys.stdin.buffer.read()
    limit = max_pixels * STDIN_BYTES_PER_PIXEL + STDIN_HEADROOM
    data = sys.stdin.buffer.read(limit + 1)
    if len(data) > limit:
        raise CommandError(f"stdin holds more than {limit:,} bytes, more than an image of --max-pixels "
                           f"{max_pixels:,} can take; raise --max-pixels (0 for no limit)")
    return data


def _run_stdio(args: argparse.Namespace) -> int:
    """One image from stdin or to stdout."""
    if len(args.inputs) != 1:
        raise UsageError("- (stdin/stdout) works with exactly one input")
    if args.inputs[0] == "-":
        source = io.BytesIO(_read_stdin(args.max_pixels))
        source.name = "<stdin>"
    else:
        source = args.inputs[0]
    to_stdout = args.output in (None, "-")
    enhancer = enhancer_from_args(args)
    try:
        image = enhancer.enhance(read_image(source, max_pixels=args.max_pixels or None))
        fmt = args.format or (image.format if image.format in EXTENSIONS else "PNG")
        write_image(sys.stdout.buffer if to_stdout else args.output, image, format=fmt, quality=args.quality)
    except ImageError as exc:
        print(f"zerodce enhance: failed: {exc}", file=sys.stderr)
        return 1
    if to_stdout:
        sys.stdout.buffer.flush()
    return 0


def run(args: argparse.Namespace) -> int:
    """Run ``zerodce enhance``; returns the exit code."""
    if "-" in args.inputs or args.output == "-":
        return _run_stdio(args)
    work = plan(args.inputs, args.output, args.format, args.suffix, args.overwrite)
    failures = list(work.failed)
    done, megapixels, start = 0, 0.0, time.perf_counter()
    if work.jobs:
        enhancer = enhancer_from_args(args)
        workers = min(args.workers, len(work.jobs))
        if workers > 1 and enhancer.device.type == "cpu":
            # Files in parallel, one torch thread each: threads spinning for a core another worker holds cost more.
            set_torch_threads(torch.get_num_threads() // workers)
        for dst in {dst.parent for _, dst in work.jobs}:
            dst.mkdir(parents=True, exist_ok=True)
        with tqdm(total=len(work.jobs), unit="img", disable=len(work.jobs) < 2, file=sys.stderr) as bar:
            for result in enhance_files(enhancer, work.jobs, quality=args.quality,
                                        max_pixels=args.max_pixels or None, workers=workers):
                if result.status == "done":
                    done += 1
                    megapixels += result.megapixels
                    bar.set_postfix_str(f"{megapixels / (time.perf_counter() - start):.3g} MP/s", refresh=False)
                else:
                    failures.append(result.reason)
                bar.update()
    seconds = time.perf_counter() - start
    for reason in failures:
        print(f"zerodce enhance: failed: {reason}", file=sys.stderr)
    rate = f", {megapixels / seconds:.3g} MP/s" if done else ""
    hint = " (outputs exist; --overwrite redoes them)" if work.skipped else ""
    print(f"zerodce enhance: {done} done, {len(work.skipped)} skipped{hint}, {len(failures)} failed "
          f"in {seconds:.1f} s{rate}", file=sys.stderr)
    if len(work.jobs) == 1 and done:
        print(f"zerodce enhance: wrote {work.jobs[0][1]}", file=sys.stderr)
    return 1 if failures else 0
