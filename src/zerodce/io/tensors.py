"""Conversion between image arrays and the ``(1, 3, H, W)`` float tensors the models take."""

from __future__ import annotations

import numpy as np
import torch

_TORCH_DTYPES = {np.dtype(np.uint8): torch.uint8, np.dtype(np.uint16): torch.uint16}


def _max_value(dtype: np.dtype) -> float:
    return 255.0 if dtype == np.uint8 else 65535.0 if dtype == np.uint16 else 1.0


def pixels_to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """Colour of an image array as a ``(1, 3, H, W)`` float32 tensor in [0, 1].

    Accepts the :class:`ImageData` layouts in ``uint8``, ``uint16`` or float in
    [0, 1]; gray is repeated to three channels and alpha left out. The result
    is laid out channels-last in memory, as the pixels are (no transposing copy).

    Example:
        >>> pixels_to_tensor(np.full((2, 3), 255, np.uint8)).shape
        torch.Size([1, 3, 2, 3])
    """
    if pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] not in (1, 2, 3, 4)):
        raise ValueError(f"image array must have shape (H, W) or (H, W, C) with C in 1..4, got {pixels.shape}")
    if not (pixels.dtype in _TORCH_DTYPES or np.issubdtype(pixels.dtype, np.floating)):
        raise ValueError(f"image array must be uint8, uint16 or float in [0, 1], got {pixels.dtype}")
    # torch cannot wrap read-only memory (Pillow's arrays are read-only).
    t = torch.from_numpy(pixels if pixels.flags.writeable else pixels.copy())
    t = t.unsqueeze(-1) if t.ndim == 2 else t[..., : 3 if t.shape[2] >= 3 else 1]
    x = t.permute(2, 0, 1).unsqueeze(0).to(torch.float32)
    x = x.mul_(1.0 / _max_value(pixels.dtype)) if pixels.dtype in _TORCH_DTYPES else x
    return x.expand(1, 3, *x.shape[-2:]) if x.shape[1] == 1 else x


#: Pixels per band when converting back from float.
_CONVERT_BAND_PIXELS = 1 << 20
#: ITU-R BT.601 luma, as Pillow converts RGB to gray.
_LUMA = (0.299, 0.587, 0.114)


def tensor_to_pixels(x: torch.Tensor, like: np.ndarray) -> np.ndarray:
    """Inverse of :func:`pixels_to_tensor`: ``(1, 3, H, W)`` in [0, 1] -> an array laid out like ``like``.

    Gray layouts get the luma of the colour channels, alpha is copied from ``like``
    untouched, integers are rounded. Converted in bands of rows, so the float
    temporaries stay small next to a large image.

    Example:
        >>> like = np.zeros((2, 3, 2), np.uint16)
        >>> tensor_to_pixels(torch.ones(1, 3, 2, 3), like)[..., 0].max()
        np.uint16(65535)
    """
    x = x[0].detach()
    height, width = x.shape[-2:]
    gray = like.ndim == 2 or like.shape[2] in (1, 2)
    out = np.empty((height, width, 1) if like.ndim == 2 else like.shape, like.dtype)
    band = max(1, _CONVERT_BAND_PIXELS // max(width, 1))
    for r0 in range(0, height, band):
        part = x[:, r0 : r0 + band].to("cpu", torch.float32)
        if gray:
            part = (part * torch.tensor(_LUMA).view(3, 1, 1)).sum(0, keepdim=True)
        if like.dtype in _TORCH_DTYPES:
            peak = _max_value(like.dtype)
            part = part.mul(peak).round_().clamp_(0.0, peak).to(_TORCH_DTYPES[like.dtype])
        else:
            part = part.clamp(0.0, 1.0).to(getattr(torch, like.dtype.name))
        out[r0 : r0 + band, :, : part.shape[0]] = part.permute(1, 2, 0).numpy()
    if like.ndim == 2:
        return out[..., 0]
    if like.shape[2] in (2, 4):
        out[..., -1] = like[..., -1]
    return out
