"""Every fast inference path equals the plain one (max abs difference <= 1e-4, float output).

The plain paths are written out here independently: NCHW convolutions, the
released padding + ``F.interpolate`` down- and upscaling, and the curve steps as
separate full-size operations (:func:`apply_curves_reference`).
"""

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import zerodce.curves
import zerodce.models._dce_net
from zerodce import _native, create_model
from zerodce.curves import (apply_curves, apply_curves_fused, apply_curves_reference, apply_low_res_curves,
                            curve_gain, is_channels_last, least_saturated_values, upsample_curves)
from zerodce.enhance import Enhancer
from zerodce.io import pixels_to_tensor, tensor_to_pixels
from zerodce.models._dce_net import downscale

from conftest import require_native, shared_path

TOL = 1e-4


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return (a.double() - b.double()).abs().max().item()


@pytest.fixture(params=["native", "blocks"])
def kernel(request, monkeypatch) -> str:
    """Each CPU curve kernel in turn: the compiled one, and PyTorch on blocks of a few
    rows (so small test images cross several blocks and end in a partial one)."""
    if request.param == "native":
        require_native()
    else:
        monkeypatch.setattr(_native, "library", lambda: None)
        monkeypatch.setattr(zerodce.curves, "FUSED_BLOCK_ELEMENTS", 3 * 17 * 4)
    return request.param


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
    def test_equals_reference(self, device, dtype, kernel, channels, shape):
        b, h, w = shape
        x = torch.rand(b, 3, h, w, device=device, dtype=dtype)
        alpha = torch.rand(b, channels, h, w, device=device, dtype=dtype) * 2 - 1
        assert max_diff(apply_curves_fused(x, alpha), apply_curves_reference(x, alpha)) <= TOL

    def test_strided_inputs_and_broadcast_batch(self, kernel):
        x = torch.rand(2, 3, 30, 45)[..., ::2, 1::2].contiguous(memory_format=torch.channels_last)
        alpha = (torch.rand(1, 3, 30, 45) * 2 - 1)[..., 5:20, 3:25]
        assert max_diff(apply_curves_fused(x, alpha), apply_curves_reference(x, alpha)) <= TOL

    @pytest.mark.parametrize("channels", [3, 24])
    def test_channels_last_image(self, kernel, channels):
        # Decoded files arrive channels-last; the result keeps that layout and the values.
        x = torch.rand(1, 3, 21, 30).contiguous(memory_format=torch.channels_last)
        alpha = torch.rand(1, channels, 21, 30) * 2 - 1
        y = apply_curves_fused(x, alpha)
        assert y.is_contiguous(memory_format=torch.channels_last)
        assert max_diff(y, apply_curves_reference(x, alpha)) <= TOL

    def test_writes_only_into_out(self, kernel):
        x, alpha = torch.rand(1, 3, 20, 12), torch.rand(1, 3, 20, 12) * 2 - 1
        canvas = torch.full((1, 3, 50, 12), -7.0)
        result = apply_curves_fused(x, alpha, out=canvas[..., 10:30, :])
        assert result.data_ptr() == canvas[..., 10:30, :].data_ptr()
        assert max_diff(canvas[..., 10:30, :], apply_curves_reference(x, alpha)) <= TOL
        assert canvas[..., :10, :].eq(-7).all() and canvas[..., 30:, :].eq(-7).all()

    def test_in_place(self, kernel):
        x, alpha = torch.rand(1, 3, 20, 12), torch.rand(1, 24, 20, 12) * 2 - 1
        expected = apply_curves_reference(x, alpha)
        apply_curves_fused(x, alpha, out=x)
        assert max_diff(x, expected) <= TOL

    @pytest.mark.parametrize("low_res", [False, True])
    def test_reads_levels_least_saturated_per_image(self, kernel, low_res):
        # x of batch 1 broadcast against curves of batch 3; the middle image reads levels / 255.
        x = torch.randint(0, 6, (1, 3, 19, 23), dtype=torch.uint8).contiguous(memory_format=torch.channels_last)
        flags = [True, False, True]
        small = torch.rand(3, 3, 4, 5) * 2 - 1
        curves = F.interpolate(small, size=(19, 23), mode="bilinear", align_corners=True)
        out, gain = torch.empty(3, 3, 19, 23), torch.empty(3, 1, 19, 23)
        if low_res:
            apply_low_res_curves(x, small, (19, 23), out=out, gain=gain, least_saturated=flags)
        else:
            apply_curves_fused(x, curves, out=out, gain=gain, least_saturated=flags)
        decoded = torch.cat([least_saturated_values(x), x.float() / 255, least_saturated_values(x)])
        assert max_diff(out, apply_curves_reference(decoded, curves)) <= TOL
        assert max_diff(gain, curve_gain(decoded, curves)) <= TOL * 10
        assert max_diff(decoded[0], decoded[1]) > 0.1 / 255  # the two readings differ here

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
    def test_downscale_equals_pad_and_interpolate(self, device, kernel, factor, size):
        x = torch.rand(2, 3, *size, device=device)
        h, w = size
        plain = F.interpolate(F.pad(x, (0, -w % factor, 0, -h % factor), mode="replicate"),
                              scale_factor=1 / factor, mode="bilinear")
        assert max_diff(downscale(x, factor), plain) <= TOL
        # Decoded 8-bit images, channels-last: converted as zerodce.io converts them.
        x8 = (x * 255).round().to(torch.uint8).contiguous(memory_format=torch.channels_last)
        assert max_diff(downscale(x8, factor), downscale(x8.float() / 255, factor)) <= TOL

    @pytest.mark.parametrize("channels", [3, 24])
    def test_fused_upsampling_equals_plain(self, device, kernel, channels):
        x = torch.rand(2, 3, 37, 50, device=device)
        small = torch.rand(2, channels, 4, 5, device=device) * 2 - 1
        full = F.interpolate(small, size=(48, 60), mode="bilinear", align_corners=True)[..., :37, :50]
        assert max_diff(apply_low_res_curves(x, small, (48, 60)), apply_curves_reference(x, full)) <= TOL

    def test_band_of_rows(self, kernel):
        x = torch.rand(1, 3, 37, 50)
        small = torch.rand(1, 3, 4, 5) * 2 - 1
        full = F.interpolate(small, size=(48, 60), mode="bilinear", align_corners=True)[..., :37, :50]
        band = apply_low_res_curves(x[..., 11:30, :], small, (48, 60), row_start=11)
        assert max_diff(band, apply_curves_reference(x, full)[..., 11:30, :]) <= TOL
        assert max_diff(upsample_curves(small, (48, 60), 11, 30)[..., :50], full[..., 11:30, :]) <= TOL

    def test_downscale_keeps_gradients(self, kernel):
        x = torch.rand(1, 3, 25, 37, requires_grad=True)
        downscale(x, 12).sum().backward()
        plain = x.detach().clone().requires_grad_()
        F.interpolate(F.pad(plain, (0, 11, 0, 11), mode="replicate"), scale_factor=1 / 12, mode="bilinear").sum().backward()
        assert max_diff(x.grad, plain.grad) <= TOL and x.grad.abs().sum() > 0

    def test_gradients_take_the_plain_path(self):
        x = torch.rand(1, 3, 24, 24)
        small = (torch.rand(1, 3, 2, 2) * 2 - 1).requires_grad_()
        apply_low_res_curves(x, small, (24, 24)).sum().backward()
        assert small.grad is not None and small.grad.abs().sum() > 0


@pytest.mark.parametrize("name,scale_factor", [("zero_dce_pp", 12), ("zero_dce_pp", 1), ("zero_dce", 1), ("zero_dce", 4)])
class TestModels:
    @pytest.mark.parametrize("activations", ["fused", "separate"])
    @pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
    def test_network_equals_nchw(self, device, monkeypatch, name, scale_factor, layout, activations):
        if activations == "fused":
            if device.type != "cpu":
                pytest.skip("oneDNN fusion is CPU only")
            if not torch.backends.mkldnn.is_available():
                missing("this torch build has no oneDNN: the fused-activation path cannot be tested")
            monkeypatch.setattr(zerodce.models._dce_net, "_fuses_activations", lambda x: True)
        else:
            monkeypatch.setattr(zerodce.models._dce_net, "_fuses_activations", lambda x: False)
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

    def test_forward_and_enhancer_equal_plain(self, device, kernel, name, scale_factor):
        torch.manual_seed(0)
        model = create_model(name, scale_factor=scale_factor).to(device)
        x = torch.rand(1, 3, 61, 83, device=device)
        with torch.no_grad():
            plain = plain_forward(model, x)
            assert max_diff(model(x), plain) <= TOL
        enhancer = Enhancer(model, device=device, tile=32, strength=1.0, denoise="off")
        assert max_diff(enhancer.enhance_tensor(x), plain) <= TOL
        assert max_diff(enhancer.apply(x, *enhancer.curves(x)), plain) <= TOL


class TestCompiledKernels:
    """What only the compiled kernels do: 8-bit in and out, threads, any strides."""

    @pytest.fixture(autouse=True)
    def native(self):
        require_native()

    @pytest.mark.parametrize("threads", [1, 3])
    def test_rows_split_over_threads_give_the_same_result(self, monkeypatch, threads):
        monkeypatch.setattr(_native, "_PARALLEL_PIXELS", 1)
        old = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            x, small = torch.rand(2, 3, 37, 50), torch.rand(1, 3, 4, 5) * 2 - 1
            full = F.interpolate(small, size=(48, 60), mode="bilinear", align_corners=True)[..., :37, :50]
            assert max_diff(apply_low_res_curves(x, small, (48, 60)), apply_curves_reference(x, full)) <= TOL
        finally:
            torch.set_num_threads(old)

    @pytest.mark.parametrize("channels", [3, 24])
    def test_uint8_in_and_out(self, channels):
        x8 = torch.randint(0, 256, (1, 21, 30, 3), dtype=torch.uint8).permute(0, 3, 1, 2)
        small = torch.rand(1, channels, 3, 4) * 2 - 1
        full = F.interpolate(small, size=(24, 36), mode="bilinear", align_corners=True)[..., :21, :30]
        expected = apply_curves_reference(x8.float() / 255, full)
        as_float = torch.empty(x8.shape)
        assert _native.apply_low_res(x8, small, (24, 36), 8, 0, as_float)
        assert max_diff(as_float, expected) <= TOL
        as_uint8 = torch.empty_like(x8)
        assert _native.apply_low_res(x8, small, (24, 36), 8, 0, as_uint8)
        # Rounded half to even, as torch.round; a value within float rounding of a .5 may land one level off.
        assert max_diff(as_uint8, (expected * 255).round()) <= 1
        assert (as_uint8 == (expected * 255).round()).float().mean() > 0.99

    def test_rgba_strides_leave_alpha_alone(self):
        pixels = torch.randint(0, 256, (1, 17, 23, 4), dtype=torch.uint8)
        out = torch.zeros_like(pixels)
        x, y = pixels.permute(0, 3, 1, 2)[:, :3], out.permute(0, 3, 1, 2)[:, :3]
        alpha = torch.rand(1, 3, 17, 23) * 2 - 1
        assert _native.apply_maps(x, alpha, 8, y)
        assert max_diff(y, (apply_curves_reference(x.float() / 255, alpha) * 255).round()) <= 1
        assert out[..., 3].eq(0).all()

    def test_refuses_what_it_cannot_do(self):
        x = torch.rand(1, 3, 4, 4, dtype=torch.float64)
        assert not _native.apply_maps(x, torch.rand(1, 3, 4, 4, dtype=torch.float64), 8, torch.empty_like(x))

    def test_without_a_compiler_everything_falls_back(self, monkeypatch, tmp_path):
        monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
        monkeypatch.setenv("ZERODCE_CACHE", str(tmp_path))
        monkeypatch.delenv("ZERODCE_NATIVE", raising=False)  # required kernels would make it an error
        _native.library.cache_clear()
        try:
            assert not _native.available()
            x, alpha = torch.rand(1, 3, 9, 8), torch.rand(1, 3, 9, 8) * 2 - 1
            assert max_diff(apply_curves_fused(x, alpha), apply_curves_reference(x, alpha)) <= TOL
        finally:
            monkeypatch.undo()
            _native.library.cache_clear()
        assert _native.available()

    @pytest.mark.parametrize("settings, top", [({"strength": 1.0, "denoise": "off"}, 40), ({}, 256)],
                             ids=["plain", "default"])
    @pytest.mark.parametrize("channels", [3, 4])
    def test_enhancer_8bit_path_equals_the_float_path(self, channels, settings, top):
        # Dark pixels as the model was trained; mid-grey noise by default (auto strength 0: given back as stored).
        # (With denoising, lifted 8-bit images are read least-saturated: tests/test_enhance.py.)
        enhancer = Enhancer(create_model("zero_dce_pp"), device="cpu", **settings)
        pixels = np.random.default_rng(0).integers(0, top, (45, 70, channels), dtype=np.uint8)
        pixels.flags.writeable = False  # as decoded images are
        general = tensor_to_pixels(enhancer.enhance_tensor(pixels_to_tensor(pixels)), like=pixels)
        fast = enhancer.enhance_array(pixels)
        assert fast.dtype == np.uint8 and fast.shape == pixels.shape
        assert np.abs(fast.astype(int) - general.astype(int)).max() <= 1
        assert (fast == general).mean() > 0.99


def test_small_networks_run_on_one_thread_with_the_same_result(monkeypatch):
    """At or below ONE_THREAD_MACS the network runs on one torch thread: same maps, and the count comes back."""
    model = create_model("zero_dce_pp").eval()
    x = torch.rand(1, 3, 90, 160, generator=torch.Generator().manual_seed(0))
    seen = []
    net = model._net
    monkeypatch.setattr(model, "_net", lambda t: seen.append(torch.get_num_threads()) or net(t))
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch.inference_mode():
            small = model.curve_net(x)
            monkeypatch.setattr(zerodce.models._dce_net, "ONE_THREAD_MACS", 0)
            plain = model.curve_net(x)
        assert seen == [1, 2] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(old)
    assert max_diff(small, plain) <= 1e-6


def test_bf16_network_stays_within_a_level_of_float32():
    """The opt-in bfloat16 network (``inference_dtype``): within 1/255 of float32 on real photos, shipped weights.

    Where the CPU has no native bf16 it is not used at all: the output is float32's, bit for bit.
    """
    from PIL import Image

    from zerodce.models._dce_net import cpu_has_native_bf16

    exact = create_model("zero_dce", pretrained=True).eval()
    fast = create_model("zero_dce", pretrained=True).eval()
    fast.inference_dtype = torch.bfloat16
    photos = sorted(shared_path("data", "real_highres").glob("*.png"))[:3]
    assert photos
    for photo in photos:
        pixels = np.asarray(Image.open(photo).convert("RGB").resize((320, 180)))
        x = torch.from_numpy(pixels.copy()).permute(2, 0, 1)[None].float() / 255
        with torch.inference_mode():
            maps = (exact.estimate_low_res_curves(x)[0], fast.estimate_low_res_curves(x)[0])
        plain, bf16 = (Enhancer(m, device="cpu", strength=1.0, denoise="off") for m in (exact, fast))
        if not cpu_has_native_bf16():
            assert maps[0].equal(maps[1])
            continue
        assert not maps[0].equal(maps[1])  # bf16 did run
        assert max_diff(plain.enhance_tensor(x), bf16.enhance_tensor(x)) <= 1 / 255
        assert np.abs(plain.enhance(pixels).astype(int) - bf16.enhance(pixels).astype(int)).max() <= 1
    with pytest.raises(ValueError, match="plain convolutions"):  # Zero-DCE++'s was 1.2/255 off
        create_model("zero_dce_pp").inference_dtype = torch.bfloat16
