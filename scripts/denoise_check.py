"""A zero-reference check of the denoising stage: simulated noise on photos whose noise-free version we make ourselves.

No data set's ground truth is involved. Each of scikit-image's sample photos is
cut to 1/20 of its exposure in linear light twice, as ``make_demo_inputs.py``
does: once with a small sensor's shot and read noise (8-bit sRGB, optionally
stored as a JPEG), once without noise (float). The pipeline enhances the noisy
photo; its reference is the *same* curves (the maps and strengths the pipeline
chose for the noisy photo) applied to the noise-free one: what enhancing would
give if the sensor had added no noise. The PSNR between the two measures what
noise the pipeline leaves (and what detail its filter takes), nothing else: the
exposure and tone are the same on both sides. Two noise levels: a full well of
400 electrons (the demo inputs: extreme) and 3,000 (closer to LOL's photos).

Usage: ``python scripts/denoise_check.py [--denoise auto,off,2]`` (needs the ``metrics`` extra)
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_demo_inputs import darken  # noqa: E402

from zerodce._extras import import_extra  # noqa: E402
from zerodce.curves import apply_low_res_curves, scale_curves  # noqa: E402
from zerodce.enhance import Enhancer  # noqa: E402

#: scikit-image samples (colour, or gray made RGB), none of them a demo input's exposure.
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "retina", "immunohistochemistry", "colorwheel", "cat",
          "hubble_deep_field")
EXPOSURE = 0.05
#: (full well in electrons, stored as JPEG quality 90)
CONDITIONS = ((400, False), (400, True), (3000, False), (3000, True))


def sample_photos(names: tuple[str, ...] = PHOTOS) -> dict[str, np.ndarray]:
    samples = import_extra("skimage.data", "metrics")
    photos = {}
    for name in names:
        pixels = getattr(samples, name)()
        photos[name] = np.stack([pixels] * 3, -1) if pixels.ndim == 2 else pixels[..., :3]
    return photos


def noisy_and_clean(photo: np.ndarray, full_well: float, jpeg: bool, rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The dark 8-bit photo with sensor noise, and the same exposure without noise (float sRGB)."""
    noisy = darken(photo, EXPOSURE, rng, full_well)
    if jpeg:
        buffer = io.BytesIO()
        Image.fromarray(noisy).save(buffer, format="JPEG", quality=90)
        noisy = np.array(Image.open(buffer).convert("RGB"))
    return noisy, darken(photo, EXPOSURE, None, full_well)


@torch.inference_mode()
def psnr_against_noise_free(enhancer: Enhancer, noisy: np.ndarray, clean: np.ndarray) -> float:
    """PSNR (dB) of ``enhancer``'s output of ``noisy`` against the same curves applied to ``clean``.

    ``enhancer`` must be a Zero-DCE++ (low-resolution curves) enhancer.
    """
    x = torch.from_numpy(np.ascontiguousarray(noisy)).permute(2, 0, 1)[None]
    maps, padded = enhancer.curves(x)
    scaled = scale_curves(maps, enhancer._strengths(x, maps))
    reference = apply_low_res_curves(torch.from_numpy(clean).permute(2, 0, 1)[None].float().contiguous(), scaled,
                                     padded, enhancer.model.iterations).clamp(0, 1)
    out = enhancer.enhance_tensor(x).float() / 255
    return float(10 * torch.log10(1 / (out - reference).pow(2).mean()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--denoise", default="auto,off", help="comma-separated --denoise settings to compare")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    photos = sample_photos()
    settings = [s.strip() for s in args.denoise.split(",") if s.strip()]
    enhancers = {s: Enhancer("zero_dce_pp", device="cpu", denoise=s) for s in settings}
    print(f"PSNR (dB) against the same curves on the noise-free photo, mean of {len(photos)} scikit-image photos")
    print("full well  JPEG  " + "  ".join(f"{'denoise ' + s:>14}" for s in settings))
    for full_well, jpeg in CONDITIONS:
        rng = np.random.default_rng(args.seed)  # the same noise for every setting
        pairs = [noisy_and_clean(photo, full_well, jpeg, rng) for photo in photos.values()]
        means = [np.mean([psnr_against_noise_free(e, *pair) for pair in pairs]) for e in enhancers.values()]
        print(f"{full_well:>9}  {'yes' if jpeg else 'no':>4}  " + "  ".join(f"{m:>14.2f}" for m in means))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
