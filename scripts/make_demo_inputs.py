"""Make the bundled demo inputs in ``demo/``: dark, noisy versions of scikit-image's sample photos.

The photos ship inside scikit-image and are free to redistribute (public domain
or CC0; see ``demo/README.md``). Each one is turned into a plausible low-light
shot: back to linear light, exposure cut (each photo by its own factor), then
the noise of a small sensor at high ISO — photon shot noise (Poisson, a few
hundred electrons at full scale) plus Gaussian read noise — and back to sRGB,
8 bits. Seeded, so a re-run gives the same files. Needs the ``metrics`` extra
(scikit-image); the outputs are committed, so ``make demo`` does not.

Usage: ``python scripts/make_demo_inputs.py [--out demo]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

#: (scikit-image sample, output file, exposure factor in linear light)
SAMPLES = (
    ("astronaut", "astronaut.jpg", 0.06),
    ("coffee", "coffee.jpg", 0.05),
    ("chelsea", "chelsea.jpg", 0.08),
    ("rocket", "rocket.jpg", 0.04),
    ("camera", "camera.png", 0.07),  # gray: stays gray through the enhancer
)
FULL_WELL = 400.0  # electrons at full scale: a small, high-ISO sensor
READ_NOISE = 2.0  # electrons (standard deviation)


def srgb_to_linear(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * np.power(v, 1 / 2.4) - 0.055)


def darken(pixels: np.ndarray, exposure: float, rng: np.random.Generator | None,
           full_well: float = FULL_WELL) -> np.ndarray:
    """A low-light version of an 8-bit sRGB image: less light, shot and read noise, 8-bit sRGB again.

    ``rng=None`` gives the same exposure without noise, as float sRGB in [0, 1] (not quantized).
    """
    electrons = srgb_to_linear(pixels / 255.0) * exposure * full_well
    if rng is None:
        return linear_to_srgb(electrons / full_well)
    noisy = rng.poisson(electrons) + rng.normal(0.0, READ_NOISE, electrons.shape)
    linear = np.clip(noisy / full_well, 0.0, 1.0)
    return np.round(linear_to_srgb(linear) * 255).astype(np.uint8)


def main() -> None:
    import skimage.data

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "demo")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2020)
    for sample, name, exposure in SAMPLES:
        dark = darken(getattr(skimage.data, sample)(), exposure, rng)
        path = args.out / name
        Image.fromarray(dark).save(path, quality=90, optimize=True)
        print(f"{path}  {dark.shape[1]}x{dark.shape[0]}  mean {dark.mean():.1f}/255  {path.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
