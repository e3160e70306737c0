"""The Python API: zerodce.enhance / Enhancer on PIL, numpy, tensors and files."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import zerodce
from zerodce.enhance import Enhancer, enhance_files
from zerodce.io import ImageData, read_image, write_image
from zerodce.models import create_model, list_models
from zerodce.weights import save_safetensors

RNG = np.random.default_rng(1)


def make_model(name: str, **kwargs):
    """A random model whose curves are strong enough to change a dark image visibly."""
    torch.manual_seed(0)
    model = create_model(name, **kwargs)
    with torch.no_grad():
        last = model.conv7.pointwise if hasattr(model.conv7, "pointwise") else model.conv7
        last.bias.fill_(0.6)  # brighten everywhere, as a trained model does on dark input
    return model


@pytest.fixture(scope="module")
def enhancer() -> Enhancer:
    """The model as trained (strength 1, no denoising): what these type and layout tests need."""
    return Enhancer(make_model("zero_dce_pp"), device="cpu", strength=1.0, denoise="off")


def dark(shape, dtype=np.uint8) -> np.ndarray:
    top = 60 if dtype == np.uint8 else 60 * 257
    return RNG.integers(0, top, shape).astype(dtype)


class TestSameTypeOut:
    @pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
    @pytest.mark.parametrize("shape", [(9, 7), (9, 7, 1), (9, 7, 2), (9, 7, 3), (9, 7, 4)])
    def test_numpy(self, enhancer, shape, dtype):
        pixels = dark(shape, np.uint16).astype(dtype) / (65535 if np.issubdtype(dtype, np.floating) else 1)
        pixels = pixels.astype(dtype)
        out = zerodce.enhance(pixels, model=enhancer.model, strength=1.0, denoise="off")
        assert type(out) is np.ndarray and out.dtype == dtype and out.shape == shape
        assert out[..., :3].astype(float).mean() > pixels[..., :3].astype(float).mean()  # brighter
        if len(shape) == 3 and shape[2] in (2, 4):
            np.testing.assert_array_equal(out[..., -1], pixels[..., -1])  # alpha untouched

    @pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "I;16"])
    def test_pil_modes_kept(self, enhancer, mode):
        shape = {"L": (6, 8), "I;16": (6, 8), "LA": (6, 8, 2), "RGB": (6, 8, 3), "RGBA": (6, 8, 4)}[mode]
        im = Image.fromarray(dark(shape, np.uint16 if mode == "I;16" else np.uint8))
        im.info["icc_profile"] = b"profile"
        out = enhancer.enhance(im)
        assert isinstance(out, Image.Image) and out.mode == im.mode and out.size == im.size
        assert out.info["icc_profile"] == b"profile"
        assert np.asarray(out).astype(float).mean() > np.asarray(im).astype(float).mean()

    def test_pil_palette_comes_back_rgb(self, enhancer):
        out = enhancer.enhance(Image.new("P", (5, 4)))
        assert out.mode == "RGB" and out.size == (5, 4)

    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
    def test_tensor(self, enhancer, dtype):
        x = torch.rand(2, 3, 10, 13, dtype=dtype) * 0.2
        out = zerodce.enhance(x, model=enhancer.model, strength=1.0, denoise="off")
        assert isinstance(out, torch.Tensor) and out.dtype == dtype and out.shape == x.shape
        torch.testing.assert_close(out, enhancer.model(x.float()).to(dtype), atol=1e-5, rtol=0)

    def test_image_data_keeps_metadata(self, enhancer):
        image = ImageData(dark((4, 5, 3)), format="JPEG", icc_profile=b"p", exif=b"e", dpi=(72.0, 72.0))
        out = enhancer.enhance(image)
        assert (out.format, out.icc_profile, out.exif, out.dpi) == ("JPEG", b"p", b"e", (72.0, 72.0))

    def test_gray_stays_gray_and_equals_luma_of_color(self, enhancer):
        gray = dark((8, 8))
        color = enhancer.enhance(np.repeat(gray[..., None], 3, axis=2)).astype(float)
        luma = color @ np.array([0.299, 0.587, 0.114])
        assert np.abs(enhancer.enhance(gray) - luma).max() <= 1.0


class TestValues:
    def test_16bit_not_quantized_to_8bit(self, enhancer):
        pixels = RNG.integers(0, 3000, (16, 16, 3)).astype(np.uint16)
        out = enhancer.enhance(pixels)
        reference = enhancer.enhance(pixels / 65535.0) * 65535.0
        assert np.abs(out - reference).max() <= 0.51  # rounding, plus float32 noise
        assert np.count_nonzero(out % 257) > out.size // 2  # not 8-bit values scaled up

    def test_strength_zero_is_identity(self):
        pixels = dark((7, 9, 3))
        out = Enhancer(make_model("zero_dce_pp"), device="cpu", strength=0.0).enhance(pixels)
        np.testing.assert_array_equal(out, pixels)

    @pytest.mark.parametrize("name", ["zero_dce_pp", "zero_dce"])
    @pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
    def test_curve_filter_sees_and_replaces_the_curves(self, name, dtype):
        enhancer = Enhancer(make_model(name), device="cpu", tile=16, strength=1.0, denoise="off")
        pixels = dark((20, 37, 3), dtype)
        seen = []

        def flatten(maps):
            seen.append(maps.shape)
            return torch.zeros_like(maps)

        np.testing.assert_array_equal(enhancer.enhance_array(pixels, curve_filter=flatten), pixels)
        channels = 3 if name == "zero_dce_pp" else 24
        size = (2, 4) if name == "zero_dce_pp" else (20, 37)  # whole-image maps, even with tiles
        assert seen == [torch.Size([1, channels, *size])]
        identity = enhancer.enhance_array(pixels, curve_filter=lambda maps: maps)
        np.testing.assert_array_equal(identity, enhancer.enhance_array(pixels))

    def test_strength_orders_brightness(self):
        pixels = dark((12, 12, 3))
        means = [Enhancer(make_model("zero_dce_pp"), device="cpu", strength=s, denoise="off").enhance(pixels).mean()
                 for s in (0.5, 1.0, 1.5)]
        assert means[0] < means[1] < means[2]

    @pytest.mark.parametrize("name", list_models())
    @pytest.mark.parametrize("size", [(1, 1), (1, 7), (13, 1), (25, 37)])
    def test_any_size(self, name, size):
        out = zerodce.enhance(dark((*size, 3)), model=make_model(name))
        assert out.shape == (*size, 3)

    @pytest.mark.parametrize("name", list_models())
    def test_tiled_equals_untiled_8bit(self, name):
        pixels = dark((100, 130, 3))
        model = make_model(name)
        whole = Enhancer(model, device="cpu", tile=0).enhance(pixels).astype(int)
        tiled = Enhancer(model, device="cpu", tile=48).enhance(pixels).astype(int)
        assert np.abs(whole - pixels).mean() > 5  # the model does something
        assert np.abs(tiled - whole).max() <= 1

    @pytest.mark.parametrize("shape", [(0, 4, 3), (4, 0, 3), (0, 5), (3, 0, 4)])
    def test_empty_images_come_back_empty(self, enhancer, shape):
        pixels = np.zeros(shape, np.uint8)
        out = enhancer.enhance_array(pixels)
        assert out.shape == pixels.shape and out.dtype == pixels.dtype
        assert enhancer.enhance_tensor(torch.zeros(1, 3, *shape[:2])).shape == (1, 3, *shape[:2])

    def test_float_out_of_range_refused(self, enhancer):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            enhancer.enhance(np.full((2, 2, 3), 255.0))

    def test_unsupported_type(self, enhancer):
        with pytest.raises(TypeError, match="numpy array"):
            enhancer.enhance([[0, 1]])

    @staticmethod
    def assert_threads_equal_sequential(enhancer: Enhancer, images: list[np.ndarray]) -> None:
        """Each image enhanced on its own thread, all at once, equals one at a time."""
        expected = [enhancer.enhance(im) for im in images]
        results = [None] * len(images)

        def work(i):
            results[i] = enhancer.enhance(images[i])

        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(images))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for got, want in zip(results, expected, strict=True):
            np.testing.assert_array_equal(got, want)

    def test_reentrant_across_threads(self, enhancer):
        self.assert_threads_equal_sequential(enhancer, [dark((20 + i, 30, 3)) for i in range(6)])

    def test_one_enhancer_serves_eight_threads_on_large_images(self):
        """The default pipeline (strength auto, denoising, bands) from 8 threads at once."""
        shared = Enhancer("zero_dce_pp", device="cpu", tile=256)
        self.assert_threads_equal_sequential(shared, [dark((600 + 16 * i, 700, 3)) for i in range(8)])

    def test_settings_are_frozen(self, enhancer):
        with pytest.raises(AttributeError):
            enhancer.strength = 2.0
        with pytest.raises(AttributeError):
            enhancer.denoise = "off"
        other = enhancer.with_settings(strength="auto", denoise=2)
        assert (other.strength, other.denoise, other.model) == ("auto", 2.0, enhancer.model)
        assert (enhancer.strength, enhancer.denoise) == (1.0, "off")

    @pytest.mark.parametrize("setting,value", [("strength", "bright"), ("strength", -1), ("denoise", "on"),
                                               ("denoise", float("nan"))])
    def test_bad_settings_say_what_is_allowed(self, setting, value):
        with pytest.raises(ValueError, match=f"{setting} must be"):
            Enhancer(make_model("zero_dce_pp"), device="cpu", **{setting: value})


class TestNamedModels:
    def test_checkpoint_by_name_is_cached(self, tmp_path):
        path = tmp_path / "w.safetensors"
        save_safetensors(make_model("zero_dce_pp").state_dict(), path)
        pixels = dark((6, 6, 3))
        first = zerodce.enhance(pixels, model="zero_dce_pp", checkpoint=path, device="cpu")
        np.testing.assert_array_equal(first, zerodce.enhance(pixels, model=make_model("zero_dce_pp")))
        path.unlink()  # a second call must not reload it
        np.testing.assert_array_equal(zerodce.enhance(pixels, model="zero_dce_pp", checkpoint=path, device="cpu"), first)

    def test_checkpoint_needs_a_name(self, tmp_path):
        with pytest.raises(ValueError, match="model name"):
            Enhancer(make_model("zero_dce_pp"), checkpoint=tmp_path / "w.safetensors")

    def test_unknown_model(self):
        with pytest.raises(ValueError, match="known models"):
            zerodce.enhance(dark((2, 2, 3)), model="nope")


class TestFiles:
    def test_enhance_file_keeps_input_and_metadata(self, enhancer, tmp_path):
        source = tmp_path / "in.png"
        write_image(source, ImageData(dark((10, 12, 4), np.uint16), icc_profile=b"icc"))
        before = source.read_bytes()
        enhancer.enhance_file(source, tmp_path / "out.png")
        assert source.read_bytes() == before
        out = read_image(tmp_path / "out.png")
        assert out.pixels.dtype == np.uint16 and out.pixels.shape == (10, 12, 4) and out.icc_profile == b"icc"

    def test_batch_goes_on_past_bad_files(self, enhancer, tmp_path):
        good = [tmp_path / f"g{i}.jpg" for i in range(3)]
        for path in good:
            write_image(path, dark((8, 8, 3)))
        (tmp_path / "bad.jpg").write_bytes(b"junk")
        jobs = [(p, tmp_path / f"out_{p.name}") for p in [good[0], tmp_path / "bad.jpg", *good[1:]]]
        results = {r.source: r for r in enhance_files(enhancer, jobs, workers=2)}
        assert len(results) == 4
        assert results[tmp_path / "bad.jpg"].status == "failed"
        assert "bad.jpg: not an image" in results[tmp_path / "bad.jpg"].reason
        assert all(results[p].status == "done" and (tmp_path / f"out_{p.name}").is_file() for p in good)
        assert not (tmp_path / "out_bad.jpg").exists()

    def test_an_unexpected_error_is_that_files_failure(self, tmp_path, monkeypatch):
        enhancer = Enhancer(make_model("zero_dce_pp"), device="cpu")
        files = [tmp_path / f"{i}.png" for i in range(3)]
        for path in files:
            write_image(path, dark((8, 8, 3)))
        real = enhancer.enhance_file

        def flaky(source, target, **kwargs):
            if Path(source).name == "1.png":
                raise RuntimeError("the kernel exploded\nsecond line")
            return real(source, target, **kwargs)

        monkeypatch.setattr(enhancer, "enhance_file", flaky)
        results = {r.source.name: r for r in enhance_files(enhancer, [(f, tmp_path / f"o{f.name}") for f in files])}
        assert [results[f.name].status for f in files] == ["done", "failed", "done"]
        assert results["1.png"].reason.endswith("unexpected error (RuntimeError: the kernel exploded)")


def test_precision_is_an_enhancer_setting_of_the_model():
    """bf16 is asked of the Enhancer (the CLI and the server pass it on), set on the model it owns, shared by
    its variants; refused with a one-line InputError where it is not offered."""
    from zerodce._checks import InputError

    bf16 = Enhancer("zero_dce", device="cpu", precision="bf16")
    assert bf16.model.inference_dtype == torch.bfloat16
    assert bf16.with_settings(strength=1.0).model.inference_dtype == torch.bfloat16
    assert Enhancer("zero_dce", device="cpu").model.inference_dtype == torch.float32
    with pytest.raises(InputError, match="Zero-DCE"):
        Enhancer("zero_dce_pp", device="cpu", precision="bf16")
    with pytest.raises(InputError, match="fp32"):
        Enhancer("zero_dce", device="cpu", precision="fp16")


class TestQuantizedShadows:
    """With denoising, lifted 8-bit images are read as the least saturated colours their levels stand for."""

    @staticmethod
    def crushed() -> np.ndarray:
        pixels = np.zeros((96, 128, 3), np.uint8)
        pixels[16:48, 16:64] = (0, 1, 0)  # JPEG plateaus one level above black
        pixels[56:88, 64:112] = (1, 0, 1)
        pixels[:, 120:] = 90  # something lit
        return pixels

    def test_plateaus_one_level_above_black_are_lifted_grey_not_green(self):
        pixels = self.crushed()
        plateaus = [(slice(20, 44), slice(20, 60)), (slice(60, 84), slice(68, 108))]
        for setting, neutral in (({}, True), ({"denoise": "off"}, False)):
            out = Enhancer("zero_dce_pp", device="cpu", **setting).enhance(pixels).astype(float)
            for rows, cols in plateaus:
                colour = out[rows, cols].reshape(-1, 3).mean(0)
                assert colour.max() > 20  # lifted
                if neutral:
                    assert colour.min() > 0.6 * colour.max(), colour
                else:  # the curves keep 0 at 0: the stored level alone is lifted
                    assert colour.min() == 0, colour

    def test_an_image_left_alone_in_a_batch_comes_back_as_stored(self):
        lit = np.random.default_rng(2).integers(60, 200, (96, 128, 3)).astype(np.uint8)
        batch = torch.from_numpy(np.stack([self.crushed(), lit])).permute(0, 3, 1, 2)
        out = Enhancer("zero_dce_pp", device="cpu").enhance_tensor(batch)
        assert torch.equal(out[1], batch[1])  # auto strength 0
        assert not torch.equal(out[0], batch[0])
