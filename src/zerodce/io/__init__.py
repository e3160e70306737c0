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
extra) and written by the small PNG and TIFF writers of :mod:`zerodce.io.codecs`.

Phone and camera formats: HEIC/HEIF is read and written through pillow-heif (the
``heif`` extra; 10-bit files read as ``uint16``, 16-bit pixels are written as 10-bit
HEIC), AVIF through Pillow where its build has it, and camera RAW (DNG, CR2, CR3,
NEF, ARW, RAF, ORF, RW2; by file extension) is read through rawpy (the ``raw``
extra): demosaiced to 16-bit sRGB with the camera's white balance, written as
16-bit TIFF by default (:func:`output_format`). A missing extra is a one-line
:class:`ImageError` naming the ``pip install`` command.

:func:`pixels_to_tensor` and :func:`tensor_to_pixels` convert between these
arrays and the ``(1, 3, H, W)`` float tensors the models take.

Modules: :mod:`~zerodce.io.image` (the :class:`ImageData` model, formats, PIL
conversion), :mod:`~zerodce.io.files` (reading and writing files),
:mod:`~zerodce.io.codecs` (what Pillow lacks) and :mod:`~zerodce.io.tensors`.
Every public name is importable from ``zerodce.io``.

Example:
    >>> import io, numpy as np
    >>> buffer = io.BytesIO()
    >>> write_image(buffer, ImageData(np.zeros((2, 3, 4), np.uint16)), format="PNG")
    >>> read_image(buffer.getvalue()).pixels.shape
    (2, 3, 4)
"""

from zerodce.io.codecs import require_codecs
from zerodce.io.files import ExifWarning, Source, Target, open_pil, read_image, write_atomic, write_image
from zerodce.io.image import (DEFAULT_MAX_PIXELS, DEFAULT_QUALITY, EXTENSIONS, FORMATS, IMAGE_SUFFIXES, RAW_FORMATS,
                              ImageData, ImageError, format_for_path, output_format, pil_to_pixels, pixels_to_pil,
                              to_8bit)
from zerodce.io.tensors import pixels_to_tensor, tensor_to_pixels

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_QUALITY",
    "EXTENSIONS",
    "ExifWarning",
    "FORMATS",
    "IMAGE_SUFFIXES",
    "ImageData",
    "ImageError",
    "RAW_FORMATS",
    "Source",
    "Target",
    "format_for_path",
    "open_pil",
    "output_format",
    "pil_to_pixels",
    "pixels_to_pil",
    "pixels_to_tensor",
    "read_image",
    "require_codecs",
    "tensor_to_pixels",
    "to_8bit",
    "write_atomic",
    "write_image",
]
