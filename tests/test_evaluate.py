"""Evaluation: pairing, layouts, scoring, no-reference scores, reports, the ``zerodce eval`` command."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT, shared_path

from PIL import Image

from zerodce.baselines import gamma_correction
from zerodce.cli import main
from zerodce.enhance import Enhancer
from zerodce.evaluate import (LOE_SIDE, ContactSheet, ImageScore, MethodResult, PairingError, baseline_methods,
                              clipped_fraction, dataset_dirs, evaluate, evaluate_no_reference, find_pairs, find_photos,
                              folder_method, format_table, lightness_order_error, mean_brightness, model_method,
                              noise_level, read_rgb8, to_json)
from zerodce.io import pixels_to_tensor, read_image, write_image
from zerodce.metrics import psnr, ssim
from zerodce.models import create_model
from zerodce.weights import save_safetensors

NAMES = ["2", "10", "1"]
SIZE = (16, 24)  # H, W


def _images(seed: int, scale: float) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {n: (rng.integers(0, 256, (*SIZE, 3)) * scale).astype(np.uint8) for n in NAMES}


def _write_folder(folder: Path, images: dict[str, np.ndarray], prefix: str = "", ext: str = ".png") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, pixels in images.items():
        write_image(folder / f"{prefix}{name}{ext}", pixels)
    return folder


@pytest.fixture
def dataset(tmp_path) -> Path:
    """A LOL-layout root: dark ``eval15/low`` and bright ``eval15/high`` images, 3 pairs."""
    _write_folder(tmp_path / "data" / "eval15" / "low", _images(0, 0.2))
    _write_folder(tmp_path / "data" / "eval15" / "high", _images(1, 1.0))
    return tmp_path / "data"


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    """A randomly initialised zero_dce_pp saved as safetensors (shipped weights may not exist)."""
    path = tmp_path / "random_pp.safetensors"
    save_safetensors(create_model("zero_dce_pp").state_dict(), path)
    return path


class TestPairing:
    def test_lol_layout(self, dataset):
        low, high = dataset_dirs(dataset)
        assert (low, high) == (dataset / "eval15" / "low", dataset / "eval15" / "high")

    def test_bare_low_high_layout(self, dataset):
        assert dataset_dirs(dataset / "eval15") == (dataset / "eval15" / "low", dataset / "eval15" / "high")

    def test_lol_v2_layout_with_prefixed_names(self, tmp_path):
        _write_folder(tmp_path / "Test" / "Low", _images(0, 0.2), prefix="low")
        _write_folder(tmp_path / "Test" / "Normal", _images(1, 1.0), prefix="normal")
        for root in (tmp_path / "Test", tmp_path):
            pairs = find_pairs(*dataset_dirs(root))
            assert [(p.name, p.high.name) for p in pairs] == [("low1", "normal1.png"), ("low2", "normal2.png"),
                                                              ("low10", "normal10.png")]

    def test_unknown_layout(self, tmp_path):
        (tmp_path / "inputs").mkdir()
        with pytest.raises(PairingError, match="no known dataset layout.*--low DIR --high DIR"):
            dataset_dirs(tmp_path)
        with pytest.raises(PairingError, match="not a folder"):
            dataset_dirs(tmp_path / "missing")

    def test_natural_order_and_extensions(self, tmp_path):
        low = _write_folder(tmp_path / "low", _images(0, 0.2), ext=".png")
        high = _write_folder(tmp_path / "high", _images(1, 1.0), ext=".bmp")
        (low / "notes.txt").write_text("not an image")
        pairs = find_pairs(low, high)
        assert [p.name for p in pairs] == ["1", "2", "10"]
        assert all(p.low.stem == p.high.stem == p.name and p.high.suffix == ".bmp" for p in pairs)

    def test_missing_ground_truth_is_named(self, dataset):
        (dataset / "eval15" / "high" / "10.png").unlink()
        with pytest.raises(PairingError, match=r"no ground truth in .*high for 1 image\(s\): 10 "):
            find_pairs(*dataset_dirs(dataset))

    def test_missing_input_is_named(self, dataset):
        (dataset / "eval15" / "low" / "2.png").unlink()
        with pytest.raises(PairingError, match=r"no low-light input in .*low for 1 image\(s\): 2 "):
            find_pairs(*dataset_dirs(dataset))

    def test_many_missing_are_counted(self, tmp_path):
        low = _write_folder(tmp_path / "low", {str(i): np.zeros((8, 8, 3), np.uint8) for i in range(8)})
        high = _write_folder(tmp_path / "high", {"0": np.zeros((8, 8, 3), np.uint8)})
        with pytest.raises(PairingError, match=r"7 image\(s\): 1, 2, 3, 4, 5 and 2 more"):
            find_pairs(low, high)

    def test_same_stem_twice(self, dataset):
        write_image(dataset / "eval15" / "high" / "1.jpg", np.zeros((*SIZE, 3), np.uint8))
        with pytest.raises(PairingError, match="1.jpg and 1.png .*same images"):
            find_pairs(*dataset_dirs(dataset))

    def test_empty_folder(self, tmp_path):
        (tmp_path / "low").mkdir()
        with pytest.raises(PairingError, match="no images in"):
            find_pairs(tmp_path / "low", tmp_path / "low")

    def test_folder_method_missing_image(self, dataset, tmp_path):
        pairs = find_pairs(*dataset_dirs(dataset))
        out = _write_folder(tmp_path / "out", {"1": np.zeros((*SIZE, 3), np.uint8)})
        with pytest.raises(PairingError, match=r"no enhanced image in .*out for 2 image\(s\): 2, 10"):
            folder_method(out, pairs)


class TestEvaluate:
    def test_baselines_scored_against_ground_truth(self, dataset):
        pairs = find_pairs(*dataset_dirs(dataset))
        evaluation = evaluate(pairs, baseline_methods())
        assert evaluation.failures == []
        identity, gamma = evaluation.results[0], evaluation.results[1]
        for pair, score in zip(pairs, identity.images, strict=True):
            low, high = read_rgb8(pair.low), read_rgb8(pair.high)
            assert score == ImageScore(pair.name, psnr(low, high), ssim(low, high))
        expected = np.mean([psnr(gamma_correction(read_rgb8(p.low)), read_rgb8(p.high)) for p in pairs])
        assert gamma.psnr == pytest.approx(expected)
        assert identity.psnr == pytest.approx(np.mean([s.psnr for s in identity.images]))

    def test_model_output_is_rounded_8bit(self, dataset, checkpoint):
        pairs = find_pairs(*dataset_dirs(dataset))
        enhancer = Enhancer("zero_dce_pp", checkpoint=checkpoint, device="cpu")
        seen = []
        result = evaluate(pairs, {"m": model_method(enhancer)}, on_pair=lambda *args: seen.append(args)).results[0]
        for (name, low, outputs, high), score in zip(seen, result.images, strict=True):
            # What `zerodce enhance` writes for the 8-bit file: its 8-bit path (levels read least-saturated).
            np.testing.assert_array_equal(outputs[0], enhancer.enhance_array(low))
            y = enhancer.with_settings(denoise="off").enhance_tensor(pixels_to_tensor(low))[0].permute(1, 2, 0).numpy()
            np.testing.assert_array_equal(enhancer.with_settings(denoise="off").enhance_array(low),
                                          np.round(np.clip(y * 255, 0, 255)).astype(np.uint8))
            assert score.psnr == pytest.approx(psnr(outputs[0], high))

    def test_enhanced_folder_without_inputs(self, dataset):
        high = dataset / "eval15" / "high"
        pairs = find_pairs(None, high)
        assert all(p.low is None for p in pairs)
        result = evaluate(pairs, {"copy": folder_method(high, pairs)}).results[0]
        assert all(s.psnr == math.inf and s.ssim == pytest.approx(1.0) for s in result.images)
        assert to_json([result])["mean"]["psnr"] is None  # JSON has no infinity

    def test_models_need_inputs(self, dataset):
        pairs = find_pairs(None, dataset / "eval15" / "high")
        with pytest.raises(ValueError, match="give their folder"):
            evaluate(pairs, baseline_methods())

    def test_bad_pairs_are_skipped_for_every_method(self, dataset):
        (dataset / "eval15" / "low" / "2.png").write_bytes(b"not a png")
        write_image(dataset / "eval15" / "high" / "10.png", np.zeros((8, 8, 3), np.uint8))
        evaluation = evaluate(find_pairs(*dataset_dirs(dataset)), baseline_methods())
        assert len(evaluation.failures) == 2
        assert evaluation.failures[0].startswith("2: cannot read") and "2.png" in evaluation.failures[0]
        assert evaluation.failures[1].startswith("10: ") and "24x16 but its ground truth" in evaluation.failures[1]
        assert all([s.name for s in r.images] == ["1"] for r in evaluation.results)


    def test_well_exposed_scores_outputs_against_their_inputs(self, dataset):
        pairs = find_pairs(*dataset_dirs(dataset))
        methods = baseline_methods()
        evaluation = evaluate(pairs, methods, well_exposed=["identity", "gamma 1/2.2"])
        identity, gamma, he = evaluation.results[:3]
        assert [s.name for s in identity.well_exposed] == [p.name for p in pairs]
        assert all(s.psnr == math.inf and s.ssim == pytest.approx(1.0) for s in identity.well_exposed)
        for pair, score in zip(pairs, gamma.well_exposed, strict=True):
            high = read_rgb8(pair.high)
            assert score.psnr == pytest.approx(psnr(gamma_correction(high), high))
            assert score.ssim == pytest.approx(ssim(gamma_correction(high), high))
        # Pooled over the images: the PSNR of all of them side by side (they have one size).
        highs = [read_rgb8(p.high) for p in pairs]
        assert gamma.well_exposed_psnr == pytest.approx(psnr(np.concatenate([gamma_correction(h) for h in highs]),
                                                             np.concatenate(highs)))
        assert he.well_exposed == [] and math.isnan(he.well_exposed_psnr)
        assert "well_exposed" in to_json([gamma]) and "well_exposed" not in to_json([he])
        assert "well-exposed PSNR" in format_table(evaluation.results).splitlines()[0]
        with pytest.raises(ValueError, match="not evaluated: nope"):
            evaluate(pairs, methods, well_exposed=["nope"])


class TestNoReference:
    @staticmethod
    def _gray(values: np.ndarray) -> np.ndarray:
        return np.repeat(values.astype(np.uint8)[..., None], 3, axis=2)

    def test_loe_identity_is_zero_and_reversal_counts_every_changed_pair(self):
        # 40x60: no downsampling (shorter side <= LOE_SIDE), and more pixels than one comparison chunk.
        values = np.random.default_rng(0).integers(0, 256, (40, 60))
        image = self._gray(values)
        assert lightness_order_error(image, image) == 0.0
        assert lightness_order_error(image, self._gray(values // 2 + 100)) > 0  # ties made by rounding count
        assert lightness_order_error(self._gray(values % 150), self._gray(values % 150 + 100)) == 0.0
        # Reversed: every pair of different lightness changes order, equal ones do not.
        counts = np.bincount(values.ravel(), minlength=256)
        expected = float(np.sum(counts * (values.size - counts)) / values.size)
        assert lightness_order_error(image, 255 - image) == pytest.approx(expected)
        assert expected > 0.99 * values.size - 1

    def test_loe_lightness_is_the_channel_maximum(self):
        rng = np.random.default_rng(1)
        image = rng.integers(0, 256, (30, 30, 3)).astype(np.uint8)
        shuffled = image[..., rng.permutation(3)]  # same max per pixel, other channels
        assert lightness_order_error(image, shuffled) == 0.0
        assert lightness_order_error(image, 255 - image) > 100

    def test_loe_downsamples_by_area_to_the_shorter_side(self):
        assert LOE_SIDE == 50
        rng = np.random.default_rng(2)
        small = self._gray(rng.integers(0, 256, (50, 75)))
        changed = self._gray(rng.integers(0, 256, (50, 75)))
        up = lambda im: np.repeat(np.repeat(im, 2, axis=0), 2, axis=1)  # noqa: E731  2x2 blocks average to themselves
        assert lightness_order_error(up(small), up(changed)) == pytest.approx(lightness_order_error(small, changed))
        with pytest.raises(ValueError, match="differ in size"):
            lightness_order_error(small, up(small))
        with pytest.raises(ValueError, match="8-bit RGB"):
            lightness_order_error(small[..., 0], small[..., 0])

    def test_noise_estimate_grows_with_added_noise(self):
        rng = np.random.default_rng(3)
        ramp = np.tile(np.linspace(60, 190, 256)[None, :, None], (256, 1, 3))
        estimates = [noise_level(np.clip(np.round(ramp + rng.normal(0, sigma, ramp.shape)), 0, 255).astype(np.uint8))
                     for sigma in (0, 4, 12)]
        assert estimates[0] < 1.0 < estimates[1] < estimates[2]
        assert estimates[1] == pytest.approx(4, rel=0.15) and estimates[2] == pytest.approx(12, rel=0.1)

    def test_clipped_fraction_and_brightness_exact(self):
        image = np.full((4, 5, 3), 128, np.uint8)
        image[0, 0, 2] = 255  # one channel blown
        image[1, 1] = 0  # crushed
        image[2, 2] = (0, 255, 7)  # both, counted once
        image[3, 3, 0] = 254  # not clipped
        assert clipped_fraction(image) == 3 / 20
        assert mean_brightness(np.full((3, 3, 3), 128, np.uint8)) == 128 / 255
        half = np.zeros((2, 2, 3), np.uint8)
        half[0] = 255
        assert mean_brightness(half) == 0.5
        color = np.full((2, 2, 3), (200, 30, 90), np.uint8)
        assert mean_brightness(color) == np.asarray(Image.fromarray(color).convert("L")).mean() / 255

    def test_find_photos(self, tmp_path):
        _write_folder(tmp_path / "a", _images(0, 0.3))
        _write_folder(tmp_path / "a" / "sub", {"1": np.zeros((4, 4, 3), np.uint8)})
        write_image(tmp_path / "one.png", np.zeros((4, 4, 3), np.uint8))
        assert [p.name for p in find_photos([tmp_path / "a"])] == ["1", "2", "10", "sub/1"]
        pairs = find_photos([tmp_path / "a", tmp_path / "one.png"])
        assert [p.name for p in pairs] == ["a/1", "a/2", "a/10", "a/sub/1", "one"]
        assert all(p.high is None and p.low.is_file() for p in pairs)
        _write_folder(tmp_path / "b" / "a", {"1": np.zeros((4, 4, 3), np.uint8)})
        with pytest.raises(PairingError, match="two photos are named a/1"):
            find_photos([tmp_path / "a", tmp_path / "b" / "a"])
        with pytest.raises(ValueError, match="not found"):
            find_photos([tmp_path / "missing"])

    def test_evaluate_no_reference(self, dataset):
        pairs = find_photos([dataset / "eval15" / "low"])
        (dataset / "eval15" / "low" / "2.png").write_bytes(b"broken")
        evaluation = evaluate_no_reference(pairs, baseline_methods())
        assert [r.method for r in evaluation.results] == ["input", "identity", "gamma 1/2.2", "HE", "CLAHE"]
        assert len(evaluation.failures) == 1 and evaluation.failures[0].startswith("2: cannot read")
        inputs, identity, gamma = evaluation.results[:3]
        assert [s.name for s in inputs.images] == ["1", "10"] and all(s.loe is None for s in inputs.images)
        assert all(s.loe == 0.0 for s in identity.images)
        for pair, score in zip([p for p in pairs if p.name != "2"], gamma.images, strict=True):
            out = gamma_correction(read_rgb8(pair.low))
            assert score.loe == lightness_order_error(read_rgb8(pair.low), out)
            assert (score.noise, score.brightness, score.clipped) == (noise_level(out), mean_brightness(out),
                                                                      clipped_fraction(out))
        assert gamma.mean("brightness") == pytest.approx(np.mean([s.brightness for s in gamma.images]))
        assert math.isnan(inputs.mean("loe")) and gamma.mean("brightness") > inputs.mean("brightness")


class TestReports:
    RESULTS = [MethodResult("a", [ImageScore("1", 10.0, 0.25), ImageScore("2", 20.0, 0.75)]),
               MethodResult("b", [ImageScore("1", 12.0, 0.5), ImageScore("2", math.inf, 1.0)])]

    def test_json_single_schema(self):
        data = to_json(self.RESULTS[:1])
        assert data == {"mean": {"psnr": 15.0, "ssim": 0.5},
                        "images": [{"name": "1", "psnr": 10.0, "ssim": 0.25}, {"name": "2", "psnr": 20.0, "ssim": 0.75}]}

    def test_json_several(self):
        data = to_json(self.RESULTS)
        assert [m["method"] for m in data["methods"]] == ["a", "b"]
        assert data["methods"][1]["mean"] == {"psnr": None, "ssim": 0.75}
        assert set(data) == {"methods"}

    def test_markdown_table(self):
        text = format_table(self.RESULTS, markdown=True)
        lines = text.splitlines()
        assert lines[0].split("|")[1:4] == [" method ", " PSNR (dB) ", "   SSIM "]
        assert lines[2] == "| a      |     15.00 | 0.5000 |"
        assert lines[3].startswith("| b ") and "inf" in lines[3]
        assert "| 2     |  20.00 | 0.7500 |    inf | 1.0000 |" in lines

    def test_contact_sheet_size(self):
        sheet = ContactSheet(["input", "a rather long method name that cannot fit", "ground truth"], cell_width=50)
        sheet.add("x", [np.zeros((20, 100, 3), np.uint8)] * 3)
        sheet.add("y", [np.full((40, 40, 3), 255, np.uint8)] * 3)
        out = sheet.render()
        assert out.shape == (ContactSheet.HEADER + 10 + 50, 150, 3)
        assert out[-1, -1].tolist() == [255, 255, 255]  # second row's last cell is the white image
        with pytest.raises(ValueError, match="expected 3 images"):
            sheet.add("z", [np.zeros((4, 4, 3), np.uint8)])


class TestCLI:
    def test_json_markdown_grid(self, dataset, checkpoint, tmp_path, capsys):
        out = tmp_path / "out"
        code = main(["eval", str(dataset), "--checkpoint", str(checkpoint), "--device", "cpu",
                     "--json", str(out / "r.json"), "--markdown", str(out / "r.md"),
                     "--grid", str(out / "grid.png"), "--grid-width", "30"])
        assert code == 0
        data = json.loads((out / "r.json").read_text())
        assert set(data) == {"mean", "images"} and set(data["mean"]) == {"psnr", "ssim"}
        assert [im["name"] for im in data["images"]] == ["1", "2", "10"]
        assert all(set(im) == {"name", "psnr", "ssim"} for im in data["images"])
        assert data["mean"]["psnr"] == pytest.approx(np.mean([im["psnr"] for im in data["images"]]))
        stdout = capsys.readouterr().out
        assert stdout.splitlines()[-1].split() == ["mean", f"{data['mean']['psnr']:.2f}", f"{data['mean']['ssim']:.4f}"]
        assert "| 10    |" in (out / "r.md").read_text()
        # input | model | ground truth, 3 rows of 30x20 thumbnails under the header
        assert read_image(out / "grid.png").pixels.shape == (ContactSheet.HEADER + 3 * 20, 3 * 30, 3)

    def test_compare_and_baselines(self, dataset, checkpoint, tmp_path, capsys):
        other = tmp_path / "other"
        other.mkdir()
        save_safetensors(create_model("zero_dce_pp").state_dict(), other / checkpoint.name)
        code = main(["eval", str(dataset), "--checkpoint", str(checkpoint), "--device", "cpu",
                     "--compare", f"zero_dce_pp={other / checkpoint.name}", "--baselines",
                     "--json", str(tmp_path / "r.json")])
        assert code == 0
        methods = json.loads((tmp_path / "r.json").read_text())["methods"]
        # Two checkpoints with one file name are told apart by their paths.
        assert [m["method"] for m in methods] == [f"zero_dce_pp ({checkpoint})", f"zero_dce_pp ({other / checkpoint.name})",
                                                  "identity", "gamma 1/2.2", "HE", "CLAHE"]
        assert methods[0]["mean"] != methods[1]["mean"]
        assert "CLAHE" in capsys.readouterr().out

    def test_folder_named_like_a_baseline(self, dataset, tmp_path, capsys):
        folder = _write_folder(tmp_path / "HE", _images(2, 1.0))
        assert main(["eval", str(dataset), "--enhanced", str(folder), "--baselines",
                     "--json", str(tmp_path / "r.json")]) == 0
        methods = json.loads((tmp_path / "r.json").read_text())["methods"]
        assert [m["method"] for m in methods] == [str(folder), "identity", "gamma 1/2.2", "HE", "CLAHE"]

    def test_enhanced_folder_with_high_only(self, dataset, tmp_path, capsys):
        high = dataset / "eval15" / "high"
        assert main(["eval", "--high", str(high), "--enhanced", str(high), "--json", str(tmp_path / "r.json")]) == 0
        assert json.loads((tmp_path / "r.json").read_text())["mean"] == {"psnr": None, "ssim": 1.0}

    def test_scores_what_enhance_writes(self, dataset, checkpoint, tmp_path):
        """eval runs each model as ``zerodce enhance`` does: the decoded file in, the written pixels scored."""
        low = dataset / "eval15" / "low"
        # A 16-bit gray input: made 8-bit RGB before enhancing, its output would differ.
        write_image(low / "2.png", np.random.default_rng(3).integers(0, 12000, SIZE).astype(np.uint16))
        out = tmp_path / "enhanced"
        model = ["--checkpoint", str(checkpoint), "--device", "cpu"]
        assert main(["enhance", str(low), "-o", str(out), *model]) == 0
        assert main(["eval", str(dataset), *model, "--json", str(tmp_path / "model.json")]) == 0
        assert main(["eval", str(dataset), "--enhanced", str(out), "--json", str(tmp_path / "files.json")]) == 0
        by_model = json.loads((tmp_path / "model.json").read_text())
        assert by_model == json.loads((tmp_path / "files.json").read_text())
        converted_first = Enhancer("zero_dce_pp", checkpoint=checkpoint, device="cpu").enhance_array(
            read_rgb8(low / "2.png"))
        assert by_model["images"][1]["name"] == "2"
        assert by_model["images"][1]["psnr"] != pytest.approx(psnr(converted_first, read_rgb8(dataset / "eval15" / "high" / "2.png")))

    def test_compare_entries_carry_settings(self, dataset, checkpoint, tmp_path):
        other = tmp_path / "other.safetensors"
        save_safetensors(create_model("zero_dce_pp").state_dict(), other)
        code = main(["eval", str(dataset), "--checkpoint", str(checkpoint), "--device", "cpu", "--strength", "0.7",
                     "--compare", f"zero_dce_pp={checkpoint},strength=0.5", "--compare", f"zero_dce_pp={other}",
                     "--json", str(tmp_path / "r.json")])
        assert code == 0
        methods = json.loads((tmp_path / "r.json").read_text())["methods"]
        assert [m["method"] for m in methods] == [f"zero_dce_pp ({checkpoint.name}, strength 0.7)",
                                                  f"zero_dce_pp ({checkpoint.name}, strength 0.5)",
                                                  f"zero_dce_pp ({other.name}, strength 0.7)"]  # inherited
        pairs = find_pairs(*dataset_dirs(dataset))
        for method, (weights, strength) in zip(methods, [(checkpoint, 0.7), (checkpoint, 0.5), (other, 0.7)], strict=True):
            enhancer = Enhancer("zero_dce_pp", checkpoint=weights, device="cpu", strength=strength)
            expected = [psnr(enhancer.enhance_array(read_rgb8(p.low)), read_rgb8(p.high)) for p in pairs]
            assert [im["psnr"] for im in method["images"]] == pytest.approx(expected)

    def test_plain_and_default_words(self, dataset, checkpoint, tmp_path):
        code = main(["eval", str(dataset), "--checkpoint", str(checkpoint), "--device", "cpu", "--strength", "1",
                     "--denoise", "off", "--compare", f"zero_dce_pp={checkpoint},default",
                     "--compare", f"zero_dce_pp={checkpoint},denoise=0.5", "--json", str(tmp_path / "r.json")])
        assert code == 0
        methods = json.loads((tmp_path / "r.json").read_text())["methods"]
        name = checkpoint.name
        assert [m["method"] for m in methods] == [f"zero_dce_pp ({name}, plain)", f"zero_dce_pp ({name}, default)",
                                                  f"zero_dce_pp ({name}, strength 1, denoise 0.5)"]
        pairs = find_pairs(*dataset_dirs(dataset))
        for method, settings in zip(methods, [dict(strength=1.0, denoise="off"), {}, dict(strength=1.0, denoise=0.5)],
                                    strict=True):
            enhancer = Enhancer("zero_dce_pp", checkpoint=checkpoint, device="cpu", **settings)
            expected = [psnr(enhancer.enhance_array(read_rgb8(p.low)), read_rgb8(p.high)) for p in pairs]
            assert [im["psnr"] for im in method["images"]] == pytest.approx(expected)
        assert methods[0]["mean"] != methods[1]["mean"]

    def test_max_pixels(self, dataset, checkpoint, capsys):
        model = ["--checkpoint", str(checkpoint), "--device", "cpu"]
        assert main(["eval", str(dataset), *model, "--max-pixels", str(SIZE[0] * SIZE[1] - 1)]) == 1
        assert "none of the 3 images could be evaluated" in capsys.readouterr().err
        assert main(["eval", "--no-reference", str(dataset / "eval15" / "low"), *model, "--max-pixels", "0"]) == 0

    def test_onnx_checkpoint_as_in_enhance(self, dataset, tmp_path):
        from zerodce.export import export_onnx  # the test extra installs onnx and onnxruntime

        model = create_model("zero_dce_pp")
        checkpoint = tmp_path / "m.safetensors"
        save_safetensors(model.state_dict(), checkpoint)
        export_onnx(model, tmp_path / "m.onnx")
        code = main(["eval", str(dataset), "--checkpoint", str(checkpoint), "--strength", "1", "--denoise", "off",
                     "--device", "cpu", "--compare", f"zero_dce_pp={tmp_path / 'm.onnx'}",
                     "--json", str(tmp_path / "r.json")])
        assert code == 0
        torch_run, onnx_run = json.loads((tmp_path / "r.json").read_text())["methods"]
        assert onnx_run["method"] == "zero_dce_pp (m.onnx)"
        for a, b in zip(torch_run["images"], onnx_run["images"], strict=True):
            assert a["psnr"] == pytest.approx(b["psnr"], abs=0.05)  # onnxruntime: curves within 1e-4

    def test_no_reference(self, dataset, checkpoint, tmp_path, capsys):
        low = dataset / "eval15" / "low"
        code = main(["eval", "--no-reference", str(low), "--checkpoint", str(checkpoint), "--device", "cpu",
                     "--baselines", "--json", str(tmp_path / "r.json"), "--markdown", str(tmp_path / "r.md"),
                     "--grid", str(tmp_path / "sheet.png"), "--grid-width", "30"])
        assert code == 0
        methods = json.loads((tmp_path / "r.json").read_text())["methods"]
        assert [m["method"] for m in methods] == ["input", "zero_dce_pp (random_pp.safetensors)", "identity",
                                                  "gamma 1/2.2", "HE", "CLAHE"]
        assert [im["name"] for im in methods[0]["images"]] == ["1", "2", "10"]
        assert methods[0]["mean"]["loe"] is None and methods[2]["mean"]["loe"] == 0.0
        image = read_rgb8(low / "10.png")
        assert methods[0]["images"][2] == {"name": "10", "loe": None, "noise": noise_level(image),
                                           "brightness": mean_brightness(image), "clipped": clipped_fraction(image)}
        assert methods[3]["images"][2]["loe"] == lightness_order_error(image, gamma_correction(image))
        # input | model | 4 baselines, 3 rows of 30x20 thumbnails under the header
        assert read_image(tmp_path / "sheet.png").pixels.shape == (ContactSheet.HEADER + 3 * 20, 6 * 30, 3)
        assert "| 10    | gamma 1/2.2 " in (tmp_path / "r.md").read_text()
        stdout = capsys.readouterr().out
        assert stdout.splitlines()[2].split()[:2] == ["input", "-"]

    @pytest.mark.parametrize("argv, message", [
        (["--low", "a", "--high", "b", "ROOT"], "not both"),
        ([], "give a dataset ROOT"),
        (["--high", "b"], "give --low DIR"),
        (["ROOT", "--enhanced", "x", "--checkpoint", "c"], "--compare NAME=CHECKPOINT"),
        (["ROOT", "--compare", "zero_dce", "--compare", "zero_dce"], "zero_dce is given twice"),
        (["ROOT", "--compare", "zero_dce,strength=-1"], "--compare zero_dce,strength=-1: argument --strength: strength must be"),
        (["ROOT", "--no-reference", "x"], "leave out ROOT"),
        (["--high", "b", "--enhanced", "x", "--well-exposed"], "--well-exposed needs a model or --baselines"),
    ])
    def test_usage_errors(self, argv, message, capsys):
        assert main(["eval", *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1

    @pytest.mark.parametrize("spec, message", [
        ("nope=x.pth", "known models: zero_dce, zero_dce_pp"),
        ("zero_dce_pp,foo=1", "'foo=1' is not a setting; use plain, default or strength=VALUE"),
        ("zero_dce_pp,strength", "'strength' is not a setting"),
    ])
    def test_bad_compare_spec(self, spec, message, capsys):
        with pytest.raises(SystemExit) as exc:
            main(["eval", "ROOT", "--compare", spec])
        assert exc.value.code == 2
        assert message in capsys.readouterr().err

    def test_bad_file_exit_code(self, dataset, checkpoint, tmp_path, capsys):
        (dataset / "eval15" / "high" / "2.png").write_bytes(b"")
        code = main(["eval", str(dataset), "--checkpoint", str(checkpoint), "--device", "cpu",
                     "--json", str(tmp_path / "r.json")])
        assert code == 1
        assert "skipped 2: cannot read" in capsys.readouterr().err
        assert [im["name"] for im in json.loads((tmp_path / "r.json").read_text())["images"]] == ["1", "10"]

    def test_pairing_error_subprocess(self, dataset, checkpoint, tmp_path):
        (dataset / "eval15" / "low" / "10.png").unlink()
        json_path = tmp_path / "r.json"
        proc = subprocess.run([sys.executable, "-m", "zerodce.cli", "eval", str(dataset), "--checkpoint", str(checkpoint),
                               "--json", str(json_path)], capture_output=True, text=True, cwd=REPO_ROOT)
        assert proc.returncode == 1
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("zerodce eval: error: no low-light input")
        assert "10" in lines[0] and "Traceback" not in proc.stderr
        assert not json_path.exists()


def test_official_checkpoint_matches_published(tmp_path):
    """The issue's reference figure of the authors' zero_dce_pp on LOL eval15 (scale 12, padded), run as trained.

    Only zero_dce_pp: zero_dce at full resolution costs ~10x more CPU time, and
    its curves are covered by tests/test_parity.py.
    """
    root = shared_path("data", "lol_eval15")
    checkpoint = shared_path("weights", "official", "zero_dce_pp_epoch99.pth")
    proc = subprocess.run([sys.executable, "-m", "zerodce.cli", "eval", str(root), "--model", "zero_dce_pp",
                           "--checkpoint", str(checkpoint), "--strength", "1", "--denoise", "off", "--device", "cpu",
                           "--json", str(tmp_path / "r.json")],
                          capture_output=True, text=True, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr
    mean = json.loads((tmp_path / "r.json").read_text())["mean"]
    # Published to 2 and 3 decimals: 15.36 dB / 0.573.
    assert mean["psnr"] == pytest.approx(15.36, abs=0.005)
    assert mean["ssim"] == pytest.approx(0.573, abs=0.0005)
