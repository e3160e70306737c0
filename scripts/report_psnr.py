"""The report this project started from, checked: its loss table and its PSNR, computed both ways.

The course report trained Zero-DCE in Keras (``zerodce train --preset report``
reproduces its recipe) and gave a PSNR computed between the *dark input* and
the output, as ``np.mean((input - output) ** 2)`` on uint8 arrays: the
difference and its square both wrap around modulo 256, so the "MSE" stays below
256 whatever the images are, and the figure lands near 28 dB for any output.
This script prints, for a training run and for shipped models, on LOL eval15:

* the run's train/validation losses at its last epoch beside the report's
  (components weighted as in the total, as the report gives them);
* PSNR against the ground truth (the real score, ``zerodce.metrics.psnr``);
* PSNR by the report's formula (dark input vs output, uint8 wrap-around);
* PSNR between the dark input and the output without wrap-around (what the
  formula meant to compute, still not a quality score).

Every model runs as trained: strength 1, denoise off.

    python scripts/report_psnr.py ../shared/data/lol_eval15 --run runs/report --shipped zero_dce_pp
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

import numpy as np

from zerodce._table import format_table
from zerodce.enhance import Enhancer
from zerodce.evaluate import dataset_dirs, evaluate, find_pairs, model_method
from zerodce.losses import LossWeights
from zerodce.metrics import psnr
from zerodce.train import read_checkpoint

#: The report's loss table, (train, validation); it gives no spatial-consistency figure.
REPORT_LOSSES = {
    "total": (0.7599, 0.6394),
    "illumination_smoothness": (0.0281, 0.0426),
    "color_constancy": (0.0959, 0.1441),
    "exposure_control": (0.6360, 0.4527),
    "spatial_consistency": (None, None),
}
#: The report's PSNR, by its formula.
REPORT_PSNR = 28.33


def report_formula_psnr(dark: np.ndarray, output: np.ndarray) -> float:
    """The report's PSNR: ``20 log10(255 / sqrt(mean((dark - output) ** 2)))`` on uint8 arrays (wrapping).

    Example:
        >>> dark, bright = np.full((2, 2, 3), 10, np.uint8), np.full((2, 2, 3), 250, np.uint8)
        >>> round(report_formula_psnr(dark, bright), 2)  # 10 - 250 wraps to 16, 16**2 wraps to 0 ... an exact match
        inf
    """
    mse = float(np.mean((dark - output) ** 2))  # uint8 arithmetic, as the report's arrays were
    return math.inf if mse == 0 else 20 * math.log10(255.0 / math.sqrt(mse))


def _cell(value: float | None, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def loss_table(run: Path) -> tuple[str, int, int]:
    """The run's last epoch beside the report's; ``(markdown table, last epoch, planned epochs)``."""
    with open(run / "history.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    if not rows:
        raise SystemExit(f"{run / 'history.csv'} has no epoch yet")
    last = {k: float(v) for k, v in rows[-1].items()}
    config = read_checkpoint(run / "last.pt")["config"]
    weights = LossWeights.for_model(config["model"])
    body = []
    for name in ("total", "illumination_smoothness", "color_constancy", "exposure_control", "spatial_consistency"):
        weight = 1.0 if name == "total" else getattr(weights, name)
        ours = [last[f"{split}_{name}"] * weight for split in ("train", "val")]
        label = name if name == "total" else f"{name} (x{weight:g})"
        body.append([label, *(_cell(v) for v in ours), *(_cell(v) for v in REPORT_LOSSES[name])])
    table = format_table(["loss", "ours, train", "ours, validation", "report, train", "report, validation"], body,
                         markdown=True)
    return table, int(last["epoch"]), int(config["epochs"])


def psnr_table(data: Path, entries: list[tuple[str, str, str | None]], device: str) -> str:
    """PSNR three ways for each ``(label, model, checkpoint)``, means over the pairs of ``data``."""
    pairs = find_pairs(*dataset_dirs(data))
    methods = {label: model_method(Enhancer(model, checkpoint=checkpoint, device=device, strength=1.0, denoise="off"))
               for label, model, checkpoint in entries}
    wrapped: dict[str, list[float]] = {label: [] for label in methods}
    plain: dict[str, list[float]] = {label: [] for label in methods}

    def against_input(name: str, low: np.ndarray, outputs: list[np.ndarray], high: np.ndarray) -> None:
        for label, out in zip(methods, outputs, strict=True):
            wrapped[label].append(report_formula_psnr(low, out))
            plain[label].append(psnr(out, low))

    evaluation = evaluate(pairs, methods, on_pair=against_input)
    if evaluation.failures:
        raise SystemExit("; ".join(evaluation.failures))
    body = [[r.method, f"{r.psnr:.2f}", f"{np.mean(wrapped[r.method]):.2f}", f"{np.mean(plain[r.method]):.2f}"]
            for r in evaluation.results]
    return format_table(["model (strength 1, denoise off)", "PSNR vs ground truth (dB)",
                         "report's formula: dark input vs output, uint8 wrap (dB)",
                         "dark input vs output, no wrap (dB)"], body, markdown=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="LOL eval15 (a dataset root zerodce eval accepts)")
    parser.add_argument("--run", type=Path, help="a zerodce train output folder (history.csv, last.pt, best.pt)")
    parser.add_argument("--shipped", action="append", default=[], metavar="MODEL", help="also a shipped model")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--markdown", type=Path, help="also write the tables to this file")
    args = parser.parse_args(argv)
    parts, entries = [], []
    if args.run:
        table, epoch, epochs = loss_table(args.run)
        status = "finished" if epoch >= epochs else f"PARTIAL: epoch {epoch} of {epochs}"
        parts += [f"Losses of {args.run} at epoch {epoch} ({status}):", "", table, ""]
        model = read_checkpoint(args.run / "last.pt")["config"]["model"]
        entries += [(f"{model} ({args.run.name}/{name}, epoch {read_checkpoint(args.run / name)['epoch']})",
                     model, str(args.run / name)) for name in ("last.pt", "best.pt")]
    entries += [(f"{name} (shipped)", name, None) for name in args.shipped]
    parts += [f"PSNR on {args.data} (the report's own figure: {REPORT_PSNR} dB by its formula):", "",
              psnr_table(Path(args.data), entries, args.device)]
    text = "\n".join(parts) + "\n"
    print(text, end="")
    if args.markdown:
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
