import pytest
import torch

from zerodce import losses
from zerodce.losses import (
    ColorConstancyLoss,
    ExposureControlLoss,
    IlluminationSmoothnessLoss,
    LossWeights,
    SpatialConsistencyLoss,
    ZeroReferenceLoss,
    color_constancy,
    exposure_control,
    illumination_smoothness,
    spatial_consistency,
)

FORMULATIONS = ["released", "paper"]


def _t(reference, key):
    return torch.from_numpy(reference[key])


class TestParity:
    """Released formulation == the authors' released loss code, relative error <= 1e-4."""

    @pytest.mark.parametrize(
        "key,fn",
        [
            ("loss_spa", lambda e, i, c: spatial_consistency(e, i)),
            ("loss_exp", lambda e, i, c: exposure_control(e)),
            ("loss_col", lambda e, i, c: color_constancy(e)),
            ("loss_tv", lambda e, i, c: illumination_smoothness(c)),
            ("loss_total_zerodce", lambda e, i, c: ZeroReferenceLoss(LossWeights.for_model("zero_dce"))(e, i, c).total),
        ],
    )
    def test_matches_released(self, reference, key, fn):
        e, i, c = (_t(reference, k) for k in ("loss_enhanced", "loss_input", "loss_curves"))
        expected = float(reference[key])
        got = fn(e, i, c).item()
        assert abs(got - expected) <= 1e-4 * abs(expected), (key, got, expected)

    def test_sign_of_curves_does_not_matter(self, reference):
        c = _t(reference, "loss_curves")
        torch.testing.assert_close(illumination_smoothness(c), illumination_smoothness(-c))


@pytest.mark.parametrize("formulation", FORMULATIONS)
class TestLosses:
    def test_identity_has_no_spatial_loss(self, formulation, device, dtype):
        x = torch.rand(2, 3, 16, 20, device=device, dtype=dtype)
        assert spatial_consistency(x, x, formulation).item() == 0

    def test_contrast_change_costs(self, formulation):
        x = torch.rand(1, 3, 16, 16)
        assert spatial_consistency(x * 0.2, x, formulation) > 0

    def test_exposure_zero_at_level(self, formulation, dtype):
        x = torch.full((1, 3, 32, 32), 0.6, dtype=dtype)
        assert exposure_control(x, 0.6, 16, formulation).item() == pytest.approx(0, abs=1e-6)

    def test_exposure_values(self, formulation):
        x = torch.full((1, 3, 32, 32), 0.2)
        expected = 0.4**2 if formulation == "released" else 0.4
        assert exposure_control(x, formulation=formulation).item() == pytest.approx(expected, rel=1e-5)

    def test_color_values(self, formulation):
        x = torch.zeros(1, 3, 4, 4)
        x[:, 0] = 0.5  # mr - mg = mr - mb = 0.5, mg = mb
        d = 0.25
        expected = (2 * d**2) ** 0.5 if formulation == "released" else 2 * d
        assert color_constancy(x, formulation).item() == pytest.approx(expected, rel=1e-5)

    def test_smoothness_zero_for_constant(self, formulation, device):
        assert illumination_smoothness(torch.full((2, 24, 8, 8), 0.3, device=device), formulation).item() == 0

    def test_smoothness_values(self, formulation):
        c = torch.zeros(1, 3, 3, 3)
        c[:, :, :, 2] = 1.0  # one vertical edge: dw = 1 in column 1->2 of every row
        if formulation == "released":
            expected = 2 * (0 + 9 / (3 * 2))
        else:
            # (|dx|+|dy|)^2 on the 2x2 top-left grid: only column 1 sees the edge
            expected = (3 * 2) / 4 / 1
        assert illumination_smoothness(c, formulation).item() == pytest.approx(expected)

    def test_gradcheck(self, formulation):
        e = (torch.rand(1, 3, 16, 16, dtype=torch.float64) * 0.8 + 0.1).requires_grad_()
        i = torch.rand(1, 3, 16, 16, dtype=torch.float64)
        c = (torch.rand(1, 6, 8, 8, dtype=torch.float64) - 0.5).requires_grad_()
        f = formulation
        assert torch.autograd.gradcheck(lambda e: spatial_consistency(e, i, f), (e,))
        assert torch.autograd.gradcheck(lambda e: exposure_control(e, formulation=f), (e,))
        assert torch.autograd.gradcheck(lambda e: color_constancy(e, f), (e,))
        assert torch.autograd.gradcheck(lambda c: illumination_smoothness(c, f), (c,))

    def test_no_nan_gradient_on_gray(self, formulation):
        gray = torch.full((2, 3, 32, 32), 0.4, requires_grad=True)
        out = ZeroReferenceLoss(formulation=formulation)(gray, gray.detach(), torch.zeros(2, 3, 32, 32))
        out.total.backward()
        assert torch.isfinite(out.total)
        assert torch.isfinite(gray.grad).all()

    def test_modules_equal_functions(self, formulation):
        e, i, c = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32), torch.rand(1, 24, 32, 32)
        f = formulation
        assert SpatialConsistencyLoss(f)(e, i) == spatial_consistency(e, i, f)
        assert ExposureControlLoss(0.5, 8, f)(e) == exposure_control(e, 0.5, 8, f)
        assert ColorConstancyLoss(f)(e) == color_constancy(e, f)
        assert IlluminationSmoothnessLoss(f)(c) == illumination_smoothness(c, f)


def test_total_is_weighted_sum():
    e, i, c = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    w = LossWeights.for_model("zero_dce_pp")
    out = ZeroReferenceLoss(w)(e, i, c)
    assert set(out.components) == set(losses.COMPONENTS)
    expected = sum(getattr(w, k) * v for k, v in out.components.items())
    torch.testing.assert_close(out.total, expected)
    assert w.illumination_smoothness == 1600 and LossWeights().illumination_smoothness == 200


def test_released_color_gradient_is_zero_at_gray():
    gray = torch.full((1, 3, 8, 8), 0.5, requires_grad=True)
    color_constancy(gray).backward()
    assert gray.grad.abs().max() == 0


@pytest.mark.parametrize("bad", ["keras", "Released"])
def test_unknown_formulation(bad):
    with pytest.raises(ValueError, match="formulation"):
        color_constancy(torch.rand(1, 3, 4, 4), bad)


def test_too_small_for_patches():
    with pytest.raises(ValueError, match="at least 16x16"):
        exposure_control(torch.rand(1, 3, 8, 8))


def test_unknown_model_weights():
    with pytest.raises(ValueError, match="zero_dce_pp"):
        LossWeights.for_model("resnet")
