"""Light-enhancement curves (Zero-DCE, Guo et al. 2020, eq. 1-2).

One curve step maps each pixel value ``x`` in [0, 1] to

    LE(x) = x + alpha * x * (1 - x)

with a per-pixel, per-channel ``alpha`` in [-1, 1]; it keeps 0 and 1 fixed, is
monotonic, and brightens for ``alpha > 0``. Zero-DCE applies it 8 times.

Curves in this package are the paper's ``alpha``. The authors' released code
writes the step as ``x + r * (x**2 - x)``, i.e. ``r = -alpha``; the conversion
happens once, when an official checkpoint is loaded (see ``zerodce.weights``).

Everything that applies curves lives here: full-resolution maps
(:func:`apply_curves`), low-resolution maps stretched over the image on the fly
(:func:`apply_low_res_curves`, Zero-DCE++), their upsampling, and the calls to
the compiled kernels. Two implementations compute the same values (within float
rounding): :func:`apply_curves_reference`, the plain loop of full-size tensor
operations (differentiable), and the fused one pass over memory for inference
(:func:`apply_curves_fused`): a compiled C kernel on the CPU where a C compiler
exists (``zerodce._native``), else PyTorch operations on cache-sized blocks (see
``docs/speed.md``). :func:`apply_curves` takes the fused one unless gradients are
needed. The fused paths read and write 8-bit images (``uint8``, 0..255) as well
as float ones, and can also return the *gain* of the curves at each pixel (the
slope ``d LE^n / dx``, which says how much the noise there was amplified).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zerodce import _native
from zerodce._native import LeastSaturated
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


def _check_curves(x: torch.Tensor, curves: torch.Tensor, uint8: bool = False) -> None:
    check_image_tensor(x, "x", uint8=uint8)
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


def scale_curves(curves: torch.Tensor, strengths: torch.Tensor) -> torch.Tensor:
    """Curve maps with each image's ``alpha`` scaled per channel and clamped to [-1, 1]: the curves' *strength*.

    Args:
        curves: ``(B, 3*n, H, W)`` (or ``(1, 3*n, H, W)`` shared by the batch) maps, RGB groups in order.
        strengths: ``(B, 3)`` factors per image and channel, or ``(B,)`` one per image.

    Returns:
        ``curves`` itself where every factor is 1 (the model as trained, bit for bit), else
        ``clamp(strength * alpha, -1, 1)``, shaped ``(B, 3*n, H, W)``.

    Example:
        >>> scale_curves(torch.full((1, 6, 1, 1), 0.6), torch.tensor([[2.0, 1.0, 0.5]])).flatten().tolist()
        [1.0, 0.6000000238418579, 0.30000001192092896, 1.0, 0.6000000238418579, 0.30000001192092896]
    """
    strengths = strengths.to(curves.device, curves.dtype)
    if strengths.dim() == 1:
        strengths = strengths.view(-1, 1).expand(-1, 3)
    if bool((strengths == 1.0).all()):
        return curves
    per_map = strengths.repeat(1, curves.shape[1] // 3).view(strengths.shape[0], curves.shape[1], 1, 1)
    return (curves * per_map).clamp(-1.0, 1.0)


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
    x: torch.Tensor,
    curves: torch.Tensor,
    iterations: int = 8,
    out: torch.Tensor | None = None,
    gain: torch.Tensor | None = None,
    least_saturated: LeastSaturated = False,
) -> torch.Tensor:
    """:func:`apply_curves` in one pass over memory; no autograd.

    ``x`` and ``curves`` are read once and the result written once, instead of
    one full-size read and write per operation and step (8 steps x 3
    operations). On the CPU that is the compiled kernel of ``zerodce._native``
    where it is available (row by row, ~3x faster), else PyTorch operations on
    blocks of rows small enough to stay in cache. Each step is computed in the
    same order as :func:`curve_step`. On other devices the whole image is one block.

    Args:
        x: image, ``(B, 3, H, W)``, float in [0, 1] or uint8 (0..255); any strides.
        curves: as for :func:`apply_curves`, float32 (or the float dtype of ``x``); batch may broadcast.
        iterations: number of steps for a 3-channel map.
        out: optional ``(B, 3, H, W)`` tensor to write into, float or uint8 (rounded
            half to even); may be a view, e.g. a band of a larger image; must not
            overlap ``x`` unless it is ``x``. Default: like ``x``.
        gain: optional ``(B, 1, H, W)`` float32 tensor that receives :func:`curve_gain`.
        least_saturated: read uint8 ``x`` as :func:`least_saturated_values` (instead of ``x / 255``);
            one flag, or one per image of the result's batch.

    Returns:
        ``out`` (or a new tensor), the enhanced image in [0, 1] (0..255 for uint8).

    Example:
        >>> x, a = torch.rand(2, 3, 5, 7), torch.rand(2, 24, 5, 7) * 2 - 1
        >>> bool((apply_curves_fused(x, a) - apply_curves_reference(x, a)).abs().max() < 1e-6)
        True
        >>> x8 = torch.randint(0, 256, (1, 3, 5, 7), dtype=torch.uint8)
        >>> y8 = apply_curves_fused(x8, a[:1])
        >>> y8.dtype, bool((y8.float() / 255 - apply_curves_reference(x8.float() / 255, a[:1])).abs().max() <= 0.5 / 255)
        (torch.uint8, True)
    """
    _check_curves(x, curves, uint8=True)
    float_dtype = torch.float32 if x.dtype == torch.uint8 else x.dtype
    if curves.dtype != float_dtype:
        raise ValueError(f"curves must have dtype {float_dtype} for x of dtype {x.dtype}, got {curves.dtype}")
    b, c, h, w = x.shape
    b = torch.broadcast_shapes((b,), curves.shape[:1])[0]
    # Work in x's memory layout (images decoded from files are channels-last): operands of
    # different layouts would make every operation a slow strided loop.
    channels_last = is_channels_last(x)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    if out is None:
        out = torch.empty((b, c, h, w), dtype=x.dtype, device=x.device, memory_format=layout)
    _check_out(out, (b, c, h, w), gain)
    steps = step_count(curves.shape[1], iterations)
    if _native.apply_maps(x, curves, steps, out, gain, least_saturated):
        return out
    rows = fused_block_rows(out)
    with torch.no_grad():
        for r0 in range(0, h, rows):
            r1 = min(r0 + rows, h)
            maps = [_laid_out(a, channels_last) for a in torch.split(curves[..., r0:r1, :], 3, dim=1)]
            _steps_block(_decode(x[..., r0:r1, :], least_saturated), maps, steps, out[..., r0:r1, :],
                         None if gain is None else gain[..., r0:r1, :])
    return out


def _check_out(out: torch.Tensor, shape: tuple[int, ...], gain: torch.Tensor | None) -> None:
    if tuple(out.shape) != shape:
        raise ValueError(f"out must have the shape {shape} of the result, got {tuple(out.shape)}")
    if gain is not None and (tuple(gain.shape) != (shape[0], 1, *shape[2:]) or gain.dtype != torch.float32):
        raise ValueError(f"gain must be float32 of shape {(shape[0], 1, *shape[2:])}, got {gain.dtype} {tuple(gain.shape)}")


#: ITU-R BT.601 luma weights (as ``zerodce.io`` converts colour to gray): the gain is a luma gain.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def least_saturated_values(x: torch.Tensor) -> torch.Tensor:
    """8-bit images to [0, 1], each pixel the colour nearest to grey its levels stand for: ``(B, 3, H, W)`` float32.

    An 8-bit level ``v`` stands for any value within half a level of it (clipped
    to [0, 255]). Where a photo is crushed near black, that half level is most of
    the colour: a pixel stored as (0, 1, 0) may be any near-black from grey to
    pure green, and curves, which keep 0 at 0, lift its 1 alone into a saturated
    green; JPEG plateaus of such pixels become green and magenta blocks. Of
    all the colours consistent with the stored levels, this takes the one
    closest to the grey axis (the fewest assumptions about colour the data does
    not hold): the grey ``t`` nearest to the box of the pixel's three intervals,
    each channel then clamped into its own interval. Where the intervals overlap
    (channels at most one level apart) the result is grey, at the pixel's luma
    clamped into the overlap. Every value moves by at most half a level: nothing
    visible in a well-exposed image, only what a large lift would make of it.

    Args:
        x: ``(B, 3, H, W)`` uint8.

    Example:
        >>> x = torch.tensor([[0, 1, 0], [0, 3, 0], [200, 100, 50]], dtype=torch.uint8).T.reshape(1, 3, 3, 1)
        >>> (least_saturated_values(x) * 255)[0, :, :, 0].T.round(decimals=3).tolist()  # in levels
        [[0.5, 0.5, 0.5], [0.5, 2.5, 0.5], [199.5, 100.5, 50.5]]
    """
    if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"x must be (B, 3, H, W) uint8, got {x.dtype} {tuple(x.shape)}")
    v = x.float()
    c0, c1, c2 = v[:, 0:1], v[:, 1:2], v[:, 2:3]
    low, high = torch.minimum(torch.minimum(c0, c1), c2), torch.maximum(torch.maximum(c0, c1), c2)
    total = c0 + c1 + c2
    mid = total - low - high  # exact: sums of levels
    # Channels more than a level apart: t minimises the squared distances to the three intervals (a
    # convex piecewise quadratic). The lowest channel's interval is below t and the highest's above
    # it; the middle one is below, above or around t: whichever mean of the active ends is consistent.
    # (Clipping the intervals to [0, 255] changes none of this: t lies between the channels.)
    above, below = (total + 0.5) * (1.0 / 3.0), (total - 0.5) * (1.0 / 3.0)
    apart = torch.where(above >= mid + 0.5, above, torch.where(below <= mid - 0.5, below, (low + high) * 0.5))
    w = LUMA_WEIGHTS
    luma = w[0] * c0 + w[1] * c1 + w[2] * c2
    t = torch.where(high - low <= 1.0, torch.minimum(torch.maximum(luma, high - 0.5), low + 0.5), apart)
    return torch.minimum(torch.maximum(t, v - 0.5), v + 0.5).mul_(1.0 / 255.0)


def _decode(x: torch.Tensor, least_saturated: LeastSaturated) -> torch.Tensor:
    """``x`` as float in [0, 1]: uint8 divided by 255 (as ``zerodce.io`` converts) or :func:`least_saturated_values`."""
    if x.dtype != torch.uint8:
        return x
    if not isinstance(least_saturated, bool):  # one flag per image of the broadcast batch
        return torch.cat([_decode(x[i if x.shape[0] > 1 else 0, None], bool(flag))
                          for i, flag in enumerate(least_saturated)])
    return least_saturated_values(x) if least_saturated else x.float().mul_(1.0 / 255.0)


def _steps_block(src: torch.Tensor, maps: list[torch.Tensor], steps: int, out: torch.Tensor,
                 gain: torch.Tensor | None) -> None:
    """The PyTorch fused path on one block of rows: ``steps`` steps of ``src`` (float) into ``out`` (and ``gain``)."""
    to_uint8 = out.dtype == torch.uint8
    y = torch.empty_like(src) if to_uint8 or out.dtype != src.dtype else out
    t = torch.empty_like(src)
    slope = torch.ones_like(src) if gain is not None else None
    for i in range(steps):
        a = maps[i % len(maps)]  # one shared map, or the i-th group
        if slope is not None:  # d/dx of one step: 1 + a * (1 - 2x)
            slope.mul_(torch.addcmul(torch.ones_like(src), a, src.mul(-2.0).add_(1.0)))
        torch.addcmul(src, src, src, value=-1, out=t)  # x - x * x
        torch.addcmul(src, a, t, out=y)
        src = y
    if not steps:
        y.copy_(src)
    y.clamp_(0.0, 1.0)
    if to_uint8:
        out.copy_(y.mul_(255.0).round_())
    elif y is not out:
        out.copy_(y)
    if gain is not None:
        weights = torch.tensor(LUMA_WEIGHTS, dtype=slope.dtype, device=slope.device).view(1, 3, 1, 1)
        gain.copy_((slope * weights).sum(1, keepdim=True))


def curve_gain(x: torch.Tensor, curves: torch.Tensor, iterations: int = 8) -> torch.Tensor:
    """The slope of the curves at each pixel's value, luma-weighted: ``(B, 1, H, W)``.

    ``d LE^n(x) / dx`` by the chain rule (one step's slope is ``1 + alpha (1 - 2x)``),
    weighted over the RGB channels as luma is: how much the curves amplified small
    variations, such as noise, at that pixel (1 = not at all). The reference for
    the ``gain`` outputs of the fused paths.

    Example:
        >>> x = torch.full((1, 3, 1, 1), 0.1)
        >>> round(curve_gain(x, torch.ones(1, 3, 1, 1), iterations=1).item(), 3)  # 1 + (1 - 0.2)
        1.8
    """
    _check_curves(x, curves, uint8=True)
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x
    slope = torch.ones_like(x)
    for alpha in _steps(curves, iterations):
        slope = slope * (1 + alpha * (1 - 2 * x))
        x = curve_step(x, alpha)
    weights = torch.tensor(LUMA_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (slope * weights).sum(1, keepdim=True)


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
        x: image, float ``(B, 3, H, W)`` in [0, 1], or uint8 (0..255; the result is
            then uint8 too, rounded half to even, and float32 curves are needed).
        curves: the paper's ``alpha`` maps, ``(B, 3, H, W)`` or ``(B, 3*n, H, W)``,
            values in [-1, 1]. A 3-channel map is applied ``iterations`` times
            (Zero-DCE++); a ``3*n``-channel map applies its ``n`` RGB groups in
            order, once each (Zero-DCE), and ``iterations`` is not used.
        iterations: number of steps for a 3-channel map.

    Returns:
        The enhanced image, ``(B, 3, H, W)``, in [0, 1] (0..255 for uint8).

    Example:
        >>> x = torch.full((1, 3, 2, 2), 0.2)
        >>> apply_curves(x, torch.ones(1, 3, 2, 2), iterations=1)[0, 0, 0, 0].item()
        0.36000001430511475
        >>> apply_curves(x, torch.zeros(1, 24, 2, 2)).equal(x)
        True
    """
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or curves.requires_grad)
    if x.dtype == torch.uint8 and curves.dtype == torch.float32:
        return apply_curves_fused(x, curves, iterations)
    if needs_grad or x.dtype != curves.dtype:
        return apply_curves_reference(x, curves, iterations)
    return apply_curves_fused(x, curves, iterations)


def _source_rows(
    h: int, height: int, row_start: int, row_stop: int, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For output rows ``[row_start, row_stop)`` of an ``h -> height`` align_corners upsampling:
    the two source rows of each and the weight of the second, ``(rows,)``, ``(rows,)``, ``(1, 1, rows, 1)``."""
    rows = torch.arange(row_start, row_stop, device=device, dtype=torch.float64)
    src = rows * ((h - 1) / (height - 1)) if height > 1 else torch.zeros_like(rows)
    i0 = src.floor().long().clamp(max=h - 1)
    i1 = (i0 + 1).clamp(max=h - 1)
    return i0, i1, (src - i0).to(dtype).view(1, 1, -1, 1)


def _upsample_rows(small: torch.Tensor, i0: torch.Tensor, i1: torch.Tensor, frac: torch.Tensor, width: int) -> torch.Tensor:
    """Output rows with source rows ``i0``/``i1`` (ascending) and weights ``frac``: ``(B, C, rows, width)``."""
    lo, hi = int(i0[0]), int(i1[-1]) + 1
    b, c, n, w = small[..., lo:hi, :].shape
    # Columns first, on the few source rows this band needs (cheap 1-D interpolation),
    # then one lerp between two of them per output row.
    src = F.interpolate(small[..., lo:hi, :].reshape(b, c * n, w), size=width, mode="linear", align_corners=True)
    src = src.view(b, c, n, width)
    return torch.lerp(src.index_select(2, i0 - lo), src.index_select(2, i1 - lo), frac)


def upsample_curves(small: torch.Tensor, size: tuple[int, int], row_start: int, row_stop: int) -> torch.Tensor:
    """Rows ``[row_start, row_stop)`` of ``small`` upsampled to ``size`` (bilinear, ``align_corners=True``).

    Equal to ``F.interpolate(small, size, mode="bilinear", align_corners=True)[..., row_start:row_stop, :]``
    without building the whole map, so large images can be processed in bands.

    Example:
        >>> small = torch.rand(1, 3, 4, 5)
        >>> full = F.interpolate(small, size=(12, 15), mode="bilinear", align_corners=True)
        >>> torch.allclose(upsample_curves(small, (12, 15), 3, 9), full[..., 3:9, :], atol=1e-6)
        True
    """
    i0, i1, frac = _source_rows(small.shape[-2], size[0], row_start, row_stop, small.device, small.dtype)
    return _upsample_rows(small, i0, i1, frac, size[1])


def apply_low_res_curves(
    x: torch.Tensor,
    small: torch.Tensor,
    size: tuple[int, int],
    iterations: int = 8,
    row_start: int = 0,
    out: torch.Tensor | None = None,
    gain: torch.Tensor | None = None,
    least_saturated: LeastSaturated = False,
) -> torch.Tensor:
    """Upsample low-resolution curve maps and apply them to ``x``, fused block by block.

    Equal to ``apply_curves(x, upsample_curves(small, size, row_start, row_start + H)[..., :W])``,
    but the full-resolution maps are never built: each row (compiled kernel of
    ``zerodce._native``) or block of rows gets its curves upsampled just before
    they are applied, while it is in cache. Takes that plain path when
    gradients are needed.

    Args:
        x: image rows ``[row_start, row_start + H)`` of an image whose padded size
            is ``size``, ``(B, 3, H, W)``, float in [0, 1] or uint8, ``W <= size[1]``.
        small: curve maps at the network's resolution, ``(B, 3*n, h, w)``, float32
            (or the float dtype of ``x``).
        size: padded full-resolution size ``(height, width)`` the maps stretch over.
        iterations: number of steps for a 3-channel map.
        row_start: first row of ``x`` in the full image (for bands of a large image).
        out: optional ``(B, 3, H, W)`` tensor (or view) to write into, float or uint8.
        gain: optional ``(B, 1, H, W)`` float32 tensor that receives :func:`curve_gain`.
        least_saturated: read uint8 ``x`` as :func:`least_saturated_values` (instead of ``x / 255``);
            one flag, or one per image of the result's batch.

    Returns:
        ``out`` (or a new tensor): the enhanced rows, ``(B, 3, H, W)`` in [0, 1] (0..255 for uint8).

    Example:
        >>> x, small = torch.rand(1, 3, 10, 13), torch.rand(1, 3, 2, 2) * 2 - 1
        >>> plain = apply_curves(x, upsample_curves(small, (12, 24), 0, 10)[..., :13])
        >>> bool((apply_low_res_curves(x, small, (12, 24)) - plain).abs().max() < 1e-6)
        True
    """
    h, w = x.shape[-2:]
    if torch.is_grad_enabled() and (x.requires_grad or small.requires_grad) and out is None and gain is None:
        return apply_curves(x, upsample_curves(small, size, row_start, row_start + h)[..., :w], iterations)
    check_image_tensor(x, "x", uint8=True)
    if out is None:
        out = torch.empty_like(x)  # in x's memory layout, as apply_curves_fused works
    _check_out(out, (torch.broadcast_shapes(x.shape[:1], small.shape[:1])[0], *x.shape[1:]), gain)
    if _native.apply_low_res(x, small, size, step_count(small.shape[1], iterations), row_start, out, gain,
                             least_saturated):
        return out
    i0, i1, frac = _source_rows(small.shape[-2], size[0], row_start, row_start + h, small.device, small.dtype)
    rows = fused_block_rows(out)
    for r0 in range(0, h, rows):
        r1 = min(r0 + rows, h)
        curves = _upsample_rows(small, i0[r0:r1], i1[r0:r1], frac[..., r0:r1, :], size[1])[..., :w]
        apply_curves_fused(x[..., r0:r1, :], curves, iterations, out=out[..., r0:r1, :],
                           gain=None if gain is None else gain[..., r0:r1, :], least_saturated=least_saturated)
    return out


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
