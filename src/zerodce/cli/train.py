"""``zerodce train``: zero-reference training on folders of images.

Defaults are the authors' recipe; ``--preset report`` is the recipe of the
course report (DEVELOPERS.md). Launched with ``torchrun --nproc_per_node N``
it trains data-parallel. Exit codes: 0 done, 1 the run failed (message names
why), 2 usage error, 130 interrupted (``last.pt`` saved, resumable).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import fields

from zerodce.cli import UsageError
from zerodce.cli._options import add_model_options
from zerodce.train import PRESETS, RESUMABLE_CHANGES, TrainConfig, format_table, resume_config, train

EXAMPLES = """\
examples:
  zerodce train photos/ --model zero_dce_pp --out runs/mine
  zerodce train ../shared/data/lol_our485_low --preset report --out runs/report
  zerodce train --resume runs/mine/last.pt --epochs 150
  torchrun --nproc_per_node 2 -m zerodce.cli train photos/ --out runs/ddp
"""

#: Options mapped to TrainConfig fields: (flag, field, type, help). Their defaults come from TrainConfig.
_OPTIONS = (
    ("--out", "out", str, "run folder for checkpoints, history and weights"),
    ("--epochs", "epochs", int, "training epochs"),
    ("--batch-size", "batch_size", int, "global batch size (split over torchrun processes)"),
    ("--image-size", "image_size", int, "training images are resized to this square (default: 256 zero_dce, 512 zero_dce_pp)"),
    ("--crop-size", "crop_size", int, "train on random crops of this side from the resized images"),
    ("--train-scale-factor", "train_scale_factor", int, "estimate curves on a 1/N downscale while training"),
    ("--lr", "lr", float, "Adam learning rate"),
    ("--lr-schedule", "lr_schedule", str, "constant or cosine"),
    ("--warmup-steps", "warmup_steps", int, "linear learning-rate warm-up steps"),
    ("--weight-decay", "weight_decay", float, "Adam weight decay"),
    ("--grad-clip", "grad_clip", float, "gradient-norm clip (0: off)"),
    ("--val-split", "val_split", float, "fraction of images for validation"),
    ("--exposure-level", "exposure_level", float, "well-exposedness level E of the exposure loss"),
    ("--formulation", "formulation", str, "loss formulas: released or paper"),
    ("--precision", "precision", str, "fp32, or bf16 autocast for the curve network"),
    ("--seed", "seed", int, "seed of initialization, split and data order"),
    ("--workers", "workers", int, "decoding threads (preload) or DataLoader workers"),
)
_CHOICES = {"lr_schedule": ("constant", "cosine"), "formulation": ("released", "paper"), "precision": ("fp32", "bf16")}
_DEFAULTS = {f.name: f.default for f in fields(TrainConfig)}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` subcommand."""
    parser = subparsers.add_parser(
        "train", help="train a model on your own dark photos (no ground truth needed)",
        description="Zero-reference training of Zero-DCE / Zero-DCE++ on folders of images "
                    "(recursive; JPEG, PNG, BMP, TIFF, WebP). Writes last.pt, best.pt, best.safetensors, "
                    "history.csv and history.png into --out.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="*", metavar="DATA", help="image folders or files")
    add_model_options(parser)
    # None marks "not given", so a preset or a resumed checkpoint can fill it.
    parser.set_defaults(model=None, device=None, func=run)
    parser.add_argument("--preset", choices=sorted(PRESETS),
                        help="a documented recipe; explicit options win (report: zero_dce, 256x256, sorted 4/5 split, 100 epochs)")
    for flag, name, kind, text in _OPTIONS:
        parser.add_argument(flag, dest=name, type=kind, choices=_CHOICES.get(name),
                            help=f"{text} (default: {_DEFAULTS[name]})")
    parser.add_argument("--sorted-split", dest="split_shuffle", action="store_false", default=None,
                        help="split sorted files: first train, last validate (default: seeded shuffle)")
    parser.add_argument("--no-preload", dest="preload", action="store_false", default=None,
                        help="decode images every epoch instead of once into memory")
    parser.add_argument("--no-channels-last", dest="channels_last", action="store_false", default=None,
                        help="keep the NCHW memory layout (slower on CPU)")
    parser.add_argument("--resume", metavar="PATH", help="continue the run of this checkpoint (last.pt)")
    parser.add_argument("--quiet", dest="progress", action="store_false", default=None, help="no progress bar")


def _given(args: argparse.Namespace) -> dict:
    """Options the user gave, as TrainConfig fields (``--checkpoint`` is the initial weights)."""
    given = {name: getattr(args, name) for name in _DEFAULTS if getattr(args, name, None) is not None}
    given.pop("data", None)
    given.pop("resume", None)
    if args.data:
        given["data"] = tuple(args.data)
    if args.checkpoint:
        given["init_weights"] = args.checkpoint
    return given


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The run's configuration: TrainConfig defaults < preset < explicit options (or the checkpoint's, on resume)."""
    given = _given(args)
    if args.resume:
        fixed = sorted(set(given) - set(RESUMABLE_CHANGES))
        if fixed or args.preset:
            names = ", ".join(["--" + n.replace("_", "-") for n in fixed] + (["--preset"] if args.preset else []))
            raise UsageError(f"{names} cannot change when resuming; only "
                               f"{', '.join('--' + n for n in RESUMABLE_CHANGES)} can")
        return resume_config(args.resume, **given)
    if "data" not in given:
        raise UsageError("give image folders or files to train on (DATA), or --resume a run")
    return TrainConfig(**{**PRESETS.get(args.preset, {}), **given})


def run(args: argparse.Namespace) -> int:
    result = train(config_from_args(args))  # a TrainingError is reported by zerodce.cli.main
    if int(os.environ.get("RANK", "0")) == 0:
        last = result.history[-1]
        print(f"\nepoch {last['epoch']} (best: epoch {result.best_epoch}, validation loss {result.best_val:.6f})")
        print(format_table(last))
        print(f"weights: {result.weights}")
    return 0
