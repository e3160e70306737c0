"""Scores for photos without a ground truth: lightness order, noise, brightness, clipping.

* :func:`lightness_order_error` (LOE, Wang et al. 2013, "Naturalness Preserved
  Enhancement Algorithm for Non-Uniform Illumination Images"): lightness is
  ``L = max(R, G, B)``; both lightness maps are downsampled by area averaging
  (Pillow's box filter) so that the shorter side is :data:`LOE_SIDE` pixels
  (images already that small are kept), giving ``m`` pixels; then
  ``LOE = (1/m) Σ_x Σ_y U(L(x), L(y)) xor U(Le(x), Le(y))`` with
  ``U(p, q) = 1 if p >= q else 0``: for each pixel, how many others changed
  order of lightness, averaged. 0 for any map that keeps the order (identity,
  any increasing curve applied alike everywhere); at most ``m - 1``.
* :func:`noise_level`: scikit-image's wavelet estimate of the Gaussian noise
  standard deviation (``estimate_sigma``, Donoho's median absolute deviation of
  the finest diagonal wavelet band), per channel and averaged, in 8-bit levels.
* :func:`mean_brightness`: mean BT.601 luma (Pillow's RGB to gray) in [0, 1].
* :func:`clipped_fraction`: the fraction of pixels with any channel at 0 or 255.

Example:
    >>> ramp = np.tile(np.arange(0, 250, 5, dtype=np.uint8)[None, :, None], (50, 1, 3))
    >>> lightness_order_error(ramp, ramp), lightness_order_error(ramp, 255 - ramp) > 2000
    (0.0, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
from PIL import Image
from tqdm import tqdm

from zerodce._extras import import_extra
from zerodce.evaluate.pairing import Pair
from zerodce.evaluate.scoring import Method, json_number, run_methods, to_rgb8
from zerodce.io import DEFAULT_MAX_PIXELS, ImageError, read_image

#: Shorter side, in pixels, of the downsampled lightness maps that :func:`lightness_order_error` compares.
LOE_SIDE = 50

#: Rows of the pairwise comparison done at once (bounds its memory to a few MB).
_LOE_CHUNK = 256


def _check_rgb8(image: np.ndarray, name: str) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name} must be 8-bit RGB (H, W, 3) uint8, got {image.dtype} {image.shape}")


def _lightness(image: np.ndarray) -> np.ndarray:
    """``max(R, G, B)``, area-downsampled so the shorter side is :data:`LOE_SIDE`, flattened."""
    lightness = image.max(axis=2).astype(np.float32)
    h, w = lightness.shape
    scale = LOE_SIDE / min(h, w)
    if scale < 1:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        lightness = np.asarray(Image.fromarray(lightness).resize(size, Image.Resampling.BOX))
    return lightness.ravel()


def lightness_order_error(reference: np.ndarray, enhanced: np.ndarray) -> float:
    """LOE of ``enhanced`` against ``reference`` (its input): 0 keeps the lightness order.

    Args:
        reference, enhanced: 8-bit RGB ``(H, W, 3)`` of one size.

    Raises:
        ValueError: not 8-bit RGB, or sizes differ.
    """
    _check_rgb8(reference, "reference")
    _check_rgb8(enhanced, "enhanced")
    if reference.shape != enhanced.shape:
        raise ValueError(f"images differ in size: {reference.shape} and {enhanced.shape}")
    before, after = _lightness(reference), _lightness(enhanced)
    changed = 0
    for start in range(0, before.size, _LOE_CHUNK):
        rows = slice(start, start + _LOE_CHUNK)
        changed += np.count_nonzero((before[rows, None] >= before[None, :]) != (after[rows, None] >= after[None, :]))
    return float(changed / before.size)


def noise_level(image: np.ndarray) -> float:
    """Estimated standard deviation of Gaussian noise in 8-bit levels, averaged over the channels.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> flat = np.full((128, 128, 3), 128.0)
        >>> round(noise_level(np.clip(flat + rng.normal(0, 10, flat.shape), 0, 255).astype(np.uint8)))
        10
    """
    _check_rgb8(image, "image")
    import_extra("pywt", "metrics")  # estimate_sigma's wavelets
    restoration = import_extra("skimage.restoration", "metrics")
    return float(restoration.estimate_sigma(image.astype(np.float64), channel_axis=-1, average_sigmas=True))


def mean_brightness(image: np.ndarray) -> float:
    """Mean BT.601 luma (as Pillow converts RGB to gray, 8-bit) over the image, in [0, 1]."""
    _check_rgb8(image, "image")
    return float(np.asarray(Image.fromarray(image).convert("L"), np.float64).mean() / 255.0)


def clipped_fraction(image: np.ndarray) -> float:
    """Fraction of pixels with at least one channel at 0 or 255 (crushed or blown).

    Example:
        >>> image = np.full((2, 2, 3), 100, np.uint8)
        >>> image[0, 0, 1], image[1, 1] = 255, 0
        >>> clipped_fraction(image)
        0.5
    """
    _check_rgb8(image, "image")
    return float(((image == 0) | (image == 255)).any(axis=2).mean())


@dataclass(frozen=True)
class NoReferenceScore:
    """The no-reference scores of one image; ``loe`` is ``None`` for an input (nothing to compare with)."""

    name: str
    loe: float | None
    noise: float
    brightness: float
    clipped: float


def score_image(name: str, image: np.ndarray, reference: np.ndarray | None) -> NoReferenceScore:
    """All the no-reference scores of ``image`` (8-bit RGB); LOE against ``reference`` when given."""
    return NoReferenceScore(name, None if reference is None else lightness_order_error(reference, image),
                            noise_level(image), mean_brightness(image), clipped_fraction(image))


#: Fields of :class:`NoReferenceScore` that have means, in report order.
NO_REFERENCE_FIELDS = ("loe", "noise", "brightness", "clipped")


@dataclass
class NoReferenceResult:
    """One method's (or the inputs') no-reference scores per image; :meth:`mean` of each field."""

    method: str
    images: list[NoReferenceScore] = field(default_factory=list)

    def mean(self, name: str) -> float:
        """Mean of field ``name`` (one of :data:`NO_REFERENCE_FIELDS`) over the images; nan where it has none."""
        values = [getattr(s, name) for s in self.images if getattr(s, name) is not None]
        return float(np.mean(values)) if values else math.nan

    def to_dict(self) -> dict:
        """``{"mean": {loe, noise, brightness, clipped}, "images": [{"name", loe, ...}, ...]}``; no LOE -> ``None``."""
        def number(value: float | None) -> float | None:
            return None if value is None else json_number(value)

        return {"mean": {k: number(self.mean(k)) for k in NO_REFERENCE_FIELDS},
                "images": [{"name": s.name, **{k: number(getattr(s, k)) for k in NO_REFERENCE_FIELDS}}
                           for s in self.images]}


@dataclass
class NoReferenceEvaluation:
    """``results[0]`` scores the inputs themselves (``"input"``), then one result per method in order."""

    results: list[NoReferenceResult]
    failures: list[str] = field(default_factory=list)


#: Called once per image with its name, input and outputs in method order, all 8-bit RGB.
ImageCallback = Callable[[str, np.ndarray, list[np.ndarray]], None]


def evaluate_no_reference(
    pairs: Sequence[Pair],
    methods: Mapping[str, Method],
    *,
    on_image: ImageCallback | None = None,
    progress: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> NoReferenceEvaluation:
    """Score the inputs and every method's outputs without a ground truth.

    Args:
        pairs: photos from :func:`~zerodce.evaluate.find_photos` (``low`` is the photo).
        methods: display name -> :data:`~zerodce.evaluate.Method`, in table order.
        on_image: sees each photo's images (e.g. to add a :class:`~zerodce.evaluate.ContactSheet` row).
        progress: show a progress bar on stderr.
        max_pixels: larger photos are refused (:func:`~zerodce.io.read_image`; ``None``: no limit).

    A photo that cannot be read is reported in the failures and left out.
    Errors of a method itself propagate.
    """
    evaluation = NoReferenceEvaluation([NoReferenceResult("input")] + [NoReferenceResult(name) for name in methods])
    for pair in tqdm(pairs, unit="img", disable=not progress, desc="eval"):
        try:
            pixels = read_image(pair.low, max_pixels=max_pixels).pixels
            image = to_rgb8(pixels)
            outputs = run_methods(pair, methods, pixels, image.shape, f"the input {pair.low}")
        except ImageError as exc:
            evaluation.failures.append(f"{pair.name}: {exc}")
            continue
        evaluation.results[0].images.append(score_image(pair.name, image, None))
        for result, out in zip(evaluation.results[1:], outputs, strict=True):
            result.images.append(score_image(pair.name, out, image))
        if on_image is not None:
            on_image(pair.name, image, outputs)
    return evaluation
