"""The DCE-Net topology shared by Zero-DCE and Zero-DCE++, and resolution handling.

Seven convolutions with 32 filters and ReLU, symmetric skip concatenations
(conv5 takes conv3||conv4, conv6 takes conv2||conv5, conv7 takes conv1||conv6) and
a tanh output: the paper's curve maps ``alpha``. The two architectures differ in
the convolution block (plain 3x3 or depthwise-separable) and in the number of
output maps (8 RGB groups or one RGB map shared by all iterations).

Curves may be estimated on a bilinearly downscaled input and upsampled back
(Zero-DCE++'s ``scale_factor``). Sizes that are not a multiple of the factor are
padded (edge replication) and the curves cropped back, so the output always has
the input's size.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from zerodce._checks import check_image_tensor
from zerodce.curves import apply_curves

ConvFactory = Callable[[int, int], nn.Module]


class DCENet(nn.Module):
    """Curve estimation network: ``(B, 3, H, W)`` in [0, 1] -> ``(B, out_channels, H, W)`` in [-1, 1].

    Subclasses choose the convolution block and the number of output maps.
    """

    def __init__(
        self,
        conv: ConvFactory,
        out_channels: int,
        iterations: int = 8,
        channels: int = 32,
        scale_factor: int = 1,
    ) -> None:
        super().__init__()
        if int(scale_factor) != scale_factor or scale_factor < 1:
            raise ValueError(f"scale_factor must be an integer >= 1, got {scale_factor!r}")
        self.iterations = iterations
        self.out_channels = out_channels
        self.scale_factor = int(scale_factor)
        c = channels
        self.conv1 = conv(3, c)
        self.conv2 = conv(c, c)
        self.conv3 = conv(c, c)
        self.conv4 = conv(c, c)
        self.conv5 = conv(2 * c, c)
        self.conv6 = conv(2 * c, c)
        self.conv7 = conv(2 * c, out_channels)

    def curve_net(self, x: torch.Tensor) -> torch.Tensor:
        """The network at the resolution it is given: ``(B, 3, h, w)`` -> ``(B, out, h, w)``."""
        x1 = F.relu(self.conv1(x))
        x2 = F.relu(self.conv2(x1))
        x3 = F.relu(self.conv3(x2))
        x4 = F.relu(self.conv4(x3))
        x5 = F.relu(self.conv5(torch.cat([x3, x4], 1)))
        x6 = F.relu(self.conv6(torch.cat([x2, x5], 1)))
        return torch.tanh(self.conv7(torch.cat([x1, x6], 1)))

    def estimate_low_res_curves(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Curve maps at the network's resolution, and the padded full size they map onto.

        For ``scale_factor`` 1 the maps are already full size. Otherwise the input
        is padded to a multiple of the factor and downscaled as released (bilinear,
        ``align_corners=False``, with the scale factor itself).
        """
        check_image_tensor(x, "x")
        s = self.scale_factor
        if s == 1:
            return self.curve_net(x), tuple(x.shape[-2:])
        h, w = x.shape[-2:]
        pad_h, pad_w = -h % s, -w % s
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        small = F.interpolate(x, scale_factor=1 / s, mode="bilinear")
        return self.curve_net(small), (h + pad_h, w + pad_w)

    def estimate_curves(self, x: torch.Tensor) -> torch.Tensor:
        """Curve maps ``alpha`` at full resolution, ``(B, out_channels, H, W)`` in [-1, 1]."""
        small, padded = self.estimate_low_res_curves(x)
        if self.scale_factor == 1:
            return small
        h, w = x.shape[-2:]
        return upsample_curves(small, padded, 0, h)[..., :w]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Enhanced image, ``(B, 3, H, W)`` in [0, 1]."""
        return apply_curves(x, self.estimate_curves(x), self.iterations)


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
    height, width = size
    h = small.shape[-2]
    rows = torch.arange(row_start, row_stop, device=small.device, dtype=torch.float64)
    src = rows * ((h - 1) / (height - 1)) if height > 1 else torch.zeros_like(rows)
    i0 = src.floor().long().clamp(max=h - 1)
    i1 = (i0 + 1).clamp(max=h - 1)
    frac = (src - i0).to(small.dtype).view(1, 1, -1, 1)
    band = small[..., i0, :] * (1 - frac) + small[..., i1, :] * frac  # (B, C, rows, w)
    # Rows are already in place: align_corners=True keeps them, and interpolates the columns.
    return F.interpolate(band, size=(row_stop - row_start, width), mode="bilinear", align_corners=True)
