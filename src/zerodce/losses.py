"""Zero-reference losses of Zero-DCE (Guo et al. 2020, sec. 3.3) and Zero-DCE++.

Each loss is a pure function with an ``nn.Module`` twin; :class:`ZeroReferenceLoss`
combines them with the published weights.

Two formulations:

* ``"released"`` (default): exactly what the authors' released training code
  computes (``Myloss.py``), which is what the published checkpoints were trained
  with. It differs from the paper: the exposure error is squared, the spatial
  term uses signed neighbour differences with zero padding at the border, and
  the colour term is ``sqrt(sum((mean_p - mean_q)^4))``.
* ``"paper"``: the formulas as printed in the paper (absolute differences,
  squared colour differences, ``(|grad_x| + |grad_y|)^2`` smoothness).

The released colour term has an infinite gradient where all channel means are
equal (``sqrt`` at 0), a known cause of NaN training; here that gradient is 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from zerodce._checks import check_image_tensor

Formulation = Literal["released", "paper"]
FORMULATIONS = ("released", "paper")

#: Loss weights of the released training scripts. Smoothness is 200 for Zero-DCE, 1600 for Zero-DCE++.
SMOOTHNESS_WEIGHTS = {"zero_dce": 200.0, "zero_dce_pp": 1600.0}


def _check_formulation(formulation: str) -> None:
    if formulation not in FORMULATIONS:
        raise ValueError(f"formulation must be one of {FORMULATIONS}, got {formulation!r}")


def _check_min_size(x: torch.Tensor, size: int, what: str) -> None:
    if x.shape[-2] < size or x.shape[-1] < size:
        raise ValueError(f"{what} needs images of at least {size}x{size} pixels, got {tuple(x.shape)}")


def spatial_consistency(
    enhanced: torch.Tensor, original: torch.Tensor, formulation: Formulation = "released"
) -> torch.Tensor:
    """Spatial consistency loss: keep the contrast between neighbouring 4x4 regions.

    The channel mean of both images is average-pooled over 4x4 regions; for each
    region and each of its 4 neighbours the difference of the enhanced image is
    compared with the difference of the original.

    Args:
        enhanced: ``(B, 3, H, W)`` in [0, 1], ``H, W >= 4``.
        original: ``(B, 3, H, W)`` in [0, 1], the input of the enhancement.
        formulation: ``"released"``: signed differences, neighbours outside the
            image count as 0 (the released ``conv2d(padding=1)``), mean over
            regions of the sum over 4 neighbours. ``"paper"``:
            ``(|Y_i - Y_j| - |I_i - I_j|)^2`` over neighbours inside the image.

    Returns:
        Scalar tensor.

    Example:
        >>> x = torch.rand(2, 3, 16, 16)
        >>> spatial_consistency(x, x).item()
        0.0
    """
    _check_formulation(formulation)
    check_image_tensor(enhanced, "enhanced")
    check_image_tensor(original, "original")
    _check_min_size(enhanced, 4, "spatial_consistency")
    y = F.avg_pool2d(enhanced.mean(1, keepdim=True), 4)  # (B, 1, H/4, W/4)
    i = F.avg_pool2d(original.mean(1, keepdim=True), 4)
    if formulation == "released":
        # Zero padding: the border regions are compared with a neighbour of value 0.
        yp, ip = F.pad(y, (1, 1, 1, 1)), F.pad(i, (1, 1, 1, 1))
        total = 0
        for dy, dx in ((0, -1), (0, 1), (-1, 0), (1, 0)):
            h, w = y.shape[-2:]
            y_n = yp[..., 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
            i_n = ip[..., 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
            total = total + ((y - y_n) - (i - i_n)) ** 2
        return total.mean()
    # Paper: each region compared with the neighbours that exist; every ordered pair
    # of horizontal or vertical neighbours appears twice (once from each side).
    dh = (y[..., :, 1:] - y[..., :, :-1]).abs() - (i[..., :, 1:] - i[..., :, :-1]).abs()
    dv = (y[..., 1:, :] - y[..., :-1, :]).abs() - (i[..., 1:, :] - i[..., :-1, :]).abs()
    regions = y.shape[-2] * y.shape[-1] * y.shape[0]
    return 2 * ((dh**2).sum() + (dv**2).sum()) / regions


def exposure_control(
    enhanced: torch.Tensor,
    level: float = 0.6,
    patch_size: int = 16,
    formulation: Formulation = "released",
) -> torch.Tensor:
    """Exposure control loss: distance of the mean brightness of each patch to ``level``.

    Args:
        enhanced: ``(B, 3, H, W)`` in [0, 1], ``H, W >= patch_size``.
        level: well-exposedness level ``E`` (0.6 in the paper).
        patch_size: side of the non-overlapping patches (16).
        formulation: ``"released"``: squared distance; ``"paper"``: absolute distance.

    Returns:
        Scalar tensor: mean over patches.

    Example:
        >>> round(exposure_control(torch.full((1, 3, 32, 32), 0.5), formulation="paper").item(), 6)
        0.1
    """
    _check_formulation(formulation)
    check_image_tensor(enhanced, "enhanced")
    _check_min_size(enhanced, patch_size, "exposure_control")
    mean = F.avg_pool2d(enhanced.mean(1, keepdim=True), patch_size)  # (B, 1, H/p, W/p)
    if formulation == "released":
        return ((mean - level) ** 2).mean()
    return (mean - level).abs().mean()


def _safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    """``sqrt`` whose gradient at 0 is 0 instead of inf (x >= 0)."""
    positive = x > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, x, torch.ones_like(x))), torch.zeros_like(x))


def color_constancy(enhanced: torch.Tensor, formulation: Formulation = "released") -> torch.Tensor:
    """Color constancy loss (gray-world): the channel means should be equal.

    Args:
        enhanced: ``(B, 3, H, W)`` in [0, 1].
        formulation: ``"released"``: ``sqrt(D_rg^2 + D_rb^2 + D_gb^2)`` with
            ``D_pq = (mean_p - mean_q)^2``; ``"paper"``: ``D_rg + D_rb + D_gb``.

    Returns:
        Scalar tensor: mean over the batch. Finite gradient everywhere.

    Example:
        >>> color_constancy(torch.full((1, 3, 8, 8), 0.5)).item()
        0.0
    """
    _check_formulation(formulation)
    check_image_tensor(enhanced, "enhanced")
    mr, mg, mb = enhanced.mean((2, 3)).unbind(1)  # each (B,)
    d_rg, d_rb, d_gb = (mr - mg) ** 2, (mr - mb) ** 2, (mb - mg) ** 2
    if formulation == "released":
        return _safe_sqrt(d_rg**2 + d_rb**2 + d_gb**2).mean()
    return (d_rg + d_rb + d_gb).mean()


def illumination_smoothness(curves: torch.Tensor, formulation: Formulation = "released") -> torch.Tensor:
    """Illumination smoothness (total variation) of the curve maps.

    Args:
        curves: ``(B, 3*n, H, W)`` curve maps (sign does not matter), ``H, W >= 2``.
        formulation: ``"released"``: ``2 * (sum(dh^2)/count_h + sum(dw^2)/count_w) / B``
            with sums over channels (the released ``L_TV``); ``"paper"``: mean over
            pixels of ``sum_c (|dx| + |dy|)^2``, divided by the ``n`` iterations.

    Returns:
        Scalar tensor.

    Example:
        >>> illumination_smoothness(torch.ones(1, 24, 8, 8)).item()
        0.0
    """
    _check_formulation(formulation)
    check_image_tensor(curves, "curves", channels=None)
    _check_min_size(curves, 2, "illumination_smoothness")
    b, c, h, w = curves.shape
    dh = curves[:, :, 1:, :] - curves[:, :, :-1, :]
    dw = curves[:, :, :, 1:] - curves[:, :, :, :-1]
    if formulation == "released":
        return 2 * ((dh**2).sum() / ((h - 1) * w) + (dw**2).sum() / (h * (w - 1))) / b
    per_pixel = ((dh[..., :, :-1].abs() + dw[..., :-1, :].abs()) ** 2).sum(1)  # (B, H-1, W-1)
    return per_pixel.mean() / (c // 3)


class SpatialConsistencyLoss(nn.Module):
    """Module twin of :func:`spatial_consistency`."""

    def __init__(self, formulation: Formulation = "released") -> None:
        super().__init__()
        self.formulation = formulation

    def forward(self, enhanced: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
        return spatial_consistency(enhanced, original, self.formulation)


class ExposureControlLoss(nn.Module):
    """Module twin of :func:`exposure_control`."""

    def __init__(self, level: float = 0.6, patch_size: int = 16, formulation: Formulation = "released") -> None:
        super().__init__()
        self.level, self.patch_size, self.formulation = level, patch_size, formulation

    def forward(self, enhanced: torch.Tensor) -> torch.Tensor:
        return exposure_control(enhanced, self.level, self.patch_size, self.formulation)


class ColorConstancyLoss(nn.Module):
    """Module twin of :func:`color_constancy`."""

    def __init__(self, formulation: Formulation = "released") -> None:
        super().__init__()
        self.formulation = formulation

    def forward(self, enhanced: torch.Tensor) -> torch.Tensor:
        return color_constancy(enhanced, self.formulation)


class IlluminationSmoothnessLoss(nn.Module):
    """Module twin of :func:`illumination_smoothness`."""

    def __init__(self, formulation: Formulation = "released") -> None:
        super().__init__()
        self.formulation = formulation

    def forward(self, curves: torch.Tensor) -> torch.Tensor:
        return illumination_smoothness(curves, self.formulation)


#: Names of the loss components, in the order of the paper (and of ``history.csv``).
COMPONENTS = ("spatial_consistency", "exposure_control", "color_constancy", "illumination_smoothness")


@dataclass(frozen=True)
class LossWeights:
    """Weights of the total loss; the defaults are the released Zero-DCE script's."""

    spatial_consistency: float = 1.0
    exposure_control: float = 10.0
    color_constancy: float = 5.0
    illumination_smoothness: float = 200.0

    @classmethod
    def for_model(cls, model_name: str) -> "LossWeights":
        """The published weights for ``zero_dce`` (smoothness 200) or ``zero_dce_pp`` (1600)."""
        if model_name not in SMOOTHNESS_WEIGHTS:
            raise ValueError(f"no published loss weights for {model_name!r}; known: {sorted(SMOOTHNESS_WEIGHTS)}")
        return cls(illumination_smoothness=SMOOTHNESS_WEIGHTS[model_name])


@dataclass
class LossOutput:
    """The weighted total and each unweighted component (scalar tensors)."""

    total: torch.Tensor
    components: dict[str, torch.Tensor] = field(default_factory=dict)


class ZeroReferenceLoss(nn.Module):
    """The Zero-DCE objective: weighted sum of the four zero-reference losses.

    ``total = w_spa * spa + w_exp * exp + w_col * col + w_tv * tv``; with the
    default weights this is the released ``200*tv + spa + 5*col + 10*exp``.

    Example:
        >>> loss = ZeroReferenceLoss(LossWeights.for_model("zero_dce_pp"))
        >>> x = torch.rand(1, 3, 32, 32)
        >>> out = loss(x, x, torch.zeros(1, 3, 32, 32))
        >>> sorted(out.components)
        ['color_constancy', 'exposure_control', 'illumination_smoothness', 'spatial_consistency']
    """

    def __init__(
        self,
        weights: LossWeights | None = None,
        level: float = 0.6,
        patch_size: int = 16,
        formulation: Formulation = "released",
    ) -> None:
        super().__init__()
        _check_formulation(formulation)
        self.weights = weights or LossWeights()
        self.level, self.patch_size, self.formulation = level, patch_size, formulation

    def forward(self, enhanced: torch.Tensor, original: torch.Tensor, curves: torch.Tensor) -> LossOutput:
        f = self.formulation
        components = {
            "spatial_consistency": spatial_consistency(enhanced, original, f),
            "exposure_control": exposure_control(enhanced, self.level, self.patch_size, f),
            "color_constancy": color_constancy(enhanced, f),
            "illumination_smoothness": illumination_smoothness(curves, f),
        }
        total = sum(getattr(self.weights, name) * value for name, value in components.items())
        return LossOutput(total=total, components=components)
