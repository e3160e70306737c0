"""``zerodce enhance`` end to end: subprocesses for the real command, in-process runs for the many small cases."""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from test_enhance import dark, make_model
from test_io import forged_png
from zerodce._checks import InputError
from zerodce.cli import main
from zerodce.cli._options import add_enhancer_options, enhancer_from_args
from zerodce.io import ImageData, read_image, write_image
from zerodce.models import list_models
from zerodce.weights import save_safetensors

REPO = Path(__file__).resolve().parents[1]
ICC = b"\x00\x00\x02\x0cicc" * 10

# Root reads files whatever their mode, so for root the CLI is run with open() refusing that one file.
_DENY_OPEN = """
import builtins, sys
real_open = builtins.open
def guarded(file, *args, **kwargs):
    if str(file).endswith("noperm.png"):
        raise PermissionError(13, "Permission denied", str(file))
    return real_open(file, *args, **kwargs)
builtins.open = guarded
from zerodce.cli import main
sys.exit(main(sys.argv[1:]))
"""


def zerodce_cli(*args: str | Path, stdin: bytes | None = None, deny_unreadable: bool = False) -> subprocess.CompletedProcess:
    prefix = ["-c", _DENY_OPEN] if deny_unreadable else ["-m", "zerodce.cli"]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.run([sys.executable, *prefix, *map(str, args)], input=stdin, capture_output=True, env=env,
                          timeout=300)


def digests(folder: Path) -> dict[str, str]:
    """Content hash of every file (size and mtime for those this user cannot read)."""
    def digest(p: Path) -> str:
        if os.access(p, os.R_OK):
            return hashlib.sha256(p.read_bytes()).hexdigest()
        return f"{p.stat().st_size}:{p.stat().st_mtime_ns}"

    return {str(p.relative_to(folder)): digest(p) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("weights")
    paths = {name: folder / f"{name}.safetensors" for name in list_models()}
    for name, path in paths.items():
        save_safetensors(make_model(name).state_dict(), path)
    return paths


@pytest.fixture
def in_process(monkeypatch):
    """Undo the process-wide settings ``zerodce enhance`` makes when it runs in this process."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """A folder of good and bad inputs, with same-named files in different subfolders."""
    root = tmp_path_factory.mktemp("photos")
    (root / "sub" / "deep").mkdir(parents=True)
    write_image(root / "a.jpg", dark((20, 30, 3)))
    write_image(root / "sub" / "a.jpg", dark((22, 30, 3)))
    write_image(root / "sub" / "deep" / "rgba.png", dark((12, 14, 4)))
    write_image(root / "g16.png", dark((10, 12, 3), np.uint16))
    write_image(root / "gray.png", dark((9, 11)))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: the file is 16 wide, 10 high; upright it is 10 wide
    Image.fromarray(dark((10, 16, 3))).save(root / "orient.jpg", exif=exif.tobytes(), icc_profile=ICC)
    buffer = io.BytesIO()
    Image.fromarray(dark((64, 64, 3))).save(buffer, format="JPEG")
    (root / "corrupt.jpg").write_bytes(buffer.getvalue()[:300])
    (root / "notimage.png").write_text("not an image")
    (root / "empty.jpg").write_bytes(b"")
    (root / "bomb.png").write_bytes(forged_png(100_000, 100_000))
    write_image(root / "noperm.png", dark((5, 5, 3)))
    (root / "noperm.png").chmod(0)
    return root


GOOD = ["a.jpg", "sub/a.jpg", "sub/deep/rgba.png", "g16.png", "gray.png", "orient.jpg"]
BAD = {
    "corrupt.jpg": "corrupt or truncated",
    "notimage.png": "not an image",
    "empty.jpg": "empty file",
    "bomb.png": "decompression bomb",
    "noperm.png": "permission denied",
}


@pytest.fixture(scope="module")
def folder_run(photos, checkpoints, tmp_path_factory):
    """One real ``zerodce enhance photos -o out`` run: (result, out, digests of the inputs before)."""
    out = tmp_path_factory.mktemp("out")
    before = digests(photos)
    result = zerodce_cli("enhance", photos, "-o", out, "--checkpoint", checkpoints["zero_dce_pp"],
                         deny_unreadable=os.access(photos / "noperm.png", os.R_OK))
    return result, out, before


class TestFolderRun:
    def test_exit_code_and_each_failure_named_once(self, folder_run):
        result, _, _ = folder_run
        stderr = result.stderr.decode()
        assert result.returncode == 1, stderr
        assert "Traceback" not in stderr
        for name, reason in BAD.items():
            lines = [line for line in stderr.splitlines() if name in line]
            assert len(lines) == 1 and reason in lines[0], (name, lines)
        assert f"{len(GOOD)} done, 0 skipped, {len(BAD)} failed" in stderr
        assert "MP/s" in stderr and "img/s" in stderr  # summary and progress bar

    def test_outputs_keep_relative_paths_and_nothing_half_written(self, folder_run):
        _, out, _ = folder_run
        written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
        assert written == sorted(GOOD)

    def test_inputs_byte_identical(self, folder_run, photos):
        _, _, before = folder_run
        assert digests(photos) == before

    def test_formats_kept(self, folder_run, photos):
        _, out, _ = folder_run
        g16 = read_image(out / "g16.png")
        assert g16.pixels.dtype == np.uint16 and g16.pixels.mean() > read_image(photos / "g16.png").pixels.mean()
        assert Image.open(out / "gray.png").mode == "L"
        rgba_in, rgba_out = read_image(photos / "sub/deep/rgba.png").pixels, read_image(out / "sub/deep/rgba.png").pixels
        np.testing.assert_array_equal(rgba_out[..., 3], rgba_in[..., 3])
        oriented = Image.open(out / "orient.jpg")
        assert oriented.size == (10, 16) and oriented.getexif().get(0x0112, 1) == 1
        assert oriented.info["icc_profile"] == ICC

    def test_rerun_skips_then_overwrite_redoes(self, folder_run, photos, checkpoints):
        _, out, _ = folder_run
        again = zerodce_cli("enhance", photos / "sub", "-o", out / "sub", "--checkpoint", checkpoints["zero_dce_pp"])
        assert again.returncode == 0 and "0 done, 2 skipped" in again.stderr.decode()
        forced = zerodce_cli("enhance", photos / "sub", "-o", out / "sub", "--overwrite",
                             "--checkpoint", checkpoints["zero_dce_pp"])
        assert forced.returncode == 0 and "2 done, 0 skipped" in forced.stderr.decode()


def test_stdin_to_stdout(checkpoints):
    buffer = io.BytesIO()
    Image.fromarray(dark((8, 10, 3))).save(buffer, format="JPEG")
    result = zerodce_cli("enhance", "-", "--format", "png", "--checkpoint", checkpoints["zero_dce_pp"],
                         stdin=buffer.getvalue())
    assert result.returncode == 0, result.stderr.decode()
    out = Image.open(io.BytesIO(result.stdout))
    assert out.format == "PNG" and out.size == (10, 8)


def test_usage_error_exit_code(tmp_path):
    result = zerodce_cli("enhance", tmp_path / "a.jpg", tmp_path / "b.jpg", "-o", tmp_path / "one.png")
    assert result.returncode == 2 and "give a folder" in result.stderr.decode()


class TestInProcess:
    @pytest.mark.parametrize("args", [["--quality", "0"], ["--strength", "-1"], ["--tile", "-5"], ["--format", "gif"]])
    def test_bad_options(self, tmp_path, args, capsys):
        with pytest.raises(SystemExit) as exit_info:
            main(["enhance", str(tmp_path), *args])
        assert exit_info.value.code == 2

    def test_precision_bf16_sets_the_network_or_says_why_not(self, checkpoints):
        parser = argparse.ArgumentParser()
        add_enhancer_options(parser)
        zero_dce = ["--model", "zero_dce", "--checkpoint", str(checkpoints["zero_dce"])]
        assert enhancer_from_args(parser.parse_args(zero_dce)).model.inference_dtype == torch.float32
        bf16 = enhancer_from_args(parser.parse_args([*zero_dce, "--precision", "bf16"]))
        assert bf16.model.inference_dtype == torch.bfloat16
        plus = ["--checkpoint", str(checkpoints["zero_dce_pp"]), "--precision", "bf16"]
        with pytest.raises(InputError, match="Zero-DCE"):
            enhancer_from_args(parser.parse_args(plus))
        with pytest.raises(InputError, match="not to OnnxRuntimeModel"):
            enhancer_from_args(parser.parse_args([*zero_dce, "--precision", "bf16", "--backend", "onnxruntime"]))

    def test_bf16_error_is_one_line(self, tmp_path, checkpoints, in_process, capsys):
        write_image(tmp_path / "a.png", dark((6, 6, 3)))
        args = ["enhance", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--precision", "bf16",
                "--checkpoint", str(checkpoints["zero_dce_pp"])]
        assert main(args) == 1
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "precision bf16" in err and "Traceback" not in err
        assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())

    def test_stdio_needs_one_input(self, tmp_path, in_process, capsys):
        assert main(["enhance", "-", str(tmp_path / "x.jpg")]) == 2
        assert "exactly one input" in capsys.readouterr().err

    def test_output_never_replaces_input(self, tmp_path, checkpoints, in_process, capsys):
        write_image(tmp_path / "a.jpg", dark((6, 6, 3)))
        before = (tmp_path / "a.jpg").read_bytes()
        assert main(["enhance", str(tmp_path / "a.jpg"), "--suffix", "", "--checkpoint", str(checkpoints["zero_dce_pp"])]) == 1
        assert "it is an input" in capsys.readouterr().err
        assert (tmp_path / "a.jpg").read_bytes() == before

    def test_beside_inputs_and_previous_outputs_not_reenhanced(self, tmp_path, checkpoints, in_process, capsys):
        write_image(tmp_path / "a.png", dark((6, 6, 3)))
        command = ["enhance", str(tmp_path), "--checkpoint", str(checkpoints["zero_dce_pp"])]
        assert main(command) == 0
        assert (tmp_path / "a_enhanced.png").is_file()
        assert main(command) == 0
        assert "0 done, 1 skipped" in capsys.readouterr().err
        assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "a_enhanced.png"]

    def test_format_quality_and_glob(self, tmp_path, checkpoints, in_process):
        for name in ("x.png", "y.png", "z.tif"):
            write_image(tmp_path / name, dark((16, 16, 3)))
        out = tmp_path / "out"
        assert main(["enhance", str(tmp_path / "*.png"), "-o", str(out), "--format", "jpg", "--quality", "70",
                     "--checkpoint", str(checkpoints["zero_dce_pp"])]) == 0
        assert sorted(p.name for p in out.iterdir()) == ["x.jpg", "y.jpg"]
        assert Image.open(out / "x.jpg").format == "JPEG"

    def test_colliding_outputs_fail_not_overwrite(self, tmp_path, checkpoints, in_process, capsys):
        for folder in ("one", "two"):
            (tmp_path / folder).mkdir()
            write_image(tmp_path / folder / "a.png", dark((6, 6, 3)))
        code = main(["enhance", str(tmp_path / "one"), str(tmp_path / "two"), "-o", str(tmp_path / "out"),
                     "--checkpoint", str(checkpoints["zero_dce_pp"])])
        assert code == 1 and "also the output of" in capsys.readouterr().err
        assert [p.name for p in (tmp_path / "out").iterdir()] == ["a.png"]

    def test_directory_where_file_expected(self, tmp_path, checkpoints, in_process, capsys):
        (tmp_path / "folder.png").mkdir()
        write_image(tmp_path / "a.png", dark((6, 6, 3)))
        (tmp_path / "out" / "a.png").mkdir(parents=True)  # the output path is taken by a folder
        code = main(["enhance", str(tmp_path / "folder.png"), str(tmp_path / "a.png"), "-o", str(tmp_path / "out"),
                     "--checkpoint", str(checkpoints["zero_dce_pp"])])
        err = capsys.readouterr().err
        assert code == 1 and "folder.png: no images in this folder" in err and "a.png: is a folder" in err

    def test_missing_weights_is_one_line(self, tmp_path, in_process, capsys):
        write_image(tmp_path / "a.png", dark((6, 6, 3)))
        assert main(["enhance", str(tmp_path / "a.png"), "--checkpoint", str(tmp_path / "none.safetensors")]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "not found" in err[0]

    @pytest.mark.parametrize("name", list_models())
    def test_tiled_equals_untiled(self, name, tmp_path, checkpoints, in_process):
        write_image(tmp_path / "in.png", dark((130, 170, 3)))
        outputs = []
        for tile in ("0", "48"):
            out = tmp_path / f"tile{tile}.png"
            assert main(["enhance", str(tmp_path / "in.png"), "-o", str(out), "--model", name, "--tile", tile,
                         "--checkpoint", str(checkpoints[name])]) == 0
            outputs.append(read_image(out).pixels.astype(int))
        assert np.abs(outputs[0] - read_image(tmp_path / "in.png").pixels).mean() > 5
        assert np.abs(outputs[0] - outputs[1]).max() <= 1


def test_demo_pipeline(tmp_path, checkpoints, in_process, capsys):
    inputs = sorted((REPO / "demo").glob("*.[jp][pn]g"))
    assert inputs and sum(p.stat().st_size for p in inputs) < 1_000_000
    spec = importlib.util.spec_from_file_location("demo_script", REPO / "scripts" / "demo.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    assert demo.main(["--checkpoint", str(checkpoints["zero_dce_pp"]), "--out", str(tmp_path)]) == 0
    for folder in ("demo", "plain"):  # the defaults, and the network as trained
        assert sorted(p.name for p in (tmp_path / folder).iterdir()) == [p.name for p in inputs]
    sheet = Image.open(tmp_path / "comparison.jpg")
    assert sheet.width == 3 * demo.PANEL_WIDTH and str(tmp_path / "comparison.jpg") in capsys.readouterr().out
    # The default pipeline differs from the network alone (exposure and denoising).
    default, plain = (np.asarray(Image.open(tmp_path / f / inputs[0].name)).astype(int) for f in ("demo", "plain"))
    assert np.abs(default - plain).mean() > 1


def damaged_exif_jpeg(path: Path) -> None:
    """A JPEG whose EXIF block (orientation 6) is cut short: Pillow parses nothing from it."""
    buffer = io.BytesIO()
    Image.fromarray(dark((6, 8, 3))).save(buffer, format="JPEG")
    exif = Image.Exif()
    exif[0x0112] = 6
    payload = exif.tobytes()[:-6]
    data = buffer.getvalue()
    path.write_bytes(data[:2] + b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload + data[2:])


class TestErrorsAndSettings:
    """main(): one line per failure, --debug for bugs, process-wide settings restored."""

    @pytest.fixture
    def image(self, tmp_path) -> Path:
        write_image(tmp_path / "a.png", dark((6, 6, 3)))
        return tmp_path / "a.png"

    def failing_plan(self, monkeypatch, exc: Exception) -> None:
        def plan(*args, **kwargs):
            raise exc

        monkeypatch.setattr("zerodce.cli.enhance.plan", plan)

    @pytest.mark.parametrize("exc", [RuntimeError("boom"), ValueError("boom"), KeyError("boom")])
    def test_a_bug_is_one_line_saying_so(self, image, monkeypatch, in_process, capsys, exc):
        self.failing_plan(monkeypatch, exc)
        assert main(["enhance", str(image)]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "unexpected error" in err[0] and type(exc).__name__ in err[0] and "boom" in err[0]
        assert "--debug" in err[0]

    @pytest.mark.parametrize("where", ["before", "after", "environment"])
    def test_debug_shows_the_traceback(self, image, monkeypatch, in_process, capsys, where):
        self.failing_plan(monkeypatch, RuntimeError("boom"))
        argv = ["enhance", str(image)]
        if where == "environment":
            monkeypatch.setenv("ZERODCE_DEBUG", "1")
        else:
            argv = ["--debug", *argv] if where == "before" else [*argv, "--debug"]
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert "Traceback (most recent call last)" in err and "RuntimeError: boom" in err

    @pytest.mark.parametrize("exc, shown", [
        (OSError(28, "No space left on device"), "[Errno 28] No space left on device"),
        (__import__("zerodce").io.ImageError("cannot read x.png: corrupt"), "cannot read x.png: corrupt"),
    ])
    def test_expected_failures_are_plain_one_liners(self, image, monkeypatch, in_process, capsys, exc, shown):
        self.failing_plan(monkeypatch, exc)
        assert main(["enhance", str(image)]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"zerodce enhance: error: {shown}"]

    def test_settings_apply_during_the_command_and_are_restored(self, tmp_path, checkpoints, in_process, monkeypatch):
        for name in ("a.png", "b.png"):
            write_image(tmp_path / name, dark((6, 6, 3)))
        torch.set_num_threads(4)
        Image.MAX_IMAGE_PIXELS = 12345
        import zerodce.cli.enhance as command

        seen, real = [], command.enhance_files

        def recording(*args, **kwargs):
            seen.append((Image.MAX_IMAGE_PIXELS, torch.get_num_threads()))
            yield from real(*args, **kwargs)

        monkeypatch.setattr(command, "enhance_files", recording)
        for max_pixels, limit in (("1000", 500), ("0", None)):
            assert main(["enhance", str(tmp_path), "-o", str(tmp_path / "out"), "--workers", "2", "--overwrite",
                         "--max-pixels", max_pixels, "--checkpoint", str(checkpoints["zero_dce_pp"])]) == 0
            assert seen.pop() == (limit, 2)
            assert (Image.MAX_IMAGE_PIXELS, torch.get_num_threads()) == (12345, 4)

    def test_stdin_is_read_with_a_limit(self, checkpoints, in_process, monkeypatch, capsys):
        from zerodce.cli.enhance import STDIN_BYTES_PER_PIXEL, STDIN_HEADROOM

        stdin = io.BytesIO(b"\x00" * (10 * STDIN_BYTES_PER_PIXEL + STDIN_HEADROOM + 1))
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(stdin))
        assert main(["enhance", "-", "--max-pixels", "10", "--checkpoint", str(checkpoints["zero_dce_pp"])]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "stdin holds more than" in err[0] and "--max-pixels" in err[0]
        assert stdin.tell() == 10 * STDIN_BYTES_PER_PIXEL + STDIN_HEADROOM + 1  # not one byte more was read

    def test_damaged_exif_is_a_warning_naming_the_file(self, tmp_path, checkpoints, in_process, capsys):
        damaged_exif_jpeg(tmp_path / "tilted.jpg")
        assert main(["enhance", str(tmp_path / "tilted.jpg"), "--checkpoint", str(checkpoints["zero_dce_pp"])]) == 0
        err = capsys.readouterr().err
        warnings = [line for line in err.splitlines() if ": warning: " in line]
        assert len(warnings) == 1 and "tilted.jpg: unreadable EXIF block" in warnings[0], err
        assert "Corrupt EXIF" not in err


class TestSymbolicLinks:
    def test_outputs_never_escape_the_output_folder(self, tmp_path, checkpoints, in_process, capsys):
        (tmp_path / "photos" / "sub").mkdir(parents=True)
        write_image(tmp_path / "photos" / "top.png", dark((6, 6, 3)))
        write_image(tmp_path / "photos" / "sub" / "inner.png", dark((6, 6, 3)))
        outside = tmp_path / "outside"
        outside.mkdir()
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / "sub").symlink_to(outside, target_is_directory=True)
        code = main(["enhance", str(tmp_path / "photos"), "-o", str(tmp_path / "out"),
                     "--checkpoint", str(checkpoints["zero_dce_pp"])])
        err = capsys.readouterr().err
        assert code == 1 and "inner.png: its folder leads out of" in err
        assert list(outside.iterdir()) == []
        assert (tmp_path / "out" / "top.png").is_file()

    def test_symlink_loops_do_not_hang(self, tmp_path, checkpoints):
        tree = tmp_path / "tree" / "a"
        tree.mkdir(parents=True)
        write_image(tree / "x.png", dark((6, 6, 3)))
        for name in ("up1", "up2", "here"):  # 2 links up and one to itself: 3^depth paths if followed
            (tree / name).symlink_to(".." if name.startswith("up") else ".", target_is_directory=True)
        (tmp_path / "loop.png").symlink_to(tmp_path / "loop.png")
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        done = subprocess.run([sys.executable, "-m", "zerodce.cli", "enhance", str(tmp_path / "tree" / "**" / "*.png"),
                               str(tmp_path / "tree"), str(tmp_path / "loop.png"), "-o", str(tmp_path / "out"),
                               "--checkpoint", str(checkpoints["zero_dce_pp"])],
                              capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert "loop.png: Too many levels of symbolic links" in done.stderr
        # x.png is found once by the glob (flat under -o) and once in the folder (its relative path kept).
        assert "2 done, 0 skipped, 1 failed" in done.stderr
        assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png")) == [
            "a/x.png", "x.png"]


class TestPhoneAndCameraFiles:
    """HEIC and camera RAW through the command: default output formats, --format heic, 16 bits."""

    def test_heic_in_heic_out_and_format_heic(self, tmp_path, checkpoints, in_process):
        from test_io_formats import make_heic, marker

        (tmp_path / "IMG_0001.HEIC").write_bytes(make_heic(marker(), orientation=6))
        write_image(tmp_path / "deep.png", dark((20, 24, 3), np.uint16))
        out = tmp_path / "out"
        assert main(["enhance", str(tmp_path / "IMG_0001.HEIC"), str(tmp_path / "deep.png"), "-o", str(out),
                     "--checkpoint", str(checkpoints["zero_dce_pp"])]) == 0
        phone = read_image(out / "IMG_0001.HEIC")
        assert phone.format == "HEIF" and phone.pixels.shape == (64, 48, 3)  # upright, as the phone showed it
        assert phone.pixels.mean() > read_image(tmp_path / "IMG_0001.HEIC").pixels.mean() + 5
        assert main(["enhance", str(tmp_path / "deep.png"), "-o", str(out / "heic"), "--format", "heic",
                     "--checkpoint", str(checkpoints["zero_dce_pp"])]) == 0
        deep = read_image(out / "heic" / "deep.heic")
        assert deep.format == "HEIF" and deep.pixels.dtype == np.uint16  # 16-bit input: a 10-bit HEIC

    def test_raw_becomes_16bit_tiff(self, tmp_path, checkpoints, in_process, capsys):
        from test_io_formats import make_dng

        (tmp_path / "raw").mkdir()
        make_dng(tmp_path / "raw" / "DSC_0001.dng")
        make_dng(tmp_path / "raw" / "DSC_0002.NEF")
        assert main(["enhance", str(tmp_path / "raw"), "-o", str(tmp_path / "out"),
                     "--checkpoint", str(checkpoints["zero_dce_pp"])]) == 0
        assert "2 done" in capsys.readouterr().err
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["DSC_0001.tif", "DSC_0002.tif"]
        out = read_image(tmp_path / "out" / "DSC_0001.tif")
        assert out.format == "TIFF" and out.pixels.dtype == np.uint16 and out.pixels.shape == (64, 96, 3)
        assert out.pixels.mean() > read_image(tmp_path / "raw" / "DSC_0001.dng").pixels.mean() * 1.1
        # Beside the input, and --format as usual.
        assert main(["enhance", str(tmp_path / "raw" / "DSC_0001.dng"), "--format", "png",
                     "--checkpoint", str(checkpoints["zero_dce_pp"])]) == 0
        assert read_image(tmp_path / "raw" / "DSC_0001_enhanced.png").pixels.dtype == np.uint16

    def test_phone_mpo_on_stdin_comes_back_jpeg(self, checkpoints):
        frames = [Image.fromarray(dark((16, 20, 3))) for _ in range(2)]
        buffer = io.BytesIO()
        frames[0].save(buffer, format="MPO", save_all=True, append_images=frames[1:])
        result = zerodce_cli("enhance", "-", "--checkpoint", checkpoints["zero_dce_pp"], stdin=buffer.getvalue())
        assert result.returncode == 0, result.stderr.decode()
        assert Image.open(io.BytesIO(result.stdout)).format == "JPEG"

    def test_symlink_loop_inside_a_folder_is_named(self, tmp_path, checkpoints, in_process, capsys):
        write_image(tmp_path / "a.png", dark((6, 6, 3)))
        (tmp_path / "loop.png").symlink_to("loop.png")
        (tmp_path / "gone.png").symlink_to("nowhere.png")
        assert main(["enhance", str(tmp_path), "-o", str(tmp_path / "out"),
                     "--checkpoint", str(checkpoints["zero_dce_pp"])]) == 1
        err = capsys.readouterr().err
        assert "loop.png: Too many levels of symbolic links" in err and "gone.png: no such file" in err
        assert "1 done, 0 skipped, 2 failed" in err
