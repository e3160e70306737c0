"""``make demo``: enhance the bundled dark photos in ``demo/`` and make a before/after sheet.

Runs ``zerodce enhance demo -o out/demo`` with the shipped weights (or
``--checkpoint``) and the default pipeline (exposure-adaptive strength,
denoising), and the same with ``--strength 1 --denoise off`` (the network as
trained) into ``out/plain``; then writes ``out/comparison.jpg`` (each photo
before, as the network alone gives it, and as ``zerodce enhance`` gives it, side
by side) and prints where everything is. ``--sheet FILE`` writes the sheet
there too (the README's picture is made this way: ``--sheet docs/images/demo.jpg``).

Usage: ``python scripts/demo.py [--model NAME] [--checkpoint FILE] [--out DIR] [--sheet FILE]``
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
PANEL_WIDTH = 300
LABEL_HEIGHT = 20


def comparison_sheet(rows_of_files: list[list[tuple[Path, str]]]) -> Image.Image:
    """One row per photo, one labelled panel per ``(file, label)``: e.g. before and after."""
    rows = []
    for files in rows_of_files:
        panels = []
        for path, label in files:
            im = Image.open(path).convert("RGB")
            im = im.resize((PANEL_WIDTH, round(im.height * PANEL_WIDTH / im.width)), Image.Resampling.LANCZOS)
            panel = Image.new("RGB", (PANEL_WIDTH, im.height + LABEL_HEIGHT), "white")
            panel.paste(im, (0, LABEL_HEIGHT))
            ImageDraw.Draw(panel).text((4, 4), label, fill="black")
            panels.append(panel)
        rows.append(panels)
    sheet = Image.new("RGB", (max(len(r) for r in rows) * PANEL_WIDTH, sum(r[0].height for r in rows)), "white")
    y = 0
    for panels in rows:
        for i, panel in enumerate(panels):
            sheet.paste(panel, (i * PANEL_WIDTH, y))
        y += panels[0].height
    return sheet


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Enhance the bundled demo photos and make a before/after sheet.")
    parser.add_argument("--model", default=DEFAULT_MODEL, choices=list_models())
    parser.add_argument("--checkpoint", help="weights file instead of the shipped weights")
    parser.add_argument("--out", type=Path, default=ROOT / "out", help="output folder (default: out/)")
    parser.add_argument("--sheet", type=Path, help="also write the comparison sheet to this file")
    args = parser.parse_args(argv)
    if args.checkpoint is None and not pretrained_path(args.model).is_file():
        print(f"demo: the shipped weights {pretrained_path(args.model)} are not in this checkout; "
              "train them with `zerodce train` or pass --checkpoint FILE", file=sys.stderr)
        return 1
    outputs, plain = args.out / "demo", args.out / "plain"
    common = ["--model", args.model, "--overwrite"] + (["--checkpoint", args.checkpoint] if args.checkpoint else [])
    for folder, extra in ((outputs, []), (plain, ["--strength", "1", "--denoise", "off"])):
        status = zerodce_main(["enhance", str(DEMO_INPUTS), "-o", str(folder), *common, *extra])
        if status:
            return status
    inputs = sorted(p for p in DEMO_INPUTS.iterdir() if p.suffix in (".jpg", ".png"))
    sheet = comparison_sheet([[(p, f"before: {p.name}"), (plain / p.name, "network as trained (--strength 1 --denoise off)"),
                               (outputs / p.name, "zerodce enhance (defaults)")] for p in inputs])
    sheet_path = args.out / "comparison.jpg"
    sheet.save(sheet_path, quality=90)
    if args.sheet:
        args.sheet.parent.mkdir(parents=True, exist_ok=True)
        sheet.save(args.sheet, quality=88)
    print(f"enhanced photos: {outputs}/ (defaults), {plain}/ (network as trained)")
    print(f"before/after:    {sheet_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
