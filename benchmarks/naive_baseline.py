"""The naive baseline: a plain eager transcription of the authors' released forward pass.

This is what the benchmark compares our optimized paths against. It follows the
released ``model.py`` of Zero-DCE and Zero-DCE++ line by line: float32, NCHW,
the whole image through the network at once (``zero_dce`` at full resolution,
``zero_dce_pp`` on a 1/12 downscale upsampled back with ``UpsamplingBilinear2d``),
and the 8 curve steps as separate full-resolution tensor operations
``x = x + r * (torch.pow(x, 2) - x)``. It is deliberately not optimized.

Weights come from one of our models (so both sides compute the same function):
the authors' layer names are restored and the output layer negated back to their
``r = -alpha`` convention.

Like the released test script, Zero-DCE++ needs a height and width that are
multiples of 12: :func:`naive_input_size` crops to that (600x400 -> 600x396).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zerodce.models import DCENet, ZeroDCEPP


class _CSDNTem(nn.Module):
    """The released depthwise-separable block (``CSDN_Tem``)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.depth_conv = nn.Conv2d(in_ch, in_ch, 3, 1, 1, groups=in_ch)
        self.point_conv = nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.point_conv(self.depth_conv(x))


class NaiveDCENet(nn.Module):
    """``enhance_net_nopool`` of the released code, both variants, returning the enhanced image only."""

    def __init__(self, plus_plus: bool, scale_factor: int) -> None:
        super().__init__()
        self.plus_plus = plus_plus
        self.scale_factor = scale_factor
        conv = _CSDNTem if plus_plus else (lambda i, o: nn.Conv2d(i, o, 3, 1, 1))
        out = 3 if plus_plus else 24
        self.relu = nn.ReLU(inplace=True)
        self.e_conv1 = conv(3, 32)
        self.e_conv2 = conv(32, 32)
        self.e_conv3 = conv(32, 32)
        self.e_conv4 = conv(32, 32)
        self.e_conv5 = conv(64, 32)
        self.e_conv6 = conv(64, 32)
        self.e_conv7 = conv(64, out)
        self.upsample = nn.UpsamplingBilinear2d(scale_factor=scale_factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale_factor == 1:
            x_down = x
        else:
            x_down = F.interpolate(x, scale_factor=1 / self.scale_factor, mode="bilinear")
        x1 = self.relu(self.e_conv1(x_down))
        x2 = self.relu(self.e_conv2(x1))
        x3 = self.relu(self.e_conv3(x2))
        x4 = self.relu(self.e_conv4(x3))
        x5 = self.relu(self.e_conv5(torch.cat([x3, x4], 1)))
        x6 = self.relu(self.e_conv6(torch.cat([x2, x5], 1)))
        x_r = torch.tanh(self.e_conv7(torch.cat([x1, x6], 1)))
        if self.scale_factor != 1:
            x_r = self.upsample(x_r)
        if self.plus_plus:
            for _ in range(8):
                x = x + x_r * (torch.pow(x, 2) - x)
            return x
        r1, r2, r3, r4, r5, r6, r7, r8 = torch.split(x_r, 3, dim=1)
        x = x + r1 * (torch.pow(x, 2) - x)
        x = x + r2 * (torch.pow(x, 2) - x)
        x = x + r3 * (torch.pow(x, 2) - x)
        x = x + r4 * (torch.pow(x, 2) - x)
        x = x + r5 * (torch.pow(x, 2) - x)
        x = x + r6 * (torch.pow(x, 2) - x)
        x = x + r7 * (torch.pow(x, 2) - x)
        return x + r8 * (torch.pow(x, 2) - x)


def naive_from(model: DCENet) -> NaiveDCENet:
    """The naive baseline computing the same function as ``model`` (its weights, released layout).

    Example:
        >>> from zerodce import create_model
        >>> model = create_model("zero_dce_pp")
        >>> x = torch.rand(1, 3, 24, 36)
        >>> bool((naive_from(model)(x) - model(x)).abs().max() < 1e-5)
        True
    """
    plus_plus = isinstance(model, ZeroDCEPP)
    naive = NaiveDCENet(plus_plus, model.scale_factor)
    state = {}
    for key, value in model.state_dict().items():
        key = "e_" + key.replace(".depthwise.", ".depth_conv.").replace(".pointwise.", ".point_conv.")
        state[key] = -value if key.startswith("e_conv7.") else value  # the released r = -alpha
    naive.load_state_dict(state)
    return naive.eval()


def naive_input_size(model: DCENet, height: int, width: int) -> tuple[int, int]:
    """The size the naive baseline runs at: cropped to a multiple of the scale factor, as released."""
    s = model.scale_factor
    return height - height % s, width - width % s
