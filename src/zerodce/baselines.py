"""Classical low-light baselines, to put learned results in context.

Pure functions on one image, ``(H, W, 3)`` RGB or ``(H, W)`` gray, either uint8
or float in [0, 1]; each returns a new image of the input's shape and dtype
(uint8 results are rounded). Colour images are equalized on the HSV value
channel, so hue and saturation are kept (skimage's choice for CLAHE, applied to
both equalizations so they differ only in being global or local).

:data:`BASELINES` maps the display name of each method to its function, in the
order of evaluation tables.

Example:
    >>> import numpy as np
    >>> dark = np.full((4, 4, 3), 20, np.uint8)
    >>> int(gamma_correction(dark)[0, 0, 0])  # (20/255) ** (1/2.2) * 255
    80
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from zerodce._extras import import_extra

Baseline = Callable[[np.ndarray], np.ndarray]


def _to_float(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy array, got {type(image).__name__}")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] != 3):
        raise ValueError(f"image must have shape (H, W, 3) or (H, W), got {image.shape}")
    if image.dtype == np.uint8:
        return image.astype(np.float64) / 255.0
    if np.issubdtype(image.dtype, np.floating):
        return image.astype(np.float64)
    raise ValueError(f"image must be uint8 or float in [0, 1], got dtype {image.dtype}")


def _like(result: np.ndarray, image: np.ndarray) -> np.ndarray:
    """``result`` (float in [0, 1]) in the dtype of ``image``."""
    result = np.clip(result, 0.0, 1.0)
    if image.dtype == np.uint8:
        return np.round(result * 255.0).astype(np.uint8)
    return result.astype(image.dtype)


def _on_value_channel(fn: Callable[[np.ndarray], np.ndarray], image: np.ndarray) -> np.ndarray:
    x = _to_float(image)
    if x.ndim == 3:
        color = import_extra("skimage.color", "metrics")
        hsv = color.rgb2hsv(x)
        hsv[..., 2] = fn(hsv[..., 2])
        return _like(color.hsv2rgb(hsv), image)
    return _like(fn(x), image)


def identity(image: np.ndarray) -> np.ndarray:
    """The input itself (a copy): the "do nothing" reference.

    Example:
        >>> x = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
        >>> bool((identity(x) == x).all())
        True
    """
    _to_float(image)
    return image.copy()


def gamma_correction(image: np.ndarray, gamma: float = 1 / 2.2) -> np.ndarray:
    """``x ** gamma`` per channel; ``gamma < 1`` brightens (the default is 1/2.2).

    Example:
        >>> gamma_correction(np.array([[0.25]]), gamma=0.5)
        array([[0.5]])
    """
    if gamma <= 0:
        raise ValueError(f"gamma must be > 0, got {gamma}")
    return _like(_to_float(image) ** gamma, image)


def histogram_equalization(image: np.ndarray) -> np.ndarray:
    """Global histogram equalization (256 bins) of the brightness (HSV value).

    Example:
        >>> x = np.array([[10, 10], [20, 30]], np.uint8)
        >>> histogram_equalization(x).max()  # the brightest level maps to white
        np.uint8(255)
    """
    exposure = import_extra("skimage.exposure", "metrics")
    return _on_value_channel(exposure.equalize_hist, image)


def clahe(image: np.ndarray, clip_limit: float = 0.01) -> np.ndarray:
    """Contrast-limited adaptive histogram equalization of the brightness (HSV value).

    skimage's ``equalize_adapthist`` with its defaults: tiles of 1/8 of the image
    side, 256 bins, ``clip_limit`` normalized to [0, 1].
    """
    exposure = import_extra("skimage.exposure", "metrics")
    return _on_value_channel(lambda v: exposure.equalize_adapthist(v, clip_limit=clip_limit), image)


#: Display name -> function, in the order tables list them.
BASELINES: dict[str, Baseline] = {
    "identity": identity,
    "gamma 1/2.2": gamma_correction,
    "HE": histogram_equalization,
    "CLAHE": clahe,
}
