"""Exposure-adaptive strength: how far to scale a photo's curves, from the photo itself.

A curve network trained with a fixed exposure target lifts every image by a
similar amount: dark photos too little, well-exposed ones far too much. Here
the strength ``s`` (curves ``alpha`` scaled to ``clamp(s * alpha, -1, 1)``) is
chosen per image so that the enhanced image reaches a brightness that depends
on how under-exposed the input is, measured in photographic stops:

* ``u``, the input's *stops under middle grey*: ``log2(0.18 / lin(m))``, where
  ``m`` is the mean luma of the (sRGB-encoded) image and ``lin`` the sRGB decoding.
  Middle grey is 18% reflectance, 0.46 in sRGB: what reflected-light metering
  aims an average scene at.
* Within :data:`EXPOSURE_LATITUDE` stops of middle grey, or brighter, a photo
  counts as exposed as its author wanted: ``s = 0``, the image is left unchanged,
  and an over-exposed photo is never brightened further. In Ansel Adams' Zone
  System middle grey is zone V and two stops under is zone III, "average dark
  materials, with full texture": a scene that averages there is a deliberate
  low-key photo (dusk, a dim room), not a failed one.
* From :data:`UNDER_EXPOSED` stops under (zone I, "near black"), the photo as a
  whole is under-exposed and is lifted to middle grey.
* In between, the result goes from 2 stops under to middle grey along a
  straight line in stops: ``u_out = UNDER_EXPOSED - u``. Its slope is -1, and
  everywhere else 0 or 1: a change of the scene's brightness (a light in a
  video, a cloud) is never amplified, only passed on, inverted or absorbed. (A
  steeper fade would turn a 1% flicker of the input into a larger one.)

The lift is at most :data:`MAX_LIFT` stops (a photo 7 stops under is brought to
1 stop under), and ``s`` never exceeds :data:`MAX_STRENGTH` (twice the model as
trained): an 8-bit photo spans about 12 stops, so one that needs more lift has
too few levels left for it to look like anything but noise, blocks and banding. The brightness of the result at a given
``s`` is computed on the small image the curves are known at (Zero-DCE++'s
network input, or a reduced copy for Zero-DCE), by secant steps kept inside
the bracket known so far, starting from the image itself and the model as
trained: the mean luma is monotonic and smooth in ``s`` for brightening curves,
so three or four curve applications reach a brightness within
:data:`_TOLERANCE` of the target where bisection took fourteen.

**Colour balance.** A change of exposure multiplies every channel by the same
factor in linear light, so it keeps the photo's colour balance; one strength for
all three channels does not: the curves differ per channel (Zero-DCE's networks,
ours and the authors', lift blue the most, tinting neutral dark photos blue by
about 8% on average), and scaling them all by ``s`` scales that tint too. So the
strength is chosen per channel: first the common ``s`` above (the brightness),
then for each channel the strength that gives it the same lift of its mean
linear value as that common ``s`` gives the luma-weighted one. The mean luma
moves by a fraction of a level; the input's white balance (warm tungsten, cool
moonlight) is kept as shot. The searches run on a regular subset of at most
:data:`STRENGTH_SAMPLES` pixels of the small image. None of the constants was
fitted to a data set; they are the photographic conventions above.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from zerodce.curves import LUMA_WEIGHTS, apply_curves, scale_curves

#: Linear reflectance of photographic middle grey (0.46 in sRGB).
MIDDLE_GREY = 0.18
#: Stops under middle grey a photo may be and still count as exposed as intended (zone III).
EXPOSURE_LATITUDE = 2.0
#: Stops under middle grey from which a photo is fully corrected to middle grey (zone I);
#: twice the latitude, so the fade between them has slope -1 in stops.
UNDER_EXPOSED = 2 * EXPOSURE_LATITUDE
#: Largest lift, in stops: half of what 8-bit sRGB spans (1/255 to 1 is about 12 stops).
MAX_LIFT = 6.0
#: Largest automatic strength.
MAX_STRENGTH = 2.0
#: Pixels of the small image the strength is chosen on, at most (a regular subset).
STRENGTH_SAMPLES = 1 << 12
#: Mean luma within which the search stops: 1/40 of an 8-bit level, far below a visible difference.
_TOLERANCE = 1e-4
#: Each channel's mean linear value within which the colour-balance search stops, relative to its
#: target: a thousandth, far below a visible difference.
_BALANCE_TOLERANCE = 1e-3
#: Most curve applications of a search after the bracket's ends (it stops far sooner).
_STEPS = 14


def srgb_to_linear(v: torch.Tensor | float) -> torch.Tensor | float:
    """The sRGB decoding (IEC 61966-2-1) of values in [0, 1].

    Example:
        >>> round(srgb_to_linear(0.4614), 3)
        0.18
    """
    if isinstance(v, torch.Tensor):
        return torch.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4


def linear_to_srgb(v: float) -> float:
    """The sRGB encoding of a linear value in [0, 1].

    Example:
        >>> round(linear_to_srgb(0.18), 3)
        0.461
    """
    return v * 12.92 if v <= 0.0031308 else 1.055 * v ** (1 / 2.4) - 0.055


def stops_under_middle_grey(mean_luma: float) -> float:
    """How many stops (factors of 2 in linear light) a mean sRGB luma is below middle grey; negative above.

    Example:
        >>> round(stops_under_middle_grey(0.05), 1), round(stops_under_middle_grey(0.8), 1)
        (5.5, -1.7)
    """
    return math.log2(MIDDLE_GREY / max(srgb_to_linear(mean_luma), 1e-6))


def target_brightness(mean_luma: float) -> float:
    """The mean sRGB luma the enhanced image should have, for an input of mean luma ``mean_luma``.

    In stops under middle grey, ``u -> u`` up to :data:`EXPOSURE_LATITUDE`, then
    ``UNDER_EXPOSED - u`` down to 0 (middle grey), then 0, and never more than
    :data:`MAX_LIFT` stops of lift.

    Example:
        >>> target_brightness(0.05) == target_brightness(0.1)  # under-exposed: both to middle grey
        True
        >>> target_brightness(0.35), target_brightness(0.8)  # exposed as intended, over-exposed: unchanged
        (0.35, 0.8)
    """
    u = stops_under_middle_grey(mean_luma)
    if u <= EXPOSURE_LATITUDE:
        return mean_luma
    after = max(UNDER_EXPOSED - u, 0.0, u - MAX_LIFT)  # stops under middle grey after the lift
    return linear_to_srgb(MIDDLE_GREY * 2.0 ** -after)


def mean_luma(x: torch.Tensor) -> torch.Tensor:
    """Mean BT.601 luma of each image of ``x`` ``(B, 3, H, W)`` in [0, 1]: ``(B,)``."""
    weights = torch.tensor(LUMA_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * weights).sum(1).mean((-2, -1))


def auto_strength(
    x: torch.Tensor, curves: torch.Tensor, iterations: int = 8, max_strength: float = MAX_STRENGTH
) -> torch.Tensor:
    """The strengths per image and channel that bring ``x`` to :func:`target_brightness` in its own colour balance.

    First one strength for all channels, the one whose result has the target's
    mean luma; then, per channel, the strength that gives that channel ``K``
    times its input's mean linear value, ``K`` being the factor by which that
    first result raised the luma-weighted mean linear value: the same lift in
    linear light, shared between the channels as the input's colour balance
    has it (a change of exposure multiplies every channel by the same factor).

    Args:
        x: small images, ``(B, 3, h, w)`` float in [0, 1] (the curves' resolution).
        curves: their curve maps ``alpha``, ``(B, 3*n, h, w)`` (or ``(1, 3*n, h, w)``
            shared by the batch), as for :func:`~zerodce.curves.apply_curves`.
        iterations: curve steps of a 3-channel map.
        max_strength: upper bound of the result.

    Returns:
        ``(B, 3)`` in ``[0, max_strength]``, for :func:`~zerodce.curves.scale_curves`.

    Example:
        >>> x = torch.full((2, 3, 4, 4), 0.02)
        >>> x[1] = 0.5  # exposed as intended: left alone
        >>> s = auto_strength(x, torch.full((2, 3, 4, 4), 0.5))
        >>> bool(0 < s[0, 0] <= MAX_STRENGTH), s[1].tolist()
        (True, [0.0, 0.0, 0.0])
    """
    # Means of a few thousand pixels of an already reduced image are as good as those of all of them.
    x, curves = _subset(x).float(), _subset(curves).float()
    strengths = torch.zeros(x.shape[0], 3)
    for i, m in enumerate(mean_luma(x).tolist()):
        target = target_brightness(m)
        if target <= m + _TOLERANCE:  # exposed as intended, or close enough that no level would change
            continue
        xi, ci = x[i : i + 1], curves[i : i + 1] if curves.shape[0] > 1 else curves
        seen: dict[float, torch.Tensor] = {}

        def luma_excess(s: list[float]) -> list[float]:
            seen[s[0]] = _lifted(xi, ci, [s[0]] * 3, iterations)
            return [mean_luma(seen[s[0]]).item() - target]

        # From the image itself and the model as trained.
        common = _solve_increasing(luma_excess, ([0.0], [m - target]), ([1.0], luma_excess([1.0])), max_strength,
                                   [_TOLERANCE])[0]
        strengths[i] = torch.tensor(_balanced(xi, ci, seen, common, iterations, max_strength))
    return strengths


def _subset(x: torch.Tensor) -> torch.Tensor:
    """The pixels at the centres of a grid of at most :data:`STRENGTH_SAMPLES` equal cells over ``x``'s image."""
    h, w = x.shape[-2:]
    step = max(1.0, math.sqrt(h * w / STRENGTH_SAMPLES))
    if step == 1.0:
        return x
    rows, cols = (((torch.arange(max(1, int(n / step))) + 0.5) * (n / max(1, int(n / step)))).long() for n in (h, w))
    return x.index_select(-2, rows.to(x.device)).index_select(-1, cols.to(x.device))


def _lifted(x: torch.Tensor, curves: torch.Tensor, strengths: list[float], iterations: int) -> torch.Tensor:
    return apply_curves(x, scale_curves(curves, torch.tensor([strengths])), iterations)


def _balanced(x: torch.Tensor, curves: torch.Tensor, seen: dict[float, torch.Tensor], common: float,
              iterations: int, max_strength: float) -> list[float]:
    """Per-channel strengths giving ``x`` ``(1, 3, h, w)`` the lift that ``common`` gives, in the input's
    colour balance; ``seen`` holds results of one strength for all channels (``common``'s among them)."""
    linear_in = _linear_means(x)
    luma_in = sum(w * v for w, v in zip(LUMA_WEIGHTS, linear_in))
    if luma_in <= 0:
        return [common] * 3  # black: curves keep 0 at 0, every strength gives the same
    linear_common = _linear_means(seen[common])
    lift = sum(w * v for w, v in zip(LUMA_WEIGHTS, linear_common)) / luma_in
    target = [lift * v for v in linear_in]

    def excess(s: list[float]) -> list[float]:
        return [v - t for v, t in zip(_linear_means(_lifted(x, curves, s, iterations)), target)]

    # Each channel's root is near the common strength: start from it and the common strength tried
    # closest to it (the input itself if there was none).
    others = [s for s in seen if s != common]
    near = min(others, key=lambda s: abs(s - common)) if others else 0.0
    linear_near = _linear_means(seen[near]) if others else linear_in
    return _solve_increasing(excess, ([near] * 3, [v - t for v, t in zip(linear_near, target)]),
                             ([common] * 3, [v - t for v, t in zip(linear_common, target)]), max_strength,
                             [_BALANCE_TOLERANCE * t for t in target])


def _linear_means(x: torch.Tensor) -> list[float]:
    """Mean linear-light value of each channel of one image ``(1, 3, h, w)``."""
    return srgb_to_linear(x).mean((0, 2, 3)).tolist()


Points = tuple[list[float], list[float]]


def _solve_increasing(f: Callable[[list[float]], list[float]], first: Points, second: Points, upper: float,
                      tolerance: list[float]) -> list[float]:
    """Root in ``[0, upper]`` of each element of an increasing ``f`` with ``f(0) <= 0`` (each element may
    depend only on the same element of its argument), ``upper`` where ``f(upper) < 0``, from two
    points ``(s, f(s))`` per element.

    The secant method through the last two points, kept inside the bracket known so far (halved
    where a step would leave it): the mean brightness is smooth in the strength, so two or three
    steps reach the tolerance. Per element in Python, as a few thousand pixels' curves cost less
    than a tensor operation per element would.
    """
    (a, f_a), (b, f_b) = (list(v) for v in first), (list(v) for v in second)
    n = len(a)
    lo = [max([0.0] + [s for s, v in ((a[k], f_a[k]), (b[k], f_b[k])) if v < 0]) for k in range(n)]
    hi = [min([upper] + [s for s, v in ((a[k], f_a[k]), (b[k], f_b[k])) if v > 0]) for k in range(n)]
    root = [b[k] if abs(f_b[k]) <= abs(f_a[k]) else a[k] for k in range(n)]
    active = [min(abs(f_a[k]), abs(f_b[k])) >= tolerance[k] for k in range(n)]
    for _ in range(_STEPS):
        if not any(active):
            break
        for k in range(n):
            if active[k]:
                step = b[k] - f_b[k] * (b[k] - a[k]) / (f_b[k] - f_a[k]) if f_b[k] != f_a[k] else hi[k]
                beyond_upper = hi[k] == upper and step >= upper  # no step above seen yet: try the bound
                root[k] = min(step, upper) if lo[k] < step < hi[k] or beyond_upper else (lo[k] + hi[k]) / 2
        values = f(root)
        for k in range(n):
            if not active[k]:
                continue
            if abs(values[k]) < tolerance[k] or (root[k] == upper and values[k] < 0):
                active[k] = False
                continue
            lo[k], hi[k] = (root[k], hi[k]) if values[k] < 0 else (lo[k], root[k])
            a[k], f_a[k], b[k], f_b[k] = b[k], f_b[k], root[k], values[k]
    return root
