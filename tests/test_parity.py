"""Our models with the official weights == the authors' released implementation (max abs diff <= 1e-5)."""

import pytest
import torch

from zerodce import apply_curves, create_model

from conftest import shared_path

TOL = 1e-5


def _input(reference) -> torch.Tensor:
    return torch.from_numpy(reference["input_uint8_nhwc"]).permute(0, 3, 1, 2).float() / 255


def _max_diff(a: torch.Tensor, b) -> float:
    return (a - torch.from_numpy(b)).abs().max().item()


@pytest.fixture(scope="module")
def official_zero_dce():
    return create_model("zero_dce", checkpoint=shared_path("weights", "official", "zero_dce_epoch99.pth"))


@torch.no_grad()
def test_zero_dce(reference, official_zero_dce):
    x = _input(reference)
    curves = official_zero_dce.estimate_curves(x)
    assert _max_diff(-curves, reference["zerodce_curves"]) <= TOL  # alpha = -r
    assert _max_diff(official_zero_dce(x), reference["zerodce_enhanced"]) <= TOL
    assert _max_diff(apply_curves(x, curves[:, :12]), reference["zerodce_enhanced_4iter"]) <= TOL


@pytest.mark.parametrize("scale_factor", [1, 12])
@torch.no_grad()
def test_zero_dce_pp(reference, scale_factor):
    path = shared_path("weights", "official", "zero_dce_pp_epoch99.pth")
    model = create_model("zero_dce_pp", checkpoint=path, scale_factor=scale_factor)
    x = _input(reference)
    assert _max_diff(-model.estimate_curves(x), reference[f"zerodcepp_s{scale_factor}_curves"]) <= TOL
    assert _max_diff(model(x), reference[f"zerodcepp_s{scale_factor}_enhanced"]) <= TOL
