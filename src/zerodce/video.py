"""Video enhancement: frames stream through decode -> enhance -> encode, with no temporary frames on disk.

:func:`enhance_video` keeps what a viewer cares about: size, frame count, frame
rate and each frame's timestamp, the display rotation, the colour tags, 10-bit
depth, and every audio stream (packets copied, not re-encoded).

Brightness stability: a curve network looks at each frame alone, so noise and
small changes move its curves from frame to frame and the output flickers.
:class:`CurveSmoother` averages the curve maps over time (an exponential moving
average), as the ``curve_filter`` of :meth:`Enhancer.enhance_array
<zerodce.enhance.Enhancer.enhance_array>`: between estimating the curves and applying them.

Failures: an input that cannot be opened as a video raises :class:`VideoError`
and writes nothing. A damaged input (data FFmpeg cannot decode, or reports as
broken, part-way) raises :class:`DamagedVideoError` *after* finishing a valid
output that holds every frame that could be decoded, with its audio. Outputs
are written to a temporary file beside the target and renamed into place, so
the target never holds a half-written file; the input is only ever read.

PyAV (``pip install "zerodce[video]"``) carries its own FFmpeg libraries.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from zerodce._atomic import atomic_path
from zerodce._checks import ZerodceError
from zerodce._extras import import_extra
from zerodce.enhance import Enhancer
from zerodce.io import DEFAULT_MAX_PIXELS

#: Weight of the past in the curve-map moving average: about 1 / (1 - 0.7) = 3 frames of memory,
#: enough to remove the flicker a model adds on noise and moving content (docs/video.md).
DEFAULT_SMOOTHING = 0.7
#: Default constant-quality level per encoder: visually near-lossless for each.
DEFAULT_CRF = {"libx264": 18, "libx265": 20, "libvpx-vp9": 24, "libvpx": 10, "libsvtav1": 24}
#: Bits per pixel per frame for encoders without a CRF mode (about 9 Mb/s at 1080p30).
FALLBACK_BITS_PER_PIXEL = 0.15
#: Container metadata that describes the old file rather than its content.
_STALE_METADATA = {"major_brand", "minor_version", "compatible_brands", "encoder"}


class VideoError(ZerodceError):
    """A video that cannot be read or written; the message is one line for the user."""


class DamagedVideoError(VideoError):
    """The input is damaged; the output is a valid video of the ``frames`` frames that could be decoded."""

    def __init__(self, message: str, frames: int) -> None:
        super().__init__(message)
        self.frames = frames


@dataclass(frozen=True)
class EncoderSettings:
    """How the enhanced video is encoded; ``None`` fields are chosen from the output format and the input.

    Attributes:
        codec: FFmpeg encoder name. Default: ``libx264`` where the container takes
            H.264 (mp4, mov, mkv, avi...), ``libvpx-vp9`` for WebM, else the
            container's own default.
        pix_fmt: pixel format. Default: ``yuv420p`` (``yuv420p10le`` for inputs of
            more than 8 bits); ``yuv444p`` when the width or height is odd, since
            4:2:0 needs even sizes and the output keeps the input's size.
        crf: constant-quality level (lower is better), for encoders that have one;
            default :data:`DEFAULT_CRF`. Exclusive with ``bitrate``.
        bitrate: target bits per second instead of constant quality.
    """

    codec: str | None = None
    pix_fmt: str | None = None
    crf: float | None = None
    bitrate: int | None = None

    def __post_init__(self) -> None:
        if self.crf is not None and self.bitrate is not None:
            raise ValueError("give either crf or bitrate, not both")
        if self.crf is not None and self.crf < 0:
            raise ValueError(f"crf must be >= 0, got {self.crf}")
        if self.bitrate is not None and self.bitrate <= 0:
            raise ValueError(f"bitrate must be > 0, got {self.bitrate}")


@dataclass(frozen=True)
class VideoReport:
    """What :func:`enhance_video` did: ``frames`` written (all decoded), wall-clock ``seconds``,
    the ``codec`` and ``pix_fmt`` written, and the number of ``audio_streams`` copied."""

    frames: int
    seconds: float
    codec: str
    pix_fmt: str
    audio_streams: int

    @property
    def fps(self) -> float:
        """Frames processed per second of wall-clock time."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class CurveSmoother:
    """Exponential moving average of curve maps over time: ``m_t = s * m_{t-1} + (1 - s) * c_t``.

    ``smoothing`` ``s`` in [0, 1): 0 uses each frame's own curves; closer to 1
    remembers longer (about ``1 / (1 - s)`` frames), so curves also follow real
    lighting changes and scene cuts more slowly. One smoother per video.

    Example:
        >>> smooth = CurveSmoother(0.5)
        >>> smooth(torch.zeros(1, 3, 2, 2)).sum().item(), smooth(torch.ones(1, 3, 2, 2))[0, 0, 0, 0].item()
        (0.0, 0.5)
    """

    def __init__(self, smoothing: float = DEFAULT_SMOOTHING) -> None:
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"temporal smoothing must be in [0, 1), got {smoothing}")
        self.smoothing = float(smoothing)
        self._state: torch.Tensor | None = None

    def __call__(self, maps: torch.Tensor) -> torch.Tensor:
        """Smoothed maps; the first call returns ``maps`` itself."""
        if self._state is None or self._state.shape != maps.shape:
            self._state = maps
        else:
            self._state = torch.lerp(maps, self._state, self.smoothing)
        return self._state


def enhance_video(
    src: str | Path,
    dst: str | Path,
    enhancer: Enhancer,
    *,
    smoothing: float = DEFAULT_SMOOTHING,
    encoder: EncoderSettings | None = None,
    progress: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> VideoReport:
    """Enhance every frame of the video ``src`` and write it to ``dst`` (replaced if it exists).

    Args:
        src: input video file; never modified.
        dst: output file; its suffix picks the container (``.mp4``, ``.mkv``,
            ``.mov``, ``.webm``...). Must differ from ``src``.
        enhancer: the loaded model, strength and tiling to use.
        smoothing: temporal smoothing of the curve maps in [0, 1), see :class:`CurveSmoother`.
        encoder: codec and quality; defaults in :class:`EncoderSettings`.
        progress: show a progress bar (frames, frames/s) on stderr.
        max_pixels: refuse a video whose frames have more pixels (checked on the stream's
            header before decoding, and on every frame); ``None`` for no limit.

    Returns:
        A :class:`VideoReport`.

    Raises:
        VideoError: the input is not a readable video, or the output cannot be
            written; nothing is left at ``dst``.
        DamagedVideoError: the input is damaged part-way; ``dst`` is a valid
            video of the frames that could be decoded.

    Example:
        >>> import av, numpy as np, tempfile
        >>> from zerodce.models import create_model
        >>> folder = Path(tempfile.mkdtemp())
        >>> with av.open(str(folder / "dark.mkv"), "w") as out:
        ...     stream = out.add_stream("ffv1", rate=10, width=32, height=24)
        ...     for i in range(3):
        ...         frame = av.VideoFrame.from_ndarray(np.full((24, 32, 3), 20, np.uint8), format="rgb24")
        ...         out.mux(stream.encode(frame))
        ...     out.mux(stream.encode())
        >>> enhancer = Enhancer(create_model("zero_dce_pp"), device="cpu")
        >>> enhance_video(folder / "dark.mkv", folder / "bright.mkv", enhancer).frames
        3
    """
    av = import_extra("av", "video")
    src, dst = Path(src), Path(dst)
    encoder = encoder or EncoderSettings()
    smoother = CurveSmoother(smoothing)
    _check_paths(src, dst)
    started = time.perf_counter()
    damaged = None
    # The temporary output is renamed over dst when this block ends normally, removed if it raises.
    with _FFmpegLog(av) as log, _open_input(av, src, max_pixels) as inp, atomic_path(dst, suffix=dst.suffix) as tmp:
        try:
            frames, vout, audio = _transcode(av, inp, tmp, src, dst, enhancer, smoother, encoder, progress, log,
                                             max_pixels)
        except DamagedVideoError as exc:
            damaged = exc  # the output holds every frame that could be decoded: keep it
        except av.FFmpegError as exc:
            raise VideoError(f"{dst}: cannot write the video ({_reason(exc)})") from None
    if damaged is not None:
        raise damaged
    return VideoReport(frames, time.perf_counter() - started, vout.codec_context.name, vout.codec_context.pix_fmt,
                       audio)


def _check_paths(src: Path, dst: Path) -> None:
    if not src.exists():
        raise VideoError(f"{src}: no such file")
    if not src.is_file():
        raise VideoError(f"{src}: not a regular file")
    if not dst.parent.is_dir():
        raise VideoError(f"{dst}: output folder {dst.parent} does not exist")
    if dst.exists() and dst.samefile(src):
        raise VideoError(f"{dst}: the output would overwrite the input; choose another output path")


class _FFmpegLog:
    """The errors FFmpeg logs during one :func:`enhance_video` call: demuxers and decoders log some damage
    without raising.

    PyAV's log level and its capture of every thread's messages are process-wide, and its captures
    are a stack that concurrent calls would pop for each other. So the first call active raises the
    level to ERROR and installs one shared capture of all threads; the last one restores the level.
    Each call captures its own thread's messages (the demuxer, the converters), and takes from the
    shared capture what its decoder logged meanwhile (decoders log from threads of their own): two
    concurrent calls take each other's decoder errors only when they use the same decoder at once.
    """

    _lock = threading.Lock()
    _users = 0
    _level: int | None = None
    _skip_repeated = True
    _shared: object = None
    _shared_logs: list = []

    def __init__(self, av) -> None:
        self.av = av

    def __enter__(self) -> "_FFmpegLog":
        cls, logging = type(self), self.av.logging
        with cls._lock:
            if cls._users == 0:
                cls._level, cls._skip_repeated = logging.get_level(), logging.get_skip_repeated()
                if cls._level is None or cls._level < logging.ERROR:
                    logging.set_level(logging.ERROR)
                # PyAV holds back repeats of a message and emits them with the next one, in whatever
                # thread logs it: an earlier call's message would surface in this one. Emit what it
                # holds now, into a capture thrown away, and hold nothing back while calls run.
                logging.set_skip_repeated(False)
                with logging.Capture(local=True):
                    logging.log(logging.ERROR, "zerodce", "flush")
                cls._shared = logging.Capture(local=False)
                cls._shared_logs = cls._shared.__enter__()
            cls._users += 1
            self._shared_logs, self._start = cls._shared_logs, len(cls._shared_logs)
        self._own = logging.Capture(local=True)
        self._own_logs = self._own.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        cls = type(self)
        self._own.__exit__(*exc)
        with cls._lock:
            cls._users -= 1
            if cls._users == 0:
                cls._shared.__exit__(None, None, None)
                self.av.logging.set_level(cls._level)
                self.av.logging.set_skip_repeated(cls._skip_repeated)

    def errors(self, decoder: str) -> list[tuple[int, str, str]]:
        """``(level, context, message)`` of the errors logged so far by this call's thread or by ``decoder``."""
        shared = [log for log in self._shared_logs[self._start :] if log[1] == decoder]
        return [log for log in self._own_logs + shared if log[0] <= self.av.logging.ERROR]


def _local(path: Path) -> str:
    """``path`` as an FFmpeg URL that can only name a local file: a relative name such as ``http:x``
    or ``concat:a|b`` is a protocol to FFmpeg."""
    return "file:" + os.path.abspath(path)


#: FFmpeg options that keep an input to local files: playlists (HLS, concat) may name URLs.
_LOCAL_ONLY = {"protocol_whitelist": "file"}


def _open_input(av, src: Path, max_pixels: int | None = None):
    try:
        inp = av.open(_local(src), "r", container_options=_LOCAL_ONLY)
    except av.FFmpegError as exc:
        raise VideoError(f"{src}: not a readable video ({_reason(exc)})") from None
    # Still images open as one-frame videos through FFmpeg's image demuxers.
    if inp.format.name.endswith("_pipe") or inp.format.name == "image2":
        inp.close()
        raise VideoError(f"{src}: this is an image, not a video; use `zerodce enhance` for images")
    vin = _main_video(av, inp)
    if vin is None:
        inp.close()
        raise VideoError(f"{src}: no video stream (streams: {', '.join(s.type for s in inp.streams) or 'none'})")
    width, height = vin.codec_context.width, vin.codec_context.height
    if max_pixels is not None and width * height > max_pixels:
        inp.close()
        raise VideoError(f"{src}: {width}x{height} = {width * height:,} pixels per frame exceeds the limit of "
                         f"{max_pixels:,}; raise it with --max-pixels")
    return inp


def _main_video(av, inp):
    """The first video stream that is not cover art (an attached picture), or ``None``."""
    cover = av.stream.Disposition.attached_pic
    return next((s for s in inp.streams.video if not s.disposition & cover), None)


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def _transcode(av, inp, tmp: Path, src: Path, dst: Path, enhancer: Enhancer, smoother: CurveSmoother,
               encoder: EncoderSettings, progress: bool, log: _FFmpegLog, max_pixels: int | None) -> tuple:
    """Enhance and encode the video frames of ``inp``, copy its audio packets into ``tmp``.

    Returns ``(frames written, output video stream, audio streams copied)``.
    """
    vin = _main_video(av, inp)
    audio_in = list(inp.streams.audio)
    try:
        out = av.open(_local(tmp), "w")
    except ValueError:
        raise VideoError(f"{dst}: unknown video format {dst.suffix!r}; use .mp4, .mkv, .mov or .webm") from None
    frames = 0
    failure = None
    # The output streams are made at the first decoded frame (it tells size, depth, colour
    # and rotation); audio packets that come before it wait in ``pending``.
    vout = writer = None
    audio_out: dict = {}
    pending: list = []

    def copy_audio(packet) -> None:
        packet.stream = audio_out[packet.stream.index]
        out.mux(packet)

    items = _read(vin, inp.demux(vin, *audio_in))
    total = vin.frames or None
    with out, tqdm(total=total, unit="frame", desc=src.name, disable=not progress, leave=False) as bar:
        out.metadata.update({k: v for k, v in inp.metadata.items() if k not in _STALE_METADATA})
        while True:
            try:
                item = next(items, None)
            except av.FFmpegError as exc:
                if frames == 0:
                    raise VideoError(f"{src}: cannot decode the video ({_reason(exc)})") from None
                failure = f"decoding stopped after frame {frames} ({_reason(exc)})"
                break
            if item is None:
                break
            if isinstance(item, av.Packet):
                if vout is None:
                    pending.append(item)
                else:
                    copy_audio(item)
                continue
            if max_pixels is not None and item.width * item.height > max_pixels:
                raise VideoError(f"{src}: frame {frames + 1} is {item.width}x{item.height} = "
                                 f"{item.width * item.height:,} pixels, over the limit of {max_pixels:,}; "
                                 "raise it with --max-pixels")
            if vout is None:
                vout = _video_stream(av, out, vin, item, encoder, dst)
                writer = _FrameWriter(av, vout, item, vin)
                audio_out = {a.index: _copy_stream(out, a, dst) for a in audio_in}
                for packet in pending:
                    copy_audio(packet)
            if item.is_corrupt and failure is None:
                failure = f"frame {frames + 1} is damaged (concealed by the decoder)"
            out.mux(writer.encode(item, _enhance_frame(item, enhancer, smoother, writer)))
            frames += 1
            bar.update()
        if vout is None:
            raise VideoError(f"{src}: the video stream has no decodable frames")
        out.mux(vout.encode(None))
    damage = [f"{name}: {message.strip()}" for _, name, message in log.errors(vin.codec_context.name)]
    if failure is None and damage:
        more = f" (and {len(damage) - 1} more errors)" if len(damage) > 1 else ""
        failure = f"FFmpeg reported: {damage[0]}{more}"
    if failure is not None:
        raise DamagedVideoError(f"{src}: damaged input: {failure}; wrote the {frames} frames that could be "
                                f"decoded to {dst}", frames)
    return frames, vout, len(audio_out)


def _read(vin, packets):
    """Audio packets and decoded video frames in file order; the frames the decoder holds back come last."""
    for packet in packets:
        if packet.size == 0:  # the demuxer's end-of-stream packets; the decoder is flushed below
            continue
        if packet.stream.type == "audio":
            yield packet
        else:
            yield from packet.decode()
    yield from vin.decode(None)


def _copy_stream(out, stream, dst: Path):
    codec = stream.codec_context.name
    supported = out.supported_codecs
    # An empty set means the muxer does not declare its codecs (e.g. MPEG-TS): let it try.
    if supported and codec not in supported:
        raise VideoError(f"{dst}: the input's {codec} audio cannot be copied into {dst.suffix} without "
                         "re-encoding; use an .mkv output, which takes any audio")
    return out.add_stream_from_template(stream)


def _video_stream(av, out, vin, frame, encoder: EncoderSettings, dst: Path):
    """The output video stream, set up from the first decoded frame (size, depth, colour, rotation)."""
    codec_name = encoder.codec or _default_codec(av, out)
    try:
        codec = av.Codec(codec_name, "w")
    except (ValueError, av.FFmpegError):  # PyAV's UnknownCodecError is a ValueError
        codec = None
    if codec is None or codec.type != "video":
        raise VideoError(f"unknown video encoder {codec_name!r}; try libx264, libx265, libvpx-vp9, mpeg4 or ffv1")
    high_bit = _high_bit(frame)
    pix_fmt = encoder.pix_fmt or _default_pix_fmt(codec, frame.width, frame.height, high_bit)
    formats = [f.name for f in codec.video_formats or ()]
    if formats and pix_fmt not in formats:
        raise VideoError(f"{codec_name} cannot encode pixel format {pix_fmt}; it takes: {', '.join(formats)}")
    if _needs_even_size(av, pix_fmt, frame.width, frame.height):
        raise VideoError(f"{pix_fmt} needs an even width and height, the video is {frame.width}x{frame.height}; "
                         "use --pix-fmt yuv444p (the default for odd sizes) to keep the size")
    rate = _frame_rate(vin)
    try:
        stream = out.add_stream(codec_name, rate=rate)
    except ValueError as exc:
        raise VideoError(f"{dst}: {exc}") from None
    ctx = stream.codec_context
    ctx.width, ctx.height, ctx.pix_fmt = frame.width, frame.height, pix_fmt
    ctx.time_base = vin.time_base
    if vin.codec_context.sample_aspect_ratio:
        ctx.sample_aspect_ratio = vin.codec_context.sample_aspect_ratio
    for tag in ("color_range", "colorspace", "color_primaries", "color_trc"):
        setattr(ctx, tag, getattr(frame, tag))
    _set_quality(ctx, codec_name, encoder, frame.width * frame.height * float(rate))
    if frame.rotation:
        stream.set_display_rotation(frame.rotation)
    stream.metadata.update({k: v for k, v in vin.metadata.items() if k in ("language", "title")})
    return stream


def _set_quality(ctx, codec_name: str, encoder: EncoderSettings, pixels_per_second: float) -> None:
    has_crf = "crf" in {o.name for o in ctx.supported_options.private}
    vpx = codec_name.startswith("libvpx")
    if encoder.bitrate is not None:
        ctx.bit_rate = encoder.bitrate
    elif has_crf:
        crf = encoder.crf if encoder.crf is not None else DEFAULT_CRF.get(codec_name, 23)
        # libvpx caps constant quality by a default bitrate unless told there is none.
        ctx.options = {"crf": f"{crf:g}", **({"b:v": "0"} if vpx else {})}
    elif encoder.crf is not None:
        raise VideoError(f"{codec_name} has no constant-quality (crf) mode; give a bitrate instead")
    else:
        ctx.bit_rate = int(FALLBACK_BITS_PER_PIXEL * pixels_per_second)


def _frame_rate(vin) -> Fraction:
    return vin.average_rate or vin.guessed_rate or Fraction(30)


def _high_bit(frame) -> bool:
    return max(c.bits for c in frame.format.components) > 8


def _default_codec(av, out) -> str:
    supported = out.supported_codecs
    for name, family in (("libx264", "h264"), ("libvpx-vp9", "vp9")):
        if name in av.codecs_available and (not supported or family in supported):
            return name
    return out.default_video_codec


def _default_pix_fmt(codec, width: int, height: int, high_bit: bool) -> str:
    base = "yuv444p" if width % 2 or height % 2 else "yuv420p"
    formats = [f.name for f in codec.video_formats or ()]
    for name in [base + "10le", base] if high_bit else [base]:
        if not formats or name in formats:
            return name
    return formats[0]


def _needs_even_size(av, pix_fmt: str, width: int, height: int) -> bool:
    """Whether ``pix_fmt`` has subsampled chroma, which cannot hold an odd ``width x height`` exactly."""
    if not (width % 2 or height % 2):
        return False
    planes = av.VideoFormat(pix_fmt, width, height).components
    return any(c.width != width or c.height != height for c in planes)


class _FrameWriter:
    """Converts frames to tensors and back with the same colour conversion both ways, and times the frames."""

    def __init__(self, av, stream, first, vin) -> None:
        self.av, self.stream = av, stream
        self.rgb_format = "rgb48le" if _high_bit(first) else "rgb24"
        self.colorspace, self.color_range = first.colorspace, first.color_range
        # Accurate rounding and full-resolution chroma: a frame the model leaves unchanged
        # survives YUV -> RGB -> YUV (the default, fast path loses about 1 level on average).
        interpolation = av.video.reformatter.Interpolation
        self.interpolation = (interpolation.BICUBIC | interpolation.ACCURATE_RND | interpolation.FULL_CHR_H_INT
                              | interpolation.FULL_CHR_H_INP)
        self.step = max(round(1 / (_frame_rate(vin) * vin.time_base)), 1)  # one frame period, in time_base units
        self.last_pts: int | None = None

    def to_pixels(self, frame) -> np.ndarray:
        return frame.to_ndarray(format=self.rgb_format, interpolation=self.interpolation)

    def encode(self, source, rgb: np.ndarray) -> list:
        frame = self.av.VideoFrame.from_ndarray(rgb, format=self.rgb_format)
        # Back to YUV with the matrix and range the decoder used to make RGB, so that
        # unchanged pixels come back as they were and the copied colour tags stay true.
        frame = frame.reformat(format=self.stream.codec_context.pix_fmt, dst_colorspace=self.colorspace,
                               dst_color_range=self.color_range, interpolation=self.interpolation)
        pts = source.pts
        if pts is None or (self.last_pts is not None and pts <= self.last_pts):
            # Encoders need strictly increasing timestamps: a missing or repeated one follows the
            # previous frame by one period (the frame is kept: dropping it would shift the audio).
            pts = 0 if self.last_pts is None else self.last_pts + self.step
        frame.pts, frame.time_base = pts, self.stream.codec_context.time_base
        self.last_pts = pts
        return self.stream.encode(frame)


def _enhance_frame(frame, enhancer: Enhancer, smoother: CurveSmoother, writer: _FrameWriter) -> np.ndarray:
    # 8-bit frames of Zero-DCE++ take the enhancer's one-pass 8-bit path.
    return enhancer.enhance_array(writer.to_pixels(frame), curve_filter=smoother)
