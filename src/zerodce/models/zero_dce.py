"""Zero-DCE (Guo et al., CVPR 2020): DCE-Net with plain 3x3 convolutions, 8 RGB curve maps.

79,416 parameters. ``scale_factor > 1`` estimates the curves at reduced
resolution, as Zero-DCE++ does (much faster, slightly different output).
"""

from __future__ import annotations

from torch import nn

from zerodce.models._dce_net import DCENet


def _conv3x3(in_channels: int, out_channels: int) -> nn.Module:
    return nn.Conv2d(in_channels, out_channels, 3, padding=1)


class ZeroDCE(DCENet):
    """Zero-DCE: ``estimate_curves(x)`` gives ``(B, 24, H, W)``, 8 iterations x RGB.

    Example:
        >>> import torch
        >>> model = ZeroDCE()
        >>> sum(p.numel() for p in model.parameters())
        79416
        >>> model.estimate_curves(torch.rand(1, 3, 5, 7)).shape
        torch.Size([1, 24, 5, 7])
    """

    def __init__(self, iterations: int = 8, channels: int = 32, scale_factor: int = 1) -> None:
        super().__init__(_conv3x3, 3 * iterations, iterations, channels, scale_factor)


#: Default configuration: the paper's network at full resolution.
DEFAULT_CONFIG = {"iterations": 8, "channels": 32, "scale_factor": 1}
