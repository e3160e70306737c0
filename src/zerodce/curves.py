"""Light-enhancement curves (Zero-DCE, Guo et al. 2020, eq. 1-2).

One curve step maps each pixel value ``x`` in [0, 1] to

    LE(x) = x + alpha * x * (1 - x)

with a per-pixel, per-channel ``alpha`` in [-1, 1]; it keeps 0 and 1 fixed, is
monotonic, and brightens for ``alpha > 0``. Zero-DCE applies it 8 times.

Curves in this package are the paper's ``alpha``. The authors' released code
writes the step as ``x + r * (x**2 - x)``, i.e. ``r = -alpha``; the conversion
happens once, when an official checkpoint is loaded (see ``zerodce.weights``).

Two implementations compute the same values (within float rounding):
:func:`apply_curves_reference`, the plain loop of full-size tensor operations
(differentiable), and :func:`apply_curves_fused`, one pass over memory for
inference: a compiled C kernel on the CPU where a C compiler exists
(``zerodce._native``), else PyTorch operations on cache-sized blocks (see
``docs/speed.md``). :func:`apply_curves` takes the fused one unless gradients
are needed.
"""

from __future__ import annotations

import torch
from torch import nn

from zerodce import _native
from zerodce._checks import check_image_tensor


def curve_step(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """One light-enhancement step ``x + alpha * x * (1 - x)`` (broadcasting)."""
    return x + alpha * (x - x * x)


#: Elements of one block of the fused path: a block of ``x``, its curves and a
#: temporary (3 x 1 MiB in float32) stay in cache (L2 + L3) through all 8 steps.
FUSED_BLOCK_ELEMENTS = 1 << 18


def fused_block_rows(x: torch.Tensor) -> int:
    """Rows per block of the fused path for an image shaped like ``x``: all rows off the CPU.

    Example:
        >>> fused_block_rows(torch.empty(1, 3, 1080, 1920))
        45
    """
    b, c, h, w = x.shape
    if x.device.type != "cpu":
        return h
    return max(1, FUSED_BLOCK_ELEMENTS // (b * c * w))


def _check_curves(x: torch.Tensor, curves: torch.Tensor) -> None:
    check_image_tensor(x, "x")
    check_image_tensor(curves, "curves", channels=None)
    if curves.shape[1] % 3 != 0:
        raise ValueError(f"curves must have 3*n channels, got shape {tuple(curves.shape)}")
    if curves.shape[-2:] != x.shape[-2:]:
        raise ValueError(
            f"curves {tuple(curves.shape)} and x {tuple(x.shape)} must have the same height and width"
        )


def step_count(channels: int, iterations: int) -> int:
    """Curve steps for maps with ``channels`` channels: ``iterations`` for one RGB map, else one per RGB group.

    Example:
        >>> step_count(3, 8), step_count(24, 8)
        (8, 8)
    """
    return iterations if channels == 3 else channels // 3


def _steps(curves: torch.Tensor, iterations: int) -> list[torch.Tensor]:
    """The ``alpha`` of each step: a shared 3-channel map repeated, or the ``n`` RGB groups in order."""
    if curves.shape[1] == 3:
        return [curves] * iterations
    return list(torch.split(curves, 3, dim=1))


def apply_curves_reference(x: torch.Tensor, curves: torch.Tensor, iterations: int = 8) -> torch.Tensor:
    """:func:`apply_curves` written plainly, one full-size tensor per step; differentiable.

    This is the definition the fused path is tested against, and the path taken
    whenever gradients are needed.

    Example:
        >>> x, a = torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4)
        >>> torch.allclose(apply_curves_reference(x, a), apply_curves(x, a), atol=1e-6)
        True
    """
    _check_curves(x, curves)
    for alpha in _steps(curves, iterations):
        x = curve_step(x, alpha)
    # LE keeps [0, 1] mathematically; the clamp only removes float rounding at the ends.
    return x.clamp(0.0, 1.0)


def apply_curves_fused(
    x: torch.Tensor, curves: torch.Tensor, iterations: int = 8, out: torch.Tensor | None = None
) -> torch.Tensor:
    """:func:`apply_curves` in one pass over memory; no autograd.

    ``x`` and ``curves`` are read once and the result written once, instead of
    one full-size read and write per operation and step (8 steps x 3
    operations). On the CPU that is the compiled kernel of ``zerodce._native``
    where it is available (row by row, ~3x faster), else PyTorch operations on
    blocks of rows small enough to stay in cache. Each step is computed in the
    same order as :func:`curve_step`. On other devices the whole image is one block.

    Args:
        x: image, float ``(B, 3, H, W)`` in [0, 1]; any strides.
        curves: as for :func:`apply_curves`, same dtype as ``x``; batch may broadcast.
        iterations: number of steps for a 3-channel map.
        out: optional ``(B, 3, H, W)`` tensor to write into (may be a view, e.g. a
            band of a larger image; must not overlap ``x`` unless it is ``x``).

    Returns:
        ``out`` (or a new tensor), the enhanced image in [0, 1].

    Example:
        >>> x, a = torch.rand(2, 3, 5, 7), torch.rand(2, 24, 5, 7) * 2 - 1
        >>> bool((apply_curves_fused(x, a) - apply_curves_reference(x, a)).abs().max() < 1e-6)
        True
    """
    _check_curves(x, curves)
    if curves.dtype != x.dtype:
        raise ValueError(f"curves must have the dtype of x ({x.dtype}), got {curves.dtype}")
    b, c, h, w = x.shape
    b = torch.broadcast_shapes((b,), curves.shape[:1])[0]
    # Work in x's memory layout (images decoded from files are channels-last): operands of
    # different layouts would make every operation a slow strided loop.
    channels_last = is_channels_last(x)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    if out is None:
        out = torch.empty((b, c, h, w), dtype=x.dtype, device=x.device, memory_format=layout)
    steps = step_count(curves.shape[1], iterations)
    if _native.apply_maps(x, curves, steps, out):
        return out
    rows = fused_block_rows(out)
    tmp = torch.empty((b, c, min(rows, h), w), dtype=x.dtype, device=x.device, memory_format=layout)
    with torch.no_grad():
        for r0 in range(0, h, rows):
            r1 = min(r0 + rows, h)
            y, t = out[..., r0:r1, :], tmp[..., : r1 - r0, :]
            maps = [_laid_out(a, channels_last) for a in torch.split(curves[..., r0:r1, :], 3, dim=1)]
            src = x[..., r0:r1, :]  # the first step reads x, so out is written only once
            for i in range(steps):
                a = maps[i % len(maps)]  # one shared map, or the i-th group
                torch.addcmul(src, src, src, value=-1, out=t)  # x - x * x
                torch.addcmul(src, a, t, out=y)
                src = y
            if not steps:
                y.copy_(src)
            y.clamp_(0.0, 1.0)
    return out


def is_channels_last(x: torch.Tensor) -> bool:
    """Whether ``x`` ``(B, C, H, W)`` has its channels innermost in memory (NHWC), as decoded images do.

    Example:
        >>> is_channels_last(torch.rand(1, 3, 4, 5).contiguous(memory_format=torch.channels_last))
        True
    """
    return x.shape[1] > 1 and x.stride(1) == 1


def _laid_out(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """``x`` with channels innermost in memory or not, as asked; copied only if needed."""
    if is_channels_last(x) == channels_last:
        return x
    return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def apply_curves(x: torch.Tensor, curves: torch.Tensor, iterations: int = 8) -> torch.Tensor:
    """Apply light-enhancement curves iteratively.

    Takes the fused path (:func:`apply_curves_fused`) unless gradients are needed
    or the dtypes differ; both give the same values within float rounding.

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
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or curves.requires_grad)
    if needs_grad or x.dtype != curves.dtype:
        return apply_curves_reference(x, curves, iterations)
    return apply_curves_fused(x, curves, iterations)


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
