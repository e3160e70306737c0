"""Codecs Pillow lacks: 16-bit colour PNG and TIFF writers, and 16-bit colour decoding through PyAV."""

from __future__ import annotations

import os
import struct
import zlib
from typing import BinaryIO

import numpy as np
from PIL import Image

from zerodce.io.image import ImageData, ImageError


def _is_16bit_color(im: Image.Image) -> bool:
    """Whether Pillow would drop the low byte: 16-bit colour or gray + alpha."""
    if not im.tile or im.mode.startswith("I"):
        return False
    args = im.tile[0].args
    rawmode = args[0] if isinstance(args, tuple) and args else args
    return isinstance(rawmode, str) and ";16" in rawmode


def _decode_16bit_color(source: str | os.PathLike | BinaryIO) -> np.ndarray:
    try:
        import av
    except ImportError:
        raise ImageError("16-bit colour images are read with PyAV; install it with: pip install 'zerodce[video]'") from None
    options = None
    if isinstance(source, (str, os.PathLike)):
        # A local file only: to FFmpeg a relative name such as "http:x.png" is a URL.
        source, options = "file:" + os.path.abspath(source), {"protocol_whitelist": "file"}
    with av.open(source, container_options=options) as container:
        frame = next(container.decode(video=0))
        kind = frame.format.name  # e.g. rgb48be, rgba64be, ya16be
        pixels = frame.to_ndarray(format="rgba64le" if "a" in kind.replace("gray", "") else "rgb48le")
    if kind.startswith(("ya", "gray")):
        return pixels[..., [0, 3]] if pixels.shape[2] == 4 else pixels[..., 0]
    return pixels


def _png16(image: ImageData) -> bytes:
    """A 16-bit PNG (colour type from the channel count), with iCCP, eXIf and pHYs chunks."""
    pixels = image.pixels
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    raw = pixels.astype(">u2").reshape(height, -1).view(np.uint8)
    # Filter "Up" on every row: the difference to the row above (wrapping), which compresses photos well.
    rows = np.empty((height, raw.shape[1] + 1), np.uint8)
    rows[:, 0] = 2
    rows[:, 1:] = raw
    rows[1:, 1:] -= raw[:-1]

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    out = [b"\x89PNG\r\n\x1a\n", chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0))]
    if image.icc_profile:
        out.append(chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(image.icc_profile)))
    if image.exif:
        out.append(chunk(b"eXIf", image.exif.removeprefix(b"Exif\x00\x00")))
    if image.dpi:
        ppm = [round(d / 0.0254) for d in image.dpi]
        out.append(chunk(b"pHYs", struct.pack(">IIB", ppm[0], ppm[1], 1)))
    out += [chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)), chunk(b"IEND", b"")]
    return b"".join(out)


def _tiff16(image: ImageData) -> bytes:
    """A 16-bit little-endian TIFF, one deflate-compressed strip, with the ICC profile."""
    pixels = image.pixels
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    strip = zlib.compress(pixels.astype("<u2").tobytes(), 6)
    SHORT, LONG, RATIONAL, UNDEFINED = 3, 4, 5, 7
    tags: list[tuple[int, int, list | bytes]] = [
        (256, LONG, [width]),
        (257, LONG, [height]),
        (258, SHORT, [16] * channels),
        (259, SHORT, [8]),  # Adobe deflate
        (262, SHORT, [2 if channels >= 3 else 1]),  # RGB or BlackIsZero
        (273, LONG, [8]),  # the strip follows the header
        (277, SHORT, [channels]),
        (278, LONG, [height]),
        (279, LONG, [len(strip)]),
        (284, SHORT, [1]),
    ]
    if image.dpi:
        tags += [(282, RATIONAL, [round(image.dpi[0] * 1000), 1000]),
                 (283, RATIONAL, [round(image.dpi[1] * 1000), 1000]), (296, SHORT, [2])]
    if channels in (2, 4):
        tags.append((338, SHORT, [2]))  # unassociated alpha
    tags.append((339, SHORT, [1] * channels))  # unsigned integers
    if image.icc_profile:
        tags.append((34675, UNDEFINED, image.icc_profile))
    tags.sort()
    formats = {SHORT: "H", LONG: "I", RATIONAL: "I", UNDEFINED: "B"}
    ifd_offset = 8 + len(strip) + len(strip) % 2
    extra_offset = ifd_offset + 2 + 12 * len(tags) + 4
    entries, extra = [], b""
    for tag, kind, values in tags:
        payload = bytes(values) if kind == UNDEFINED else struct.pack(f"<{len(values)}{formats[kind]}", *values)
        count = len(values) // 2 if kind == RATIONAL else len(values)
        if len(payload) <= 4:
            field = payload.ljust(4, b"\x00")
        else:
            field = struct.pack("<I", extra_offset + len(extra))
            extra += payload + b"\x00" * (len(payload) % 2)
        entries.append(struct.pack("<HHI", tag, kind, count) + field)
    header = b"II*\x00" + struct.pack("<I", ifd_offset)
    ifd = struct.pack("<H", len(tags)) + b"".join(entries) + struct.pack("<I", 0)
    return header + strip + b"\x00" * (len(strip) % 2) + ifd + extra
