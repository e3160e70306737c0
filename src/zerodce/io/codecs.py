"""Codecs Pillow lacks: 16-bit colour PNG and TIFF writers, 16-bit colour decoding through PyAV,
HEIC/HEIF through pillow-heif (the ``heif`` extra) and camera RAW through rawpy (the ``raw`` extra)."""

from __future__ import annotations

import functools
import io
import os
import struct
import zlib
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import BinaryIO

import numpy as np
from PIL import Image

from zerodce._extras import import_extra
from zerodce.io.image import FORMATS, RAW_FORMATS, ImageData, ImageError


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


#: The extra that reads (and writes) each format that needs one: ``(module, extra)``.
_EXTRA_OF = {"HEIF": ("pillow_heif", "heif"), **{fmt: ("rawpy", "raw") for fmt in RAW_FORMATS.values()}}


def require_codecs(paths: Iterable[str | os.PathLike]) -> None:
    """Check, before a batch, that the formats of ``paths`` (by extension) have their extras installed:
    :class:`~zerodce._extras.MissingExtraError` naming the ``pip install`` command otherwise.

    Example:
        >>> require_codecs(["a.jpg", "b.png"])
    """
    formats = {FORMATS.get(suffix) or RAW_FORMATS.get(suffix) for suffix in {Path(p).suffix.lower() for p in paths}}
    for fmt in sorted(formats & _EXTRA_OF.keys()):
        import_extra(*_EXTRA_OF[fmt])


# --------------------------------------------------------------------------- HEIF (pillow-heif)

#: Brands of HEIF files coded with HEVC, as phones write them (``ftyp`` box). AVIF files carry ``avif``
#: or ``avis`` and are Pillow's own.
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"}
#: Bytes of a file's start :func:`_is_heif` looks at.
HEADER_BYTES = 64


def _is_heif(header: bytes) -> bool:
    """Whether a file starting with ``header`` is a HEIF (not AVIF) image, from its ``ftyp`` box.

    Example:
        >>> iphone = (24).to_bytes(4, "big") + b"ftyp" + b"heic" + bytes(4) + b"mif1heic"
        >>> _is_heif(iphone), _is_heif(b"%PNG...")
        (True, False)
    """
    if header[4:8] != b"ftyp":
        return False
    end = min(int.from_bytes(header[:4], "big"), len(header))
    brands = {header[8:12]} | {header[i : i + 4] for i in range(16, end - 3, 4)}  # 12:16 is a version
    return not brands & {b"avif", b"avis"} and bool(brands & _HEIF_BRANDS)


@functools.cache
def _heif() -> ModuleType:
    """pillow_heif with its Pillow opener registered (once); :class:`~zerodce._extras.MissingExtraError`
    naming ``pip install "zerodce[heif]"`` without it."""
    heif = import_extra("pillow_heif", "heif")
    heif.register_heif_opener()
    return heif


def _decode_deep_heif(source: str | os.PathLike | BinaryIO) -> np.ndarray:
    """A 10- or 12-bit HEIF image as ``uint16`` pixels, full scale (its top level becomes 65535).

    libheif applies the file's rotation and mirroring, as Pillow's opener does for 8 bits.
    """
    heif_file = _heif().open_heif(source, convert_hdr_to_8bit=False)
    depth = int(heif_file.info["bit_depth"])
    levels = np.asarray(heif_file) >> (16 - depth)  # pillow-heif puts the levels at the top of 16 bits
    top = (1 << depth) - 1
    return ((levels.astype(np.uint32) * 65535 + top // 2) // top).astype(np.uint16)


def _heif_encode(image: ImageData, quality: int) -> bytes:
    """A HEIC (HEVC in HEIF): 8-bit, or 10-bit for 16-bit pixels, with EXIF and the ICC profile.

    ``image`` is gray, RGB or RGBA (gray + alpha is written as RGBA by the caller).
    """
    pixels = image.pixels
    deep = pixels.dtype == np.uint16
    if deep:
        # The nearest 10-bit level, handed over at the top of 16 bits (pillow-heif keeps the high 10).
        pixels = (((pixels.astype(np.uint32) * 1023 + 32767) // 65535) << 6).astype("<u2")
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[channels] + (";16" if deep else "")
    heif_file = _heif().from_bytes(mode=mode, size=(pixels.shape[1], pixels.shape[0]),
                                   data=np.ascontiguousarray(pixels).tobytes())
    options = {key: getattr(image, key) for key in ("exif", "icc_profile") if getattr(image, key)}
    buffer = io.BytesIO()
    heif_file.save(buffer, quality=quality, **options)
    return buffer.getvalue()


# --------------------------------------------------------------------------- camera RAW (rawpy)


def _read_raw(file: BinaryIO, format: str, max_pixels: int | None) -> ImageData:
    """Demosaic a camera RAW file to 16-bit sRGB with the camera's white balance and orientation.

    The exposure is left as shot (no automatic brightening): darkness is the enhancer's to lift.
    EXIF stays behind (LibRaw does not hand it over); the pixels are sRGB, which needs no profile.
    """
    rawpy = import_extra("rawpy", "raw")
    try:
        with rawpy.imread(file) as raw:
            width, height = raw.sizes.width, raw.sizes.height
            if max_pixels is not None and width * height > max_pixels:
                raise ImageError(f"{width}x{height} = {width * height:,} pixels exceeds the limit of "
                                 f"{max_pixels:,} (possible decompression bomb); raise the limit with --max-pixels")
            pixels = raw.postprocess(use_camera_wb=True, no_auto_bright=True, output_bps=16)
    except rawpy.LibRawFileUnsupportedError:
        raise ImageError(f"not a {format} file, or a camera RAW that LibRaw cannot read") from None
    except rawpy.LibRawError as exc:
        reason = exc.args[0] if exc.args else ""
        reason = (reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)).strip()
        reason = reason or type(exc).__name__
        raise ImageError(f"corrupt or truncated {format} file ({reason})") from None
    return ImageData(np.ascontiguousarray(pixels), format=format)
