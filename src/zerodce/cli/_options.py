"""Options shared by several subcommands, declared once."""

from __future__ import annotations

import argparse

from zerodce.models import DEFAULT_MODEL, list_models


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``--checkpoint``, ``--device``."""
    parser.add_argument("--model", default=DEFAULT_MODEL, choices=list_models(),
                        help="model architecture (default: %(default)s, with the shipped weights)")
    parser.add_argument("--checkpoint", metavar="PATH",
                        help="weights file instead of the shipped weights: ours (.safetensors or a training checkpoint) or the authors' .pth")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: %(default)s)")
