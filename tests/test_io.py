"""zerodce.io: formats, bit depths, alpha, orientation, metadata, bad files, atomic writes."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from zerodce._atomic import atomic_file, atomic_path
from zerodce.io import (
    FORMATS,
    IMAGE_SUFFIXES,
    RAW_FORMATS,
    ExifWarning,
    ImageData,
    ImageError,
    pil_to_pixels,
    pixels_to_tensor,
    read_image,
    tensor_to_pixels,
    to_8bit,
    write_atomic,
    write_image,
)

RNG = np.random.default_rng(0)
LAYOUTS = [(6, 5), (6, 5, 2), (6, 5, 3), (6, 5, 4)]
ICC = b"\x00\x00\x02\x0cfake-icc-profile" * 8


def random_pixels(shape: tuple[int, ...], dtype: type) -> np.ndarray:
    return RNG.integers(0, np.iinfo(dtype).max + 1, shape).astype(dtype)


def forged_png(width: int, height: int) -> bytes:
    """A PNG header claiming ``width x height`` with almost no data: a decompression bomb's signature."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


class TestLosslessRoundTrip:
    @pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
    @pytest.mark.parametrize("dtype", [np.uint8, np.uint16], ids=["8bit", "16bit"])
    @pytest.mark.parametrize("shape", LAYOUTS, ids=["gray", "gray+alpha", "rgb", "rgba"])
    def test_pixels_and_bit_depth_kept(self, tmp_path, fmt, dtype, shape):
        pixels = random_pixels(shape, dtype)
        path = tmp_path / f"x.{fmt.lower()}"
        write_image(path, ImageData(pixels, icc_profile=ICC, dpi=(300.0, 300.0)))
        back = read_image(path)
        assert back.pixels.dtype == dtype
        if fmt == "TIFF" and dtype == np.uint16 and shape == (6, 5, 2):
            # Pillow cannot read 16-bit gray + alpha TIFFs, so they are stored as RGBA.
            np.testing.assert_array_equal(back.pixels, pixels[..., [0, 0, 0, 1]])
        else:
            np.testing.assert_array_equal(back.pixels, pixels)
        assert back.icc_profile == ICC
        assert back.dpi == pytest.approx((300.0, 300.0), abs=0.1)

    @pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
    def test_16bit_color_files_are_valid_for_other_readers(self, fmt):
        """Pillow reads 16-bit colour as its high byte: an independent check of our encoders."""
        pixels = random_pixels((7, 9, 3), np.uint16)
        buffer = io.BytesIO()
        write_image(buffer, pixels, format=fmt)
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(buffer.getvalue()))), pixels >> 8)

    def test_dark_16bit_stays_16bit(self, tmp_path):
        """Detected by dtype, not by value: a 16-bit image whose values all fit in 8 bits."""
        pixels = RNG.integers(0, 200, (8, 8, 3)).astype(np.uint16)
        write_image(tmp_path / "dark.png", pixels)
        back = read_image(tmp_path / "dark.png").pixels
        assert back.dtype == np.uint16
        np.testing.assert_array_equal(back, pixels)


class TestFormats:
    @pytest.mark.parametrize("fmt", ["JPEG", "WEBP", "BMP"])
    def test_8bit_formats_read_back_close(self, fmt):
        pixels = np.full((16, 16, 3), (40, 90, 160), np.uint8)
        buffer = io.BytesIO()
        write_image(buffer, pixels, format=fmt)
        back = read_image(buffer.getvalue())
        assert back.format == fmt and back.pixels.shape == pixels.shape
        assert np.abs(back.pixels.astype(int) - pixels).max() <= 3

    def test_16bit_to_8bit_format_rounds(self):
        pixels = np.full((4, 4, 3), 257 * 100 + 100, np.uint16)
        buffer = io.BytesIO()
        write_image(buffer, pixels, format="BMP")
        np.testing.assert_array_equal(read_image(buffer.getvalue()).pixels, 100)

    def test_jpeg_drops_alpha(self):
        buffer = io.BytesIO()
        write_image(buffer, random_pixels((8, 8, 4), np.uint8), format="jpg")
        assert read_image(buffer.getvalue()).pixels.shape == (8, 8, 3)

    def test_palette_and_transparency(self):
        palette = Image.new("P", (4, 3))
        palette.putpalette([0, 0, 0, 200, 10, 10] + [0] * 762)
        palette.putpixel((1, 1), 1)
        assert pil_to_pixels(palette).shape == (3, 4, 3)
        assert tuple(pil_to_pixels(palette)[1, 1]) == (200, 10, 10)
        palette.info["transparency"] = 0
        rgba = pil_to_pixels(palette)
        assert rgba.shape == (3, 4, 4) and rgba[0, 0, 3] == 0 and rgba[1, 1, 3] == 255

    def test_cmyk_becomes_rgb_without_its_profile(self, tmp_path):
        Image.new("CMYK", (5, 4), (0, 255, 255, 0)).save(tmp_path / "c.jpg", icc_profile=ICC)
        image = read_image(tmp_path / "c.jpg")
        assert image.pixels.shape == (4, 5, 3)
        assert image.pixels[0, 0, 0] > 200 and image.pixels[0, 0, 1] < 60
        assert image.icc_profile is None

    def test_bilevel_and_16bit_gray_pil_modes(self):
        assert pil_to_pixels(Image.new("1", (3, 2), 1)).tolist() == [[255] * 3] * 2
        gray16 = Image.fromarray(np.full((2, 3), 40000, np.uint16))
        assert pil_to_pixels(gray16).dtype == np.uint16 and pil_to_pixels(gray16).max() == 40000

    def test_exif_kept(self, tmp_path):
        exif = Image.Exif()
        exif[0x010F] = "ZeroCam"  # Make
        for fmt in ("jpg", "png", "webp"):
            path = tmp_path / f"in.{fmt}"
            Image.new("RGB", (4, 4)).save(path, exif=exif.tobytes())
            write_image(tmp_path / f"out.{fmt}", read_image(path))
            assert Image.open(tmp_path / f"out.{fmt}").getexif()[0x010F] == "ZeroCam", fmt


class TestOrientation:
    @pytest.mark.parametrize("orientation", range(1, 9))
    def test_matches_pillow_exif_transpose_and_is_reset(self, tmp_path, orientation):
        pixels = random_pixels((3, 5, 3), np.uint8)
        exif = Image.Exif()
        exif[0x0112] = orientation
        exif[0x010F] = "ZeroCam"
        path = tmp_path / "o.png"
        Image.fromarray(pixels).save(path, exif=exif.tobytes())
        image = read_image(path)
        np.testing.assert_array_equal(image.pixels, np.asarray(ImageOps.exif_transpose(Image.open(path))))
        write_image(tmp_path / "out.png", image)
        kept = Image.open(tmp_path / "out.png").getexif()
        assert kept.get(0x0112, 1) == 1 and kept[0x010F] == "ZeroCam"


class TestBadInput:
    def test_zero_byte(self, tmp_path):
        (tmp_path / "empty.jpg").write_bytes(b"")
        with pytest.raises(ImageError, match=r"empty.jpg: empty file"):
            read_image(tmp_path / "empty.jpg")
        with pytest.raises(ImageError, match=r"<bytes>: empty input"):
            read_image(b"")

    def test_not_an_image(self, tmp_path):
        (tmp_path / "notes.png").write_text("hello")
        with pytest.raises(ImageError, match=r"notes.png: not an image"):
            read_image(tmp_path / "notes.png")

    @pytest.mark.parametrize("fmt", ["png", "jpg"])
    def test_truncated(self, tmp_path, fmt):
        buffer = io.BytesIO()
        Image.fromarray(random_pixels((64, 64, 3), np.uint8)).save(buffer, format="PNG" if fmt == "png" else "JPEG")
        path = tmp_path / f"cut.{fmt}"
        path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        with pytest.raises(ImageError, match=rf"cut.{fmt}: corrupt or truncated"):
            read_image(path)

    def test_missing_and_directory(self, tmp_path):
        with pytest.raises(ImageError, match="no such file"):
            read_image(tmp_path / "nope.png")
        with pytest.raises(ImageError, match="is a directory"):
            read_image(tmp_path)

    def test_unreadable(self, tmp_path, monkeypatch):
        path = tmp_path / "secret.png"
        Image.new("RGB", (2, 2)).save(path)
        path.chmod(0)
        if os.access(path, os.R_OK):  # root reads anything: make the read fail the way it would for a user
            real_open = open

            def denied(file, *args, **kwargs):
                if str(file) == str(path):
                    raise PermissionError(13, "Permission denied", str(file))
                return real_open(file, *args, **kwargs)

            monkeypatch.setattr("builtins.open", denied)
        with pytest.raises(ImageError, match="secret.png: permission denied"):
            read_image(path)

    def test_decompression_bomb_refused_before_decoding(self, monkeypatch):
        with pytest.raises(ImageError, match=r"<bytes>: .*decompression bomb"):
            read_image(forged_png(100_000, 100_000))
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # as the CLI does: our limit alone
        with pytest.raises(ImageError, match=r"100000x100000 = .* exceeds the limit .*decompression bomb"):
            read_image(forged_png(100_000, 100_000))

    def test_pixel_limit_is_configurable(self):
        buffer = io.BytesIO()
        Image.new("RGB", (20, 10)).save(buffer, format="PNG")
        with pytest.raises(ImageError, match="--max-pixels"):
            read_image(buffer.getvalue(), max_pixels=199)
        assert read_image(buffer.getvalue(), max_pixels=200).pixels.shape == (10, 20, 3)

    def test_out_of_memory_is_not_called_corrupt(self, tmp_path, monkeypatch):
        write_image(tmp_path / "big.png", np.zeros((4, 4, 3), np.uint8))

        def no_memory(im):
            raise MemoryError

        monkeypatch.setattr("zerodce.io.files.pil_to_pixels", no_memory)
        with pytest.raises(ImageError, match=r"big.png: out of memory") as error:
            read_image(tmp_path / "big.png")
        assert "corrupt" not in str(error.value)

    def test_damaged_exif_warns_naming_the_file(self, tmp_path):
        from test_cli_enhance import damaged_exif_jpeg

        damaged_exif_jpeg(tmp_path / "tilted.jpg")
        with pytest.warns(ExifWarning, match=r"tilted.jpg: unreadable EXIF block"):
            image = read_image(tmp_path / "tilted.jpg")
        assert image.pixels.shape == (6, 8, 3) and image.exif is None

    def test_empty_exif_directory_is_not_damage(self, recwarn):
        buffer = io.BytesIO()
        Image.new("RGB", (3, 2)).save(buffer, format="JPEG", exif=b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x00\x00")
        assert read_image(buffer.getvalue()).pixels.shape == (2, 3, 3)
        assert not [w for w in recwarn if w.category is ExifWarning]

    def test_float32_images_refused(self, tmp_path):
        Image.fromarray(np.zeros((2, 2), np.float32)).save(tmp_path / "f.tif")
        with pytest.raises(ImageError, match="32-bit float"):
            read_image(tmp_path / "f.tif")


class TestWrite:
    def test_unknown_extension(self, tmp_path):
        with pytest.raises(ImageError, match="unknown image extension"):
            write_image(tmp_path / "x.gif", np.zeros((2, 2), np.uint8))

    def test_stream_needs_format(self):
        with pytest.raises(ImageError, match="give the format"):
            write_image(io.BytesIO(), np.zeros((2, 2), np.uint8))

    def test_failed_write_leaves_nothing_and_keeps_old_file(self, tmp_path, monkeypatch):
        target = tmp_path / "out.png"
        target.write_bytes(b"old")

        def fail(*args):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "replace", fail)
        with pytest.raises(ImageError, match="out.png: No space left"):
            write_image(target, np.zeros((4, 4, 3), np.uint8))
        assert target.read_bytes() == b"old"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]

    def test_written_via_temp_file_in_target_folder(self, tmp_path, monkeypatch):
        moves = []
        real_replace = os.replace
        monkeypatch.setattr(os, "replace", lambda src, dst: (moves.append((Path(src), Path(dst))), real_replace(src, dst)))
        write_image(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
        (src, dst), = moves
        assert src.parent == dst.parent == tmp_path and src.name.startswith(".") and dst.name == "a.png"
        assert (tmp_path / "a.png").stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class TestAtomicWrites:
    """zerodce._atomic: the one helper behind every output file (images, checkpoints, history, ONNX, video)."""

    def test_importing_the_package_leaves_the_umask_alone(self):
        # A umask read at import is a write of the process-wide umask: another thread creating a file
        # at that moment gets mode 0o666 (world-writable) or a wrong mask.
        code = ("import os\ncalls = []\nreal = os.umask\nos.umask = lambda mask: (calls.append(mask), real(mask))[1]\n"
                "import zerodce, zerodce.io, zerodce.train, zerodce.export, zerodce.cli\nprint(calls)")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "[]"

    @pytest.mark.parametrize("mask", [0o022, 0o077])
    def test_mode_is_that_of_a_new_file(self, tmp_path, mask):
        old = os.umask(mask)
        try:
            write_atomic(tmp_path / "a.bin", b"x")
            with open(tmp_path / "b.bin", "wb"):
                pass
        finally:
            os.umask(old)
        assert (tmp_path / "a.bin").stat().st_mode & 0o777 == (tmp_path / "b.bin").stat().st_mode & 0o777 == 0o666 & ~mask

    def test_fsync_before_rename(self, tmp_path, monkeypatch):
        events = []
        real_fsync, real_replace = os.fsync, os.replace
        monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
        monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
        write_atomic(tmp_path / "a.bin", b"data")
        assert events == ["fsync", "replace"] and (tmp_path / "a.bin").read_bytes() == b"data"

    def test_exception_in_the_block_keeps_the_old_file_and_removes_the_temporary(self, tmp_path):
        target = tmp_path / "a.bin"
        target.write_bytes(b"old")
        with pytest.raises(KeyboardInterrupt):
            with atomic_file(target) as file:
                file.write(b"half")
                raise KeyboardInterrupt
        assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["a.bin"]

    def test_path_form_keeps_the_suffix(self, tmp_path):
        with atomic_path(tmp_path / "clip.mkv", suffix=".mkv") as tmp:
            assert tmp.parent == tmp_path and tmp.name.startswith(".clip.mkv.") and tmp.suffix == ".mkv"
            tmp.write_bytes(b"frames")
        assert (tmp_path / "clip.mkv").read_bytes() == b"frames" and len(list(tmp_path.iterdir())) == 1


def test_16_bit_colour_names_are_local_files(tmp_path, monkeypatch):
    # 16-bit colour PNGs are decoded by FFmpeg, to which a relative "data:x.png" is a data: URL.
    pixels = random_pixels((4, 5, 3), np.uint16)
    write_image(tmp_path / "data:x.png", pixels)
    monkeypatch.chdir(tmp_path)
    np.testing.assert_array_equal(read_image("data:x.png").pixels, pixels)


def test_16_to_8_bit_rounding_is_exact_for_every_value():
    values = np.arange(65536, dtype=np.uint16)
    np.testing.assert_array_equal(to_8bit(values), np.round(values / 257.0).astype(np.uint8))
    assert to_8bit(values.reshape(256, 256)).shape == (256, 256)
    # What the lossy formats store of 16-bit pixels.
    pixels = random_pixels((5, 7, 3), np.uint16)
    buffer = io.BytesIO()
    write_image(buffer, pixels, format="BMP")
    np.testing.assert_array_equal(read_image(buffer.getvalue()).pixels, to_8bit(pixels))


def test_one_list_of_image_suffixes():
    import zerodce.cli.enhance
    import zerodce.data

    assert set(IMAGE_SUFFIXES) == set(FORMATS) | set(RAW_FORMATS) and zerodce.data.IMAGE_SUFFIXES is IMAGE_SUFFIXES
    assert "IMAGE_EXTENSIONS" not in vars(zerodce.cli.enhance)  # the CLI's own copy is gone


class TestTensorConversion:
    @pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
    @pytest.mark.parametrize("shape", LAYOUTS, ids=["gray", "gray+alpha", "rgb", "rgba"])
    def test_round_trip(self, dtype, shape):
        pixels = random_pixels(shape, dtype)
        x = pixels_to_tensor(pixels)
        assert x.shape == (1, 3, 6, 5) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
        back = tensor_to_pixels(x, like=pixels)
        assert back.dtype == dtype and back.shape == shape
        np.testing.assert_array_equal(back, pixels)

    def test_gray_output_is_luma_and_alpha_untouched(self):
        like = np.stack([np.zeros((2, 2)), np.array([[0, 7], [100, 255]])], axis=2).astype(np.uint8)
        x = torch.zeros(1, 3, 2, 2)
        x[:, 1] = 1.0  # pure green
        out = tensor_to_pixels(x, like)
        np.testing.assert_array_equal(out[..., 0], round(0.587 * 255))
        np.testing.assert_array_equal(out[..., 1], like[..., 1])

    def test_float_arrays_keep_their_dtype(self):
        pixels = RNG.random((3, 4, 3))
        back = tensor_to_pixels(pixels_to_tensor(pixels), like=pixels)
        assert back.dtype == np.float64
        np.testing.assert_allclose(back, pixels, atol=1e-6)

    def test_bad_arrays(self):
        with pytest.raises(ValueError, match="shape"):
            pixels_to_tensor(np.zeros((2, 2, 5), np.uint8))
        with pytest.raises(ValueError, match="uint8, uint16 or float"):
            pixels_to_tensor(np.zeros((2, 2), np.int32))
