"""Every fast inference path equals the plain one (max abs difference <= 1e-4, float output).

The plain paths are written out here independently: NCHW convolutions, the
released padding + ``F.interpolate`` down- and upscaling, and the curve steps as
separate full-size operations (:func:`apply_curves_reference`).
"""

import pytest
import torch
import torch.nn.functional as F

import zerodce.curves
import zerodce.models._dce_net
from zerodce import create_model
from zerodce.curves import apply_curves, apply_curves_fused, apply_curves_reference, is_channels_last
from zerodce.enhance import Enhancer
from zerodce.models._dce_net import apply_low_res_curves, downscale, upsample_curves

TOL = 1e-4


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return (a.double() - b.double()).abs().max().item()


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of a few rows, so small test images cross several blocks and end in a partial one."""
    monkeypatch.setattr(zerodce.curves, "FUSED_BLOCK_ELEMENTS", 3 * 17 * 4)


def plain_curve_net(model, x):
    """DCE-Net in NCHW, as released."""
    x1 = F.relu(model.conv1(x))
    x2 = F.relu(model.conv2(x1))
    x3 = F.relu(model.conv3(x2))
    x4 = F.relu(model.conv4(x3))
    x5 = F.relu(model.conv5(torch.cat([x3, x4], 1)))
    x6 = F.relu(model.conv6(torch.cat([x2, x5], 1)))
    return torch.tanh(model.conv7(torch.cat([x1, x6], 1)))


def plain_forward(model, x):
    """The whole model the plain way: pad, downscale, network, upscale, crop, 8 separate steps."""
    s, (h, w) = model.scale_factor, x.shape[-2:]
    if s == 1:
        return apply_curves_reference(x, plain_curve_net(model, x), model.iterations)
    padded = F.pad(x, (0, -w % s, 0, -h % s), mode="replicate")
    small = plain_curve_net(model, F.interpolate(padded, scale_factor=1 / s, mode="bilinear"))
    curves = F.interpolate(small, size=padded.shape[-2:], mode="bilinear", align_corners=True)[..., :h, :w]
    return apply_curves_reference(x, curves, model.iterations)


class TestApplyCurvesFused:
    @pytest.mark.parametrize("channels", [3, 24])
    @pytest.mark.parametrize("shape", [(1, 1, 1), (2, 13, 29), (1, 40, 17)])
    def test_equals_reference(self, device, dtype, small_blocks, channels, shape):
        b, h, w = shape
        x = torch.rand(b, 3, h, w, device=device, dtype=dtype)
        alpha = torch.rand(b, channels, h, w, device=device, dtype=dtype) * 2 - 1
        assert max_diff(apply_curves_fused(x, alpha), apply_curves_reference(x, alpha)) <= TOL

    def test_strided_inputs_and_broadcast_batch(self, small_blocks):
        x = torch.rand(2, 3, 30, 45)[..., ::2, 1::2].contiguous(memory_format=torch.channels_last)
        alpha = (torch.rand(1, 3, 30, 45) * 2 - 1)[..., 5:20, 3:25]
        assert max_diff(apply_curves_fused(x, alpha), apply_curves_reference(x, alpha)) <= TOL

    @pytest.mark.parametrize("channels", [3, 24])
    def test_channels_last_image(self, small_blocks, channels):
        # Decoded files arrive channels-last; the result keeps that layout and the values.
        x = torch.rand(1, 3, 21, 30).contiguous(memory_format=torch.channels_last)
        alpha = torch.rand(1, channels, 21, 30) * 2 - 1
        y = apply_curves_fused(x, alpha)
        assert y.is_contiguous(memory_format=torch.channels_last)
        assert max_diff(y, apply_curves_reference(x, alpha)) <= TOL

    def test_writes_only_into_out(self, small_blocks):
        x, alpha = torch.rand(1, 3, 20, 12), torch.rand(1, 3, 20, 12) * 2 - 1
        canvas = torch.full((1, 3, 50, 12), -7.0)
        result = apply_curves_fused(x, alpha, out=canvas[..., 10:30, :])
        assert result.data_ptr() == canvas[..., 10:30, :].data_ptr()
        assert max_diff(canvas[..., 10:30, :], apply_curves_reference(x, alpha)) <= TOL
        assert canvas[..., :10, :].eq(-7).all() and canvas[..., 30:, :].eq(-7).all()

    def test_in_place(self, small_blocks):
        x, alpha = torch.rand(1, 3, 20, 12), torch.rand(1, 24, 20, 12) * 2 - 1
        expected = apply_curves_reference(x, alpha)
        apply_curves_fused(x, alpha, out=x)
        assert max_diff(x, expected) <= TOL

    def test_refuses_mixed_dtypes(self):
        with pytest.raises(ValueError, match="dtype"):
            apply_curves_fused(torch.rand(1, 3, 2, 2), torch.rand(1, 3, 2, 2, dtype=torch.float64))

    def test_apply_curves_keeps_gradients(self):
        x = torch.rand(1, 3, 6, 5)
        alpha = (torch.rand(1, 3, 6, 5) * 2 - 1).requires_grad_()
        y = apply_curves(x, alpha)
        assert y.requires_grad
        y.sum().backward()
        assert alpha.grad is not None and alpha.grad.abs().sum() > 0
        with torch.no_grad():
            assert max_diff(y, apply_curves(x, alpha)) <= TOL


class TestLowResCurves:
    @pytest.mark.parametrize("factor", [2, 3, 12])
    @pytest.mark.parametrize("size", [(1, 1), (5, 7), (24, 36), (37, 50)])
    def test_downscale_equals_pad_and_interpolate(self, device, factor, size):
        x = torch.rand(2, 3, *size, device=device)
        h, w = size
        plain = F.interpolate(F.pad(x, (0, -w % factor, 0, -h % factor), mode="replicate"),
                              scale_factor=1 / factor, mode="bilinear")
        assert max_diff(downscale(x, factor), plain) <= TOL

    @pytest.mark.parametrize("channels", [3, 24])
    def test_fused_upsampling_equals_plain(self, device, small_blocks, channels):
        x = torch.rand(2, 3, 37, 50, device=device)
        small = torch.rand(2, channels, 4, 5, device=device) * 2 - 1
        full = F.interpolate(small, size=(48, 60), mode="bilinear", align_corners=True)[..., :37, :50]
        assert max_diff(apply_low_res_curves(x, small, (48, 60)), apply_curves_reference(x, full)) <= TOL

    def test_band_of_rows(self, small_blocks):
        x = torch.rand(1, 3, 37, 50)
        small = torch.rand(1, 3, 4, 5) * 2 - 1
        full = F.interpolate(small, size=(48, 60), mode="bilinear", align_corners=True)[..., :37, :50]
        band = apply_low_res_curves(x[..., 11:30, :], small, (48, 60), row_start=11)
        assert max_diff(band, apply_curves_reference(x, full)[..., 11:30, :]) <= TOL
        assert max_diff(upsample_curves(small, (48, 60), 11, 30)[..., :50], full[..., 11:30, :]) <= TOL

    def test_gradients_take_the_plain_path(self):
        x = torch.rand(1, 3, 24, 24)
        small = (torch.rand(1, 3, 2, 2) * 2 - 1).requires_grad_()
        apply_low_res_curves(x, small, (24, 24)).sum().backward()
        assert small.grad is not None and small.grad.abs().sum() > 0


@pytest.mark.parametrize("name,scale_factor", [("zero_dce_pp", 12), ("zero_dce_pp", 1), ("zero_dce", 1), ("zero_dce", 4)])
class TestModels:
    @pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
    def test_network_equals_nchw(self, device, monkeypatch, name, scale_factor, layout):
        torch.manual_seed(0)
        model = create_model(name, scale_factor=scale_factor).to(device)
        x = torch.rand(2, 3, 45, 26, device=device).contiguous(memory_format=layout)
        with torch.no_grad():
            plain = plain_curve_net(model, x)
            assert max_diff(model.curve_net(x), plain) <= TOL
            # In bands of 4 rows (plus the receptive radius) instead of one piece: the same maps.
            monkeypatch.setattr(zerodce.models._dce_net, "NET_BAND_PIXELS", 2 * 4 * 26)
            banded = model.curve_net(x)
            assert max_diff(banded, plain) <= TOL
            assert is_channels_last(banded) == (layout == torch.channels_last)

    def test_forward_and_enhancer_equal_plain(self, device, small_blocks, name, scale_factor):
        torch.manual_seed(0)
        model = create_model(name, scale_factor=scale_factor).to(device)
        x = torch.rand(1, 3, 61, 83, device=device)
        with torch.no_grad():
            plain = plain_forward(model, x)
            assert max_diff(model(x), plain) <= TOL
        enhancer = Enhancer(model, device=device, tile=32)
        assert max_diff(enhancer.enhance_tensor(x), plain) <= TOL
        assert max_diff(enhancer.apply(x, *enhancer.curves(x)), plain) <= TOL
