"""ONNX export: dynamic shapes, onnxruntime equals PyTorch (<= 1e-4), the onnxruntime backend, the CLI."""

import numpy as np
import pytest
import torch
from conftest import require
from PIL import Image

require("onnx", "onnx")
require("onnxruntime", "onnx")

from zerodce import create_model  # noqa: E402
from zerodce.cli import main  # noqa: E402
from zerodce.enhance import Enhancer  # noqa: E402
from zerodce.export import ONNX_TOLERANCE, ExportError, OnnxRuntimeModel, export_onnx, onnxruntime_model  # noqa: E402
from zerodce.weights import save_safetensors  # noqa: E402

MODELS = [("zero_dce_pp", 12), ("zero_dce", 1), ("zero_dce", 3)]


def model_of(name, scale_factor):
    torch.manual_seed(0)
    return create_model(name, scale_factor=scale_factor)


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return (a - b).abs().max().item()


@pytest.mark.parametrize("name,scale_factor", MODELS)
def test_curves_graph_matches_pytorch_at_any_size(tmp_path, name, scale_factor):
    model = model_of(name, scale_factor)
    path = tmp_path / "m.onnx"
    assert export_onnx(model, path) <= ONNX_TOLERANCE
    ort_model = OnnxRuntimeModel(path)
    assert (ort_model.name, ort_model.graph) == (name, "curves")
    assert (ort_model.scale_factor, ort_model.iterations, ort_model.out_channels) == (
        scale_factor, model.iterations, model.out_channels)
    for shape in [(3, 3, 50, 77), (1, 3, 13, 130)]:  # sizes the export never saw
        x = torch.rand(*shape)
        with torch.no_grad():
            small, padded = model.estimate_low_res_curves(x)
            ort_small, ort_padded = ort_model.estimate_low_res_curves(x)
            assert ort_padded == padded
            assert max_diff(ort_small, small) <= ONNX_TOLERANCE
            assert max_diff(ort_model.estimate_curves(x), model.estimate_curves(x)) <= ONNX_TOLERANCE
            assert max_diff(ort_model(x), model(x)) <= ONNX_TOLERANCE


@pytest.mark.parametrize("name,scale_factor", MODELS[:2])
def test_enhanced_graph_matches_pytorch(tmp_path, name, scale_factor):
    model = model_of(name, scale_factor)
    export_onnx(model, tmp_path / "e.onnx", graph="enhanced")
    ort_model = OnnxRuntimeModel(tmp_path / "e.onnx")
    x = torch.rand(2, 3, 41, 66)
    with torch.no_grad():
        assert max_diff(ort_model(x), model(x)) <= ONNX_TOLERANCE
    with pytest.raises(ExportError, match="--graph curves"):
        Enhancer(ort_model, device="cpu").enhance_tensor(x)


@pytest.mark.parametrize("name,scale_factor", MODELS[:2])
def test_enhancer_with_onnxruntime_backend_equals_torch(name, scale_factor):
    model = model_of(name, scale_factor)
    x = torch.rand(1, 3, 70, 90)
    # A tile smaller than the image: zero_dce runs the graph on overlapping tiles, zero_dce_pp in bands.
    ours = Enhancer(OnnxRuntimeModel.from_model(model), device="cpu", tile=32, strength=1.5).enhance_tensor(x)
    assert max_diff(ours, Enhancer(model, device="cpu", tile=32, strength=1.5).enhance_tensor(x)) <= ONNX_TOLERANCE


def test_failed_check_writes_nothing(tmp_path, monkeypatch):
    import zerodce.export

    monkeypatch.setattr(zerodce.export, "ONNX_TOLERANCE", -1.0)
    with pytest.raises(ExportError, match="differs from PyTorch"):
        export_onnx(model_of("zero_dce_pp", 12), tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_bad_files(tmp_path):
    with pytest.raises(ExportError, match="not found"):
        OnnxRuntimeModel(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ExportError, match="cannot load"):
        OnnxRuntimeModel(tmp_path / "junk.onnx")
    # A valid ONNX graph without our metadata.
    import onnx

    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["image"], ["curves"])], "g",
                                   [onnx.helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, None)],
                                   [onnx.helper.make_tensor_value_info("curves", onnx.TensorProto.FLOAT, None)])
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), tmp_path / "other.onnx")
    with pytest.raises(ExportError, match="metadata"):
        OnnxRuntimeModel(tmp_path / "other.onnx")


def test_onnx_file_scale_factor_must_match(tmp_path):
    export_onnx(model_of("zero_dce_pp", 12), tmp_path / "m.onnx")
    assert onnxruntime_model("zero_dce_pp", tmp_path / "m.onnx").scale_factor == 12
    with pytest.raises(ValueError, match="scale factor 12"):
        onnxruntime_model("zero_dce_pp", tmp_path / "m.onnx", scale_factor=4)


class TestCLI:
    @pytest.fixture
    def weights(self, tmp_path):
        path = tmp_path / "w.safetensors"
        save_safetensors(model_of("zero_dce_pp", 12).state_dict(), path)
        return path

    def test_export_then_enhance_with_it(self, tmp_path, weights, capsys):
        out = tmp_path / "pp.onnx"
        assert main(["export", "onnx", "--checkpoint", str(weights), "-o", str(out)]) == 0
        assert "wrote" in capsys.readouterr().out and out.is_file()
        image = tmp_path / "dark.png"
        Image.fromarray((np.random.default_rng(0).random((40, 60, 3)) * 80).astype(np.uint8)).save(image)
        assert main(["enhance", str(image), "-o", str(tmp_path / "torch.png"), "--checkpoint", str(weights)]) == 0
        assert main(["enhance", str(image), "-o", str(tmp_path / "ort.png"), "--checkpoint", str(out)]) == 0
        assert main(["enhance", str(image), "-o", str(tmp_path / "ort2.png"), "--checkpoint", str(weights),
                     "--backend", "onnxruntime"]) == 0
        reference = np.asarray(Image.open(tmp_path / "torch.png"), dtype=int)
        for name in ("ort.png", "ort2.png"):
            # Float outputs agree to ~1e-7; rounding to 8 bits may differ by one step.
            assert np.abs(np.asarray(Image.open(tmp_path / name), dtype=int) - reference).max() <= 1

    def test_errors_are_one_line(self, tmp_path, weights, capsys):
        assert main(["export", "onnx", "--checkpoint", str(weights), "-o", str(tmp_path / "no" / "m.onnx")]) == 1
        err = capsys.readouterr().err
        assert "does not exist" in err and len(err.strip().splitlines()) == 1
        assert main(["export", "onnx", "--checkpoint", str(tmp_path / "missing.pt"), "-o", str(tmp_path / "m.onnx")]) == 1
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
        assert not (tmp_path / "m.onnx").exists()
        with pytest.raises(SystemExit) as exc:
            main(["export", "onnx", "--graph", "nope", "-o", str(tmp_path / "m.onnx")])
        assert exc.value.code == 2
