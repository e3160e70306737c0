"""Phone and camera formats in zerodce.io: HEIC/HEIF (pillow-heif), AVIF (Pillow), camera RAW (rawpy)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import missing, require
from zerodce.io import FORMATS, RAW_FORMATS, ImageData, ImageError, output_format, read_image, write_image

REPO = Path(__file__).resolve().parents[1]
ICC = b"\x00\x00\x02\x0cfake-icc-profile" * 8
RNG = np.random.default_rng(3)


def marker(height: int = 48, width: int = 64, dtype: type = np.uint8) -> np.ndarray:
    """A dark RGB image with a bright block in the top-left corner: rotations and mirrors show."""
    top = np.iinfo(dtype).max
    pixels = np.full((height, width, 3), top // 10, dtype)
    pixels[: height // 3, : width // 4] = top * 9 // 10
    return pixels


def make_heic(pixels: np.ndarray, orientation: int = 1, **info) -> bytes:
    """A HEIC written by pillow-heif itself (not by us), with an EXIF orientation if not 1."""
    heif = require("pillow_heif", "heif")
    heif.register_heif_opener()
    exif = Image.Exif()
    exif[0x010F] = "PhoneCam"
    if orientation != 1:
        exif[0x0112] = orientation  # pillow-heif turns it into the container's rotation
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="HEIF", quality=95, exif=exif.tobytes(), **info)
    return buffer.getvalue()


def make_dng(path: Path, height: int = 64, width: int = 96, orientation: int = 1, green_gain: float = 2.0) -> None:
    """A Bayer (RGGB) DNG of a gray scene lit so that green reads ``green_gain`` times red and blue,
    with the camera's white balance (AsShotNeutral) saying so; the left half is half as bright.

    Written with tifffile from the DNG specification's tags, then read by LibRaw like a camera's.
    """
    tifffile = require("tifffile", "test")
    red = 80  # of 4095: a dark shot (about 2% of white, 0.1 to 0.15 after the sRGB curve)
    cfa = np.empty((height, width), np.uint16)
    cfa[0::2, 0::2] = red
    cfa[1::2, 1::2] = red
    cfa[0::2, 1::2] = cfa[1::2, 0::2] = round(red * green_gain)
    cfa[:, : width // 2] //= 2
    neutral = round(10000 / green_gain)
    identity = tuple(v for i in range(9) for v in (10000 if i % 4 == 0 else 0, 10000))  # rationals
    tags = [
        (271, "s", 0, "zerodce", True),  # Make
        (272, "s", 0, "test camera", True),  # Model
        (274, "H", 1, orientation, True),
        (33421, "H", 2, (2, 2), True),  # CFARepeatPatternDim
        (33422, "B", 4, (0, 1, 1, 2), True),  # CFAPattern: R G / G B
        (50706, "B", 4, (1, 4, 0, 0), True),  # DNGVersion
        (50707, "B", 4, (1, 1, 0, 0), True),  # DNGBackwardVersion
        (50708, "s", 0, "zerodce test camera", True),  # UniqueCameraModel
        (50714, "H", 1, 0, True),  # BlackLevel
        (50717, "H", 1, 4095, True),  # WhiteLevel (12-bit sensor)
        (50721, "2i", 9, identity, True),  # ColorMatrix1 (XYZ to camera): identity
        (50778, "H", 1, 21, True),  # CalibrationIlluminant1: D65
        (50728, "2I", 3, (neutral, 10000, 10000, 10000, neutral, 10000), True),  # AsShotNeutral
    ]
    tifffile.imwrite(path, cfa, photometric=32803, subfiletype=0, metadata=None, extratags=tags)


def run_python(code: str, *args: str | Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=300)


#: Runs zerodce's CLI with an optional dependency made impossible to import.
WITHOUT = """
import sys
sys.modules[sys.argv[1]] = None  # import fails as if not installed
from zerodce.cli import main
sys.exit(main(sys.argv[2:]))
"""


class TestHeif:
    @pytest.fixture(autouse=True)
    def _heif(self):
        require("pillow_heif", "heif")

    def test_phone_heic_reads_upright_with_exif_and_icc(self):
        pixels = marker()
        image = read_image(make_heic(pixels, orientation=6, icc_profile=ICC))
        assert image.format == "HEIF" and image.pixels.dtype == np.uint8
        upright = np.rot90(pixels, -1)  # orientation 6: turn 90 degrees clockwise to view
        assert image.pixels.shape == upright.shape
        assert np.abs(image.pixels.astype(int) - upright).mean() < 4
        kept = Image.Exif()
        kept.load(image.exif)
        assert kept[0x010F] == "PhoneCam" and kept.get(0x0112, 1) == 1  # orientation applied once, not kept
        assert image.icc_profile == ICC

    def test_round_trip_keeps_metadata(self, tmp_path):
        exif = Image.Exif()
        exif[0x010F] = "ZeroCam"
        pixels = marker()
        write_image(tmp_path / "x.heic", ImageData(pixels, icc_profile=ICC, exif=exif.tobytes()))
        back = read_image(tmp_path / "x.heic")
        assert back.format == "HEIF" and back.icc_profile == ICC and b"ZeroCam" in back.exif
        assert np.abs(back.pixels.astype(int) - pixels).mean() < 3

    def test_16bit_pixels_become_10bit_heic_and_read_back_as_uint16(self, tmp_path):
        heif = require("pillow_heif", "heif")
        # A dark gradient over 64 ten-bit levels: 8 bits would keep 16 of them.
        ramp = np.linspace(0, 63 * 64, 96).astype(np.uint16)
        pixels = np.repeat(np.repeat(ramp[None, :, None], 32, 0), 3, 2)
        pixels[:2, :2] = 65535
        write_image(tmp_path / "deep.heic", pixels)
        assert heif.open_heif(tmp_path / "deep.heic").info["bit_depth"] == 10
        back = read_image(tmp_path / "deep.heic")
        assert back.pixels.dtype == np.uint16 and back.pixels.shape == pixels.shape
        assert len(np.unique(back.pixels[10:, :, 1])) > 40  # finer than 8 bits
        assert back.pixels[0, 0].tolist() == [65535] * 3  # the top 10-bit level is full scale
        assert np.abs(back.pixels[10:].astype(int) - pixels[10:]).mean() < 3 * 64

    @pytest.mark.parametrize("shape, dtype", [((20, 24), np.uint8), ((20, 24, 4), np.uint8), ((20, 24, 2), np.uint16)])
    def test_gray_and_alpha_layouts(self, tmp_path, shape, dtype):
        pixels = np.full(shape, np.iinfo(dtype).max // 3, dtype)
        if len(shape) == 3:
            pixels[..., -1] = np.iinfo(dtype).max  # opaque
        write_image(tmp_path / "x.heic", pixels)
        back = read_image(tmp_path / "x.heic").pixels
        assert back.dtype == dtype
        # Gray + alpha is stored as RGBA (as in WebP).
        assert back.shape == (shape if shape[-1] != 2 else (*shape[:2], 4))

    def test_heic_extension_and_aliases(self):
        assert FORMATS[".heic"] == FORMATS[".heif"] == "HEIF" and output_format("HEIF") == "HEIF"
        buffer = io.BytesIO()
        write_image(buffer, marker(), format="heic")
        assert read_image(buffer.getvalue()).format == "HEIF"

    def test_truncated_heic_is_one_line(self):
        data = make_heic(marker())
        with pytest.raises(ImageError, match=r"^cannot read <bytes>: ") as error:
            read_image(data[: len(data) // 2])
        assert "\n" not in str(error.value)


def test_missing_heif_extra_names_the_install(tmp_path):
    require("pillow_heif", "heif")
    (tmp_path / "phone.heic").write_bytes(make_heic(marker()))
    write_image(tmp_path / "a.png", marker())
    read = run_python(WITHOUT, "pillow_heif", "enhance", tmp_path / "phone.heic", "--format", "png")
    failed = [line for line in read.stderr.splitlines() if "failed:" in line]
    assert read.returncode == 1 and "Traceback" not in read.stderr
    assert len(failed) == 1 and 'pip install "zerodce[heif]"' in failed[0] and "phone.heic" in failed[0], failed
    # An output format that cannot be written (HEIC, by default for HEIC): one line before any work.
    for args in ([tmp_path / "a.png", "--format", "heic"], [tmp_path / "phone.heic"]):
        write = run_python(WITHOUT, "pillow_heif", "enhance", *args)
        lines = write.stderr.strip().splitlines()
        assert write.returncode == 1 and len(lines) == 1 and 'pip install "zerodce[heif]"' in lines[0], lines


def test_avif_round_trip():
    if "AVIF" not in FORMATS.values():
        missing("this Pillow was built without AVIF")
    exif = Image.Exif()
    exif[0x010F] = "ZeroCam"
    buffer = io.BytesIO()
    write_image(buffer, ImageData(marker(), icc_profile=ICC, exif=exif.tobytes()), format="AVIF")
    back = read_image(buffer.getvalue())
    assert back.format == "AVIF" and back.icc_profile == ICC and b"ZeroCam" in back.exif
    assert np.abs(back.pixels.astype(int) - marker()).mean() < 3


class TestRaw:
    @pytest.fixture(autouse=True)
    def _raw(self):
        require("rawpy", "raw")

    def test_dng_demosaiced_to_16bit_with_the_cameras_white_balance(self, tmp_path):
        make_dng(tmp_path / "shot.dng")
        image = read_image(tmp_path / "shot.dng")
        assert image.format == "DNG" and image.pixels.dtype == np.uint16 and image.pixels.shape == (64, 96, 3)
        inner = image.pixels[8:-8, 8:40].reshape(-1, 3).astype(float).mean(0)  # inside the left half
        # Green was recorded twice as strong as red and blue; the camera's balance makes the gray scene gray.
        assert inner.max() / inner.min() < 1.05, inner
        right = image.pixels[8:-8, 56:-8].astype(float).mean()
        assert right > 1.2 * inner.mean()  # the brighter half stays brighter (exposure as shot)
        assert right < 0.9 * 65535  # no automatic brightening

    def test_orientation_applied(self, tmp_path):
        make_dng(tmp_path / "portrait.dng", orientation=6)
        assert read_image(tmp_path / "portrait.dng").pixels.shape == (96, 64, 3)

    def test_every_raw_extension_is_read_and_written_as_16bit_tiff(self):
        assert set(RAW_FORMATS) == {".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf", ".rw2"}
        assert {output_format(fmt) for fmt in RAW_FORMATS.values()} == {"TIFF"}

    def test_api_enhances_a_dng(self, tmp_path):
        from test_enhance import make_model
        from zerodce.enhance import Enhancer

        make_dng(tmp_path / "shot.nef")  # LibRaw goes by content: a DNG named .nef reads the same
        enhancer = Enhancer(make_model("zero_dce_pp"), device="cpu", strength=1.0, denoise="off")
        enhanced = enhancer.enhance_file(tmp_path / "shot.nef", tmp_path / "shot.tif")
        back = read_image(tmp_path / "shot.tif")
        assert back.format == "TIFF" and back.pixels.dtype == np.uint16
        np.testing.assert_array_equal(back.pixels, enhanced.pixels)
        assert back.pixels.mean() > read_image(tmp_path / "shot.nef").pixels.mean() * 1.1

    @pytest.mark.parametrize("content, reason", [(b"not a raw file" * 50, "not a NEF file"), (b"", "empty file")])
    def test_bad_raw_files_are_one_line(self, tmp_path, content, reason):
        (tmp_path / "bad.nef").write_bytes(content)
        with pytest.raises(ImageError, match=f"^cannot read {tmp_path / 'bad.nef'}: {reason}"):
            read_image(tmp_path / "bad.nef")

    def test_truncated_and_oversized(self, tmp_path):
        make_dng(tmp_path / "whole.dng")
        with pytest.raises(ImageError, match="exceeds the limit of 1,000"):
            read_image(tmp_path / "whole.dng", max_pixels=1000)
        (tmp_path / "cut.dng").write_bytes((tmp_path / "whole.dng").read_bytes()[:3000])
        with pytest.raises(ImageError, match=r"cut.dng: corrupt or truncated DNG file \(") as error:
            read_image(tmp_path / "cut.dng")
        assert "b'" not in str(error.value)

    def test_raw_is_never_written(self, tmp_path):
        with pytest.raises(ImageError, match="camera RAW"):
            write_image(tmp_path / "out.dng", marker())


def test_missing_raw_extra_names_the_install(tmp_path):
    require("rawpy", "raw")
    make_dng(tmp_path / "shot.dng")
    result = run_python(WITHOUT, "rawpy", "enhance", tmp_path / "shot.dng")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert any('pip install "zerodce[raw]"' in line and "shot.dng" in line for line in lines), lines


def test_mpo_reads_as_jpeg():
    frames = [Image.fromarray(marker()), Image.fromarray(marker()[::-1].copy())]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="MPO", save_all=True, append_images=frames[1:])
    assert Image.open(io.BytesIO(buffer.getvalue())).format == "MPO"
    assert read_image(buffer.getvalue()).format == "JPEG" and output_format("JPEG") == "JPEG"
