"""The picture of docs/quality.md's section on crushed 8-bit shadows: a noise-free night shot, read two ways.

The input is scikit-image's ``astronaut`` sample cut to 1/256 of its exposure in
linear light (8 stops) with no noise, stored as an 8-bit JPEG (quality 85): the
crushed, undithered shadows of a phone's night JPEG. The middle column is the
default pipeline with 8-bit levels read as ``x / 255`` (``zerodce._native.image_flag``
answering no): what it did before it read them least-saturated; the right column
is the default. Needs the compiled kernels and the ``metrics`` extra.

Usage: ``python scripts/quantized_shadows_sheet.py docs/images/quantized_shadows.jpg``
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo import comparison_sheet  # noqa: E402
from make_demo_inputs import linear_to_srgb, srgb_to_linear  # noqa: E402

from zerodce import _native  # noqa: E402
from zerodce._extras import MissingExtraError, import_extra  # noqa: E402
from zerodce.enhance import Enhancer  # noqa: E402

STOPS_UNDER = 8
#: A dark corner shown twice as large in the second row: (left, top, right, bottom).
CROP = (0, 0, 256, 256)


def crushed_photo(path: Path) -> None:
    samples = import_extra("skimage.data", "metrics")
    photo = samples.astronaut() / 255.0
    dark = linear_to_srgb(srgb_to_linear(photo) / 2**STOPS_UNDER)
    Image.fromarray((255 * dark).round().astype(np.uint8)).save(path, quality=85)


def main(target: str) -> None:
    if not _native.available():
        sys.exit(f"quantized_shadows_sheet: the compiled kernels are needed: {_native.unavailable_reason()}")
    enhancer = Enhancer("zero_dce_pp", device="cpu")
    flag = _native.image_flag
    with tempfile.TemporaryDirectory() as folder:
        source, divided, least = (Path(folder) / name for name in ("input.jpg", "divided.png", "least.png"))
        crushed_photo(source)
        pixels = np.asarray(Image.open(source).convert("RGB"))
        _native.image_flag = lambda least_saturated, i: False
        try:
            Image.fromarray(enhancer.enhance_array(pixels)).save(divided)
        finally:
            _native.image_flag = flag
        Image.fromarray(enhancer.enhance_array(pixels)).save(least)
        labels = (f"input: {STOPS_UNDER} stops under, no noise, JPEG", "levels read as x / 255",
                  "read least-saturated (default)")
        rows = [list(zip((source, divided, least), labels))]
        crops = [Path(folder) / f"crop-{path.stem}.png" for path in (source, divided, least)]
        for path, crop in zip((source, divided, least), crops):
            Image.open(path).crop(CROP).save(crop)
        rows.append(list(zip(crops, [f"{label}, corner" for label in labels])))
        comparison_sheet(rows).save(target, quality=88)


if __name__ == "__main__":
    try:
        main(sys.argv[1] if len(sys.argv) > 1 else "quantized_shadows.jpg")
    except MissingExtraError as error:
        sys.exit(f"quantized_shadows_sheet: {error}")
