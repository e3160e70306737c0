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
network input, or a reduced copy for Zero-DCE), by the Illinois variant of
regula falsi: the mean luma is monotonic and smooth in ``s`` for brightening
curves, so a straight line between the two ends of the bracket lands close to
the answer, and four or five curve applications reach a brightness within
:data:`_TOLERANCE` of the target where bisection took fourteen. None of the constants was fitted to
a data set; they are the photographic conventions above.
"""

from __future__ import annotations

import math

import torch

from zerodce.curves import LUMA_WEIGHTS, apply_curves

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
#: Mean luma within which the search stops: 1/40 of an 8-bit level, far below a visible difference.
_TOLERANCE = 1e-4
#: Most curve applications of the search after the bracket's ends (it stops far sooner).
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
    """The strength per image that brings ``x`` to :func:`target_brightness`: ``(B,)`` in ``[0, max_strength]``.

    Args:
        x: small images, ``(B, 3, h, w)`` float in [0, 1] (the curves' resolution).
        curves: their curve maps ``alpha``, ``(B, 3*n, h, w)``, as for :func:`~zerodce.curves.apply_curves`.
        iterations: curve steps of a 3-channel map.
        max_strength: upper bound of the result.

    Example:
        >>> x = torch.full((2, 3, 4, 4), 0.02)
        >>> x[1] = 0.5  # exposed as intended: left alone
        >>> s = auto_strength(x, torch.full((2, 3, 4, 4), 0.5))
        >>> bool(0 < s[0] <= MAX_STRENGTH), s[1].item()
        (True, 0.0)
    """
    x, curves = x.float(), curves.float()
    strengths = []
    for i, m in enumerate(mean_luma(x).tolist()):
        target = target_brightness(m)
        ci = curves[i : i + 1] if curves.shape[0] > 1 else curves
        strengths.append(0.0 if target <= m else _strength_for(x[i : i + 1], ci, m, target, iterations, max_strength))
    return torch.tensor(strengths, dtype=torch.float32)


def _strength_for(x: torch.Tensor, curves: torch.Tensor, brightness_at_0: float, target: float, iterations: int,
                  max_strength: float) -> float:
    """The strength in ``[0, max_strength]`` that brings ``x`` ``(1, 3, h, w)``, darker than ``target``, to it."""

    def excess(s: float) -> float:
        return mean_luma(apply_curves(x, (curves * s).clamp(-1.0, 1.0), iterations)).item() - target

    lo, hi, f_lo, f_hi = 0.0, max_strength, brightness_at_0 - target, excess(max_strength)
    if f_hi <= 0:
        return max_strength  # even the largest strength falls short
    s, side = hi, 0
    for _ in range(_STEPS):
        s = (lo * f_hi - hi * f_lo) / (f_hi - f_lo)
        f = excess(s)
        if abs(f) < _TOLERANCE:
            break
        # Illinois: when the same end moves twice, halve the other's value so it moves too.
        if f < 0:
            lo, f_lo = s, f
            f_hi = f_hi / 2 if side < 0 else f_hi
            side = -1
        else:
            hi, f_hi = s, f
            f_lo = f_lo / 2 if side > 0 else f_lo
            side = 1
    return s
