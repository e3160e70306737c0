import pytest
import torch

from zerodce.curves import ApplyCurves, apply_curves, curve_step


class TestApplyCurves:
    def test_formula_one_step(self, device, dtype):
        x = torch.rand(2, 3, 5, 7, device=device, dtype=dtype)
        alpha = torch.rand(2, 3, 5, 7, device=device, dtype=dtype) * 2 - 1
        expected = x + alpha * x * (1 - x)
        torch.testing.assert_close(apply_curves(x, alpha, iterations=1), expected.clamp(0, 1))

    def test_shared_map_equals_repeated_groups(self, device, dtype):
        x = torch.rand(1, 3, 4, 6, device=device, dtype=dtype)
        alpha = torch.rand(1, 3, 4, 6, device=device, dtype=dtype) * 2 - 1
        torch.testing.assert_close(apply_curves(x, alpha, 8), apply_curves(x, alpha.repeat(1, 8, 1, 1)))

    def test_groups_applied_in_order(self):
        x = torch.full((1, 3, 1, 1), 0.3)
        a = torch.cat([torch.full((1, 3, 1, 1), 1.0), torch.full((1, 3, 1, 1), -1.0)], 1)
        first = x + x * (1 - x)
        expected = first - first * (1 - first)
        torch.testing.assert_close(apply_curves(x, a), expected)
        swapped = torch.cat([a[:, 3:], a[:, :3]], 1)
        assert not torch.allclose(apply_curves(x, swapped), expected)

    def test_range_and_monotonic(self):
        x = torch.linspace(0, 1, 101).view(1, 1, 1, 101).expand(1, 3, 1, 101).contiguous()
        for a in (-1.0, -0.3, 0.5, 1.0):
            y = apply_curves(x, torch.full((1, 24, 1, 101), a))
            assert y.min() >= 0 and y.max() <= 1
            assert (y[..., 1:] >= y[..., :-1]).all()
            assert y[..., 0].eq(0).all() and y[..., -1].eq(1).all()

    def test_positive_alpha_brightens(self):
        x = torch.full((1, 3, 2, 2), 0.2)
        assert (apply_curves(x, torch.full((1, 3, 2, 2), 0.5)) > x).all()

    def test_gradcheck(self):
        x = torch.rand(1, 3, 3, 4, dtype=torch.float64) * 0.8 + 0.1
        a = (torch.rand(1, 6, 3, 4, dtype=torch.float64) - 0.5).requires_grad_()
        assert torch.autograd.gradcheck(lambda a: apply_curves(x, a), (a,))

    def test_module_twin_applies_its_iterations(self):
        x, a = torch.full((1, 3, 1, 1), 0.2), torch.ones(1, 3, 1, 1)
        once, twice = ApplyCurves(1)(x, a)[0, 0].item(), ApplyCurves(2)(x, a)[0, 0].item()
        assert once == pytest.approx(0.36) and twice == pytest.approx(0.36 + 0.36 * 0.64)

    @pytest.mark.parametrize(
        "x,curves,match",
        [
            (torch.rand(3, 4, 4), torch.rand(1, 3, 4, 4), "B, C, H, W"),
            (torch.rand(1, 3, 4, 4), torch.rand(1, 4, 4, 4), "3\\*n"),
            (torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 5), "same height"),
            (torch.zeros(1, 3, 4, 4, dtype=torch.uint8), torch.rand(1, 3, 4, 4).double(), "floating"),
        ],
    )
    def test_bad_input(self, x, curves, match):
        with pytest.raises(ValueError, match=match):
            apply_curves(x, curves)

    def test_curve_step_keeps_endpoints(self):
        x = torch.tensor([0.0, 1.0])
        assert curve_step(x, torch.tensor(0.7)).tolist() == [0.0, 1.0]
