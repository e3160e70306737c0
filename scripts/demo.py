"""``make demo``: enhance the bundled dark photos in ``demo/`` and make a before/after sheet.

Runs ``zerodce enhance demo -o out/demo`` with the shipped weights (or
``--checkpoint``), then writes ``out/comparison.jpg`` (each photo before and
after, side by side) and prints where everything is.

Usage: ``python scripts/demo.py [--model NAME] [--checkpoint FILE] [--out DIR]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image, ImageDraw

from zerodce import DEFAULT_MODEL, list_models
from zerodce.cli import main as zerodce_main
from zerodce.weights import pretrained_path

ROOT = Path(__file__).resolve().parents[1]
DEMO_INPUTS = ROOT / "demo"
PANEL_WIDTH = 360
LABEL_HEIGHT = 20


def comparison_sheet(pairs: list[tuple[Path, Path]]) -> Image.Image:
    """One row per photo: the input on the left, the output on the right, each labelled."""
    rows = []
    for before, after in pairs:
        panels = []
        for path, label in ((before, f"before: {before.name}"), (after, "after")):
            im = Image.open(path).convert("RGB")
            im = im.resize((PANEL_WIDTH, round(im.height * PANEL_WIDTH / im.width)), Image.Resampling.LANCZOS)
            panel = Image.new("RGB", (PANEL_WIDTH, im.height + LABEL_HEIGHT), "white")
            panel.paste(im, (0, LABEL_HEIGHT))
            ImageDraw.Draw(panel).text((4, 4), label, fill="black")
            panels.append(panel)
        rows.append(panels)
    sheet = Image.new("RGB", (2 * PANEL_WIDTH, sum(r[0].height for r in rows)), "white")
    y = 0
    for left, right in rows:
        sheet.paste(left, (0, y))
        sheet.paste(right, (PANEL_WIDTH, y))
        y += left.height
    return sheet


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Enhance the bundled demo photos and make a before/after sheet.")
    parser.add_argument("--model", default=DEFAULT_MODEL, choices=list_models())
    parser.add_argument("--checkpoint", help="weights file instead of the shipped weights")
    parser.add_argument("--out", type=Path, default=ROOT / "out", help="output folder (default: out/)")
    args = parser.parse_args(argv)
    if args.checkpoint is None and not pretrained_path(args.model).is_file():
        print(f"demo: the shipped weights {pretrained_path(args.model)} are not in this checkout; "
              "train them with `zerodce train` or pass --checkpoint FILE", file=sys.stderr)
        return 1
    outputs = args.out / "demo"
    command = ["enhance", str(DEMO_INPUTS), "-o", str(outputs), "--model", args.model, "--overwrite"]
    if args.checkpoint:
        command += ["--checkpoint", args.checkpoint]
    status = zerodce_main(command)
    if status:
        return status
    inputs = sorted(p for p in DEMO_INPUTS.iterdir() if p.suffix in (".jpg", ".png"))
    sheet = comparison_sheet([(p, outputs / p.name) for p in inputs])
    sheet_path = args.out / "comparison.jpg"
    sheet.save(sheet_path, quality=90)
    print(f"enhanced photos: {outputs}/")
    print(f"before/after:    {sheet_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
