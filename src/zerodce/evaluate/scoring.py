"""Scoring: methods that enhance a pair's input, run on every pair and scored against the ground truth.

A method (:data:`Method`) turns the low-light input of a pair, as its file
decodes (any bit depth, gray or alpha), into an image: a model
(:func:`model_method`), a classical baseline (:func:`baseline_methods`) or a
folder of already-enhanced images (:func:`folder_method`). :func:`evaluate`
scores every method's output, made 8-bit RGB, against the ground truth with
:func:`zerodce.metrics.psnr` and :func:`zerodce.metrics.ssim`; with
``well_exposed`` the enhancing methods also get the ground truths themselves as
input, each output scored against its own input.

Example:
    >>> scores = MethodResult("x", [ImageScore("a", 20.0, 0.5), ImageScore("b", 30.0, 0.7)])
    >>> (scores.psnr, round(scores.ssim, 2))
    (25.0, 0.6)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Collection, Mapping, Sequence

import numpy as np
from tqdm import tqdm

from zerodce.baselines import BASELINES, Baseline
from zerodce.enhance import Enhancer
from zerodce.evaluate.pairing import Pair, match_folder
from zerodce.io import DEFAULT_MAX_PIXELS, ImageError, read_image, to_8bit
from zerodce.metrics import psnr, ssim

#: A method maps a pair and an input image as decoded from its file (``None`` without
#: inputs) to its output image; :func:`evaluate` makes every output 8-bit RGB.
Method = Callable[[Pair, "np.ndarray | None"], np.ndarray]


def to_rgb8(pixels: np.ndarray) -> np.ndarray:
    """An image array as 8-bit RGB ``(H, W, 3)``: gray repeated, alpha dropped, 16-bit rounded (:func:`~zerodce.io.to_8bit`).

    Example:
        >>> to_rgb8(np.full((1, 2, 2), 65535, np.uint16)).tolist()
        [[[255, 255, 255], [255, 255, 255]]]
    """
    pixels = to_8bit(pixels)
    if pixels.ndim == 2:
        return np.repeat(pixels[..., None], 3, axis=2)
    return np.repeat(pixels[..., :1], 3, axis=2) if pixels.shape[2] == 2 else np.ascontiguousarray(pixels[..., :3])


def read_rgb8(path: str | Path) -> np.ndarray:
    """An image file as 8-bit RGB ``(H, W, 3)`` (:func:`to_rgb8` of its decoded pixels).

    Raises:
        ImageError: the file cannot be read.
    """
    return to_rgb8(read_image(path).pixels)


def _needs_input(low: np.ndarray | None) -> np.ndarray:
    if low is None:
        raise ValueError("this method enhances the low-light inputs; give their folder (--low or a dataset root)")
    return low


def model_method(enhancer: Enhancer) -> Method:
    """A model as a method, exactly as ``zerodce enhance`` runs it on a file.

    The decoded pixels (8-bit RGB for most photos) go to
    :meth:`Enhancer.enhance_array`, which returns them enhanced in the same
    dtype: for 8-bit images the very pixels ``zerodce enhance`` writes.
    """
    return lambda pair, low: enhancer.enhance_array(_needs_input(low))


def baseline_methods() -> dict[str, Method]:
    """The classical :data:`~zerodce.baselines.BASELINES` as methods (on 8-bit RGB), by display name."""

    def method(fn: Baseline) -> Method:
        return lambda pair, low: fn(to_rgb8(_needs_input(low)))

    return {name: method(fn) for name, fn in BASELINES.items()}


def folder_method(folder: str | Path, pairs: Sequence[Pair], max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Method:
    """Already-enhanced images: each pair's output is ``folder``'s image of the same stem.

    ``max_pixels`` is :func:`~zerodce.io.read_image`'s limit (``None``: none).

    Raises:
        PairingError: ``folder`` lacks the image of a pair (named).
    """
    files = match_folder(folder, pairs)
    return lambda pair, low: read_image(files[pair.name], max_pixels=max_pixels).pixels


@dataclass(frozen=True)
class ImageScore:
    """PSNR (dB) and SSIM of one output against its reference."""

    name: str
    psnr: float
    ssim: float


def json_number(value: float) -> float | None:
    """``value``, or ``None`` where JSON cannot hold it (PSNR of an exact match is inf)."""
    return value if math.isfinite(value) else None


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else math.nan


def pooled_psnr(values: Sequence[float]) -> float:
    """PSNR of the mean squared error over images, from their PSNRs (nan without any).

    Unlike the mean of PSNRs it stays finite when some images match exactly
    (their error is 0, their PSNR inf), and it is never above that mean.

    Example:
        >>> round(pooled_psnr([20.0, float("inf")]), 2)  # half the error of one 20 dB image
        23.01
    """
    if not len(values):
        return math.nan
    mean_error = float(np.mean([10.0 ** (-v / 10.0) for v in values]))  # MSE / 255**2
    return math.inf if mean_error == 0 else -10.0 * math.log10(mean_error)


def _scores_dict(scores: Sequence[ImageScore], mean_psnr: float) -> dict:
    return {"mean": {"psnr": json_number(mean_psnr), "ssim": _mean([s.ssim for s in scores])},
            "images": [{"name": s.name, "psnr": json_number(s.psnr), "ssim": s.ssim} for s in scores]}


@dataclass
class MethodResult:
    """One method's scores: per image and their means (:attr:`psnr`, :attr:`ssim`).

    ``well_exposed`` holds, when measured, the scores of the method fed the
    ground truths themselves, each output against its own input.
    """

    method: str
    images: list[ImageScore] = field(default_factory=list)
    well_exposed: list[ImageScore] = field(default_factory=list)

    @property
    def psnr(self) -> float:
        """Mean PSNR in dB (nan without images)."""
        return _mean([s.psnr for s in self.images])

    @property
    def ssim(self) -> float:
        """Mean SSIM (nan without images)."""
        return _mean([s.ssim for s in self.images])

    @property
    def well_exposed_psnr(self) -> float:
        """PSNR in dB of the outputs for well-exposed inputs against those inputs, pooled over the
        images (:func:`pooled_psnr`: a method may return some of them unchanged); nan if not measured."""
        return pooled_psnr([s.psnr for s in self.well_exposed])

    @property
    def well_exposed_ssim(self) -> float:
        """Mean SSIM of the outputs for well-exposed inputs against those inputs (nan if not measured)."""
        return _mean([s.ssim for s in self.well_exposed])

    def to_dict(self) -> dict:
        """``{"mean": {"psnr", "ssim"}, "images": [{"name", "psnr", "ssim"}, ...]}``; infinite PSNR -> ``None``.

        With well-exposed scores, also ``"well_exposed": {"mean": ..., "images": ...}`` of the same form
        (its mean PSNR pooled, :attr:`well_exposed_psnr`).
        """
        data = _scores_dict(self.images, self.psnr)
        if self.well_exposed:
            data["well_exposed"] = _scores_dict(self.well_exposed, self.well_exposed_psnr)
        return data


@dataclass
class Evaluation:
    """Results in method order, and one line per pair left out (unreadable or mismatched)."""

    results: list[MethodResult]
    failures: list[str] = field(default_factory=list)


#: Called once per evaluated pair with its name, input (or ``None``), outputs in method order and
#: ground truth, all 8-bit RGB.
PairCallback = Callable[[str, "np.ndarray | None", list[np.ndarray], np.ndarray], None]


def size_text(image: np.ndarray) -> str:
    """``WxH`` of an image array."""
    return f"{image.shape[1]}x{image.shape[0]}"


def run_methods(pair: Pair, methods: Mapping[str, Method], pixels: np.ndarray | None,
                shape: tuple[int, ...], reference: str) -> list[np.ndarray]:
    """Every method's output for ``pixels`` (decoded input), as 8-bit RGB of ``shape``.

    Raises:
        ImageError: an output of another size than ``shape``, the size of ``reference`` (named).
    """
    outputs = []
    for name, method in methods.items():
        out = to_rgb8(method(pair, pixels))
        if out.shape != shape:
            raise ImageError(f"output of {name} is {size_text(out)} but {reference} is {shape[1]}x{shape[0]}")
        outputs.append(out)
    return outputs


def evaluate(
    pairs: Sequence[Pair],
    methods: Mapping[str, Method],
    *,
    on_pair: PairCallback | None = None,
    progress: bool = False,
    well_exposed: Collection[str] = (),
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> Evaluation:
    """Score every method on every pair.

    Args:
        pairs: from :func:`~zerodce.evaluate.find_pairs`.
        methods: display name -> :data:`Method`, in table order.
        on_pair: sees each pair's images (e.g. :meth:`ContactSheet.add_pair`).
        progress: show a progress bar on stderr.
        well_exposed: names of methods that also get each pair's ground truth as
            input, scored against it (:attr:`MethodResult.well_exposed`): how much a
            method changes a photo that needed no enhancement. Only for methods that
            enhance their input (models, baselines), not for finished folders.
        max_pixels: larger images are refused (:func:`~zerodce.io.read_image`; ``None``: no limit).

    A pair whose files cannot be read, or whose images differ in size, is
    reported in :attr:`Evaluation.failures` and left out of every method, so the
    means stay comparable. Errors of a method itself propagate.
    """
    unknown = set(well_exposed) - set(methods)
    if unknown:
        raise ValueError(f"well_exposed names methods that are not evaluated: {', '.join(sorted(unknown))}")
    evaluation = Evaluation([MethodResult(name) for name in methods])
    exposed = {name: method for name, method in methods.items() if name in well_exposed}
    for pair in tqdm(pairs, unit="img", disable=not progress, desc="eval"):
        try:
            high_pixels = read_image(pair.high, max_pixels=max_pixels).pixels
            high = to_rgb8(high_pixels)
            low_pixels = None if pair.low is None else read_image(pair.low, max_pixels=max_pixels).pixels
            low = None if low_pixels is None else to_rgb8(low_pixels)
            if low is not None and low.shape != high.shape:
                raise ImageError(f"{pair.low} is {size_text(low)} but its ground truth {pair.high} is {size_text(high)}")
            outputs = run_methods(pair, methods, low_pixels, high.shape, f"the ground truth {pair.high}")
            exposed_outputs = dict(zip(exposed, run_methods(pair, exposed, high_pixels, high.shape,
                                                                  f"the ground truth {pair.high}"),
                                       strict=True))
        except ImageError as exc:
            evaluation.failures.append(f"{pair.name}: {exc}")
            continue
        for result, out in zip(evaluation.results, outputs, strict=True):
            result.images.append(ImageScore(pair.name, psnr(out, high), ssim(out, high)))
            if result.method in exposed_outputs:
                out = exposed_outputs[result.method]
                result.well_exposed.append(ImageScore(pair.name, psnr(out, high), ssim(out, high)))
        if on_pair is not None:
            on_pair(pair.name, low, outputs, high)
    return evaluation
