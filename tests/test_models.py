import pytest
import torch

from zerodce.curves import apply_curves_reference
from zerodce.models import count_parameters, create_model, get_model_spec, list_models
from zerodce.weights import WeightsError, checkpoint_filter_fn, save_safetensors

from conftest import OFFICIAL, shared_path

PARAMS = {"zero_dce": 79_416, "zero_dce_pp": 10_561}
OFFICIAL_FILES = {"zero_dce": "zero_dce_epoch99.pth", "zero_dce_pp": "zero_dce_pp_epoch99.pth"}


def test_list_models():
    assert list_models() == ["zero_dce", "zero_dce_pp"]
    assert [type(create_model(name)) for name in list_models()] == [get_model_spec(n).cls for n in list_models()]


def test_unknown_model_lists_known():
    with pytest.raises(ValueError, match="zero_dce, zero_dce_pp"):
        create_model("unet")


@pytest.mark.parametrize("name", list_models())
class TestEveryModel:
    def test_parameter_count(self, name):
        assert count_parameters(create_model(name)) == PARAMS[name]

    @pytest.mark.parametrize("size", [(1, 1), (5, 7), (401, 599), (12, 24), (13, 25)])
    def test_forward_any_size(self, name, size):
        """At any size, the output is the paper's curve formula applied with the model's own curve maps,
        and each image of a batch comes out as it does alone (padding and fast paths change nothing)."""
        model = create_model(name, pretrained=True)
        x = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            y = model(x)
            c = model.estimate_curves(x)
            alone = model(x[1:])
        assert y.shape == x.shape and c.shape == (2, model.out_channels, *size)
        torch.testing.assert_close(y, apply_curves_reference(x, c, model.iterations), rtol=0, atol=1e-5)
        torch.testing.assert_close(alone, y[1:], rtol=0, atol=1e-5)
        assert (y - x).abs().mean() > 0.01  # the shipped weights change the image

    def test_black_and_white_are_fixed_points(self, name, device):
        # LE(0) = 0 and LE(1) = 1 whatever the curves: exact, not merely in range.
        model = create_model(name, pretrained=True).to(device)
        for fill in (0.0, 1.0):
            x = torch.full((1, 3, 24, 24), fill, device=device)
            with torch.no_grad():
                torch.testing.assert_close(model(x), x, rtol=0, atol=1e-6)

    def test_gradients_flow(self, name):
        model = create_model(name, scale_factor=1).train()
        x = torch.rand(2, 3, 32, 32)
        model(x).mean().backward()
        for pname, p in model.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), pname
            assert p.grad.abs().sum() > 0, pname

    def test_kwargs_override_defaults(self, name):
        assert create_model(name, scale_factor=4).scale_factor == 4
        assert get_model_spec(name).defaults["iterations"] == 8

    def test_safetensors_roundtrip(self, name, tmp_path):
        model = create_model(name)
        path = tmp_path / "w.safetensors"
        save_safetensors(model.state_dict(), path)
        loaded = create_model(name, checkpoint=path).state_dict()
        assert list(loaded) == list(model.state_dict())
        for key, value in model.state_dict().items():
            assert torch.equal(value, loaded[key]), key

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
