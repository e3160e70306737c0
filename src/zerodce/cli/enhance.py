"""``zerodce enhance``: brighten photos, folders and globs; ``-`` for stdin/stdout.

Outputs go beside each input with ``--suffix`` (default ``_enhanced``), or
under ``-o`` (a file for one input, else a folder, where folder inputs keep
their relative paths). An output never replaces an input; existing outputs are
skipped unless ``--overwrite``. Exit code 0 if every input succeeded, 1 if any
failed (each listed with its reason), 2 for usage errors.

Large libraries: ``--shard K/N`` (or a ``torchrun`` launch) takes one part of the
inputs, ``--manifest`` records each file as it finishes, and a re-run picks up
where a killed one stopped (see :mod:`zerodce.batch`).
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

from zerodce import batch
from zerodce._atomic import remove_stale_temporaries
from zerodce.cli import CommandError, UsageError, set_torch_threads
from zerodce.cli._options import (_argparse_type, add_enhancer_options, add_max_pixels_option, add_overwrite_option,
                                 enhancer_from_args, int_range)
from zerodce.enhance import enhance_files
from zerodce.io import (EXTENSIONS, FORMATS, IMAGE_SUFFIXES, RAW_FORMATS, ImageError, output_format, read_image,
                        require_codecs, write_image)

DEFAULT_SUFFIX = "_enhanced"
#: Bytes read from stdin per pixel --max-pixels allows (16-bit RGBA, uncompressed), plus room for metadata.
STDIN_BYTES_PER_PIXEL, STDIN_HEADROOM = 8, 1 << 20

EXAMPLES = """\
examples:
  zerodce enhance dark.jpg                      writes dark_enhanced.jpg
  zerodce enhance photos/ -o bright/            keeps photos/'s subfolders in bright/
  zerodce enhance "shots/*.png" --format jpg --quality 90 -o out/
  cat dark.jpg | zerodce enhance - > bright.jpg
  zerodce enhance library/ -o out/ --shard 0/4 --manifest run.jsonl    one of 4 machines (writes run.0.jsonl)
  torchrun --nproc_per_node 8 -m zerodce.cli enhance library/ -o out/  one process per GPU
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
    parser.add_argument("--shard", type=_argparse_type(batch.parse_shard), metavar="K/N",
                        help="take part K (0 to N-1) of N of the inputs, chosen from each file's relative path, so "
                             "N processes or machines given the same inputs share them without talking "
                             "(under torchrun: RANK/WORLD_SIZE)")
    parser.add_argument("--manifest", metavar="FILE.jsonl",
                        help="append one JSON line per input as it finishes (source, target, status, reason, "
                             "megapixels, seconds, sha256); FILE.K.jsonl for shard K")
    parser.set_defaults(func=run)


@dataclass
class Plan:
    """Inputs resolved into work: jobs to run, outputs to skip, failures found while planning.

    ``keys`` holds each input's path relative to its folder (its name for a file named
    on the command line): what ``--shard`` hashes.
    """

    jobs: list[tuple[Path, Path]] = field(default_factory=list)
    skipped: list[tuple[Path, Path]] = field(default_factory=list)
    #: ``(input, output, reason)``; ``None`` for a failure of no file (an INPUT that matches nothing).
    failed: list[tuple[Path | None, Path | None, str]] = field(default_factory=list)
    keys: dict[Path, str] = field(default_factory=dict)

    def part(self, shard: batch.Shard) -> "Plan":
        """The work of ``shard``; failures of no file go to part 0, so they are counted once."""
        def mine(file: Path | None) -> bool:
            return shard.index == 0 if file is None else shard.holds(self.keys[file])

        return Plan([job for job in self.jobs if mine(job[0])], [skip for skip in self.skipped if mine(skip[0])],
                    [fail for fail in self.failed if mine(fail[0])], self.keys)


def _expand(arg: str, exclude: Path | None) -> tuple[list[tuple[Path, Path, bool]], str | None]:
    """``(file, path relative to the output folder, found by a search)`` for one INPUT, or a failure reason."""
    path = Path(arg)
    if path.is_dir():
        found = []
        for file in sorted(path.rglob("*")):
            rel = file.relative_to(path)
            # Hidden names include our own temporary files (".name.xxx.part"). A link to nowhere (or a loop)
            # is kept: reading it fails, named, where leaving it out would lose it silently.
            if (file.suffix.lower() in IMAGE_SUFFIXES and (file.is_file() or (file.is_symlink() and not file.exists()))
                    and not any(p.startswith(".") for p in rel.parts)
                    and not (exclude is not None and _resolve(file).is_relative_to(exclude))):
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
            result.failed.append((None, None, failure))
    result.keys = {file: rel.as_posix() for file, rel, _ in candidates}

    def target(file: Path, rel: Path) -> Path:
        if to_file:
            return out
        suffix_format = RAW_FORMATS.get(file.suffix.lower())
        ext = f".{fmt}" if fmt else (file.suffix if file.suffix.lower() in FORMATS
                                     else EXTENSIONS[output_format(suffix_format)])
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
            result.failed.append((file, dst, f"cannot write {dst}: its folder leads out of {output} (a symbolic link)"))
        elif key in resolved_inputs:
            result.failed.append((file, dst, f"cannot write {dst}: it is an input; use -o or --suffix"))
        elif key in seen:
            result.failed.append((file, dst, f"cannot write {dst}: also the output of {seen[key]}"))
        elif dst.is_dir():
            result.failed.append((file, dst, f"cannot write {dst}: is a folder"))
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
        fmt = args.format or output_format(image.format)
        write_image(sys.stdout.buffer if to_stdout else args.output, image, format=fmt, quality=args.quality)
    except ImageError as exc:
        print(f"zerodce enhance: failed: {exc}", file=sys.stderr)
        return 1
    if to_stdout:
        sys.stdout.buffer.flush()
    return 0


def _shard_of_run(args: argparse.Namespace) -> batch.Shard | None:
    """``--shard``, or the part torchrun gives this process; not both."""
    launched = batch.shard_from_environment()
    if launched is not None and args.shard is not None:
        raise UsageError(f"--shard {args.shard} under torchrun, which gives this process part {launched}: "
                         "use one or the other")
    return launched or args.shard


def run(args: argparse.Namespace) -> int:
    """Run ``zerodce enhance``; returns the exit code."""
    if "-" in args.inputs or args.output == "-":
        if args.shard is not None or args.manifest:
            raise UsageError("--shard and --manifest are for files and folders, not - (stdin/stdout)")
        return _run_stdio(args)
    shard = _shard_of_run(args)
    if shard is not None and shard.distributed:
        batch.init_distributed()  # every process joins now: a launch that cannot work fails before the work
    work = plan(args.inputs, args.output, args.format, args.suffix, args.overwrite)
    if shard is not None:
        work = work.part(shard)
    require_codecs(dst for _, dst in work.jobs)  # e.g. --format heic without its extra: one line, not one per file
    manifest = batch.Manifest(batch.manifest_path(args.manifest, shard)) if args.manifest else None
    try:
        summary = _enhance(args, work, shard, manifest)
    finally:
        if manifest is not None:
            manifest.close()
    label = f"shard {shard}: " if shard is not None else ""
    _print_summary(label, summary, work.jobs[0][1] if len(work.jobs) == 1 and summary.done else None)
    if shard is None or not shard.distributed:
        return 1 if summary.failed else 0
    parts = batch.gather_summaries(summary)
    if shard.index == 0:
        combined = batch.Summary.combined(parts)
        _print_summary(f"all {len(parts)} shards: ", combined, None)
        return 1 if combined.failed else 0
    return 1 if summary.failed else 0


def _enhance(args: argparse.Namespace, work: Plan, shard: batch.Shard | None,
             manifest: batch.Manifest | None) -> batch.Summary:
    """Run the planned jobs, reporting each failure and recording every input in the manifest."""
    failures = [reason for _, _, reason in work.failed]
    if manifest is not None:
        for source, target, reason in work.failed:
            manifest.record(source, target, "failed", reason=reason)
        for source, target in work.skipped:
            # Not hashed: a re-run of a large library must stay cheap (its outputs were hashed when written).
            manifest.record(source, target, "skipped", reason="output exists")
    done, megapixels, start = 0, 0.0, time.perf_counter()
    if work.jobs:
        args.device = batch.shard_device(shard, args.device)
        enhancer = enhancer_from_args(args)
        workers = min(args.workers, len(work.jobs))
        if workers > 1 and enhancer.device.type == "cpu":
            # Files in parallel, one torch thread each: threads spinning for a core another worker holds cost more.
            set_torch_threads(torch.get_num_threads() // workers)
        for dst in {dst.parent for _, dst in work.jobs}:
            dst.mkdir(parents=True, exist_ok=True)
        # What a killed run was writing when it died: never complete, never to be left behind.
        remove_stale_temporaries(dst for _, dst in work.jobs + work.skipped)
        quiet = len(work.jobs) < 2 or (shard is not None and shard.distributed and shard.index > 0)  # one bar a terminal
        with tqdm(total=len(work.jobs), unit="img", disable=quiet, file=sys.stderr) as bar:
            for result in enhance_files(enhancer, work.jobs, quality=args.quality,
                                        max_pixels=args.max_pixels or None, workers=workers):
                if result.status == "done":
                    done += 1
                    megapixels += result.megapixels
                    bar.set_postfix_str(f"{megapixels / (time.perf_counter() - start):.3g} MP/s", refresh=False)
                else:
                    failures.append(result.reason)
                if manifest is not None:
                    digest = batch.sha256_file(result.target) if result.status == "done" else None
                    manifest.record(result.source, result.target, result.status, reason=result.reason,
                                    megapixels=result.megapixels if result.status == "done" else None,
                                    seconds=result.seconds, sha256=digest)
                bar.update()
    for reason in failures:
        print(f"zerodce enhance: failed: {reason}", file=sys.stderr)
    return batch.Summary(done, len(work.skipped), len(failures), megapixels, time.perf_counter() - start)


def _print_summary(label: str, summary: batch.Summary, wrote: Path | None) -> None:
    rate = f", {summary.megapixels / summary.seconds:.3g} MP/s" if summary.done and summary.seconds else ""
    hint = " (outputs exist; --overwrite redoes them)" if summary.skipped else ""
    print(f"zerodce enhance: {label}{summary.done} done, {summary.skipped} skipped{hint}, {summary.failed} failed "
          f"in {summary.seconds:.1f} s{rate}", file=sys.stderr)
    if wrote:
        print(f"zerodce enhance: wrote {wrote}", file=sys.stderr)
