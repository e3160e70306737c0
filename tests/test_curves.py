import pytest
import torch

from zerodce.curves import ApplyCurves, apply_curves, curve_step, least_saturated_values


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


class TestLeastSaturatedValues:
    @staticmethod
    def brute_force(levels: torch.Tensor) -> torch.Tensor:
        """The definition by search: the grey nearest to the box of half-level intervals, clamped into it."""
        v = levels.double()
        lo, hi = (v - 0.5).clamp(min=0), (v + 0.5).clamp(max=255)
        t = torch.linspace(-1, 256, 257 * 400 + 1, dtype=torch.float64)
        cost = sum(((lo[c] - t).clamp(min=0) + (t - hi[c]).clamp(min=0)) ** 2 for c in range(3))
        best = t[cost == cost.min()]
        luma = (v * torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64)).sum()
        grey = luma.clamp(best.min(), best.max())  # several greys fit: the one nearest the luma
        return torch.minimum(torch.maximum(grey, lo), hi)

    def test_equals_the_definition(self):
        g = torch.Generator().manual_seed(0)
        near_black = torch.cartesian_prod(*[torch.arange(6)] * 3)
        wide = torch.randint(0, 256, (60, 3), generator=g)
        near_white = 255 - torch.randint(0, 4, (30, 3), generator=g)
        triplets = torch.cat([near_black, wide, near_white]).to(torch.uint8)
        got = least_saturated_values(triplets.T.reshape(1, 3, -1, 1))[0, :, :, 0].T.double() * 255
        expected = torch.stack([self.brute_force(p) for p in triplets])
        assert (got - expected).abs().max() < 0.01

    def test_within_half_a_level_never_more_saturated_grey_kept(self):
        x = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
        x[1] = x[1, :1]  # a gray image
        y = least_saturated_values(x) * 255
        assert (y - x.double()).abs().max() <= 0.5 + 1e-4
        spread = lambda t: t.amax(1) - t.amin(1)
        assert (spread(y) <= spread(x.float()) + 1e-4).all()
        assert (y[1] - x[1].float()).abs().max() < 1e-4

    def test_crushed_colours_become_grey(self):
        # Channels at most one level apart could all be one grey: they are.
        x = torch.tensor([[0, 1, 0], [1, 0, 1], [2, 3, 3], [0, 0, 1]], dtype=torch.uint8).T.reshape(1, 3, 4, 1)
        y = least_saturated_values(x)
        assert (y.amax(1) - y.amin(1)).abs().max() < 1e-7

    def test_refuses_other_dtypes(self):
        with pytest.raises(ValueError, match="uint8"):
            least_saturated_values(torch.rand(1, 3, 2, 2))
