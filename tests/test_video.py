"""``zerodce.video`` and ``zerodce video``: timing, audio, colour, flicker and damaged inputs on tiny synthetic videos.

Every video here is made by the test with PyAV (64x48, a couple dozen frames).
The model is :func:`brightness_model`, whose curves are known: ``alpha =
tanh(GAIN * mean(R, G, B))`` per pixel of the downscaled frame, so each frame's
curves follow its brightness (the way a trained model's do) and any
frame-to-frame change is amplified, the worst case for flicker.
"""

from __future__ import annotations

import hashlib
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import require
from test_cli_enhance import zerodce_cli
from zerodce.enhance import Enhancer
from zerodce.models import create_model
from zerodce.video import CurveSmoother, DamagedVideoError, EncoderSettings, VideoError, enhance_video
from zerodce.weights import save_safetensors

av = require("av", "video")

H, W, FPS = 48, 64, 24
GAIN = 4.0


def brightness_model():
    """Zero-DCE++ whose curve map is ``tanh(GAIN * mean(R, G, B))``: one path through the network, the rest zero."""
    model = create_model("zero_dce_pp")
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.conv1.depthwise.weight[:, 0, 1, 1] = 1  # pass R, G, B through
        model.conv1.pointwise.weight[0, :, 0, 0] = 1 / 3  # channel 0 = mean brightness (>= 0, ReLU keeps it)
        model.conv7.depthwise.weight[0, 0, 1, 1] = 1  # conv7 sees conv1's output through the skip connection
        model.conv7.pointwise.weight[:, 0, 0, 0] = GAIN
    return model.eval()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "brightness.safetensors"
    save_safetensors(brightness_model().state_dict(), path)
    return path


@pytest.fixture(scope="module")
def enhancer() -> Enhancer:
    """The model as trained (strength 1, no denoising), so frames can be checked against it exactly."""
    return Enhancer(brightness_model(), device="cpu", strength=1.0, denoise="off")


def dark_scene(n: int = 24, noise: float = 0.02, seed: int = 0, h: int = H, w: int = W) -> np.ndarray:
    """``(n, h, w, 3)`` uint8: a dark gradient with fresh sensor noise each frame and a bright square crossing it."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    base = np.stack([0.05 + 0.2 * xx, 0.05 + 0.15 * yy, 0.1 + 0.1 * xx * yy], -1)
    frames = []
    for i in range(n):
        img = base + rng.normal(0, noise, base.shape)
        x0 = i * w // n
        img[h // 3 : h // 3 + h // 4, x0 : x0 + w // 5] = 0.8
        frames.append((img.clip(0, 1) * 255).round().astype(np.uint8))
    return np.stack(frames)


def write_video(path: Path, frames: np.ndarray, *, codec: str = "libx264", pix_fmt: str = "yuv420p",
                audio: bool = False, pts: list[int] | None = None, time_base: Fraction | None = None,
                options: dict | None = None, rotation: int = 0, rgb_format: str = "rgb24", **tags) -> Path:
    """Encode ``frames`` (N, H, W, 3) with PyAV; optional AAC tone, custom timestamps, rotation, colour tags."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=FPS, width=frames.shape[2], height=frames.shape[1], pix_fmt=pix_fmt)
        stream.codec_context.options = options if options is not None else ({"crf": "10"} if codec == "libx264" else {})
        if time_base is not None:
            stream.codec_context.time_base = time_base
        for tag, value in tags.items():
            setattr(stream.codec_context, tag, value)
        if rotation:
            stream.set_display_rotation(rotation)
        sound = out.add_stream("aac", rate=8000, layout="mono") if audio else None
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format=rgb_format)
            if tags:
                frame = frame.reformat(format=pix_fmt, dst_colorspace=tags.get("colorspace"),
                                       dst_color_range=tags.get("color_range"))
            frame.pts = i if pts is None else pts[i]
            frame.time_base = time_base or Fraction(1, FPS)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
        if sound is not None:
            t = np.arange(int(8000 * len(frames) / FPS)) / 8000
            tone = av.AudioFrame.from_ndarray((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None],
                                              format="fltp", layout="mono")
            tone.sample_rate, tone.pts = 8000, 0
            out.mux(sound.encode(tone))
            out.mux(sound.encode())
    return path


def read_video(path: Path, rgb_format: str = "rgb24") -> dict:
    """Frames (RGB), frame times, stream facts, and the audio packets' bytes."""
    with av.open(str(path)) as inp:
        stream = inp.streams.video[0]
        info = {"size": (stream.width, stream.height), "rate": stream.average_rate,
                "codec": stream.codec_context.name, "pix_fmt": stream.codec_context.pix_fmt,
                "audio": [a.codec_context.name for a in inp.streams.audio]}
        decoded = list(inp.decode(video=0))
        info["frames"] = np.stack([f.to_ndarray(format=rgb_format) for f in decoded])
        info["times"] = [float(f.time) for f in decoded]
        info["rotation"] = decoded[0].rotation
        info["tags"] = (decoded[0].color_range, decoded[0].colorspace)
        inp.seek(0)
        info["audio_packets"] = [bytes(p) for p in inp.demux(audio=0) if p.size] if inp.streams.audio else []
    return info


def yuv_planes(path: Path) -> np.ndarray:
    """All planes of all frames, as stored (no colour conversion)."""
    with av.open(str(path)) as inp:
        frames = list(inp.decode(video=0))
        dtype = "<u2" if frames[0].format.name.endswith("le") else np.uint8
        return np.concatenate([np.frombuffer(bytes(p), dtype) for f in frames for p in f.planes]).astype(np.int64)


def jitter(frames: np.ndarray) -> float:
    """Frame-to-frame change of mean brightness, relative to the mean brightness."""
    means = frames.reshape(len(frames), -1).mean(1)
    return float(np.abs(np.diff(means)).mean() / means.mean())


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(folder: Path) -> list[str]:
    """Temporary files left behind (ours are hidden ``.name.*.part.ext``)."""
    return [p.name for p in folder.iterdir() if ".part" in p.name]


class TestCurveSmoother:
    def test_moving_average(self):
        smooth = CurveSmoother(0.75)
        assert smooth(torch.full((1, 3, 2, 2), 4.0)).unique().item() == 4.0
        assert smooth(torch.zeros(1, 3, 2, 2)).unique().item() == 3.0
        assert smooth(torch.zeros(1, 3, 2, 2)).unique().item() == 2.25

    def test_zero_is_each_frames_own(self):
        smooth, x = CurveSmoother(0.0), torch.rand(1, 3, 4, 4)
        smooth(torch.rand(1, 3, 4, 4))
        assert torch.equal(smooth(x), x)

    def test_new_shape_starts_over(self):
        smooth = CurveSmoother(0.5)
        smooth(torch.zeros(1, 3, 2, 2))
        assert torch.equal(smooth(torch.ones(1, 3, 3, 3)), torch.ones(1, 3, 3, 3))

    @pytest.mark.parametrize("value", [-0.1, 1.0, 1.5])
    def test_rejects_out_of_range(self, value):
        with pytest.raises(ValueError, match=r"\[0, 1\)"):
            CurveSmoother(value)


def test_encoder_settings_validation():
    with pytest.raises(ValueError, match="crf or bitrate"):
        EncoderSettings(crf=18, bitrate=1_000_000)
    with pytest.raises(ValueError, match="bitrate"):
        EncoderSettings(bitrate=0)


class TestKeeps:
    def test_size_rate_count_timestamps_and_audio_packets(self, tmp_path, enhancer):
        src = write_video(tmp_path / "in.mp4", dark_scene(), audio=True)
        before = sha(src)
        report = enhance_video(src, tmp_path / "out.mp4", enhancer)
        a, b = read_video(src), read_video(tmp_path / "out.mp4")
        assert report.frames == len(b["frames"]) == len(a["frames"]) == 24
        assert (report.codec, report.pix_fmt, report.audio_streams) == ("libx264", "yuv420p", 1)
        assert b["size"] == a["size"] and b["rate"] == a["rate"] == FPS
        assert b["times"] == pytest.approx(a["times"], abs=1e-3)
        assert b["audio"] == ["aac"] and b["audio_packets"] == a["audio_packets"]  # copied, not re-encoded
        assert b["frames"].mean() > a["frames"].mean() + 10  # it did brighten
        assert sha(src) == before and leftovers(tmp_path) == []

    @pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
    def test_variable_frame_rate_timestamps(self, tmp_path, enhancer, suffix):
        pts = [0, 40, 100, 110, 200, 260, 270, 400]
        src = write_video(tmp_path / "vfr.mkv", dark_scene(len(pts)), pts=pts, time_base=Fraction(1, 1000))
        enhance_video(src, tmp_path / f"out{suffix}", enhancer)
        assert [round(t * 1000) for t in read_video(tmp_path / f"out{suffix}")["times"]] == pts

    def test_odd_size_kept_with_444(self, tmp_path, enhancer):
        src = write_video(tmp_path / "odd.mkv", dark_scene(6, h=47, w=63), pix_fmt="yuv444p")
        report = enhance_video(src, tmp_path / "out.mp4", enhancer)
        assert report.pix_fmt == "yuv444p" and read_video(tmp_path / "out.mp4")["size"] == (63, 47)

    def test_rotation(self, tmp_path, enhancer):
        src = write_video(tmp_path / "portrait.mp4", dark_scene(4), rotation=90)
        enhance_video(src, tmp_path / "out.mp4", enhancer)
        assert read_video(tmp_path / "out.mp4")["rotation"] == 90

    @pytest.mark.parametrize("tags", [{}, {"color_range": 2, "colorspace": 1}, {"color_range": 1, "colorspace": 1}],
                             ids=["untagged", "full-bt709", "limited-bt709"])
    def test_strength_zero_gives_back_the_input(self, tmp_path, tags):
        """Decode -> RGB -> encode uses the input's matrix and range both ways; a wrong one shifts every level."""
        src = write_video(tmp_path / "in.mkv", dark_scene(4, noise=0.01), options={"crf": "0"}, **tags)
        enhance_video(src, tmp_path / "out.mkv", Enhancer(brightness_model(), device="cpu", strength=0),
                      encoder=EncoderSettings(crf=0))
        a, b = yuv_planes(src), yuv_planes(tmp_path / "out.mkv")
        assert np.abs(a - b).mean() < 0.5 and np.abs(a - b).max() <= 4
        assert read_video(tmp_path / "out.mkv")["tags"] == read_video(src)["tags"]

    def test_ten_bit_stays_ten_bit(self, tmp_path):
        ramp = np.linspace(4000, 60000, H * W).reshape(H, W)  # gray: 8 bits would leave <= 256 levels
        frames = np.repeat(np.stack([ramp] * 3, -1)[None], 3, 0).astype(np.uint16)
        src = write_video(tmp_path / "in.mkv", frames, pix_fmt="yuv420p10le", rgb_format="rgb48le",
                          options={"crf": "0"})
        report = enhance_video(src, tmp_path / "out.mkv", Enhancer(brightness_model(), device="cpu", strength=0),
                               encoder=EncoderSettings(crf=0))
        luma = yuv_planes(tmp_path / "out.mkv")[: H * W]
        assert report.pix_fmt == "yuv420p10le"
        assert len(np.unique(luma)) > 600
        assert np.abs(luma - yuv_planes(src)[: H * W]).max() <= 2


@pytest.mark.parametrize("smoothing", [0.0, 0.5])
def test_frames_are_enhanced_with_smoothed_curves(tmp_path, enhancer, smoothing):
    """Lossless RGB in and out: every output frame is apply(frame, EMA of curves), to the 8-bit level."""
    frames = dark_scene(6)
    src = write_video(tmp_path / "in.mkv", frames, codec="ffv1", pix_fmt="bgr0")
    enhance_video(src, tmp_path / "out.mkv", enhancer, smoothing=smoothing,
                  encoder=EncoderSettings(codec="ffv1", pix_fmt="bgr0"))
    state = None
    for image, got in zip(frames, read_video(tmp_path / "out.mkv")["frames"], strict=True):
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
        maps, padded = enhancer.curves(x)
        state = maps if state is None else smoothing * state + (1 - smoothing) * maps
        expected = (enhancer.apply(x, state, padded)[0].permute(1, 2, 0).numpy() * 255).round()
        assert np.abs(got.astype(int) - expected).max() <= 1


@pytest.mark.parametrize("suffix, codec", [(".mkv", "libx264"), (".mov", "libx264"), (".webm", "libvpx-vp9")])
def test_default_codec_per_container(tmp_path, enhancer, suffix, codec):
    src = write_video(tmp_path / "in.mkv", dark_scene(3))
    assert enhance_video(src, tmp_path / f"out{suffix}", enhancer).codec == codec
    assert read_video(tmp_path / f"out{suffix}")["frames"].shape == (3, H, W, 3)


def stop_jitter(frames: np.ndarray) -> float:
    """Frame-to-frame change of exposure in stops: log2 of the mean linear-light luma."""
    srgb = frames.reshape(len(frames), -1, 3) / 255.0
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    return float(np.abs(np.diff(np.log2((linear @ [0.299, 0.587, 0.114]).mean(1)))).mean())


def test_flicker_lower_with_smoothing_cli(tmp_path, checkpoint):
    """Noise and a moving object make per-frame curves jump; the default smoothing steadies them.

    With the model as trained (--strength 1 --denoise off): without smoothing it
    turns the input's small brightness changes into larger ones; with the default
    smoothing the output must be steadier than that, and no more jittery
    (relative to its brightness) than the input. With the defaults (auto
    strength, denoising) the exposure follows the scene, never by more stops
    than the scene itself changed.
    """
    src = write_video(tmp_path / "in.mp4", dark_scene(24, noise=0.03, seed=1))
    runs, frames = {}, {}
    plain = ["--strength", "1", "--denoise", "off"]
    for name, extra in (("raw", ["--temporal-smoothing", "0", *plain]), ("smoothed", plain), ("default", [])):
        result = zerodce_cli("video", src, "-o", tmp_path / f"{name}.mp4", "--checkpoint", checkpoint,
                             "--device", "cpu", *extra)
        assert result.returncode == 0, result.stderr
        frames[name] = read_video(tmp_path / f"{name}.mp4")["frames"].astype(float)
        runs[name] = jitter(frames[name])
    source_frames = read_video(src)["frames"].astype(float)
    source = jitter(source_frames)
    assert runs["raw"] > source  # the test is only meaningful if the model does add flicker
    assert runs["smoothed"] < runs["raw"]
    assert runs["smoothed"] <= source
    assert stop_jitter(frames["default"]) <= stop_jitter(source_frames)


def test_static_noisy_scene_does_not_shimmer(tmp_path, checkpoint):
    """A still, dark, noisy shot (fresh sensor noise every frame, nothing moving): the default
    pipeline denoises what the curves amplified, so the frame-to-frame variation of each pixel
    is much lower than with denoising off, and the picture is as bright."""
    still = np.median(dark_scene(12, noise=0.0, seed=2), axis=0)  # the scene without its moving square
    noise = np.random.default_rng(3).normal(0, 4, (12, *still.shape))
    frames = np.clip(still[None] + noise, 0, 255).round().astype(np.uint8)
    src = write_video(tmp_path / "static.mkv", frames, codec="ffv1", pix_fmt="bgr0")
    shimmer = {}
    for name, extra in (("default", []), ("off", ["--denoise", "off"])):
        out = tmp_path / f"{name}.mkv"
        result = zerodce_cli("video", src, "-o", out, "--checkpoint", checkpoint, "--device", "cpu",
                             "--codec", "ffv1", "--pix-fmt", "bgr0", *extra)
        assert result.returncode == 0, result.stderr
        video = read_video(out)["frames"].astype(float)
        shimmer[name] = (video.std(axis=0).mean(), video.mean())
    assert shimmer["default"][0] < 0.6 * shimmer["off"][0]
    assert abs(shimmer["default"][1] - shimmer["off"][1]) < 3


def test_cli_writes_and_reports(tmp_path, checkpoint):
    src = write_video(tmp_path / "night.mp4", dark_scene(8), audio=True)
    before = sha(src)
    result = zerodce_cli("video", src, "--checkpoint", checkpoint, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "night_enhanced.mp4"
    assert read_video(out)["frames"].shape[0] == 8 and read_video(out)["audio"] == ["aac"]
    assert f"wrote {out}: 8 frames".encode() in result.stderr and b"frames/s" in result.stderr
    # A second run skips the existing output; --overwrite redoes it.
    stamp = out.stat().st_mtime_ns
    again = zerodce_cli("video", src, "--checkpoint", checkpoint, "--device", "cpu")
    assert again.returncode == 0 and b"skipped" in again.stderr and out.stat().st_mtime_ns == stamp
    assert sha(src) == before and leftovers(tmp_path) == []


class TestDamaged:
    @staticmethod
    def damage(path: Path, how: str) -> Path:
        data = bytearray(path.read_bytes())
        if how == "truncated":
            data = data[: len(data) // 2]
        else:  # garbage over a sixth of the file, in the middle of the frames
            start, stop = len(data) // 3, len(data) // 2
            data[start:stop] = np.random.default_rng(1).integers(0, 256, stop - start, dtype=np.uint8).tobytes()
        damaged = path.with_name(f"{how}{path.suffix}")
        damaged.write_bytes(bytes(data))
        return damaged

    @pytest.mark.parametrize("suffix, how", [(".mkv", "truncated"), (".mkv", "garbage"), (".mp4", "garbage")])
    def test_error_and_valid_output(self, tmp_path, enhancer, suffix, how):
        # Audio only with truncation: copied audio packets are not decoded, so garbage there goes unseen.
        src = self.damage(write_video(tmp_path / f"good{suffix}", dark_scene(24), audio=how == "truncated"), how)
        before = sha(src)
        with pytest.raises(DamagedVideoError, match="damaged input") as info:
            enhance_video(src, tmp_path / "out.mkv", enhancer)
        out = read_video(tmp_path / "out.mkv")  # opens and decodes: a valid file
        # Garbage may cost frames or only be concealed by the decoder; a cut always costs frames.
        assert 0 < info.value.frames == len(out["frames"]) <= 24
        if how == "truncated":
            assert info.value.frames < 24 and out["audio"] == ["aac"]
        assert "\n" not in str(info.value) and sha(src) == before and leftovers(tmp_path) == []

    def test_cli_exit_1_and_valid_output(self, tmp_path, checkpoint):
        src = self.damage(write_video(tmp_path / "good.mkv", dark_scene(24)), "garbage")
        result = zerodce_cli("video", src, "-o", tmp_path / "out.mp4", "--checkpoint", checkpoint, "--device", "cpu")
        assert result.returncode == 1
        last = result.stderr.decode().strip().splitlines()[-1]
        assert last.startswith("zerodce video: error: ") and "damaged input" in last and b"Traceback" not in result.stderr
        assert 0 < len(read_video(tmp_path / "out.mp4")["frames"]) <= 24


class TestBadInput:
    @pytest.mark.parametrize("kind, message", [
        ("text", "not a readable video"), ("empty", "not a readable video"), ("image", "is an image"),
        ("folder", "not a regular file"), ("missing", "no such file"), ("audio-only", "no video stream")])
    def test_one_line_error_nothing_written(self, tmp_path, enhancer, kind, message):
        src = tmp_path / f"in-{kind}.mp4"
        if kind == "text":
            src.write_text("not a video")
        elif kind == "empty":
            src.touch()
        elif kind == "image":
            src = tmp_path / "photo.png"
            av.VideoFrame.from_ndarray(dark_scene(1)[0], format="rgb24").to_image().save(src)
        elif kind == "folder":
            src.mkdir()
        elif kind == "audio-only":
            with av.open(str(src), "w") as out:
                sound = out.add_stream("aac", rate=8000, layout="mono")
                tone = av.AudioFrame.from_ndarray(np.zeros((1, 4096), np.float32), format="fltp", layout="mono")
                tone.sample_rate, tone.pts = 8000, 0
                out.mux(sound.encode(tone))
                out.mux(sound.encode())
        with pytest.raises(VideoError, match=message) as info:
            enhance_video(src, tmp_path / "out.mp4", enhancer)
        assert "\n" not in str(info.value)
        assert not (tmp_path / "out.mp4").exists() and leftovers(tmp_path) == []

    def test_cli_non_video_exit_1(self, tmp_path, checkpoint):
        src = tmp_path / "notes.mp4"
        src.write_text("not a video")
        result = zerodce_cli("video", src, "-o", tmp_path / "out.mp4", "--checkpoint", checkpoint, "--device", "cpu")
        assert result.returncode == 1
        lines = result.stderr.decode().strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"zerodce video: error: {src}: not a readable video (")
        assert not (tmp_path / "out.mp4").exists()

    def test_output_is_input(self, tmp_path, enhancer):
        src = write_video(tmp_path / "in.mp4", dark_scene(2))
        before = sha(src)
        with pytest.raises(VideoError, match="overwrite the input"):
            enhance_video(src, src, enhancer)
        assert sha(src) == before

    @pytest.mark.parametrize("settings, message, size", [
        (EncoderSettings(codec="nope"), "unknown video encoder", (W, H)),
        (EncoderSettings(codec="aac"), "unknown video encoder", (W, H)),
        (EncoderSettings(codec="mpeg4", pix_fmt="yuv444p"), "cannot encode pixel format", (W, H)),
        (EncoderSettings(codec="mpeg4", crf=10), "no constant-quality", (W, H)),
        (EncoderSettings(pix_fmt="yuv420p"), "needs an even width and height", (63, 47))])
    def test_bad_encoder_settings(self, tmp_path, enhancer, settings, message, size):
        src = write_video(tmp_path / "in.mkv", dark_scene(2, w=size[0], h=size[1]), pix_fmt="yuv444p")
        with pytest.raises(VideoError, match=message):
            enhance_video(src, tmp_path / "out.mp4", enhancer, encoder=settings)
        assert not (tmp_path / "out.mp4").exists() and leftovers(tmp_path) == []

    def test_audio_the_container_cannot_take(self, tmp_path, enhancer):
        src = write_video(tmp_path / "in.mp4", dark_scene(2), audio=True)
        with pytest.raises(VideoError, match="aac audio cannot be copied into .webm"):
            enhance_video(src, tmp_path / "out.webm", enhancer)
        assert leftovers(tmp_path) == []

    def test_unknown_output_format(self, tmp_path, enhancer):
        src = write_video(tmp_path / "in.mp4", dark_scene(2))
        with pytest.raises(VideoError, match="unknown video format '.xyz'"):
            enhance_video(src, tmp_path / "out.xyz", enhancer)
        assert leftovers(tmp_path) == []


def test_interrupted_run_leaves_existing_output_alone(tmp_path, monkeypatch):
    src = write_video(tmp_path / "in.mp4", dark_scene(8))
    dst = tmp_path / "out.mp4"
    dst.write_bytes(b"previous result")
    enhancer = Enhancer(brightness_model(), device="cpu")
    calls = []

    def enhance_array(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return Enhancer.enhance_array(enhancer, *args, **kwargs)

    monkeypatch.setattr(enhancer, "enhance_array", enhance_array)
    with pytest.raises(KeyboardInterrupt):
        enhance_video(src, dst, enhancer)
    assert dst.read_bytes() == b"previous result" and leftovers(tmp_path) == []


@pytest.mark.parametrize("args", [["--crf", "18", "--bitrate", "2M"], ["--temporal-smoothing", "1"],
                                  ["--bitrate", "fast"]])
def test_cli_usage_errors_exit_2(tmp_path, args):
    from zerodce.cli import main

    with pytest.raises(SystemExit) as info:
        main(["video", str(tmp_path / "in.mp4"), *args])
    assert info.value.code == 2


class TestBoundsAndIsolation:
    def test_frames_obey_max_pixels(self, tmp_path, enhancer):
        src = write_video(tmp_path / "in.mkv", dark_scene(3))
        with pytest.raises(VideoError, match=r"exceeds the limit of .*--max-pixels"):
            enhance_video(src, tmp_path / "out.mkv", enhancer, max_pixels=W * H - 1)
        assert not (tmp_path / "out.mkv").exists() and leftovers(tmp_path) == []
        assert enhance_video(src, tmp_path / "out.mkv", enhancer, max_pixels=W * H).frames == 3

    def test_cli_max_pixels(self, tmp_path, checkpoint):
        src = write_video(tmp_path / "in.mkv", dark_scene(3))
        result = zerodce_cli("video", src, "-o", tmp_path / "out.mkv", "--max-pixels", "100", "--checkpoint", checkpoint)
        err = result.stderr.decode().strip().splitlines()
        assert result.returncode == 1 and len(err) == 1 and "exceeds the limit of 100" in err[0]

    def test_names_are_local_files_not_protocols(self, tmp_path, enhancer, monkeypatch):
        # To FFmpeg, "data:x.mkv" is a data: URL; a local file of that name must be read as itself.
        write_video(tmp_path / "data:x.mkv", dark_scene(3))
        monkeypatch.chdir(tmp_path)
        assert enhance_video(Path("data:x.mkv"), Path("data:out.mkv"), enhancer).frames == 3
        assert len(read_video(tmp_path / "data:out.mkv")["frames"]) == 3

    def test_log_capture_is_per_call_and_level_restored(self):
        from zerodce.video import _FFmpegLog

        level, error = av.logging.get_level(), av.logging.ERROR
        av.logging.set_level(error)
        for _ in range(3):  # an earlier message held back as a repeat must not surface in the calls below
            av.logging.log(error, "mov", "before the calls")
        av.logging.set_level(level)
        a_done, b_entered, results = threading.Event(), threading.Event(), {}

        def call_b():
            with _FFmpegLog(av) as log:
                b_entered.set()
                a_done.wait(30)
                av.logging.log(error, "mov", "b's own")
                worker = threading.Thread(target=av.logging.log, args=(error, "h264", "b's decoder"))
                worker.start()
                worker.join()
                results["b"] = [message for _, _, message in log.errors("h264")]

        thread = threading.Thread(target=call_b)
        with _FFmpegLog(av) as log:  # a: entered first, left first (PyAV's stack would pop b's capture)
            thread.start()
            b_entered.wait(30)
            av.logging.log(error, "mov", "a's own")
            results["a"] = [message for _, _, message in log.errors("vp9")]
        a_done.set()
        thread.join(30)
        assert results == {"a": ["a's own"], "b": ["b's own", "b's decoder"]}
        assert av.logging.get_level() == level
