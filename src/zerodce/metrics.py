"""Full-reference image quality: PSNR and SSIM of an output against its ground truth.

Both take HWC (or HW) arrays of the same shape and dtype, normally the 8-bit
output of a method and the 8-bit ground truth, so results are comparable with
published tables: PSNR uses ``data_range`` 255, SSIM is
``skimage.metrics.structural_similarity`` with ``channel_axis=-1``,
``data_range=255`` and its default 7x7 uniform window. Arithmetic is float64.

Example:
    >>> import numpy as np
    >>> target = np.full((8, 8, 3), 100, np.uint8)
    >>> round(psnr(target + 10, target), 2)  # MSE 100
    28.13
    >>> ssim(target, target)
    1.0
"""

from __future__ import annotations

import math

import numpy as np

from zerodce._extras import import_extra

#: Side of skimage's default SSIM window; smaller images have no valid window.
SSIM_WINDOW = 7


def _check_pair(pred: np.ndarray, target: np.ndarray) -> None:
    for name, image in (("pred", pred), ("target", target)):
        if not isinstance(image, np.ndarray):
            raise TypeError(f"{name} must be a numpy array, got {type(image).__name__}")
        if image.ndim not in (2, 3):
            raise ValueError(f"{name} must be an image of shape (H, W, C) or (H, W), got shape {image.shape}")
        if not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
            raise ValueError(f"{name} must hold integer or float pixels, got dtype {image.dtype}")
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {pred.shape} and {target.shape}")
    if pred.dtype != target.dtype:
        raise ValueError(
            f"pred and target must have the same dtype, got {pred.dtype} and {target.dtype}; "
            "compare 8-bit images: np.round(np.clip(x * 255, 0, 255)).astype(np.uint8)"
        )


def psnr(pred: np.ndarray, target: np.ndarray, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB: ``10 log10(data_range**2 / MSE)``.

    Args:
        pred: the image to score, ``(H, W, C)`` or ``(H, W)``, e.g. uint8.
        target: the ground truth, same shape and dtype.
        data_range: the span of possible pixel values (255 for 8-bit).

    Returns:
        PSNR in dB; ``inf`` for identical images.

    Example:
        >>> a = np.zeros((4, 4, 3), np.uint8)
        >>> round(psnr(a + 1, a), 2)  # MSE 1: 20 log10(255)
        48.13
    """
    _check_pair(pred, target)
    mse = np.mean((pred.astype(np.float64) - target.astype(np.float64)) ** 2)
    if mse == 0:
        return math.inf
    return float(10.0 * np.log10(data_range**2 / mse))


def ssim(pred: np.ndarray, target: np.ndarray, data_range: float = 255.0) -> float:
    """Structural similarity, the mean over channels of skimage's SSIM (7x7 uniform window).

    Args:
        pred: the image to score, ``(H, W, C)`` or ``(H, W)``, at least 7x7.
        target: the ground truth, same shape and dtype.
        data_range: the span of possible pixel values (255 for 8-bit).

    Returns:
        SSIM in [-1, 1]; 1 for identical images.

    Example:
        >>> a = np.zeros((7, 7), np.uint8)
        >>> ssim(a, a)
        1.0
    """
    _check_pair(pred, target)
    if min(pred.shape[:2]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got shape {pred.shape}")
    channel_axis = -1 if pred.ndim == 3 else None
    metrics = import_extra("skimage.metrics", "metrics")
    return float(metrics.structural_similarity(pred, target, channel_axis=channel_axis, data_range=data_range))
