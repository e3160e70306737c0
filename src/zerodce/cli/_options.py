"""Options shared by several subcommands, declared once."""

from __future__ import annotations

import argparse
from typing import Callable

from zerodce.enhance import DEFAULT_TILE, Enhancer, parse_denoise, parse_strength
from zerodce.export import onnxruntime_model
from zerodce.io import DEFAULT_MAX_PIXELS
from zerodce.models import DEFAULT_MODEL, list_models


def add_model_options(parser: argparse.ArgumentParser, device: bool = True) -> None:
    """``--model``, ``--checkpoint``, and ``--device`` unless ``device`` is false."""
    parser.add_argument("--model", default=DEFAULT_MODEL, choices=list_models(),
                        help=f"model architecture (default: {DEFAULT_MODEL})")
    parser.add_argument("--checkpoint", metavar="PATH",
                        help="weights file instead of the shipped weights: ours (.safetensors or a training checkpoint) or the authors' .pth")
    if device:
        parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")


def _argparse_type(parse: Callable[[str], object]) -> Callable[[str], object]:
    """An argparse ``type`` from a library parser: its ValueError becomes a usage error (exit code 2)."""

    def convert(text: str) -> object:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def int_range(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type`` for integers in ``[low, high]``; out of range is a usage error (exit code 2)."""

    def integer(text: str) -> int:
        value = int(text)
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be in {low}..{high}, got {text}" if high is not None
                                             else f"must be >= {low}, got {text}")
        return value

    return integer


def add_overwrite_option(parser: argparse.ArgumentParser) -> None:
    """``--overwrite``: outputs that exist are skipped unless it is given, so re-runs are cheap."""
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: skip them)")


def add_max_pixels_option(parser: argparse.ArgumentParser) -> None:
    """``--max-pixels``: the size limit of images and video frames (also Pillow's, see :mod:`zerodce.cli`)."""
    parser.add_argument("--max-pixels", type=int_range(0), default=DEFAULT_MAX_PIXELS, metavar="N",
                        help="refuse larger images (and video frames) as decompression bombs; 0 for no limit "
                             "(default: %(default)s)")


def add_enhancer_options(parser: argparse.ArgumentParser) -> None:
    """The model options plus ``--strength``, ``--tile``, ``--scale-factor`` and ``--backend``:
    everything :func:`enhancer_from_args` reads."""
    add_model_options(parser)
    parser.add_argument("--strength", type=_argparse_type(parse_strength), default="auto", metavar="auto|S",
                        help="auto: each photo to a natural exposure, well-exposed ones left unchanged; or a scale "
                             "of the curve maps: 0 leaves images unchanged, 1 is the model as trained, >1 brightens "
                             "more (default: %(default)s)")
    parser.add_argument("--denoise", type=_argparse_type(parse_denoise), default="auto", metavar="auto|off|LEVEL",
                        help="remove the noise the curves amplify: auto adapts to each photo's noise and to the "
                             "brightening at each pixel; LEVEL scales that (0 = off, 1 = auto, 2 = twice as strong) "
                             "(default: %(default)s). --strength 1 --denoise off is the model exactly as trained")
    parser.add_argument("--tile", type=int_range(0), default=DEFAULT_TILE, metavar="PX",
                        help="tile side / band height in pixels, bounds memory on large images; "
                             "0 processes whole images at once (default: %(default)s)")
    parser.add_argument("--scale-factor", type=int_range(1), metavar="K",
                        help="estimate the curves on a 1/K downscale: much faster, slightly different output "
                             "(default: the model's, 12 for zero_dce_pp, 1 for zero_dce)")
    parser.add_argument("--backend", choices=["torch", "onnxruntime"], default="torch",
                        help="run the curve network in PyTorch or onnxruntime (faster for zero_dce on CPU); "
                             "a .onnx --checkpoint implies onnxruntime (default: %(default)s)")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="bf16: zero_dce's network in bfloat16 where the CPU computes it natively (AVX-512 "
                             "BF16, AMX; float32 elsewhere), about 2x faster and within 1/255 (default: %(default)s)")


def enhancer_from_args(args: argparse.Namespace) -> Enhancer:
    """The :class:`~zerodce.enhance.Enhancer` described by :func:`add_enhancer_options`."""
    settings = {"device": args.device, "strength": args.strength, "denoise": args.denoise, "tile": args.tile,
                "precision": args.precision}
    if args.backend == "onnxruntime" or str(args.checkpoint or "").endswith(".onnx"):
        model = onnxruntime_model(args.model, args.checkpoint, args.scale_factor)  # MissingExtraError: one line
        return Enhancer(model, **settings)
    return Enhancer(args.model, checkpoint=args.checkpoint, scale_factor=args.scale_factor, **settings)
