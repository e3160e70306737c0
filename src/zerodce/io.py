"""Reading and writing image files, keeping what the user cares about.

:func:`read_image` turns any file a camera, phone or editor produces into an
:class:`ImageData`: pixels as a numpy array in their native bit depth
(``uint8`` or ``uint16``; gray stays gray, alpha stays a channel) plus the ICC
profile, EXIF and resolution. EXIF orientation is applied to the pixels (and
reset in the kept EXIF, so viewers don't rotate twice). :func:`write_image`
writes one back atomically: to a temporary file in the target folder, then a
rename, so a crash never leaves a half-written output.

Pixel layouts (``ImageData.pixels``):

=================  ==================
``(H, W)``         gray
``(H, W, 2)``      gray + alpha
``(H, W, 3)``      RGB
``(H, W, 4)``      RGBA
=================  ==================

Palette images become RGB (RGBA with transparency), CMYK becomes RGB (its CMYK
ICC profile is dropped, as it no longer applies). Pillow stores 16-bit colour as
8-bit, so 16-bit colour PNG/TIFF files are decoded with PyAV (the ``video``
extra) and written by the small PNG and TIFF writers in this module.

:func:`pixels_to_tensor` and :func:`tensor_to_pixels` convert between these
arrays and the ``(1, 3, H, W)`` float tensors the models take.

Example:
    >>> import io, numpy as np
    >>> buffer = io.BytesIO()
    >>> write_image(buffer, ImageData(np.zeros((2, 3, 4), np.uint16)), format="PNG")
    >>> read_image(buffer.getvalue()).pixels.shape
    (2, 3, 4)
"""

from __future__ import annotations

import io
import os
import struct
import tempfile
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

#: Largest image read by default, in pixels: Pillow's own hard limit (2 x 89,478,485),
#: about 13,000 x 13,000. Larger images are refused as probable decompression bombs.
DEFAULT_MAX_PIXELS = 178_956_970

#: Output formats by file extension.
FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP", ".webp": "WEBP"}
#: The extension written for each output format.
EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "TIFF": ".tif", "BMP": ".bmp", "WEBP": ".webp"}
#: Default ``quality`` of the lossy formats.
DEFAULT_QUALITY = {"JPEG": 95, "WEBP": 90}

_ORIENTATION = 0x0112
#: Channel counts of the layouts with alpha.
_ALPHA_CHANNELS = (2, 4)
#: Spellings of the formats accepted by ``format=``.
_FORMAT_ALIASES = {"JPG": "JPEG", "TIF": "TIFF"}
_FORMATS_WITH = {
    "alpha": {"PNG", "TIFF", "WEBP"},
    "16bit": {"PNG", "TIFF"},
    "icc_profile": {"JPEG", "PNG", "TIFF", "WEBP"},
    "exif": {"JPEG", "PNG", "WEBP"},
    "dpi": {"JPEG", "PNG", "TIFF"},
}

Source = Union[str, os.PathLike, bytes, BinaryIO]
Target = Union[str, os.PathLike, BinaryIO]


class ImageError(ValueError):
    """An image that cannot be read or written; the message is one line naming the file and the reason."""


@dataclass(frozen=True)
class ImageData:
    """Pixels plus what must survive a round trip through the enhancer.

    Attributes:
        pixels: ``(H, W)``, ``(H, W, 2)``, ``(H, W, 3)`` or ``(H, W, 4)``; ``uint8`` or ``uint16``.
        format: Pillow's name of the source format (``"JPEG"``, ``"PNG"``...), if read from a file.
        icc_profile: the embedded colour profile, kept in outputs where the format allows.
        exif: the EXIF block with orientation already applied to ``pixels``.
        dpi: resolution in dots per inch.
    """

    pixels: np.ndarray
    format: str | None = None
    icc_profile: bytes | None = None
    exif: bytes | None = None
    dpi: tuple[float, float] | None = None

    @property
    def has_alpha(self) -> bool:
        """Whether the last channel is alpha."""
        return self.pixels.ndim == 3 and self.pixels.shape[2] in _ALPHA_CHANNELS

    @property
    def megapixels(self) -> float:
        """Pixel count in millions."""
        return self.pixels.shape[0] * self.pixels.shape[1] / 1e6


def format_for_path(path: str | os.PathLike) -> str:
    """The output format of ``path`` from its extension; ``ImageError`` if it is not one we write.

    Example:
        >>> format_for_path("photo.JPEG")
        'JPEG'
    """
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ImageError(f"cannot write {path}: unknown image extension {suffix or '(none)'!r}; "
                         f"use one of {', '.join(sorted(FORMATS))}")
    return FORMATS[suffix]


def _describe(source: Source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return "<bytes>" if isinstance(source, (bytes, bytearray)) else str(getattr(source, "name", "<stream>"))


# --------------------------------------------------------------------------- reading


def read_image(source: Source, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> ImageData:
    """Read an image file into an :class:`ImageData`, EXIF orientation applied.

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
    try:
        with Image.open(source) as im:
            return _decode(im, source, max_pixels)
    except ImageError as exc:
        raise ImageError(f"cannot read {name}: {exc}") from None
    except FileNotFoundError:
        raise ImageError(f"cannot read {name}: no such file") from None
    except PermissionError:
        raise ImageError(f"cannot read {name}: permission denied") from None
    except UnidentifiedImageError:
        raise ImageError(f"cannot read {name}: not an image, or a format we cannot read") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"cannot read {name}: {exc} (Pillow's limit, PIL.Image.MAX_IMAGE_PIXELS)") from None
    except Exception as exc:  # any decoder failure means the same thing to the user
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageError(f"cannot read {name}: corrupt or truncated image ({reason})") from None


def _decode(im: Image.Image, source: str | os.PathLike | BinaryIO, max_pixels: int | None) -> ImageData:
    width, height = im.size
    if max_pixels is not None and width * height > max_pixels:
        raise ImageError(f"{width}x{height} = {width * height:,} pixels exceeds the limit of {max_pixels:,} "
                         "(possible decompression bomb); raise the limit with --max-pixels")
    high_bit_color = _is_16bit_color(im)  # before getexif(), which may load the image and clear im.tile
    exif, orientation = _read_exif(im)
    icc_profile = im.info.get("icc_profile") or None
    if im.mode == "CMYK":
        icc_profile = None  # a CMYK profile does not describe the RGB pixels we produce
    dpi = im.info.get("dpi")
    if high_bit_color:
        if not isinstance(source, (str, os.PathLike)):
            source.seek(0)
        pixels = _decode_16bit_color(source)
    else:
        im.load()
        pixels = pil_to_pixels(im)
    return ImageData(
        pixels=np.ascontiguousarray(_orient(pixels, orientation)),
        format=im.format,
        icc_profile=icc_profile,
        exif=exif,
        dpi=(float(dpi[0]), float(dpi[1])) if dpi else None,
    )


def _read_exif(im: Image.Image) -> tuple[bytes | None, int]:
    """The EXIF block to keep (orientation removed) and the orientation to apply."""
    try:
        exif = im.getexif()
        orientation = int(exif.get(_ORIENTATION, 1))
        if im.format == "TIFF":
            # A TIFF's "EXIF" is its own header (sizes, strips): nothing to carry to another file.
            return None, orientation
        exif.pop(_ORIENTATION, None)
        return (exif.tobytes() if len(exif) else None), orientation
    except Exception:  # a damaged EXIF block should not cost the user the image
        return None, 1


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
    with av.open(os.fspath(source) if isinstance(source, os.PathLike) else source) as container:
        frame = next(container.decode(video=0))
        kind = frame.format.name  # e.g. rgb48be, rgba64be, ya16be
        pixels = frame.to_ndarray(format="rgba64le" if "a" in kind.replace("gray", "") else "rgb48le")
    if kind.startswith(("ya", "gray")):
        return pixels[..., [0, 3]] if pixels.shape[2] == 4 else pixels[..., 0]
    return pixels


def pil_to_pixels(im: Image.Image) -> np.ndarray:
    """The pixels of a PIL image in an :class:`ImageData` layout (``uint8``, or ``uint16`` for 16/32-bit gray).

    Example:
        >>> pil_to_pixels(Image.new("P", (3, 2))).shape
        (2, 3, 3)
    """
    mode = im.mode
    if mode.startswith("I;16"):
        return np.asarray(im).astype(np.uint16)
    if mode == "I":
        return np.asarray(im).clip(0, 65535).astype(np.uint16)
    if mode in ("L", "LA", "RGB", "RGBA"):
        return np.asarray(im)
    if mode == "1":
        return np.asarray(im.convert("L"))
    if mode in ("La", "PA") or (mode == "P" and "transparency" in im.info):
        return np.asarray(im.convert("LA" if mode == "La" else "RGBA"))
    if mode in ("RGBa",):
        return np.asarray(im.convert("RGBA"))
    if mode == "F":
        raise ImageError("32-bit float images are not supported; convert to 16-bit first")
    return np.asarray(im.convert("RGB"))  # P, CMYK, YCbCr, RGBX, HSV, LAB


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

    Metadata goes where the format can hold it (ICC: JPEG, PNG, TIFF, WebP; EXIF:
    JPEG, PNG, WebP). 16-bit pixels stay 16-bit in PNG and TIFF and are rounded
    to 8 bits in the other formats; alpha is dropped in JPEG, which has none.

    Args:
        target: a path (written to a temporary file beside it, then renamed) or a binary stream.
        image: an :class:`ImageData`, or a bare pixel array in one of its layouts.
        format: ``"JPEG"``, ``"PNG"``, ``"TIFF"``, ``"BMP"`` or ``"WEBP"``; by default
            from the path's extension (required for streams).
        quality: for JPEG and WebP, 1-100 (defaults: :data:`DEFAULT_QUALITY`).

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
    data = _encode(_prepare(image, format), format, quality)
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
        pixels = np.round(pixels / 257.0).astype(np.uint8)
    if image.has_alpha and format not in _FORMATS_WITH["alpha"]:
        pixels = pixels[..., 0] if pixels.shape[2] == 2 else pixels[..., :3]
    elif pixels.ndim == 3 and pixels.shape[2] == 2 and (format == "WEBP" or (format == "TIFF" and pixels.dtype == np.uint16)):
        pixels = pixels[..., [0, 0, 0, 1]]  # WebP and Pillow's TIFF reader know alpha only with colour
    return replace(image, pixels=np.ascontiguousarray(pixels))


def _check_pixels(pixels: np.ndarray) -> np.ndarray:
    if pixels.dtype not in (np.uint8, np.uint16):
        raise ImageError(f"pixels must be uint8 or uint16, got {pixels.dtype}")
    if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] in (1, 2, 3, 4))):
        raise ImageError(f"pixels must have shape (H, W) or (H, W, 1..4), got {pixels.shape}")
    if min(pixels.shape[:2]) < 1:
        raise ImageError(f"pixels must not be empty, got shape {pixels.shape}")
    return pixels[..., 0] if pixels.ndim == 3 and pixels.shape[2] == 1 else pixels


def _encode(image: ImageData, format: str, quality: int | None) -> bytes:
    pixels = image.pixels
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


def pixels_to_pil(pixels: np.ndarray) -> Image.Image:
    """A PIL image of an :class:`ImageData` layout; Pillow has no 16-bit colour, so only 16-bit gray is allowed.

    Example:
        >>> pixels_to_pil(np.zeros((2, 3), np.uint16)).mode
        'I;16'
    """
    pixels = _check_pixels(pixels)
    if pixels.dtype == np.uint16:
        if pixels.ndim != 2:
            raise ImageError("PIL images cannot hold 16-bit colour; use a numpy array")
        return Image.fromarray(pixels.astype("<u2"))
    return Image.fromarray(pixels)


_UMASK = os.umask(0)
os.umask(_UMASK)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file in ``path``'s folder, then rename it over ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes files private; outputs get the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


# --------------------------------------------------------------------------- tensors


_TORCH_DTYPES = {np.dtype(np.uint8): torch.uint8, np.dtype(np.uint16): torch.uint16}


def _max_value(dtype: np.dtype) -> float:
    return 255.0 if dtype == np.uint8 else 65535.0 if dtype == np.uint16 else 1.0


def pixels_to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """Colour of an image array as a ``(1, 3, H, W)`` float32 tensor in [0, 1].

    Accepts the :class:`ImageData` layouts in ``uint8``, ``uint16`` or float in
    [0, 1]; gray is repeated to three channels and alpha left out. The result
    is laid out channels-last in memory, as the pixels are (no transposing copy).

    Example:
        >>> pixels_to_tensor(np.full((2, 3), 255, np.uint8)).shape
        torch.Size([1, 3, 2, 3])
    """
    if pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] not in (1, 2, 3, 4)):
        raise ValueError(f"image array must have shape (H, W) or (H, W, C) with C in 1..4, got {pixels.shape}")
    if not (pixels.dtype in _TORCH_DTYPES or np.issubdtype(pixels.dtype, np.floating)):
        raise ValueError(f"image array must be uint8, uint16 or float in [0, 1], got {pixels.dtype}")
    # torch cannot wrap read-only memory (Pillow's arrays are read-only).
    t = torch.from_numpy(pixels if pixels.flags.writeable else pixels.copy())
    t = t.unsqueeze(-1) if t.ndim == 2 else t[..., : 3 if t.shape[2] >= 3 else 1]
    x = t.permute(2, 0, 1).unsqueeze(0).to(torch.float32)
    x = x.mul_(1.0 / _max_value(pixels.dtype)) if pixels.dtype in _TORCH_DTYPES else x
    return x.expand(1, 3, *x.shape[-2:]) if x.shape[1] == 1 else x


#: Pixels per band when converting back from float.
_CONVERT_BAND_PIXELS = 1 << 20
#: ITU-R BT.601 luma, as Pillow converts RGB to gray.
_LUMA = (0.299, 0.587, 0.114)


def tensor_to_pixels(x: torch.Tensor, like: np.ndarray) -> np.ndarray:
    """Inverse of :func:`pixels_to_tensor`: ``(1, 3, H, W)`` in [0, 1] -> an array laid out like ``like``.

    Gray layouts get the luma of the colour channels, alpha is copied from ``like``
    untouched, integers are rounded. Converted in bands of rows, so the float
    temporaries stay small next to a large image.

    Example:
        >>> like = np.zeros((2, 3, 2), np.uint16)
        >>> tensor_to_pixels(torch.ones(1, 3, 2, 3), like)[..., 0].max()
        np.uint16(65535)
    """
    x = x[0].detach()
    height, width = x.shape[-2:]
    gray = like.ndim == 2 or like.shape[2] in (1, 2)
    out = np.empty((height, width, 1) if like.ndim == 2 else like.shape, like.dtype)
    band = max(1, _CONVERT_BAND_PIXELS // max(width, 1))
    for r0 in range(0, height, band):
        part = x[:, r0 : r0 + band].to("cpu", torch.float32)
        if gray:
            part = (part * torch.tensor(_LUMA).view(3, 1, 1)).sum(0, keepdim=True)
        if like.dtype in _TORCH_DTYPES:
            peak = _max_value(like.dtype)
            part = part.mul(peak).round_().clamp_(0.0, peak).to(_TORCH_DTYPES[like.dtype])
        else:
            part = part.clamp(0.0, 1.0).to(getattr(torch, like.dtype.name))
        out[r0 : r0 + band, :, : part.shape[0]] = part.permute(1, 2, 0).numpy()
    if like.ndim == 2:
        return out[..., 0]
    if like.shape[2] in (2, 4):
        out[..., -1] = like[..., -1]
    return out
