"""PSNR and SSIM against hand-computed values, and their input checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from zerodce.metrics import psnr, ssim

C1 = (0.01 * 255) ** 2  # SSIM's luminance constant for data range 255


class TestPSNR:
    def test_uniform_error(self):
        target = np.full((6, 5, 3), 100, np.uint8)
        # MSE 25 -> 10 log10(255^2 / 25)
        assert psnr(target + 5, target) == pytest.approx(10 * math.log10(255**2 / 25))

    def test_mixed_error(self):
        target = np.zeros((4, 4, 3), np.uint8)
        pred = target.copy()
        pred[:2] = 2  # half the pixels off by 2: MSE 2
        assert psnr(pred, target) == pytest.approx(10 * math.log10(255**2 / 2))

    def test_no_uint8_wraparound(self):
        # 0 - 200 must count as 200, not as (0 - 200) mod 256.
        pred, target = np.zeros((3, 3), np.uint8), np.full((3, 3), 200, np.uint8)
        assert psnr(pred, target) == pytest.approx(10 * math.log10(255**2 / 200**2))

    def test_symmetric(self):
        rng = np.random.default_rng(0)
        a, b = rng.integers(0, 256, (2, 9, 11, 3), dtype=np.uint8)
        assert psnr(a, b) == psnr(b, a)

    def test_identical_is_inf(self):
        a = np.full((3, 3, 3), 7, np.uint8)
        assert psnr(a, a) == math.inf

    def test_data_range(self):
        target = np.full((4, 4), 0.5)
        assert psnr(target + 0.1, target, data_range=1.0) == pytest.approx(20.0)  # MSE 0.01


class TestSSIM:
    def test_identical_is_one(self):
        rng = np.random.default_rng(1)
        a = rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)
        assert ssim(a, a) == pytest.approx(1.0)

    @pytest.mark.parametrize("a, b", [(100, 50), (30, 200), (0, 10)])
    def test_constant_images(self, a, b):
        # No variance: SSIM reduces to the luminance term (2ab + C1) / (a^2 + b^2 + C1).
        pred, target = np.full((9, 9, 3), a, np.uint8), np.full((9, 9, 3), b, np.uint8)
        assert ssim(pred, target) == pytest.approx((2 * a * b + C1) / (a**2 + b**2 + C1))

    def test_channels_are_averaged(self):
        pred = np.full((8, 8, 3), 100, np.uint8)
        target = pred.copy()
        target[..., 0] = 50  # one channel differs, two are identical
        per_channel = (2 * 100 * 50 + C1) / (100**2 + 50**2 + C1)
        assert ssim(pred, target) == pytest.approx((per_channel + 2) / 3)

    def test_noise_lowers_ssim(self):
        rng = np.random.default_rng(2)
        target = rng.integers(60, 200, (32, 32, 3), dtype=np.uint8)
        small = np.clip(target + rng.normal(0, 5, target.shape), 0, 255).astype(np.uint8)
        large = np.clip(target + rng.normal(0, 40, target.shape), 0, 255).astype(np.uint8)
        assert 1.0 > ssim(small, target) > ssim(large, target)

    def test_gray(self):
        a = np.full((7, 7), 100, np.uint8)
        assert ssim(a, a) == pytest.approx(1.0)


class TestChecks:
    @pytest.mark.parametrize("metric", [psnr, ssim])
    def test_shape_mismatch(self, metric):
        with pytest.raises(ValueError, match=r"same shape.*\(8, 8, 3\).*\(8, 9, 3\)"):
            metric(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8))

    @pytest.mark.parametrize("metric", [psnr, ssim])
    def test_dtype_mismatch(self, metric):
        with pytest.raises(ValueError, match="same dtype.*float32 and uint8"):
            metric(np.zeros((8, 8, 3), np.float32), np.zeros((8, 8, 3), np.uint8))

    @pytest.mark.parametrize("shape", [(8,), (1, 8, 8, 3)])
    def test_rank(self, shape):
        with pytest.raises(ValueError, match=r"\(H, W, C\) or \(H, W\)"):
            psnr(np.zeros(shape, np.uint8), np.zeros(shape, np.uint8))

    def test_bool_dtype(self):
        with pytest.raises(ValueError, match="integer or float"):
            psnr(np.zeros((4, 4), bool), np.zeros((4, 4), bool))

    def test_not_an_array(self):
        with pytest.raises(TypeError, match="numpy array"):
            psnr([[0]], np.zeros((1, 1), np.uint8))

    def test_ssim_too_small(self):
        with pytest.raises(ValueError, match="at least 7x7"):
            ssim(np.zeros((6, 20, 3), np.uint8), np.zeros((6, 20, 3), np.uint8))
