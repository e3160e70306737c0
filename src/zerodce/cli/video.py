"""``zerodce video``: brighten a video, keeping its timing and audio.

Exit code 0 on success (or when the output exists and ``--overwrite`` is not
given: it is skipped), 1 if the input cannot be read, the output cannot be
written, or the input is damaged part-way (the output then holds every frame
that could be decoded), 2 for usage errors.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from zerodce.cli import CommandError
from zerodce.cli._options import add_enhancer_options, add_max_pixels_option, add_overwrite_option, enhancer_from_args
from zerodce.cli.enhance import DEFAULT_SUFFIX
from zerodce.video import DEFAULT_SMOOTHING, EncoderSettings, enhance_video

EXAMPLES = """\
examples:
  zerodce video night.mp4                        writes night_enhanced.mp4
  zerodce video night.mov -o bright.mkv --crf 16
  zerodce video night.mp4 -o small.mp4 --codec libx265 --bitrate 2M
  zerodce video night.mp4 --temporal-smoothing 0  each frame's own curves
"""

_BITRATE = re.compile(r"^(\d+(?:\.\d+)?)([kKmM]?)$")


def _bitrate(text: str) -> int:
    match = _BITRATE.match(text)
    if not match or float(match[1]) <= 0:
        raise argparse.ArgumentTypeError(f"expected bits per second such as 800k, 4M or 2500000, got {text!r}")
    return int(float(match[1]) * {"": 1, "k": 1e3, "m": 1e6}[match[2].lower()])


def _smoothing(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def _crf(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``video`` subcommand."""
    parser = subparsers.add_parser(
        "video", help="brighten a video (frame rate, timestamps and audio kept)",
        description="Brighten a low-light video with Zero-DCE / Zero-DCE++: every frame is enhanced, with the "
                    "curves smoothed over time against flicker; size, frame rate, timestamps, rotation and audio "
                    "(copied, not re-encoded) are kept.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", metavar="IN", help="video file")
    parser.add_argument("-o", "--output", metavar="OUT",
                        help=f"output video; its extension picks the container (.mp4, .mkv, .mov, .webm) "
                             f"(default: IN with {DEFAULT_SUFFIX!r} added)")
    add_enhancer_options(parser)
    parser.add_argument("--temporal-smoothing", type=_smoothing, default=DEFAULT_SMOOTHING, metavar="S",
                        help="weight of the past in a moving average of the curves, in [0, 1): 0 uses each "
                             "frame's own, higher is steadier but follows lighting changes more slowly "
                             "(default: %(default)s)")
    parser.add_argument("--codec", metavar="NAME",
                        help="video encoder (default: libx264; libvpx-vp9 for .webm)")
    parser.add_argument("--pix-fmt", metavar="FMT",
                        help="pixel format (default: yuv420p, yuv420p10le for 10-bit inputs, yuv444p for odd sizes)")
    quality = parser.add_mutually_exclusive_group()
    quality.add_argument("--crf", type=_crf, metavar="Q",
                         help="constant quality, lower is better (default: 18 for libx264, 20 libx265, 24 vp9)")
    quality.add_argument("--bitrate", type=_bitrate, metavar="B", help="target bitrate instead, e.g. 4M or 800k")
    add_overwrite_option(parser)
    add_max_pixels_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``zerodce video``; returns the exit code."""
    src = Path(args.input)
    dst = Path(args.output) if args.output else src.with_name(f"{src.stem}{DEFAULT_SUFFIX}{src.suffix}")
    if dst.exists() and not dst.is_dir() and not args.overwrite and not (src.exists() and dst.samefile(src)):
        print(f"zerodce video: skipped: {dst} exists (--overwrite redoes it)", file=sys.stderr)
        return 0
    if dst.is_dir():
        raise CommandError(f"{dst} is a folder; give an output file name such as {dst / src.name}")
    dst.parent.mkdir(parents=True, exist_ok=True)
    encoder = EncoderSettings(codec=args.codec, pix_fmt=args.pix_fmt, crf=args.crf, bitrate=args.bitrate)
    enhancer = enhancer_from_args(args)
    report = enhance_video(src, dst, enhancer, smoothing=args.temporal_smoothing, encoder=encoder, progress=True,
                           max_pixels=args.max_pixels or None)
    audio = f", {report.audio_streams} audio stream{'s' * (report.audio_streams != 1)} copied"
    print(f"zerodce video: wrote {dst}: {report.frames} frames in {report.seconds:.1f} s "
          f"({report.fps:.3g} frames/s), {report.codec} {report.pix_fmt}{audio}", file=sys.stderr)
    return 0
