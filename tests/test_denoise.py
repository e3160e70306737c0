"""The denoising stage: the noise estimate, the gain-driven filter, its compiled kernel, and the pipeline with it."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from skimage import data as samples

from zerodce import _native
from zerodce.curves import apply_curves_fused, apply_curves_reference, apply_low_res_curves, curve_gain
from zerodce.enhance import Enhancer
from zerodce.enhance.denoise import (FULL_RESOLUTION_PASSES, QUANTIZATION, RADIUS, RANGE_PER_SIGMA, DenoiseAmplified,
                                     _filter, _lower_median, denoise_amplified, denoise_into, denoise_level,
                                     denoise_low_res_into, estimate_noise, filter_range, half_resolution, smooth3x3,
                                     upsample_correction)

from conftest import REPO_ROOT, require_native

GEN = torch.Generator().manual_seed(0)


def textured(h: int = 96, w: int = 128) -> torch.Tensor:
    """A real photo's texture (scikit-image's astronaut), ``(1, 3, h, w)`` in [0, 1]."""
    pixels = samples.astronaut()[100 : 100 + h, 150 : 150 + w]
    return torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255


def noise_of(y: torch.Tensor, clean: torch.Tensor) -> float:
    return (y - clean).std().item()


class TestEstimateNoise:
    @pytest.mark.parametrize("sigma", [0.005, 0.02, 0.05])
    def test_finds_the_added_noise_on_a_textured_photo(self, sigma):
        clean = textured(256, 256)
        noisy = clean + sigma * torch.randn(clean.shape, generator=GEN)
        estimate = estimate_noise(noisy, levels=65535).item()
        # The photo's own fine texture reads as a little noise (about 0.008 here), never less.
        assert 0.9 * sigma < estimate < sigma + 0.006

    def test_grows_with_the_noise_and_is_per_image(self):
        clean = textured().expand(3, -1, -1, -1)
        noisy = clean + torch.tensor([0.0, 0.01, 0.04]).view(3, 1, 1, 1) * torch.randn(clean.shape, generator=GEN)
        estimates = estimate_noise(noisy).tolist()
        assert estimates[0] < estimates[1] < estimates[2]

    def test_uint8_equals_float_and_quantization_is_a_floor(self):
        x8 = torch.full((1, 3, 40, 50), 17, dtype=torch.uint8)
        assert estimate_noise(x8).item() == pytest.approx(1 / (255 * 12**0.5), rel=1e-4)
        assert estimate_noise(x8).item() == pytest.approx(estimate_noise(x8.float() / 255).item())
        assert estimate_noise(torch.zeros(1, 3, 2, 2)).item() > 0  # too small to measure: quantization only


class TestFilter:
    def test_follows_the_gain(self):
        """A flat noisy patch lifted 8x is cleaned far more than one lifted 1.2x (its noise grew less)."""
        sigma = 0.01
        flat = torch.full((1, 3, 64, 64), 0.5)
        left = {}
        for gain in (1.2, 8.0):
            y = flat + gain * sigma * torch.randn(flat.shape, generator=GEN)
            out = denoise_amplified(y, torch.full((1, 1, 64, 64), gain), sigma)
            left[gain] = noise_of(out, flat) / noise_of(y, flat)
        assert left[8.0] < 0.5 * left[1.2] and left[8.0] < 0.2

    def test_no_gain_no_change(self):
        y = torch.rand(2, 3, 20, 30, generator=GEN)
        gain = torch.rand(2, 1, 20, 30, generator=GEN)  # all <= 1: nothing was amplified
        assert denoise_amplified(y, gain, 0.02).equal(y)
        assert denoise_amplified(y, gain + 5, 0.02, level=0).equal(y)

    def test_removes_isolated_spikes(self):
        """One pixel far brighter than its flat surroundings is noise, not an edge to protect."""
        y = torch.full((1, 3, 21, 21), 0.3)
        y[..., 10, 10] = 0.9
        out = denoise_amplified(y, torch.full((1, 1, 21, 21), 10.0), 0.01)
        assert out[..., 10, 10].max() < 0.45

    def test_keeps_edges(self):
        """A step between two noisy flat regions stays a step: no halo, no blur across it."""
        clean = torch.zeros(1, 3, 48, 48)
        clean[..., 24:] = 0.8
        y = clean + 0.02 * torch.randn(clean.shape, generator=GEN)
        out = denoise_amplified(y, torch.full((1, 1, 48, 48), 10.0), 0.002)
        assert noise_of(out, clean) < 0.5 * noise_of(y, clean)
        assert (out[..., :, 23] - out[..., :, 24]).abs().mean() > 0.75  # still a step of ~0.8
        assert out[..., :, :23].mean() < 0.02 and out[..., :, 25:].mean() > 0.78

    def test_texture_stronger_than_the_noise_survives(self):
        clean = textured()
        y = clean + 0.02 * torch.randn(clean.shape, generator=GEN)
        out = denoise_amplified(y, torch.full((1, 1, *clean.shape[-2:]), 4.0), 0.02 / 4)
        assert noise_of(out, clean) < 0.8 * noise_of(y, clean)  # cleaner
        detail = clean - smooth3x3(clean[0])[None]  # the photo's fine texture
        kept = ((out - smooth3x3(out[0])[None]) * detail).sum() / (detail * detail).sum()
        assert kept > 0.5  # more than half of the fine texture's amplitude is still there

    def test_softens_the_steps_of_noise_free_8_bit_plateaus(self):
        """Stripes 24 pixels wide, 2 and 3 levels, no noise, lifted 30x: each 1-level step becomes a
        jump of 30 levels. Coarse passes keep a range for the quantization (only the sensor noise's part
        halves), so they soften it; with every range halved the step stayed at 83%."""
        x = ((torch.arange(96) // 24) % 2 + 2).float().div(255).expand(1, 3, 96, 96)
        y = 30 * x
        out = denoise_amplified(y, torch.full((1, 1, 96, 96), 30.0), estimate_noise(x))
        step = (out[0, :, 48, 1:] - out[0, :, 48, :-1]).abs().max()
        assert step < 0.75 * 30 / 255
        assert (out[..., 48, :].mean() - y[..., 48, :].mean()).abs() < 0.5 / 255  # levels moved, not the brightness

    @pytest.mark.parametrize("parity", [0, 1])
    def test_reach_is_radius(self, parity):
        """A change of one pixel moves pixels up to RADIUS away and none further (tiles get that much context)."""
        size, c = 2 * RADIUS + 11, RADIUS + 5
        gain = torch.full((size, size), 10.0)
        flat = _filter(torch.full((3, size, size), 0.5), gain, [1.0] * 4, (parity, parity))
        y = torch.full((3, size, size), 0.5)
        y[:, c, c] += 0.01
        moved = ((_filter(y, gain, [1.0] * 4, (parity, parity)) - flat).abs() > 0).any(0).nonzero() - c
        assert moved.abs().max() == RADIUS

    def test_a_tile_with_its_origin_equals_the_whole_image(self):
        """The half-resolution passes pair the whole image's even and odd rows and columns, in tiles too."""
        y = torch.rand(1, 3, 70, 80, generator=GEN) * 0.3
        gain = 1 + 7 * torch.rand(1, 1, 70, 80, generator=GEN)
        whole = denoise_amplified(y, gain, 0.01)
        r, c = 5, 7  # odd offsets
        tile = denoise_amplified(y[..., r:, c:], gain[..., r:, c:], 0.01, origin=(r, c))
        inner = (slice(None), slice(None), slice(RADIUS, None), slice(RADIUS, None))
        assert (tile[inner] - whole[..., r:, c:][inner]).abs().max() <= 1e-5
        shifted = denoise_amplified(y[..., r:, c:], gain[..., r:, c:], 0.01)  # pairs shifted by a pixel
        assert (shifted[inner] - whole[..., r:, c:][inner]).abs().max() > 1e-3

    def test_range_is_zero_without_gain(self):
        assert filter_range(torch.tensor([1.0, 2.0]), 0.01).tolist()[0] == 0.0
        assert filter_range(torch.tensor([3.0]), 0.01, level=2.0).item() == pytest.approx(
            2 * filter_range(torch.tensor([3.0]), 0.01).item())

    def test_module_twin_level_scales_the_filter(self):
        flat = torch.full((1, 3, 32, 32), 0.5)
        y = flat + 0.05 * torch.randn(flat.shape, generator=GEN)
        gain = torch.full((1, 1, 32, 32), 5.0)
        left = [noise_of(DenoiseAmplified(level)(y, gain, 0.01), flat) for level in (0.0, 0.5, 2.0)]
        assert left[0] == noise_of(y, flat) and left[0] > left[1] > left[2]

    def test_bad_gain_shape(self):
        with pytest.raises(ValueError, match="gain must have shape"):
            denoise_amplified(torch.rand(1, 3, 4, 4), torch.ones(1, 3, 4, 4), 0.01)


class TestCompiledKernel:
    @pytest.fixture(autouse=True)
    def native(self):
        require_native()

    @pytest.mark.parametrize("size", [(1, 1), (1, 5), (4, 1), (3, 2), (9, 17), (40, 33)])
    @pytest.mark.parametrize("k", [0, 1, 3])
    def test_each_pass_equals_the_reference(self, size, k):
        """One pass of the streamed kernel alone: the passes before it have scale 0, which keeps every pixel."""
        y = torch.rand(3, *size, generator=GEN)
        gain = 0.5 + 6 * torch.rand(size, generator=GEN)  # some pixels not amplified at all
        out = torch.empty_like(y)
        assert _native.denoise(y, gain, [0.0] * k + [0.05], out)
        if k < FULL_RESOLUTION_PASSES:
            expected = denoise_level(y, gain, 0.05, 2**k, smooth3x3(y) if k == 0 else None)  # the first pass is guided
        else:  # on 2x2 means, taps half as far apart; its change upsampled
            half = half_resolution(y)
            change = denoise_level(half, half_resolution(gain[None])[0], 0.05, 2 ** (k - 1)) - half
            expected = (y + upsample_correction(change, size)).clamp(0, 1)
        assert (out - expected).abs().max() <= 1e-5
        if k == 0 and size[0] * size[1] > 100:  # the guide makes a difference the comparison sees
            assert (out - denoise_level(y, gain, 0.05, 1)).abs().max() > 1e-3

    @pytest.mark.parametrize("channels", [3, 24])
    def test_gain_of_the_fused_paths_equals_curve_gain(self, channels):
        x = torch.rand(2, 3, 21, 30, generator=GEN)
        maps = torch.rand(1, channels, 21, 30, generator=GEN) * 2 - 1
        gain = torch.empty(2, 1, 21, 30)
        y = apply_curves_fused(x, maps, out=torch.empty_like(x), gain=gain)
        assert (y - apply_curves_reference(x, maps)).abs().max() <= 1e-4
        assert (gain - curve_gain(x, maps)).abs().max() <= 1e-4

    def test_gain_of_low_res_curves_from_uint8(self):
        x8 = torch.randint(0, 256, (1, 21, 30, 3), dtype=torch.uint8, generator=GEN).permute(0, 3, 1, 2)
        small = torch.rand(1, 3, 3, 4, generator=GEN) * 2 - 1
        gain, y = torch.empty(1, 1, 21, 30), torch.empty(1, 3, 21, 30)
        apply_low_res_curves(x8, small, (24, 36), out=y, gain=gain)
        full = torch.nn.functional.interpolate(small, size=(24, 36), mode="bilinear", align_corners=True)[..., :21, :30]
        # a product of 8 slopes (up to ~250 on random curves): relative, as test_native's fallback test
        torch.testing.assert_close(gain, curve_gain(x8, full), rtol=2e-5, atol=1e-4)


def test_gain_is_the_derivative():
    x = torch.rand(1, 3, 5, 6, dtype=torch.float64, generator=GEN).clamp(0.05, 0.95).requires_grad_()
    maps = (torch.rand(1, 24, 5, 6, dtype=torch.float64, generator=GEN) * 2 - 1)
    apply_curves_reference(x, maps)[:, 0].sum().backward()  # red is independent of green and blue
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64)
    gain = curve_gain(x.detach(), maps)
    slopes = []
    for c in range(3):
        xc = x.detach().clone().requires_grad_()
        apply_curves_reference(xc, maps)[:, c].sum().backward()
        slopes.append(xc.grad[:, c])
    expected = sum(w * s for w, s in zip(weights, slopes))
    assert torch.allclose(gain[:, 0], expected, atol=1e-9)


@pytest.fixture(scope="module")
def enhancer() -> Enhancer:
    return Enhancer("zero_dce_pp", device="cpu")


class TestPipeline:
    """The denoising stage inside :class:`Enhancer`, with the shipped weights on real photos."""

    @staticmethod
    def dark_noisy(seed: int = 0) -> np.ndarray:
        """A dark, noisy shot of a real photo: exposure cut 12x in linear light, sensor noise, 8-bit."""
        rng = np.random.default_rng(seed)
        photo = samples.coffee()[:200, :300] / 255.0
        linear = np.where(photo <= 0.04045, photo / 12.92, ((photo + 0.055) / 1.055) ** 2.4) / 12
        linear = rng.poisson(linear * 800) / 800 + rng.normal(0, 0.002, linear.shape)
        linear = np.clip(linear, 0, 1)
        srgb = np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)
        return (srgb * 255).round().astype(np.uint8)

    def test_cleaner_than_without_denoising(self, enhancer):
        pixels = self.dark_noisy()
        on = enhancer.enhance(pixels).astype(float)
        off = enhancer.with_settings(denoise="off").enhance(pixels).astype(float)
        again = enhancer.with_settings(denoise="off").enhance(self.dark_noisy(seed=1)).astype(float)
        # Noise is what changes between two shots of the same scene; denoising must cut it.
        on_again = enhancer.enhance(self.dark_noisy(seed=1)).astype(float)
        assert np.std(on - on_again) < 0.5 * np.std(off - again)
        assert abs(on.mean() - off.mean()) < 2  # same exposure

    @pytest.mark.parametrize("name", ["zero_dce_pp", "zero_dce"])
    def test_tiles_are_seamless_with_denoising(self, name):
        pixels = self.dark_noisy()
        whole = Enhancer(name, device="cpu", tile=0).enhance(pixels).astype(int)
        tiled = Enhancer(name, device="cpu", tile=64).enhance(pixels).astype(int)
        assert np.abs(whole - pixels).mean() > 20  # enhanced, not left alone
        assert np.abs(tiled - whole).max() <= 1

    @pytest.mark.parametrize("layout", ["16-bit", "gray", "rgba", "gray16+alpha"])
    def test_every_layout_is_denoised_and_kept(self, enhancer, layout):
        rgb = self.dark_noisy()
        gray = (rgb @ np.array([0.299, 0.587, 0.114])).round().astype(np.uint8)
        alpha = np.linspace(0, 255, rgb.shape[1]).astype(np.uint8)[None].repeat(rgb.shape[0], 0)
        pixels = {"16-bit": rgb.astype(np.uint16) * 257, "gray": gray,
                  "rgba": np.dstack([rgb, alpha]),
                  "gray16+alpha": np.dstack([gray.astype(np.uint16) * 257, alpha.astype(np.uint16) * 257])}[layout]
        on, off = enhancer.enhance(pixels), enhancer.with_settings(denoise="off").enhance(pixels)
        assert on.dtype == pixels.dtype and on.shape == pixels.shape
        if layout.endswith(("rgba", "alpha")):
            np.testing.assert_array_equal(on[..., -1], pixels[..., -1])
        colour = (on if on.ndim == 2 else on[..., : 3 if on.shape[-1] >= 3 else 1]).astype(float)
        colour_off = (off if off.ndim == 2 else off[..., : 3 if off.shape[-1] >= 3 else 1]).astype(float)
        peak = 65535 if pixels.dtype == np.uint16 else 255
        # smoother: less difference between neighbouring pixels, at the same brightness
        rough = lambda a: np.abs(np.diff(a, axis=1)).mean() / peak  # noqa: E731
        assert rough(colour) < 0.7 * rough(colour_off)
        assert abs(colour.mean() - colour_off.mean()) / peak < 0.01
        if pixels.dtype == np.uint16:
            assert np.count_nonzero(colour % 257) > colour.size // 2  # 16-bit values, not 8-bit ones scaled


class TestCompiledHelpers:
    """The final store of the pipeline, compiled, against its PyTorch definition."""

    @pytest.fixture(autouse=True)
    def native(self):
        require_native()

    @pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
    @pytest.mark.parametrize("channels_last", [False, True])
    def test_store_rounds_and_clamps_into_any_layout(self, dtype, channels_last):
        y = torch.rand(2, 3, 9, 14, generator=GEN) * 1.2 - 0.1  # some values outside [0, 1]
        dst = torch.empty(2, 9, 14, 4, dtype=dtype).permute(0, 3, 1, 2)[:, :3] if channels_last else \
            torch.empty(2, 3, 9, 14, dtype=dtype)
        assert _native.store(y, dst)
        expected = y.clamp(0, 1)
        if dtype == torch.uint8:
            expected = expected.mul(255).round()
        assert (dst.float() - expected).abs().max() <= (1 if dtype == torch.uint8 else 1e-7)
        with pytest.raises(ValueError, match="overlaps"):
            _native.store(y, y)


class TestStreamedFilter:
    """All passes in one streamed kernel call (``_native.denoise``) against the passes one by one in
    PyTorch (``_filter``)."""

    @pytest.fixture(autouse=True)
    def native(self):
        require_native()

    @pytest.mark.parametrize("size", [(1, 1), (5, 3), (40, 57), (130, 70)])
    @pytest.mark.parametrize("threads", [1, 2])
    def test_equals_the_passes_in_turn(self, size, threads, monkeypatch):
        monkeypatch.setattr(_native, "_PARALLEL_PIXELS", 1)  # rows split over threads at any size
        old = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            y, gain = torch.rand(3, *size, generator=GEN), 0.5 + 8 * torch.rand(size, generator=GEN)
            scales = [0.2 / 2**k for k in range(4)]
            expected = _filter(y, gain, scales)
            out = torch.empty_like(y)
            assert _native.denoise(y, gain, scales, out)
            assert (out - expected).abs().max() <= 1e-5
            # a window of it, rounded into an interleaved 8-bit image
            r0, c0 = size[0] // 3, size[1] // 4
            out8 = torch.empty(size[0] - r0, size[1] - c0, 3, dtype=torch.uint8).permute(2, 0, 1)
            assert _native.denoise(y, gain, scales, out8, (r0, c0))
            assert (out8.float() - expected[:, r0:, c0:].mul(255).round()).abs().max() <= 1
        finally:
            torch.set_num_threads(old)

    def test_denoise_amplified_takes_it_and_equals_the_reference(self):
        y, gain = torch.rand(2, 3, 50, 60, generator=GEN), 1 + 6 * torch.rand(2, 1, 50, 60, generator=GEN)
        out = denoise_amplified(y, gain, torch.tensor([0.01, 0.03]))
        for i, sigma in enumerate((0.01, 0.03)):
            sensor2 = sigma**2 - QUANTIZATION**2  # only the sensor noise's part halves
            scales = [RANGE_PER_SIGMA * (sensor2 / 4**k + QUANTIZATION**2) ** 0.5 for k in range(4)]
            assert (out[i] - _filter(y[i], gain[i, 0], scales)).abs().max() <= 1e-5

    @pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
    @pytest.mark.parametrize("tile", [0, 64])
    def test_pipeline_equals_the_pass_by_pass_path(self, dtype, tile, monkeypatch):
        pixels = TestPipeline.dark_noisy()
        x = torch.from_numpy(pixels).permute(2, 0, 1)[None]
        x = x if dtype == torch.uint8 else x.float().div(255).contiguous()
        enhancer = Enhancer("zero_dce_pp", device="cpu", tile=tile)
        calls = []
        with_curves = _native.denoise_low_res
        monkeypatch.setattr(_native, "denoise_low_res", lambda *args: calls.append(1) or with_curves(*args))
        fused = enhancer.enhance_tensor(x)  # curves, filter and store in one stream
        assert len(calls) == 1  # this dark photo takes it, the whole image in one call whatever the tile
        monkeypatch.setattr(_native, "denoise_low_res", lambda *args, **kwargs: False)
        streamed = enhancer.enhance_tensor(x)  # the curves stored, then filtered in one stream
        monkeypatch.setattr(_native, "denoise", lambda *args, **kwargs: False)
        by_passes = enhancer.enhance_tensor(x)
        assert fused.dtype == streamed.dtype == by_passes.dtype == dtype
        tolerance = 1 if dtype == torch.uint8 else 1e-4
        assert (fused.float() - streamed.float()).abs().max() <= tolerance
        assert (streamed.float() - by_passes.float()).abs().max() <= tolerance
        assert (streamed.float() - x.float()).abs().mean() > (20 if dtype == torch.uint8 else 20 / 255)

    def test_a_band_that_may_skip_passes_is_not_fused(self):
        """Where a few rows' gain does not already ask for every pass, the band's own maximum must decide."""
        x = torch.full((1, 3, 24, 30), 0.5)
        small = torch.full((1, 3, 2, 3), 0.01)  # barely brightened: gain about 1
        target = torch.zeros(1, 3, 24, 30)
        assert not denoise_low_res_into(x, small, (24, 36), 8, 0, 0.003, 1.0, target, (0, 0))
        assert target.eq(0).all()

    @pytest.mark.parametrize("uint8", [False, True])
    def test_low_res_stream_equals_curves_then_passes(self, uint8):
        x = torch.rand(2, 3, 37, 41, generator=GEN) * 0.3
        x = (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2) if uint8 else x
        small = 0.3 + 0.6 * torch.rand(2, 3, 4, 4, generator=GEN)
        y, gain = torch.empty(2, 3, 37, 41), torch.empty(2, 1, 37, 41)
        apply_low_res_curves(x, small, (48, 48), out=y, gain=gain, row_start=5)
        expected = torch.zeros(2, 3, 20, 30)
        assert denoise_into(y, gain, torch.tensor([0.01, 0.02]), 1.0, expected, (9, 4), origin=(5, 0))
        got = torch.zeros(2, 3, 20, 30)
        assert denoise_low_res_into(x, small, (48, 48), 8, 5, torch.tensor([0.01, 0.02]), 1.0, got, (9, 4))
        assert (got - expected).abs().max() <= 1e-6


@pytest.mark.parametrize("n", [1, 2, 7, 1000, 86311])
def test_lower_median_equals_torch_median(n):
    v = torch.rand(2, 3, n, generator=GEN)
    v[..., : n // 3] = 0.5  # ties
    assert torch.equal(_lower_median(v), v.median(dim=-1).values)


def test_zero_reference_check_of_the_denoiser():
    """scripts/denoise_check.py: simulated sensor noise lifted by the curves; the reference is the same curves on
    the noise-free photo. Denoising brings the output far closer to it; without noise the measure sees only rounding."""
    spec = importlib.util.spec_from_file_location("denoise_check", REPO_ROOT / "scripts" / "denoise_check.py")
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    photos = [p[:160, :192] for p in check.sample_photos(("astronaut", "coffee")).values()]
    auto, off = (Enhancer("zero_dce_pp", device="cpu", denoise=s) for s in ("auto", "off"))
    rng = np.random.default_rng(0)
    for photo in photos:
        noisy, clean = check.noisy_and_clean(photo, 400, False, rng)
        assert check.psnr_against_noise_free(auto, noisy, clean) > check.psnr_against_noise_free(off, noisy, clean) + 3
        quantized, clean = check.noisy_and_clean(photo, 1e9, False, rng)  # a sensor without noise
        assert check.psnr_against_noise_free(off, quantized, clean) > 30
