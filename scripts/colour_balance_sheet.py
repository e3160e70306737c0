"""The picture of docs/quality.md's colour-balance section: demo photos with one strength for all channels and per channel.

The middle column is the default pipeline with the per-channel step replaced by
the common strength (``zerodce.enhance.exposure._balanced`` returning it for every
channel): what auto strength did before it kept the photo's colour balance.

Usage: ``python scripts/colour_balance_sheet.py docs/images/colour_balance.jpg``
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo import DEMO_INPUTS, comparison_sheet  # noqa: E402

from zerodce.enhance import Enhancer, exposure  # noqa: E402

PHOTOS = ("astronaut.jpg", "chelsea.jpg", "coffee.jpg")


def main(target: str) -> None:
    enhancer = Enhancer("zero_dce_pp", device="cpu")
    balanced = exposure._balanced
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in PHOTOS:
            pixels = np.asarray(Image.open(DEMO_INPUTS / name).convert("RGB"))
            exposure._balanced = lambda x, curves, seen, common, *rest: [common] * 3
            try:
                one = enhancer.enhance_array(pixels)
            finally:
                exposure._balanced = balanced
            paths = [Path(folder) / f"{kind}-{name}.png" for kind in ("one", "balanced")]
            Image.fromarray(one).save(paths[0])
            Image.fromarray(enhancer.enhance_array(pixels)).save(paths[1])
            rows.append([(DEMO_INPUTS / name, f"before: {name}"), (paths[0], "one strength for all channels"),
                         (paths[1], "per channel (default)")])
        comparison_sheet(rows).save(target, quality=88)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "colour_balance.jpg")
