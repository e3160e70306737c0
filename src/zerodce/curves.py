"""Light-enhancement curves (Zero-DCE, Guo et al. 2020, eq. 1-2).

One curve step maps each pixel value ``x`` in [0, 1] to

    LE(x) = x + alpha * x * (1 - x)

with a per-pixel, per-channel ``alpha`` in [-1, 1]; it keeps 0 and 1 fixed, is
monotonic, and brightens for ``alpha > 0``. Zero-DCE applies it 8 times.

Curves in this package are the paper's ``alpha``. The authors' released code
writes the step as ``x + r * (x**2 - x)``, i.e. ``r = -alpha``; the conversion
happens once, when an official checkpoint is loaded (see ``zerodce.weights``).
"""

from __future__ import annotations

import torch
from torch import nn

from zerodce._checks import check_image_tensor


def curve_step(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """One light-enhancement step ``x + alpha * x * (1 - x)`` (broadcasting)."""
    return x + alpha * (x - x * x)


def apply_curves(x: torch.Tensor, curves: torch.Tensor, iterations: int = 8) -> torch.Tensor:
    """Apply light-enhancement curves iteratively.

    Args:
        x: image, float ``(B, 3, H, W)`` in [0, 1].
        curves: the paper's ``alpha`` maps, ``(B, 3, H, W)`` or ``(B, 3*n, H, W)``,
            values in [-1, 1]. A 3-channel map is applied ``iterations`` times
            (Zero-DCE++); a ``3*n``-channel map applies its ``n`` RGB groups in
            order, once each (Zero-DCE), and ``iterations`` is not used.
        iterations: number of steps for a 3-channel map.

    Returns:
        The enhanced image, ``(B, 3, H, W)``, in [0, 1].

    Example:
        >>> x = torch.full((1, 3, 2, 2), 0.2)
        >>> apply_curves(x, torch.ones(1, 3, 2, 2), iterations=1)[0, 0, 0, 0].item()
        0.36000001430511475
        >>> apply_curves(x, torch.zeros(1, 24, 2, 2)).equal(x)
        True
    """
    check_image_tensor(x, "x")
    check_image_tensor(curves, "curves", channels=None)
    if curves.shape[1] % 3 != 0:
        raise ValueError(f"curves must have 3*n channels, got shape {tuple(curves.shape)}")
    if curves.shape[-2:] != x.shape[-2:]:
        raise ValueError(
            f"curves {tuple(curves.shape)} and x {tuple(x.shape)} must have the same height and width"
        )
    if curves.shape[1] == 3:
        steps = [curves] * iterations
    else:
        steps = torch.split(curves, 3, dim=1)
    for alpha in steps:
        x = curve_step(x, alpha)
    # LE keeps [0, 1] mathematically; the clamp only removes float rounding at the ends.
    return x.clamp(0.0, 1.0)


class ApplyCurves(nn.Module):
    """Module twin of :func:`apply_curves`.

    Example:
        >>> ApplyCurves(iterations=8)(torch.rand(1, 3, 4, 4), torch.zeros(1, 3, 4, 4)).shape
        torch.Size([1, 3, 4, 4])
    """

    def __init__(self, iterations: int = 8) -> None:
        super().__init__()
        self.iterations = iterations

    def forward(self, x: torch.Tensor, curves: torch.Tensor) -> torch.Tensor:
        return apply_curves(x, curves, self.iterations)
