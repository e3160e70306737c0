"""Classical baselines: identity, gamma, histogram equalization, CLAHE."""

from __future__ import annotations

import numpy as np
import pytest

from zerodce.baselines import BASELINES, clahe, gamma_correction, histogram_equalization, identity


@pytest.fixture
def dark() -> np.ndarray:
    """A dark, low-contrast RGB image: values in [10, 40], a horizontal ramp plus texture."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(10, 35, 48)[None, :, None] + rng.integers(0, 6, (32, 48, 3))
    return ramp.astype(np.uint8)


def test_registry_order():
    assert list(BASELINES) == ["identity", "gamma 1/2.2", "HE", "CLAHE"]


@pytest.mark.parametrize("name", list(BASELINES))
@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
def test_keeps_shape_and_dtype(dark, name, dtype):
    image = dark if dtype == np.uint8 else (dark / 255).astype(dtype)
    out = BASELINES[name](image)
    assert out.shape == image.shape and out.dtype == image.dtype
    # Every dtype gives the same image: 8-bit outputs are the float64 result rounded to levels.
    reference = BASELINES[name](dark / 255.0) * 255
    if dtype == np.uint8:
        assert np.abs(out - reference).max() <= 0.5 + 1e-9
    else:
        np.testing.assert_allclose(out * 255.0, reference, rtol=0, atol=1e-3)


@pytest.mark.parametrize("name", list(BASELINES))
def test_input_untouched(dark, name):
    before = dark.copy()
    BASELINES[name](dark)
    np.testing.assert_array_equal(dark, before)


def test_identity_returns_a_copy(dark):
    out = identity(dark)
    np.testing.assert_array_equal(out, dark)
    assert out is not dark


def test_gamma_values(dark):
    expected = np.round((dark / 255.0) ** (1 / 2.2) * 255).astype(np.uint8)
    np.testing.assert_array_equal(gamma_correction(dark), expected)


def test_gamma_brightens(dark):
    out = gamma_correction(dark)
    assert (out > dark).all()
    assert gamma_correction(dark, gamma=1.0).tolist() == dark.tolist()
    assert (gamma_correction(dark, gamma=2.0) <= dark).all()


def test_gamma_keeps_black_and_white():
    x = np.array([[0.0, 1.0]])
    np.testing.assert_array_equal(gamma_correction(x), x)


def test_histogram_equalization_spreads(dark):
    out = histogram_equalization(dark)
    value = out.max(axis=2)  # HSV value
    assert value.max() == 255
    assert value.min() < 20
    assert value.std() > 3 * dark.max(axis=2).std()


def test_histogram_equalization_maps_levels_by_cdf():
    # 4 equally frequent levels: order kept, the darkest at its CDF 1/4 (64), the brightest white.
    x = np.repeat(np.array([10, 20, 30, 40], np.uint8), 16).reshape(8, 8)
    out = histogram_equalization(x)
    levels = [int(out[x == v][0]) for v in (10, 20, 30, 40)]
    assert all((out[x == v] == level).all() for v, level in zip((10, 20, 30, 40), levels))
    assert levels[0] == 64 and levels[-1] == 255
    assert levels == sorted(set(levels))


def test_equalizations_keep_gray_gray(dark):
    gray = np.repeat(dark[..., :1], 3, axis=2)
    for fn in (histogram_equalization, clahe):
        out = fn(gray).astype(int)
        assert np.abs(out - out[..., :1]).max() <= 1


def test_clahe_raises_contrast(dark):
    out = clahe(dark)
    assert out.max(axis=2).std() > 2 * dark.max(axis=2).std()


@pytest.mark.parametrize("shape", [(4, 4, 4), (4, 4, 1), (4,)])
def test_bad_shape(shape):
    with pytest.raises(ValueError, match=r"\(H, W, 3\) or \(H, W\)"):
        identity(np.zeros(shape, np.uint8))


def test_bad_dtype():
    with pytest.raises(ValueError, match="uint8 or float"):
        gamma_correction(np.zeros((4, 4, 3), np.int32))


def test_bad_gamma(dark):
    with pytest.raises(ValueError, match="gamma must be > 0"):
        gamma_correction(dark, gamma=0)
