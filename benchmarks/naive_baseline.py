"""The naive baseline: a plain eager transcription of the authors' released code.

This is what the benchmark compares our optimized paths against. Inference
follows the released ``model.py`` of Zero-DCE and Zero-DCE++ line by line: float32, NCHW,
the whole image through the network at once (``zero_dce`` at full resolution,
``zero_dce_pp`` on a 1/12 downscale upsampled back with ``UpsamplingBilinear2d``),
and the 8 curve steps as separate full-resolution tensor operations
``x = x + r * (torch.pow(x, 2) - x)``. It is deliberately not optimized.

Weights come from one of our models (so both sides compute the same function):
the authors' layer names are restored and the output layer negated back to their
``r = -alpha`` convention.

Like the released test script, Zero-DCE++ needs a height and width that are
multiples of 12: :func:`naive_input_size` crops to that (600x400 -> 600x396).

Training (:func:`naive_train_step`) follows the released ``lowlight_train.py``
and ``Myloss.py``: the four losses as written there (spatial consistency with
four fixed 3x3 kernels on 4x4-pooled means, exposure with a 16x16 pool,
colour constancy, total variation of the curve maps), summed as
``w_tv*tv + spa + 5*col + 10*exp``, then backward, gradient-norm clip 0.1 and an
Adam step; Zero-DCE++ trains at scale factor 1.
"""

from __future__ import annotations

import re

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

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(enhanced, r)``: the enhanced image and the curve maps, as released."""
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
            return x, x_r
        r1, r2, r3, r4, r5, r6, r7, r8 = torch.split(x_r, 3, dim=1)
        x = x + r1 * (torch.pow(x, 2) - x)
        x = x + r2 * (torch.pow(x, 2) - x)
        x = x + r3 * (torch.pow(x, 2) - x)
        x = x + r4 * (torch.pow(x, 2) - x)
        x = x + r5 * (torch.pow(x, 2) - x)
        x = x + r6 * (torch.pow(x, 2) - x)
        x = x + r7 * (torch.pow(x, 2) - x)
        return x + r8 * (torch.pow(x, 2) - x), x_r


def naive_from(model: DCENet, scale_factor: int | None = None) -> NaiveDCENet:
    """The naive baseline computing the same function as ``model`` (its weights, released layout).

    ``scale_factor`` overrides the model's (training runs at 1).

    Example:
        >>> from zerodce import create_model
        >>> model = create_model("zero_dce_pp")
        >>> x = torch.rand(1, 3, 24, 36)
        >>> bool((naive_from(model)(x)[0] - model(x)).abs().max() < 1e-5)
        True
    """
    plus_plus = isinstance(model, ZeroDCEPP)
    naive = NaiveDCENet(plus_plus, model.scale_factor if scale_factor is None else scale_factor)
    state = {}
    for key, value in model.state_dict().items():
        output_layer = re.match(r"conv7\.(pointwise\.)?(weight|bias)$", key)
        key = "e_" + key.replace(".depthwise.", ".depth_conv.").replace(".pointwise.", ".point_conv.")
        state[key] = -value if output_layer else value  # the released r = -alpha: negate the last layer before tanh
    naive.load_state_dict(state)
    return naive.eval()


def naive_input_size(model: DCENet, height: int, width: int) -> tuple[int, int]:
    """The size the naive baseline runs at: cropped to a multiple of the scale factor, as released."""
    s = model.scale_factor
    return height - height % s, width - width % s


class L_color(nn.Module):  # noqa: N801 - the released names
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean_rgb = torch.mean(x, [2, 3], keepdim=True)
        mr, mg, mb = torch.split(mean_rgb, 1, dim=1)
        drg = torch.pow(mr - mg, 2)
        drb = torch.pow(mr - mb, 2)
        dgb = torch.pow(mb - mg, 2)
        return torch.pow(torch.pow(drg, 2) + torch.pow(drb, 2) + torch.pow(dgb, 2), 0.5)


class L_spa(nn.Module):  # noqa: N801
    def __init__(self) -> None:
        super().__init__()
        def kernel(rows):
            return torch.tensor(rows, dtype=torch.float32).unsqueeze(0).unsqueeze(0)
        self.weight_left = nn.Parameter(kernel([[0, 0, 0], [-1, 1, 0], [0, 0, 0]]), requires_grad=False)
        self.weight_right = nn.Parameter(kernel([[0, 0, 0], [0, 1, -1], [0, 0, 0]]), requires_grad=False)
        self.weight_up = nn.Parameter(kernel([[0, -1, 0], [0, 1, 0], [0, 0, 0]]), requires_grad=False)
        self.weight_down = nn.Parameter(kernel([[0, 0, 0], [0, 1, 0], [0, -1, 0]]), requires_grad=False)
        self.pool = nn.AvgPool2d(4)

    def forward(self, org: torch.Tensor, enhance: torch.Tensor) -> torch.Tensor:
        org_pool = self.pool(torch.mean(org, 1, keepdim=True))
        enhance_pool = self.pool(torch.mean(enhance, 1, keepdim=True))
        d = 0
        for weight in (self.weight_left, self.weight_right, self.weight_up, self.weight_down):
            d = d + torch.pow(F.conv2d(org_pool, weight, padding=1) - F.conv2d(enhance_pool, weight, padding=1), 2)
        return d


class L_exp(nn.Module):  # noqa: N801
    def __init__(self, patch_size: int, mean_val: float) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(patch_size)
        self.mean_val = mean_val

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = self.pool(torch.mean(x, 1, keepdim=True))
        return torch.mean(torch.pow(mean - torch.FloatTensor([self.mean_val]).to(x.device), 2))


class L_TV(nn.Module):  # noqa: N801
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch_size, _, h_x, w_x = x.shape
        count_h = (h_x - 1) * w_x
        count_w = h_x * (w_x - 1)
        h_tv = torch.pow((x[:, :, 1:, :] - x[:, :, : h_x - 1, :]), 2).sum()
        w_tv = torch.pow((x[:, :, :, 1:] - x[:, :, :, : w_x - 1]), 2).sum()
        return 2 * (h_tv / count_h + w_tv / count_w) / batch_size


class NaiveTrainer:
    """The released training step: ``step(images)`` runs one batch (forward, loss, backward, clip, Adam)."""

    def __init__(self, net: NaiveDCENet, tv_weight: float, lr: float = 1e-4, weight_decay: float = 1e-4) -> None:
        self.net = net.train()
        self.tv_weight = tv_weight
        self.l_color, self.l_spa, self.l_exp, self.l_tv = L_color(), L_spa(), L_exp(16, 0.6), L_TV()
        self.optimizer = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)

    def to(self, device: torch.device) -> "NaiveTrainer":
        for module in (self.net, self.l_color, self.l_spa, self.l_exp, self.l_tv):
            module.to(device)
        return self

    def step(self, images: torch.Tensor) -> float:
        enhanced_image, a = self.net(images)
        loss_tv = self.tv_weight * self.l_tv(a)
        loss_spa = torch.mean(self.l_spa(enhanced_image, images))
        loss_col = 5 * torch.mean(self.l_color(enhanced_image))
        loss_exp = 10 * torch.mean(self.l_exp(enhanced_image))
        loss = loss_tv + loss_spa + loss_col + loss_exp
        self.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), 0.1)
        self.optimizer.step()
        return loss.item()
