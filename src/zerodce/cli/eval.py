"""``zerodce eval``: PSNR and SSIM against ground truth, or no-reference scores of photos.

The data is a dataset root (LOL ``eval15/low`` + ``eval15/high``, ``low`` +
``high``, or LOL-v2 ``Low`` + ``Normal``) or ``--low DIR --high DIR``; images
pair by file stem. Methods in one table: the model of the enhancer options
(``--model``, ``--checkpoint``, ``--strength``, ``--denoise``, ``--backend``,
... exactly as ``zerodce enhance`` takes them; unless ``--enhanced`` is given),
every ``--compare`` entry (a model with its own settings), every
``--enhanced`` folder, and with ``--baselines`` identity, gamma 1/2.2, HE and
CLAHE. ``--well-exposed`` also feeds the ground truths to the models and
baselines. ``--no-reference PATH...`` scores photos without ground truth
instead. Exit code 0 on success, 1 if an image could not be evaluated (the
others still are) or the run failed, 2 for usage errors.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NoReturn

from zerodce._extras import MissingExtraError, import_extra
from zerodce.cli import CommandError, UsageError
from zerodce.cli._options import add_enhancer_options, add_max_pixels_option, enhancer_from_args, int_range
from zerodce.evaluate import (ContactSheet, baseline_methods, dataset_dirs, evaluate, evaluate_no_reference,
                              find_pairs, find_photos, folder_method, format_no_reference_table, format_table,
                              model_method, write_json, write_markdown, write_no_reference_markdown)
from zerodce.io import format_for_path
from zerodce.models import list_models

EXAMPLES = """\
examples:
  zerodce eval ../shared/data/lol_eval15 --baselines --well-exposed
  zerodce eval ../shared/data/lol_eval15 --compare zero_dce_pp,plain --compare zero_dce_pp=official.pth,plain
  zerodce eval data/LOL --model zero_dce --checkpoint runs/a/best.pt --json a.json --grid a.png
  zerodce eval --high gt/ --enhanced other_tool_outputs/ --enhanced ours/
  zerodce eval --no-reference photos/ --compare zero_dce_pp,plain --grid sheet.png
"""

#: Enhancer options that are not per-entry settings of ``--compare``: the entry names the model, and
#: every model of a run shares the device.
_NOT_SETTINGS = ("model", "checkpoint", "device")

#: Words of a ``--compare`` entry that stand for settings: the model as trained, and enhance's defaults.
_PLAIN = {"strength": "1", "denoise": "off"}
_WORDS = ("plain", "default")


class _EntryParser(argparse.ArgumentParser):
    """Parses a ``--compare`` entry's settings with the very options of ``zerodce enhance``."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _entry_parser() -> _EntryParser:
    parser = _EntryParser(prog="--compare", add_help=False)
    add_enhancer_options(parser)
    return parser


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Setting name (the option without ``--``) -> its action, for the enhancer options an entry may set."""
    # Read from the parser, so that an option added to add_enhancer_options is a setting here too.
    return {action.option_strings[0][2:]: action for action in parser._actions
            if action.option_strings and action.dest not in _NOT_SETTINGS}


def _plain(parser: argparse.ArgumentParser) -> dict[str, object]:
    """``dest`` -> parsed value of the plain settings (the model as trained)."""
    options = _options(parser)
    return {options[key].dest: options[key].type(value) for key, value in _PLAIN.items()}


@dataclass(frozen=True)
class CompareSpec:
    """A ``--compare`` entry: ``NAME[=CHECKPOINT][,plain|default|SETTING=VALUE...]``."""

    text: str
    name: str
    checkpoint: str | None
    settings: tuple[str, ...]


def _compare_spec(text: str) -> CompareSpec:
    head, *settings = text.split(",")
    name, sep, checkpoint = head.partition("=")
    if name not in list_models():
        raise argparse.ArgumentTypeError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    if sep and not checkpoint:
        raise argparse.ArgumentTypeError(f"{text!r}: give a weights file after '=', or leave '=' out for the shipped weights")
    known = _options(_entry_parser())
    for setting in settings:
        key, sep, value = setting.partition("=")
        if setting in _WORDS:
            continue
        if key not in known or not sep or not value:
            raise argparse.ArgumentTypeError(
                f"{text!r}: {setting!r} is not a setting; use {', '.join(_WORDS)} or "
                f"{', '.join(k + '=VALUE' for k in known)} (options of zerodce enhance)")
    return CompareSpec(text, name, checkpoint or None, tuple(settings))


def _entry_args(spec: CompareSpec, args: argparse.Namespace, parser: argparse.ArgumentParser) -> argparse.Namespace:
    """The enhancer options of an entry: its own settings, the command's for the rest."""
    argv = ["--model", spec.name] + (["--checkpoint", spec.checkpoint] if spec.checkpoint else [])
    options = _options(parser)
    for setting in spec.settings:
        if setting in _WORDS:
            values = _PLAIN if setting == "plain" else {k: str(parser.get_default(options[k].dest)) for k in _PLAIN}
            argv += [arg for key, value in values.items() for arg in (f"--{key}", value)]
        else:
            key, _, value = setting.partition("=")
            argv += [f"--{key}", value]
    # Options the entry leaves out keep the command's values: argparse only fills in defaults it lacks.
    inherited = argparse.Namespace(**{k: v for k, v in vars(args).items() if k not in ("model", "checkpoint")})
    try:
        return parser.parse_args(argv, namespace=inherited)
    except UsageError as exc:
        raise UsageError(f"--compare {spec.text}: {exc}") from None


def _summary(entry: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    """How an entry's settings differ from ``zerodce enhance``'s defaults: ``plain``, ``default`` or a list.

    ``plain`` (strength 1, denoise off) stands for those two settings.
    """
    different = {key: getattr(entry, action.dest) for key, action in _options(parser).items()
                 if getattr(entry, action.dest) != action.default}
    plain = _plain(parser)
    words = []
    if all(getattr(entry, dest) == value for dest, value in plain.items()):
        words.append("plain")
        different = {key: value for key, value in different.items() if key not in _PLAIN}
    words += [f"{key} {value:g}" if isinstance(value, float) else f"{key} {value}" for key, value in different.items()]
    return ", ".join(words) or "default"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``eval`` subcommand."""
    parser = subparsers.add_parser(
        "eval", help="PSNR/SSIM against ground truth, or no-reference scores (models, baselines, enhanced folders)",
        description="Full-reference evaluation: PSNR (dB, data range 255) and SSIM of 8-bit outputs against "
                    "the ground truth, per image and mean, several methods side by side; each model runs "
                    "exactly as zerodce enhance runs it with the same options. With --no-reference: "
                    "lightness-order error, noise, brightness and clipping of photos without ground truth.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", nargs="?", metavar="ROOT",
                        help="dataset root: eval15/low + eval15/high (LOL), low + high, or Low + Normal (LOL-v2)")
    parser.add_argument("--low", metavar="DIR", help="low-light inputs (instead of ROOT)")
    parser.add_argument("--high", metavar="DIR", help="ground truth (instead of ROOT)")
    parser.add_argument("--no-reference", nargs="+", metavar="PATH",
                        help="photos without ground truth (files, folders searched recursively): report LOE, "
                             "noise, brightness and clipped pixels of the inputs and of every method")
    add_enhancer_options(parser)
    add_max_pixels_option(parser)
    parser.add_argument("--compare", action="append", type=_compare_spec, default=[],
                        metavar="NAME[=CHECKPOINT][,SETTING...]",
                        help="also evaluate this model (shipped weights, or CHECKPOINT) in the same table; "
                             "SETTING is plain (strength 1, denoise off: the model as trained), default "
                             "(enhance's defaults) or OPTION=VALUE for an enhancer option (strength=0.8, "
                             "denoise=off, scale-factor=4, ...); settings not given are the command's; repeatable")
    parser.add_argument("--enhanced", action="append", default=[], metavar="DIR",
                        help="evaluate a folder of already-enhanced images (same stems) instead of --model; "
                             "repeatable, combine with --compare to add models")
    parser.add_argument("--baselines", action="store_true", help="add identity, gamma 1/2.2, HE and CLAHE")
    parser.add_argument("--well-exposed", action="store_true",
                        help="also feed the ground truths to every model and baseline, and score each output "
                             "against its own input (how much a photo that needs nothing is changed)")
    parser.add_argument("--json", metavar="PATH", help="write per-image and mean results as JSON")
    parser.add_argument("--markdown", metavar="PATH", help="write the tables as Markdown")
    parser.add_argument("--grid", metavar="PATH",
                        help="write a contact sheet PNG: input | outputs | ground truth (no-reference: input | outputs)")
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


def _model_labels(entries: list[argparse.Namespace], summaries: list[str]) -> list[tuple[str, str]]:
    """``(short, long)`` labels: the model's name, its checkpoint (file name, or path) and, where the
    models of the run differ in them, its settings."""
    show = len(set(summaries)) > 1

    def label(model: str, checkpoint: str | None, summary: str) -> str:
        parts = [part for part in (checkpoint, summary if show else None) if part]
        return f"{model} ({', '.join(parts)})" if parts else model

    return [(label(e.model, e.checkpoint and Path(e.checkpoint).name, s), label(e.model, e.checkpoint, s))
            for e, s in zip(entries, summaries, strict=True)]


def _check_usage(args: argparse.Namespace) -> None:
    if args.no_reference:
        if args.root or args.low or args.high or args.enhanced or args.well_exposed:
            raise UsageError("--no-reference scores photos alone: leave out ROOT, --low, --high, --enhanced "
                             "and --well-exposed")
        return
    if args.root and (args.low or args.high):
        raise UsageError("give a dataset ROOT or --low/--high, not both")
    if not args.root and not args.high:
        raise UsageError("give a dataset ROOT, or --high DIR with --low DIR and/or --enhanced DIR "
                         "(or --no-reference PATH... for photos without ground truth)")
    if args.enhanced and args.checkpoint:
        raise UsageError("--enhanced folders replace the --model/--checkpoint model; "
                         "add models beside them with --compare NAME=CHECKPOINT")
    needs_inputs = not args.enhanced or args.compare or args.baselines
    if args.high and not args.low and needs_inputs:
        raise UsageError("models and --baselines enhance the low-light inputs: give --low DIR "
                         "(or only --enhanced folders)")
    if args.well_exposed and not (needs_inputs and (args.root or args.low)):
        raise UsageError("--well-exposed needs a model or --baselines to feed the ground truths to")


def _write_outputs(args: argparse.Namespace, results: list, write_markdown_file: Callable[[str], None],
                   sheet: ContactSheet | None) -> None:
    """The files asked for (``--json``, ``--markdown``, ``--grid``), each named on stderr once written."""
    if args.json:
        write_json(args.json, results)
    if args.markdown:
        write_markdown_file(args.markdown)
    if sheet is not None:
        sheet.save(args.grid)
    for path in (args.json, args.markdown, args.grid):
        if path:
            print(f"zerodce eval: wrote {path}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Run ``zerodce eval``; returns the exit code."""
    _check_usage(args)
    parser = _entry_parser()
    entries = ([] if args.enhanced else [args]) + [_entry_args(spec, args, parser) for spec in args.compare]
    baselines = baseline_methods() if args.baselines else {}
    model_labels = _model_labels(entries, [_summary(entry, parser) for entry in entries])
    labels = _labels(model_labels + [(Path(d).name or d, d) for d in args.enhanced] + [(name, name) for name in baselines])
    try:
        import_extra("skimage.metrics", "metrics")
        if args.no_reference:
            import_extra("pywt", "metrics")
    except MissingExtraError as exc:
        raise CommandError(str(exc)) from None
    if args.grid:
        format_for_path(args.grid)  # an unknown extension fails now, not after the run

    if args.no_reference:
        pairs = find_photos(args.no_reference)
    else:
        low, high = dataset_dirs(args.root) if args.root else (args.low, args.high)
        pairs = find_pairs(low, high)
    models = [model_method(enhancer_from_args(entry)) for entry in entries]
    methods = dict(zip(labels, models + [folder_method(folder, pairs, args.max_pixels or None) for folder in args.enhanced]
                       + list(baselines.values()), strict=True))
    enhancing = labels[:len(models)] + labels[len(models) + len(args.enhanced):]  # models and baselines
    progress = sys.stderr.isatty()

    if args.no_reference:
        sheet = ContactSheet(["input", *methods], args.grid_width) if args.grid else None
        evaluation = evaluate_no_reference(pairs, methods, progress=progress, max_pixels=args.max_pixels or None,
                                           on_image=(lambda name, image, outputs: sheet.add(name, [image, *outputs]))
                                           if sheet else None)
    else:
        has_inputs = pairs[0].low is not None
        sheet = ContactSheet((["input"] if has_inputs else []) + list(methods) + ["ground truth"],
                             args.grid_width) if args.grid else None
        evaluation = evaluate(pairs, methods, on_pair=sheet.add_pair if sheet else None, progress=progress,
                              well_exposed=enhancing if args.well_exposed else (), max_pixels=args.max_pixels or None)
    for failure in evaluation.failures:
        print(f"zerodce eval: skipped {failure}", file=sys.stderr)
    results = evaluation.results
    if not results[-1].images:
        raise CommandError(f"none of the {len(pairs)} images could be evaluated")

    if args.no_reference:
        print(format_no_reference_table(results))
        _write_outputs(args, results, lambda path: write_no_reference_markdown(path, results), sheet)
    else:
        print(format_table(results, per_image=len(results) == 1))
        _write_outputs(args, results, lambda path: write_markdown(path, results, title=f"Evaluation on {args.root or high}"),
                       sheet)
    if evaluation.failures:
        print(f"zerodce eval: {len(evaluation.failures)} of {len(pairs)} images could not be evaluated "
              "and are left out of the means", file=sys.stderr)
        return 1
    return 0
