"""Zero-DCE++ (Li et al., TPAMI 2021): depthwise-separable DCE-Net, one RGB curve map
shared by all 8 iterations, estimated on a downscaled input.

10,561 parameters. ``scale_factor`` 12 is the published inference setting; 1 is
how it is trained.
"""

from __future__ import annotations

from torch import nn

from zerodce.models._dce_net import DCENet


class DepthwiseSeparableConv(nn.Module):
    """Depthwise 3x3 convolution followed by a pointwise 1x1 convolution, both with bias."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


class ZeroDCEPP(DCENet):
    """Zero-DCE++: ``estimate_curves(x)`` gives ``(B, 3, H, W)``, applied ``iterations`` times.

    Example:
        >>> import torch
        >>> model = ZeroDCEPP()
        >>> sum(p.numel() for p in model.parameters())
        10561
        >>> model(torch.rand(1, 3, 5, 7)).shape
        torch.Size([1, 3, 5, 7])
    """

    def __init__(self, iterations: int = 8, channels: int = 32, scale_factor: int = 12) -> None:
        super().__init__(DepthwiseSeparableConv, 3, iterations, channels, scale_factor)


#: Default configuration: the published inference setting.
DEFAULT_CONFIG = {"iterations": 8, "channels": 32, "scale_factor": 12}
