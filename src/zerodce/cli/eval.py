"""``zerodce eval``: PSNR and SSIM against ground truth, of models, baselines and enhanced folders.

The data is a dataset root (LOL ``eval15/low`` + ``eval15/high``, ``low`` +
``high``, or LOL-v2 ``Low`` + ``Normal``) or ``--low DIR --high DIR``; images
pair by file stem. Methods in one table: the model of ``--model`` /
``--checkpoint`` (unless ``--enhanced`` is given), every ``--compare`` model,
every ``--enhanced`` folder, and with ``--baselines`` identity, gamma 1/2.2, HE
and CLAHE. Exit code 0 on success, 1 if an image could not be evaluated (the
others still are) or the run failed, 2 for usage errors.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from zerodce._extras import MissingExtraError, import_extra
from zerodce.cli import CommandError, UsageError
from zerodce.cli._options import add_model_options, int_range
from zerodce.enhance import Enhancer
from zerodce.evaluate import (ContactSheet, baseline_methods, dataset_dirs, evaluate, find_pairs, folder_method,
                              format_table, model_method, write_json, write_markdown)
from zerodce.io import format_for_path
from zerodce.models import list_models

EXAMPLES = """\
examples:
  zerodce eval ../shared/data/lol_eval15 --baselines
  zerodce eval data/LOL --model zero_dce --checkpoint runs/a/best.pt --json a.json --grid a.png
  zerodce eval --low lo/ --high gt/ --compare zero_dce_pp=zero_dce_pp_epoch99.pth --markdown table.md
  zerodce eval --high gt/ --enhanced other_tool_outputs/ --enhanced ours/
"""


def _model_spec(text: str) -> tuple[str, str | None]:
    name, sep, checkpoint = text.partition("=")
    if name not in list_models():
        raise argparse.ArgumentTypeError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    if sep and not checkpoint:
        raise argparse.ArgumentTypeError(f"{text!r}: give a weights file after '=', or leave '=' out for the shipped weights")
    return name, checkpoint or None


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``eval`` subcommand."""
    parser = subparsers.add_parser(
        "eval", help="PSNR/SSIM against ground truth (models, baselines, enhanced folders)",
        description="Full-reference evaluation: PSNR (dB, data range 255) and SSIM of 8-bit outputs against "
                    "the ground truth, per image and mean, several methods side by side.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", nargs="?", metavar="ROOT",
                        help="dataset root: eval15/low + eval15/high (LOL), low + high, or Low + Normal (LOL-v2)")
    parser.add_argument("--low", metavar="DIR", help="low-light inputs (instead of ROOT)")
    parser.add_argument("--high", metavar="DIR", help="ground truth (instead of ROOT)")
    add_model_options(parser)
    parser.add_argument("--compare", action="append", type=_model_spec, default=[], metavar="NAME[=CHECKPOINT]",
                        help="also evaluate this model (shipped weights, or CHECKPOINT) in the same table; repeatable")
    parser.add_argument("--enhanced", action="append", default=[], metavar="DIR",
                        help="evaluate a folder of already-enhanced images (same stems) instead of --model; "
                             "repeatable, combine with --compare to add models")
    parser.add_argument("--baselines", action="store_true", help="add identity, gamma 1/2.2, HE and CLAHE")
    parser.add_argument("--json", metavar="PATH", help="write per-image and mean results as JSON")
    parser.add_argument("--markdown", metavar="PATH", help="write the tables as Markdown")
    parser.add_argument("--grid", metavar="PATH", help="write a contact sheet PNG: input | outputs | ground truth")
    parser.add_argument("--grid-width", type=int_range(1), default=200, metavar="PX",
                        help="width of each contact-sheet cell (default: %(default)s)")
    parser.set_defaults(func=run)


def _labels(specs: list[tuple[str, str]]) -> list[str]:
    """Short labels, or the long one where two short labels collide."""
    shorts = [short for short, _ in specs]
    labels = [short if shorts.count(short) == 1 else long for short, long in specs]
    for label in labels:
        if labels.count(label) > 1:
            raise UsageError(f"{label} is given twice")
    return labels


def _check_usage(args: argparse.Namespace) -> None:
    if args.root and (args.low or args.high):
        raise UsageError("give a dataset ROOT or --low/--high, not both")
    if not args.root and not args.high:
        raise UsageError("give a dataset ROOT, or --high DIR with --low DIR and/or --enhanced DIR")
    if args.enhanced and args.checkpoint:
        raise UsageError("--enhanced folders replace the --model/--checkpoint model; "
                         "add models beside them with --compare NAME=CHECKPOINT")
    needs_inputs = not args.enhanced or args.compare or args.baselines
    if args.high and not args.low and needs_inputs:
        raise UsageError("models and --baselines enhance the low-light inputs: give --low DIR "
                         "(or only --enhanced folders)")


def run(args: argparse.Namespace) -> int:
    """Run ``zerodce eval``; returns the exit code."""
    _check_usage(args)
    models = ([] if args.enhanced else [(args.model, args.checkpoint)]) + args.compare
    baselines = baseline_methods() if args.baselines else {}
    labels = _labels([(name, name) if ckpt is None else (f"{name} ({Path(ckpt).name})", f"{name} ({ckpt})")
                      for name, ckpt in models] + [(Path(d).name or d, d) for d in args.enhanced]
                     + [(name, name) for name in baselines])
    try:
        import_extra("skimage.metrics", "metrics")
    except MissingExtraError as exc:
        raise CommandError(str(exc)) from None
    if args.grid:
        format_for_path(args.grid)  # an unknown extension fails now, not after the run

    low, high = dataset_dirs(args.root) if args.root else (args.low, args.high)
    pairs = find_pairs(low, high)
    methods = dict(zip(labels, [model_method(Enhancer(name, checkpoint=ckpt, device=args.device)) for name, ckpt in models]
                       + [folder_method(folder, pairs) for folder in args.enhanced] + list(baselines.values())))

    has_inputs = pairs[0].low is not None
    sheet = ContactSheet((["input"] if has_inputs else []) + list(methods) + ["ground truth"],
                         args.grid_width) if args.grid else None
    evaluation = evaluate(pairs, methods, on_pair=sheet.add_pair if sheet else None, progress=sys.stderr.isatty())
    for failure in evaluation.failures:
        print(f"zerodce eval: skipped {failure}", file=sys.stderr)
    results = evaluation.results
    if not results[0].images:
        raise CommandError(f"none of the {len(pairs)} images could be evaluated")

    print(format_table(results, per_image=len(results) == 1))
    if args.json:
        write_json(args.json, results)
    if args.markdown:
        write_markdown(args.markdown, results, title=f"Evaluation on {args.root or high}")
    if sheet is not None:
        sheet.save(args.grid)
    for path in (args.json, args.markdown, args.grid):
        if path:
            print(f"zerodce eval: wrote {path}", file=sys.stderr)
    if evaluation.failures:
        print(f"zerodce eval: {len(evaluation.failures)} of {len(pairs)} images could not be evaluated "
              "and are left out of the means", file=sys.stderr)
        return 1
    return 0
