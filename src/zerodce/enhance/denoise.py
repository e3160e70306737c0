"""Denoising what the curves amplified: an edge-stopping filter as strong as the gain at each pixel.

Brightening a dark photo by a factor ``g`` multiplies its sensor noise by ``g``
too: the curves lift deep shadows up to ~10x and their grain with them, while
bright regions are barely touched. The noise added by enhancing is known at
each pixel: the input's noise level ``sigma`` (:func:`estimate_noise`, from the
photo itself) times the curves' slope there (their *gain*, exact:
:func:`zerodce.curves.curve_gain`). To bring the noise back to what it was
before the lift, the filter removes a noise of standard deviation
``sigma * sqrt(g**2 - 1)``: nothing where the curves did not amplify (``g <= 1``),
a lot in lifted shadows.

The filter (:func:`denoise_amplified`) is an edge-avoiding *a-trous* filter
(Dammertz et al., HPG 2010): :data:`LEVELS` passes of a 3x3 binomial kernel
whose taps are 1, 2, 4 and 8 pixels apart, so the support grows to 31x31 pixels
(low-frequency blotches go too) at 9 taps per pixel and pass. The passes after
the first :data:`FULL_RESOLUTION_PASSES` run on a copy at half resolution (means
of 2x2 pixels, :func:`half_resolution`; taps 2 and 4 of its pixels apart: the same
reach), and what they change is upsampled (:func:`upsample_correction`) and added
to the full-resolution result, whose own detail stays: a quarter of their cost,
and in a zero-reference check (``scripts/denoise_check.py``) no loss. Each tap's weight
is scaled by Tukey's biweight of its colour distance to the centre pixel,
``(1 - d**2 / h**2)**2`` (0 beyond ``h``): pixels across an edge get no weight at
all, so edges stay sharp without halos, and texture stronger than the noise
survives. ``h`` is Tukey's textbook constant (4.685, 95% efficiency under
Gaussian noise) times the spread of the difference of two noisy pixels
(``sqrt(2)`` times the amplified noise). At every coarser level the sensor
noise's part of it is halved, as the white noise left after each pass is about
half (Dammertz et al.); the quantization's part (:data:`QUANTIZATION`, one 8-bit
step's uniform error) is not: in a photo whose shadows hold no noise to dither
them (phone JPEGs) the error is a staircase of plateaus one level apart, as large
after averaging inside a plateau as before, and lifted into visible blocks. The first pass
measures colour distances on a copy smoothed by the same 3x3 kernel (a joint
filter), so an isolated noise spike, far from all its neighbours, is averaged
away instead of being protected as an "edge" (the bilateral filter's known
weakness on impulse noise). Nothing here was fitted to a data set: the only
inputs are the noise level and the gain.

Every pixel depends on the ones at most :data:`RADIUS` away, so tiles and bands
with that much context give the untiled result exactly. On the CPU the compiled
kernel ``zerodce._native.denoise`` streams all passes over a few rows held in
cache and stores the last one straight into the output (:func:`denoise_into`);
:func:`denoise_level` (with :func:`smooth3x3`, the first pass's guide) is the
PyTorch definition of one pass, which the kernel is tested against, and the path
where the kernel cannot run (other devices, dtypes, autograd).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from zerodce import _native
from zerodce._checks import check_image_tensor
from zerodce.models._dce_net import one_thread

#: Passes of the filter; tap spacing doubles at each (1, 2, 4, 8).
LEVELS = 4
#: Passes at full resolution; the later ones run on a copy at half resolution (means of 2x2 pixels, taps
#: half as far apart), and what they change is upsampled and added: the same reach for a quarter of the cost.
FULL_RESOLUTION_PASSES = 2
#: Pixels one output pixel depends on, on each side: 1 (the smoothed guide) + 1 + 2 + 4 + 8, and 1 more for the
#: half-resolution passes' 2x2 pairs and bilinear upsampling (tested).
RADIUS = 2**LEVELS + 1
#: Tukey's biweight constant for 95% efficiency under Gaussian noise.
TUKEY = 4.685
#: Range of the filter per unit of amplified noise: Tukey's constant on the spread of
#: the difference of two pixels with independent noise.
RANGE_PER_SIGMA = TUKEY * math.sqrt(2.0)
#: The 8-bit quantization's standard deviation (a uniform error of one step), part of every
#: :func:`estimate_noise` result: the part of a range that coarser passes keep.
QUANTIZATION = 1.0 / (255.0 * math.sqrt(12.0))
#: Passes whose widest range is below half an 8-bit level are skipped: no pixel can move by more.
MIN_RANGE = 0.5 / 255
#: Sensor-noise samples :func:`estimate_noise` uses per image at most (a regular subset).
NOISE_SAMPLES = 1 << 16
#: Gaussian MAD -> standard deviation, and the response of the noise operator (sqrt(36)).
_MAD_TO_SIGMA, _OPERATOR_GAIN = 1.4826, 6.0
_BINOMIAL = (0.25, 0.5, 0.25)
#: Biweights below this are dropped (their squares, < 1e-8, change nothing): tiny weights would
#: become subnormal floats, which are ~100x slower on x86 CPUs.
_T_MIN = 1e-4


def estimate_noise(x: torch.Tensor, levels: int = 255) -> torch.Tensor:
    """Noise standard deviation of each image of ``x``, in [0, 1] units: ``(B,)``.

    Immerkaer's operator (the 3x3 kernel ``[[1, -2, 1], [-2, 4, -2], [1, -2, 1]]``,
    blind to planes and ramps) per channel, made robust to edges and texture
    with the median absolute response (Donoho's MAD) instead of the mean; the
    channels' variances are averaged. The quantization of ``levels`` levels
    (variance ``1 / (12 levels**2)``) is added: lifted shadows show it as
    banding even where the sensor noise measures zero.

    Args:
        x: ``(B, 3, H, W)`` float in [0, 1] or uint8. Images under 3x3 pixels measure only quantization.
        levels: quantization steps of the source (255 for 8-bit, 65535 for 16-bit).

    Example:
        >>> clean = torch.linspace(0, 1, 64).expand(1, 3, 64, 64)
        >>> noisy = (clean + 0.05 * torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
        >>> round(estimate_noise(noisy).item(), 2), estimate_noise(clean).item() < 0.002
        (0.05, True)
    """
    check_image_tensor(x, "x", uint8=True)
    b, c, h, w = x.shape
    quantization = torch.full((b,), 1.0 / (12.0 * levels**2))
    if h < 3 or w < 3:
        return quantization.sqrt()
    # A regular subset of 3-row strips keeps the cost small on large photos.
    strips = max(1, min(h - 2, NOISE_SAMPLES // (3 * w)))
    tops = torch.linspace(0, h - 3, strips).round().long().unique()
    rows = (tops.view(-1, 1) + torch.arange(3).view(1, 3)).flatten().to(x.device)
    sample = x.index_select(2, rows)
    sample = sample.float() / 255.0 if sample.dtype == torch.uint8 else sample.float()
    strip = sample.view(b, c, len(tops), 3, w)
    # The kernel is separable ([1, -2, 1] down the 3 rows, then along them): a few full-width
    # operations, where conv2d on thousands of 3-row strips costs ~10x more.
    rows_diff = strip[..., 0, :] - 2.0 * strip[..., 1, :] + strip[..., 2, :]
    response = (rows_diff[..., :-2] - 2.0 * rows_diff[..., 1:-1] + rows_diff[..., 2:]).abs().reshape(b, c, -1)
    sigma = _MAD_TO_SIGMA * _lower_median(response) / _OPERATOR_GAIN
    return (sigma.pow(2).mean(1).cpu() + quantization).sqrt()


def _lower_median(v: torch.Tensor) -> torch.Tensor:
    """``v.median(dim=-1).values`` (the lower of the two middle values): on the CPU by selection, ~10x faster than torch's."""
    if v.device.type != "cpu" or v.dtype != torch.float32 or not v.shape[-1]:
        return v.median(dim=-1).values
    k = (v.shape[-1] - 1) // 2
    return torch.from_numpy(np.partition(v.numpy(), k, axis=-1)[..., k].copy())


def added_noise(gain: torch.Tensor) -> torch.Tensor:
    """The noise the curves added, per unit of the input's: ``sqrt(max(gain**2 - 1, 0))`` (noise adds in variance).

    Example:
        >>> added_noise(torch.tensor([0.5, 1.0, 3.0])).tolist()[:2]
        [0.0, 0.0]
    """
    return (gain * gain - 1.0).clamp(min=0.0).sqrt()


def filter_range(gain: torch.Tensor, sigma: torch.Tensor | float, level: float = 1.0) -> torch.Tensor:
    """Range ``h`` of the first pass at each pixel: ``level * RANGE_PER_SIGMA * sigma * added_noise(gain)``.

    Example:
        >>> round(filter_range(torch.tensor([3.0]), 0.01).item(), 4)  # 4.685 * sqrt(2) * 0.01 * sqrt(8)
        0.1874
    """
    scale = torch.as_tensor(sigma, dtype=gain.dtype, device=gain.device).reshape(-1, *([1] * (gain.dim() - 1)))
    return level * RANGE_PER_SIGMA * scale * added_noise(gain)


def smooth3x3(y: torch.Tensor) -> torch.Tensor:
    """The 3x3 binomial blur (``[1, 2, 1] / 4`` per axis, edges clamped) of ``(C, H, W)``: the first pass's guide.

    Example:
        >>> smooth3x3(torch.eye(3).expand(1, 3, 3))[0, 1, 1].item()
        0.375
    """
    # Separable, as shifted sums: PyTorch's depthwise convolution is many times slower on the CPU.
    p = F.pad(y.unsqueeze(0), (1, 1, 1, 1), mode="replicate")[0]
    rows = torch.add(p[:, :-2], p[:, 2:]).mul_(0.25).add_(p[:, 1:-1], alpha=0.5)
    return torch.add(rows[..., :-2], rows[..., 2:]).mul_(0.25).add_(rows[..., 1:-1], alpha=0.5)


def denoise_level(y: torch.Tensor, gain: torch.Tensor, hscale: float, dilation: int,
                  guide: torch.Tensor | None = None) -> torch.Tensor:
    """One pass of the filter (PyTorch definition of the compiled kernel): ``(3, H, W)`` -> ``(3, H, W)``.

    Args:
        y: one image, ``(3, H, W)`` float.
        gain: its gain, ``(H, W)``.
        hscale: range per unit of ``sqrt(gain**2 - 1)`` (``RANGE_PER_SIGMA * sigma * level / 2**pass``).
        dilation: spacing of the 3x3 taps.
        guide: where colour distances are measured, shaped like ``y`` (default: ``y``).

    Example:
        >>> y = torch.rand(3, 8, 8)
        >>> denoise_level(y, torch.ones(8, 8), 0.1, 1).equal(y)  # gain 1: nothing was amplified
        True
    """
    _, h, w = y.shape
    guide = y if guide is None else guide
    h2 = hscale * hscale * (gain * gain - 1.0).clamp(min=0.0)
    inv = torch.where(h2 > 0, 1.0 / h2.clamp(min=torch.finfo(h2.dtype).tiny), torch.zeros_like(h2))
    rows = torch.arange(h, device=y.device)
    cols = torch.arange(w, device=y.device)
    acc = torch.zeros_like(y)
    wsum = torch.zeros_like(gain)
    for a, wa in zip((-1, 0, 1), _BINOMIAL):
        tap_rows = (rows + a * dilation).clamp(0, h - 1)
        q_rows, g_rows = y.index_select(1, tap_rows), guide.index_select(1, tap_rows)
        for b, wb in zip((-1, 0, 1), _BINOMIAL):
            tap_cols = (cols + b * dilation).clamp(0, w - 1)
            q = q_rows.index_select(2, tap_cols)
            d2 = (g_rows.index_select(2, tap_cols) - guide).pow(2).sum(0)
            t = 1.0 - d2 * inv
            t = torch.where(t > _T_MIN, t, torch.zeros_like(t))
            weight = (wa * wb) * t * t
            acc += weight * q
            wsum += weight
    return torch.where(inv > 0, acc / wsum.clamp(min=torch.finfo(wsum.dtype).tiny), y)


def _pass_scales(gain: torch.Tensor, sigma: float, level: float = 1.0) -> list[float]:
    """The range scale of each pass that can move a pixel visibly (``hscale`` of :func:`denoise_level`).

    Pass ``k`` has ``level * RANGE_PER_SIGMA * sqrt(sensor**2 / 4**k + q**2)``, where
    ``q = min(sigma, QUANTIZATION)`` and ``sensor**2 = sigma**2 - q**2``: the first
    pass's scale is that of :func:`filter_range`, and only the sensor noise's part halves.

    Example:
        >>> [round(s / RANGE_PER_SIGMA, 4) for s in _pass_scales(torch.full((4, 4), 8.0), 0.01)][:2]
        [0.01, 0.0051]
        >>> len(set(_pass_scales(torch.full((4, 4), 8.0), QUANTIZATION)))  # quantization only: every pass alike
        1
    """
    with one_thread():  # one reduction: split over threads, it waits for the slower one
        spread = float(added_noise(gain.max()))
    q = min(sigma, QUANTIZATION)
    sensor2 = sigma * sigma - q * q
    scales = [level * RANGE_PER_SIGMA * math.sqrt(sensor2 / 4**k + q * q) for k in range(LEVELS)]
    return [scale for scale in scales if scale * spread >= MIN_RANGE]


def _sigmas(y: torch.Tensor, sigma: torch.Tensor | float) -> list[float]:
    return torch.as_tensor(sigma, dtype=torch.float64).reshape(-1).expand(y.shape[0]).tolist()


def _pair_rows(n: int, parity: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The two rows (of ``n``) each half-resolution row averages: pairs of even and odd *image* rows, the first
    of the ``n`` being an odd one where ``parity`` is 1 (edges clamped)."""
    first = 2 * torch.arange((n + parity + 1) // 2, device=device) - parity
    return first.clamp(0, n - 1), (first + 1).clamp(0, n - 1)


def half_resolution(y: torch.Tensor, parity: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Means of 2x2 pixels of ``(C, H, W)``, aligned to the whole image's even rows and columns: ``(C, h, w)``.

    ``parity`` is the whole image's row and column parity of ``y``'s first row and column
    (a tile's offset modulo 2), so that tiles average the same pairs the whole image does.

    Example:
        >>> half_resolution(torch.arange(6.0).view(1, 2, 3))[0].tolist()  # odd width: the last column alone
        [[2.0, 3.5]]
    """
    a, b = _pair_rows(y.shape[-2], parity[0], y.device)
    rows = (y.index_select(-2, a) + y.index_select(-2, b)) * 0.5
    a, b = _pair_rows(y.shape[-1], parity[1], y.device)
    return (rows.index_select(-1, a) + rows.index_select(-1, b)) * 0.5


def _upsample_axis(c: torch.Tensor, n: int, parity: int, dim: int) -> torch.Tensor:
    # Pixel r of the full axis lies at (r + parity - 0.5) / 2 in half-resolution pixels.
    u = (torch.arange(n, device=c.device, dtype=torch.float32) + (parity - 0.5)) * 0.5
    i0 = u.floor()
    w = (u - i0).view([-1 if d == dim % c.dim() else 1 for d in range(c.dim())])
    i0 = i0.long()
    m = c.shape[dim]
    lo, hi = c.index_select(dim, i0.clamp(0, m - 1)), c.index_select(dim, (i0 + 1).clamp(0, m - 1))
    return lo + w * (hi - lo)


def upsample_correction(c: torch.Tensor, size: tuple[int, int], parity: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Bilinear upsampling of :func:`half_resolution`-sized ``(C, h, w)`` back to ``size`` (edges clamped).

    Example:
        >>> upsample_correction(torch.tensor([[[0.0, 4.0]]]), (1, 4))[0].tolist()
        [[0.0, 1.0, 3.0, 4.0]]
    """
    return _upsample_axis(_upsample_axis(c, size[0], parity[0], -2), size[1], parity[1], -1)


def _filter(src: torch.Tensor, g: torch.Tensor, scales: list[float], parity: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """The passes of one image ``(3, H, W)`` in turn, in PyTorch (where the streamed kernel cannot run).

    The first :data:`FULL_RESOLUTION_PASSES` at full resolution; the others on :func:`half_resolution`
    of their result (taps half as far apart), whose change is upsampled and added. Clamped to [0, 1].
    """
    for k, hscale in enumerate(scales[:FULL_RESOLUTION_PASSES]):
        src = denoise_level(src, g, hscale, 2**k, smooth3x3(src) if k == 0 else None)
    if len(scales) <= FULL_RESOLUTION_PASSES:
        return src.clamp(0.0, 1.0)
    half = half_resolution(src, parity)
    gain = half_resolution(g[None], parity)[0]
    filtered = half
    for k, hscale in enumerate(scales[FULL_RESOLUTION_PASSES:], start=FULL_RESOLUTION_PASSES):
        filtered = denoise_level(filtered, gain, hscale, 2 ** (k - 1))
    return (src + upsample_correction(filtered - half, src.shape[-2:], parity)).clamp_(0.0, 1.0)


def _check_gain(y: torch.Tensor, gain: torch.Tensor) -> None:
    check_image_tensor(y, "y")
    if gain.shape != (y.shape[0], 1, *y.shape[-2:]):
        raise ValueError(f"gain must have shape {(y.shape[0], 1, *y.shape[-2:])}, got {tuple(gain.shape)}")


def denoise_amplified(y: torch.Tensor, gain: torch.Tensor, sigma: torch.Tensor | float, level: float = 1.0,
                      origin: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Remove the noise the curves amplified from enhanced images: ``(B, 3, H, W)`` -> same.

    Args:
        y: enhanced images, ``(B, 3, H, W)`` float in [0, 1].
        gain: the curves' gain at each pixel, ``(B, 1, H, W)`` (:func:`zerodce.curves.curve_gain`).
        sigma: the input's noise level per image, ``(B,)`` or a number (:func:`estimate_noise`).
        level: filter strength; 1 as designed, 0 leaves ``y`` unchanged.
        origin: the image coordinates of ``y``'s first row and column, for a tile of a larger image: the
            half-resolution passes pair the whole image's even and odd rows and columns.

    Returns:
        The filtered images, a new tensor (``y`` itself when there is nothing to do).

    Example:
        >>> y = torch.full((1, 3, 16, 16), 0.5) + 0.05 * torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
        >>> out = denoise_amplified(y, torch.full((1, 1, 16, 16), 10.0), sigma=0.005)
        >>> bool(out.std() < y.std() / 2), denoise_amplified(y, torch.ones(1, 1, 16, 16), 0.005).equal(y)
        (True, True)
    """
    _check_gain(y, gain)
    sigmas = _sigmas(y, sigma)
    if level <= 0 or not any(sigmas) or not bool((gain > 1).any()):
        return y
    out = torch.empty_like(y)
    for i, s in enumerate(sigmas):
        src, g = y[i].float().contiguous(), gain[i, 0].float().contiguous()
        scales = _pass_scales(g, s, level)
        # Both forms clamp the result to [0, 1], as every stored result is.
        if not _native.denoise(src, g, scales, out[i], origin=origin):
            out[i] = _filter(src, g, scales, (origin[0] % 2, origin[1] % 2))
    return out


def denoise_into(y: torch.Tensor, gain: torch.Tensor, sigma: torch.Tensor | float, level: float,
                 target: torch.Tensor, offset: tuple[int, int], origin: tuple[int, int] = (0, 0)) -> bool:
    """:func:`denoise_amplified` of ``y`` stored into ``target``, in one streamed pass where the kernel can.

    ``target`` ``(B, 3, h, w)`` (uint8 rounded half to even, or float; any layout)
    receives rows ``[r, r + h)`` and columns ``[c, c + w)`` of the filtered ``y``,
    clamped to [0, 1], ``(r, c) = offset``: no filtered float image is ever
    written. ``origin`` as for :func:`denoise_amplified`. Returns ``False`` (doing
    nothing) where the compiled kernel cannot do it; the caller then filters with
    :func:`denoise_amplified` and stores.
    """
    _check_gain(y, gain)
    sigmas = _sigmas(y, sigma)
    if not (y.dtype == gain.dtype == torch.float32 and y.is_contiguous() and gain.is_contiguous()
            and target.dim() == 4 and target.shape[0] == y.shape[0]):
        return False
    scales = [_pass_scales(gain[i, 0], s, level) if level > 0 and s else [] for i, s in enumerate(sigmas)]
    return all(_native.denoise(y[i], gain[i, 0], scales[i], target[i], offset, origin) for i in range(y.shape[0]))


#: Rows of a band whose gain :func:`denoise_low_res_into` measures first (a lower bound of its maximum).
_PROBE_ROWS = 3


def denoise_low_res_into(x: torch.Tensor, small: torch.Tensor, padded: tuple[int, int], steps: int, row_start: int,
                         sigma: torch.Tensor | float, level: float, target: torch.Tensor,
                         offset: tuple[int, int], least_saturated: _native.LeastSaturated = False) -> bool:
    """Curves (:func:`zerodce.curves.apply_low_res_curves` of ``x``) and :func:`denoise_into` in one streamed pass.

    The curve output and its gain never exist as images: each row is computed
    when the filter's first pass needs it. The passes to run depend on the
    band's largest gain, known only once every row is done; the gain of a few
    rows is a lower bound of it, so where that bound already asks for every pass
    (dark photos), the result is exactly :func:`denoise_into`'s. Elsewhere this
    returns ``False`` (doing nothing), as it does where the kernel cannot run.

    Args:
        x: ``(B, 3, H, W)`` uint8 or float32, rows ``[row_start, row_start + H)`` of the padded image.
        small: the low-resolution curves, ``(B or 1, 3n, h, w)``.
        padded, steps, least_saturated: as for :func:`zerodce.curves.apply_low_res_curves`.
        sigma, level, target, offset: as for :func:`denoise_into`.
    """
    if not (x.dim() == 4 and small.dim() == 4 and target.dim() == 4 and target.shape[0] == x.shape[0]
            and small.shape[0] in (1, x.shape[0]) and x.device.type == "cpu" and _native.available()):
        return False
    plans = []
    for i, s in enumerate(_sigmas(x, sigma)):
        xi, si = x[i], small[i if small.shape[0] > 1 else 0]
        if level <= 0 or not s:
            plans.append([])
            continue
        rows = sorted({(k + 1) * xi.shape[1] // (_PROBE_ROWS + 1) for k in range(_PROBE_ROWS)})
        gain = torch.empty(len(rows), 1, 1, xi.shape[2])
        for j, r in enumerate(rows):
            if not _native.apply_low_res(xi[None, :, r : r + 1], si[None], padded, steps, row_start + r,
                                         torch.empty(1, 3, 1, xi.shape[2]), gain[j : j + 1],
                                         _native.image_flag(least_saturated, i)):
                return False
        scales = _pass_scales(gain, s, level)
        if len(scales) < LEVELS:
            return False  # the band's own maximum decides which passes run: filter the stored image
        plans.append(scales)
    return all(_native.denoise_low_res(x[i], small[i if small.shape[0] > 1 else 0], padded, steps, row_start, plans[i],
                                       target[i], offset, _native.image_flag(least_saturated, i))
               for i in range(x.shape[0]))


class DenoiseAmplified(nn.Module):
    """Module twin of :func:`denoise_amplified`.

    Example:
        >>> DenoiseAmplified()(torch.rand(1, 3, 8, 8), torch.ones(1, 1, 8, 8), 0.01).shape
        torch.Size([1, 3, 8, 8])
    """

    def __init__(self, level: float = 1.0) -> None:
        super().__init__()
        self.level = level

    def forward(self, y: torch.Tensor, gain: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        return denoise_amplified(y, gain, sigma, self.level)
