import pytest
import torch

import zerodce
from zerodce.models import count_parameters, create_model, get_model_spec, list_models
from zerodce.weights import WeightsError, checkpoint_filter_fn, save_safetensors

from conftest import OFFICIAL, shared_path

PARAMS = {"zero_dce": 79_416, "zero_dce_pp": 10_561}
OFFICIAL_FILES = {"zero_dce": "zero_dce_epoch99.pth", "zero_dce_pp": "zero_dce_pp_epoch99.pth"}


def test_list_models():
    assert list_models() == ["zero_dce", "zero_dce_pp"]
    assert zerodce.list_models() == list_models()


def test_unknown_model_lists_known():
    with pytest.raises(ValueError, match="zero_dce, zero_dce_pp"):
        create_model("unet")


@pytest.mark.parametrize("name", list_models())
class TestEveryModel:
    def test_parameter_count(self, name):
        assert count_parameters(create_model(name)) == PARAMS[name]

    @pytest.mark.parametrize("size", [(1, 1), (5, 7), (401, 599), (12, 24), (13, 25)])
    def test_forward_any_size(self, name, size):
        model = create_model(name)
        x = torch.rand(2, 3, *size)
        with torch.no_grad():
            y = model(x)
            c = model.estimate_curves(x)
        assert y.shape == x.shape
        assert c.shape[-2:] == x.shape[-2:] and c.shape[1] % 3 == 0
        assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1
        assert c.abs().max() <= 1

    def test_output_in_range_extreme_inputs(self, name, device):
        model = create_model(name).to(device)
        for fill in (0.0, 1.0):
            y = model(torch.full((1, 3, 24, 24), fill, device=device))
            assert y.min() >= 0 and y.max() <= 1

    def test_gradients_flow(self, name):
        model = create_model(name, scale_factor=1).train()
        x = torch.rand(2, 3, 32, 32)
        model(x).mean().backward()
        for pname, p in model.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), pname
            assert p.grad.abs().sum() > 0, pname

    def test_forward_is_apply_curves(self, name):
        model = create_model(name)
        x = torch.rand(1, 3, 30, 40)
        with torch.no_grad():
            expected = zerodce.apply_curves(x, model.estimate_curves(x), model.iterations)
            torch.testing.assert_close(model(x), expected)

    def test_kwargs_override_defaults(self, name):
        assert create_model(name, scale_factor=4).scale_factor == 4
        assert get_model_spec(name).defaults["iterations"] == 8

    def test_safetensors_roundtrip(self, name, tmp_path):
        model = create_model(name)
        path = tmp_path / "w.safetensors"
        save_safetensors(model.state_dict(), path)
        loaded = create_model(name, checkpoint=path)
        for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
            assert torch.equal(a, b), k

    def test_training_checkpoint_loads(self, name, tmp_path):
        model = create_model(name)
        path = tmp_path / "ckpt.pt"
        prefixed = {f"module.{k}": v for k, v in model.state_dict().items()}
        torch.save({"model": prefixed, "model_name": name, "epoch": 3}, path)
        loaded = create_model(name, checkpoint=path)
        x = torch.rand(1, 3, 24, 24)
        torch.testing.assert_close(loaded(x), model(x))

    def test_wrong_checkpoint_is_clear(self, name, tmp_path):
        other = "zero_dce" if name == "zero_dce_pp" else "zero_dce_pp"
        path = tmp_path / "w.safetensors"
        save_safetensors(create_model(other).state_dict(), path)
        with pytest.raises(WeightsError, match="does not fit"):
            create_model(name, checkpoint=path)

    def test_official_checkpoint_loads(self, name):
        path = shared_path("weights", "official", OFFICIAL_FILES[name])
        model = create_model(name, checkpoint=path)
        with torch.no_grad():
            y = model(torch.full((1, 3, 48, 48), 0.1))
        assert y.mean() > 0.2  # the published weights brighten a dark image


def test_missing_and_corrupt_weights(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        create_model("zero_dce", checkpoint=tmp_path / "nope.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read"):
        create_model("zero_dce", checkpoint=bad)


def test_pretrained_and_checkpoint_exclusive(tmp_path):
    with pytest.raises(ValueError, match="either"):
        create_model("zero_dce", pretrained=True, checkpoint=tmp_path / "x.pth")


def test_filter_negates_only_official_output_layer():
    sd = {"e_conv7.point_conv.weight": torch.ones(1), "e_conv7.depth_conv.weight": torch.ones(1),
          "e_conv1.weight": torch.ones(1), "conv7.bias": torch.ones(1)}
    out = checkpoint_filter_fn(sd)
    assert out["conv7.pointwise.weight"].item() == -1
    assert out["conv7.depthwise.weight"].item() == 1
    assert out["conv1.weight"].item() == 1
    assert out["conv7.bias"].item() == 1  # already ours: no sign change


@pytest.mark.parametrize("scale_factor", [0, 1.5, -2])
def test_bad_scale_factor(scale_factor):
    with pytest.raises(ValueError, match="scale_factor"):
        create_model("zero_dce_pp", scale_factor=scale_factor)


def test_padding_never_crops():
    model = create_model("zero_dce_pp", scale_factor=12)
    x = torch.rand(1, 3, 100, 131)
    with torch.no_grad():
        assert model(x).shape == x.shape
