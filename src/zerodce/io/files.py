"""Reading and writing image files: :func:`read_image`, :func:`write_image` (atomic)."""

from __future__ import annotations

import io
import os
import struct
import warnings
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from zerodce._atomic import write_atomic
from zerodce._extras import MissingExtraError
from zerodce.io.codecs import (HEADER_BYTES, _decode_16bit_color, _decode_deep_heif, _heif, _heif_encode,
                               _is_16bit_color, _is_heif, _png16, _read_raw, _tiff16)
from zerodce.io.image import (_FORMAT_ALIASES, _FORMATS_WITH, DEFAULT_MAX_PIXELS, DEFAULT_QUALITY, EXTENSIONS,
                              RAW_FORMATS, ImageData, ImageError, _check_pixels, format_for_path, pil_to_pixels,
                              pixels_to_pil, to_8bit)

_ORIENTATION = 0x0112
#: Pillow's names of formats we read as another: a phone's MPO is a JPEG with extra frames (depth, previews).
_READ_AS = {"MPO": "JPEG"}


class ExifWarning(UserWarning):
    """An image was read, but its EXIF block could not be: the output may be wrongly rotated."""


Source = Union[str, os.PathLike, bytes, BinaryIO]
Target = Union[str, os.PathLike, BinaryIO]


def _describe(source: Source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return "<bytes>" if isinstance(source, (bytes, bytearray)) else str(getattr(source, "name", "<stream>"))


# --------------------------------------------------------------------------- reading


def read_image(source: Source, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> ImageData:
    """Read an image file into an :class:`ImageData`, EXIF orientation applied.

    Everything Pillow reads, plus HEIC/HEIF (the ``heif`` extra; 10- and 12-bit files
    give ``uint16`` pixels) and camera RAW files, known by their path's extension
    (:data:`RAW_FORMATS`; not bytes or streams), demosaiced to 16-bit sRGB with the
    camera's white balance (the ``raw`` extra).

    Args:
        source: a path, the file's bytes, or a binary stream.
        max_pixels: refuse images with more pixels (decompression bombs) before
            decoding them; ``None`` for no limit. Pillow's own limit
            (``PIL.Image.MAX_IMAGE_PIXELS``) applies too; the CLI lifts it in favour of this one.

    Raises:
        ImageError: one line naming the file and the reason (missing, empty,
            a directory, unreadable, not an image, corrupt or truncated, too large).
    """
    name = _describe(source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            raise ImageError(f"cannot read {name}: is a directory, expected an image file")
        if path.is_file() and path.stat().st_size == 0:
            raise ImageError(f"cannot read {name}: empty file (0 bytes)")
    elif isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    if isinstance(source, io.BytesIO):
        with source.getbuffer() as view:
            if view.nbytes == 0:
                raise ImageError(f"cannot read {name}: empty input (0 bytes)")
    raw_format = RAW_FORMATS.get(Path(source).suffix.lower()) if isinstance(source, (str, os.PathLike)) else None
    try:
        if raw_format is not None:
            with open(source, "rb") as file:  # Python's open: its errors are the ones named below
                return _read_raw(file, raw_format, max_pixels)
        with open_pil(source) as im:
            return _decode(im, source, max_pixels, name)
    except (ImageError, MissingExtraError) as exc:
        raise ImageError(f"cannot read {name}: {exc}") from None
    except FileNotFoundError:
        raise ImageError(f"cannot read {name}: no such file") from None
    except PermissionError:
        raise ImageError(f"cannot read {name}: permission denied") from None
    except UnidentifiedImageError:
        raise ImageError(f"cannot read {name}: not an image, or a format we cannot read") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"cannot read {name}: {str(exc).rstrip('.')}; raise the limit with --max-pixels "
                         "(in Python: PIL.Image.MAX_IMAGE_PIXELS)") from None
    except MemoryError:
        raise ImageError(f"cannot read {name}: out of memory while decoding; close other programs or "
                         "refuse such images with a lower --max-pixels") from None
    except Exception as exc:  # any decoder failure means the same thing to the user
        if isinstance(exc, OSError) and exc.errno is not None:  # a failed system call, e.g. a symbolic link loop
            raise ImageError(f"cannot read {name}: {exc.strerror}") from None
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageError(f"cannot read {name}: corrupt or truncated image ({reason})") from None


def open_pil(source: str | os.PathLike | BinaryIO, formats: tuple[str, ...] | None = None) -> Image.Image:
    """``PIL.Image.open`` that also opens HEIC/HEIF: pillow-heif's opener is registered the first
    time such a file comes (``MissingExtraError`` naming ``pip install "zerodce[heif]"`` without it).

    Args:
        source: a path or a binary stream (read from its start).
        formats: Pillow's names of the formats to try (``"HEIF"`` among them for HEIF), or all.
    """
    if formats is not None:
        Image.init()
        registered = tuple(f for f in formats if f in Image.OPEN)  # Image.open fails on a name it does not know
    try:
        return Image.open(source, formats=None if formats is None else registered)
    except UnidentifiedImageError:
        if (formats is not None and "HEIF" not in formats) or not _is_heif(_header(source)):
            raise
        _heif()
        if not isinstance(source, (str, os.PathLike)):
            source.seek(0)
        return Image.open(source, formats=formats)


def _header(source: str | os.PathLike | BinaryIO) -> bytes:
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as file:
            return file.read(HEADER_BYTES)
    source.seek(0)
    return source.read(HEADER_BYTES)


def _decode(im: Image.Image, source: str | os.PathLike | BinaryIO, max_pixels: int | None, name: str) -> ImageData:
    width, height = im.size
    if max_pixels is not None and width * height > max_pixels:
        raise ImageError(f"{width}x{height} = {width * height:,} pixels exceeds the limit of {max_pixels:,} "
                         "(possible decompression bomb); raise the limit with --max-pixels")
    high_bit_color = _is_16bit_color(im)  # before getexif(), which may load the image and clear im.tile
    deep_heif = im.format == "HEIF" and im.info.get("bit_depth", 8) > 8  # Pillow's image holds 8 bits of it
    exif, orientation = _read_exif(im, name)
    icc_profile = im.info.get("icc_profile") or None
    if im.mode == "CMYK":
        icc_profile = None  # a CMYK profile does not describe the RGB pixels we produce
    dpi = im.info.get("dpi")
    if high_bit_color or deep_heif:
        if not isinstance(source, (str, os.PathLike)):
            source.seek(0)
        pixels = (_decode_deep_heif if deep_heif else _decode_16bit_color)(source)
    else:
        im.load()
        pixels = pil_to_pixels(im)
    return ImageData(
        pixels=np.ascontiguousarray(_orient(pixels, orientation)),
        format=_READ_AS.get(im.format, im.format),
        icc_profile=icc_profile,
        exif=exif,
        dpi=(float(dpi[0]), float(dpi[1])) if dpi else None,
    )


def _read_exif(im: Image.Image, name: str) -> tuple[bytes | None, int]:
    """The EXIF block to keep (orientation removed) and the orientation to apply.

    A damaged block does not cost the user the image: it is dropped with an
    :class:`ExifWarning` naming the file (the orientation it held is lost with it).
    """
    try:
        exif = im.getexif()
        orientation = int(exif.get(_ORIENTATION, 1))
        # Pillow gives up on a damaged block with a warning that names no file and an empty result.
        if not len(exif) and _declared_entries(im.info.get("exif")):
            raise ValueError("none of its entries could be parsed")
    except OSError:
        raise  # the image itself cannot be loaded (getexif loads PNGs): read_image reports that
    except Exception as exc:  # any parser failure means the same: the block cannot be used
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        warnings.warn(f"{name}: unreadable EXIF block ({reason}): orientation not applied, EXIF not kept",
                      ExifWarning, stacklevel=2)
        return None, 1
    if im.format == "TIFF":
        # A TIFF's "EXIF" is its own header (sizes, strips): nothing to carry to another file.
        return None, orientation
    exif.pop(_ORIENTATION, None)
    return (exif.tobytes() if len(exif) else None), orientation


def _declared_entries(block: bytes | None) -> int:
    """How many entries the first directory of a raw EXIF block says it has (-1: not even that is readable)."""
    if not block:
        return 0
    tiff = block.removeprefix(b"Exif\x00\x00")
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    try:
        (offset,) = struct.unpack(f"{order}I", tiff[4:8])
        (count,) = struct.unpack(f"{order}H", tiff[offset : offset + 2])
    except (struct.error, TypeError):  # TypeError: no byte order mark
        return -1
    return count


def _orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF orientation (the same transforms as ``PIL.ImageOps.exif_transpose``)."""
    transforms = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
        8: lambda a: np.rot90(a, 1),
    }
    return transforms[orientation](pixels) if orientation in transforms else pixels


# --------------------------------------------------------------------------- writing


def write_image(
    target: Target,
    image: ImageData | np.ndarray,
    *,
    format: str | None = None,
    quality: int | None = None,
) -> None:
    """Write ``image`` to a path (atomically) or a binary stream.

    Metadata goes where the format can hold it (ICC: all but BMP; EXIF: JPEG, PNG,
    WebP, HEIF, AVIF). 16-bit pixels stay 16-bit in PNG and TIFF, become 10-bit in
    HEIC and are rounded to 8 bits in the other formats; alpha is dropped in JPEG
    and BMP, which have none. HEIC needs the ``heif`` extra.

    Args:
        target: a path (written to a temporary file beside it, then renamed) or a binary stream.
        image: an :class:`ImageData`, or a bare pixel array in one of its layouts.
        format: one of :data:`EXTENSIONS` (``"JPEG"``, ``"PNG"``, ``"TIFF"``, ``"BMP"``, ``"WEBP"``,
            ``"HEIF"`` alias ``"HEIC"``, ``"AVIF"``); by default from the path's extension
            (required for streams).
        quality: for the lossy formats, 1-100 (defaults: :data:`DEFAULT_QUALITY`).

    Raises:
        ImageError: unknown format, or the file cannot be written.
    """
    if isinstance(image, np.ndarray):
        image = ImageData(image)
    is_path = isinstance(target, (str, os.PathLike))
    name = str(target) if is_path else getattr(target, "name", "<stream>")
    if format is None:
        if not is_path:
            raise ImageError(f"cannot write {name}: give the format of a stream")
        format = format_for_path(target)
    format = _FORMAT_ALIASES.get(format.upper(), format.upper())
    if format not in EXTENSIONS:
        raise ImageError(f"cannot write {name}: unknown format {format!r}; use one of {', '.join(EXTENSIONS)}")
    if quality is not None and not 1 <= quality <= 100:
        raise ImageError(f"cannot write {name}: quality must be in 1..100, got {quality}")
    try:
        data = _encode(_prepare(image, format), format, quality)
    except MissingExtraError as exc:
        raise ImageError(f"cannot write {name}: {exc}") from None
    if not is_path:
        target.write(data)
        return
    try:
        write_atomic(Path(target), data)
    except OSError as exc:
        raise ImageError(f"cannot write {name}: {exc.strerror or exc}") from None


def _prepare(image: ImageData, format: str) -> ImageData:
    """Fit the pixels to what ``format`` can store."""
    pixels = _check_pixels(image.pixels)
    if pixels.dtype == np.uint16 and format not in _FORMATS_WITH["16bit"]:
        pixels = to_8bit(pixels)
    if image.has_alpha and format not in _FORMATS_WITH["alpha"]:
        pixels = pixels[..., 0] if pixels.shape[2] == 2 else pixels[..., :3]
    elif pixels.ndim == 3 and pixels.shape[2] == 2 and (format in ("WEBP", "HEIF", "AVIF")
                                                          or (format == "TIFF" and pixels.dtype == np.uint16)):
        pixels = pixels[..., [0, 0, 0, 1]]  # these (and Pillow's TIFF reader) know alpha only with colour
    return replace(image, pixels=np.ascontiguousarray(pixels))


def _encode(image: ImageData, format: str, quality: int | None) -> bytes:
    pixels = image.pixels
    if format == "HEIF":
        return _heif_encode(image, quality or DEFAULT_QUALITY[format])
    if pixels.dtype == np.uint16 and not (pixels.ndim == 2):
        # Pillow has no 16-bit colour modes.
        return (_png16 if format == "PNG" else _tiff16)(image)
    options: dict = {}
    for key in ("icc_profile", "exif", "dpi"):
        value = getattr(image, key)
        if value is not None and format in _FORMATS_WITH[key]:
            options[key] = value
    if format in DEFAULT_QUALITY:
        options["quality"] = quality or DEFAULT_QUALITY[format]
    if format == "TIFF":
        options["compression"] = "tiff_deflate"
    im = pixels_to_pil(pixels)
    buffer = io.BytesIO()
    im.save(buffer, format=format, **options)
    return buffer.getvalue()
