"""The in-memory image: :class:`ImageData`, its pixel layouts, the formats we write, and PIL conversion."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, features

from zerodce._checks import ZerodceError

#: Largest image read by default, in pixels: Pillow's own hard limit (2 x 89,478,485),
#: about 13,000 x 13,000. Larger images are refused as probable decompression bombs.
DEFAULT_MAX_PIXELS = 178_956_970

#: Output formats by file extension. AVIF where this Pillow's build has it (recent wheels do);
#: HEIC/HEIF through pillow-heif (the ``heif`` extra).
FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP",
           ".webp": "WEBP", ".heic": "HEIF", ".heif": "HEIF", **({".avif": "AVIF"} if features.check("avif") else {})}
#: Camera RAW formats by file extension: read (through rawpy, the ``raw`` extra), never written.
RAW_FORMATS = {".dng": "DNG", ".cr2": "CR2", ".cr3": "CR3", ".nef": "NEF", ".arw": "ARW", ".raf": "RAF",
               ".orf": "ORF", ".rw2": "RW2"}
#: File name suffixes of the images we read (lower case): folder searches collect these.
IMAGE_SUFFIXES: tuple[str, ...] = (*FORMATS, *RAW_FORMATS)
#: The extension written for each output format.
EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "TIFF": ".tif", "BMP": ".bmp", "WEBP": ".webp", "HEIF": ".heic",
              **({"AVIF": ".avif"} if "AVIF" in FORMATS.values() else {})}
#: Default ``quality`` of the lossy formats.
DEFAULT_QUALITY = {"JPEG": 95, "WEBP": 90, "HEIF": 90, "AVIF": 90}

#: Channel counts of the layouts with alpha.
_ALPHA_CHANNELS = (2, 4)
#: Spellings of the formats accepted by ``format=``.
_FORMAT_ALIASES = {"JPG": "JPEG", "TIF": "TIFF", "HEIC": "HEIF"}
_FORMATS_WITH = {
    "alpha": {"PNG", "TIFF", "WEBP", "HEIF", "AVIF"},
    "16bit": {"PNG", "TIFF", "HEIF"},  # HEIF: 10 bits, the depth phones write
    "icc_profile": {"JPEG", "PNG", "TIFF", "WEBP", "HEIF", "AVIF"},
    "exif": {"JPEG", "PNG", "WEBP", "HEIF", "AVIF"},
    "dpi": {"JPEG", "PNG", "TIFF"},
}


class ImageError(ZerodceError, ValueError):
    """An image that cannot be read or written; the message is one line naming the file and the reason."""


@dataclass(frozen=True)
class ImageData:
    """Pixels plus what must survive a round trip through the enhancer.

    Attributes:
        pixels: ``(H, W)``, ``(H, W, 2)``, ``(H, W, 3)`` or ``(H, W, 4)``; ``uint8`` or ``uint16``.
        format: the source format, if read from a file: Pillow's name (``"JPEG"``, ``"PNG"``, ``"HEIF"``...;
            a phone's MPO is a JPEG and reads as ``"JPEG"``) or a camera RAW format's (``"DNG"``, ``"NEF"``...).
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
    if suffix in RAW_FORMATS:
        raise ImageError(f"cannot write {path}: camera RAW ({suffix}) is read, never written; use .tif for 16 bits")
    if suffix not in FORMATS:
        raise ImageError(f"cannot write {path}: unknown image extension {suffix or '(none)'!r}; "
                         f"use one of {', '.join(sorted(FORMATS))}")
    return FORMATS[suffix]


def output_format(source_format: str | None) -> str:
    """The format an enhanced image is written in by default: its own where we write it, 16-bit TIFF for
    camera RAW (which cannot be written), else PNG (lossless, any bit depth).

    Example:
        >>> output_format("JPEG"), output_format("NEF"), output_format("GIF"), output_format(None)
        ('JPEG', 'TIFF', 'PNG', 'PNG')
    """
    if source_format in EXTENSIONS:
        return source_format
    return "TIFF" if source_format in RAW_FORMATS.values() else "PNG"


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


def _check_pixels(pixels: np.ndarray) -> np.ndarray:
    if pixels.dtype not in (np.uint8, np.uint16):
        raise ImageError(f"pixels must be uint8 or uint16, got {pixels.dtype}")
    if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] in (1, 2, 3, 4))):
        raise ImageError(f"pixels must have shape (H, W) or (H, W, 1..4), got {pixels.shape}")
    if min(pixels.shape[:2]) < 1:
        raise ImageError(f"pixels must not be empty, got shape {pixels.shape}")
    return pixels[..., 0] if pixels.ndim == 3 and pixels.shape[2] == 1 else pixels


def to_8bit(pixels: np.ndarray) -> np.ndarray:
    """16-bit pixels rounded to the nearest 8-bit level (``round(v / 257)``; 257 maps 255 to 65535), any layout.

    The one 16-to-8-bit rounding of the package, in integers: no float copy of a large image.

    Example:
        >>> to_8bit(np.array([0, 128, 129, 65535], np.uint16)).tolist()
        [0, 0, 1, 255]
    """
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype != np.uint16:
        raise ImageError(f"pixels must be uint8 or uint16, got {pixels.dtype}")
    return ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8)
