"""The enhancer: a loaded model plus everything around it (strength, tiling, devices, files).

:class:`Enhancer` holds a model and enhances images of any size with bounded
memory: tensors, numpy arrays, PIL images and :class:`~zerodce.io.ImageData`,
each returned as the type, dtype and layout it was given. It keeps no per-call
state, so one object can serve many threads. :func:`enhance` is the one-call
form, and :func:`enhance_files` streams files through one enhancer, overlapping
decoding, enhancing and encoding.

Large images are processed in pieces whose result equals the whole-image result:

* ``scale_factor > 1`` (Zero-DCE++ by default): the curve network runs once on
  the downscaled image (small), then curves are upsampled and applied in bands
  of ``tile`` rows, so the full-resolution curve map never exists at once.
* ``scale_factor == 1`` (Zero-DCE): the network runs on ``tile x tile`` tiles
  with an overlap wider than its receptive field (7 pixels), so tiles are seamless.
"""

from __future__ import annotations

import functools
import itertools
import warnings
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator, Literal, TypeVar, Union

import numpy as np
import torch
from PIL import Image

from zerodce import _native
from zerodce._checks import check_image_tensor
from zerodce._device import resolve_device
from zerodce.curves import apply_curves, apply_curves_fused, step_count
from zerodce.io import (DEFAULT_MAX_PIXELS, ImageData, ImageError, pil_to_pixels, pixels_to_pil, pixels_to_tensor,
                        read_image, tensor_to_pixels, write_image)
from zerodce.models import DEFAULT_MODEL, DCENet, create_model
from zerodce.models._dce_net import apply_low_res_curves

#: Receptive-field radius of DCE-Net (seven 3x3 convolutions) plus a margin.
TILE_OVERLAP = 16
DEFAULT_TILE = 512

#: A function from curve maps to the curve maps to apply (same shape), e.g. temporal smoothing.
CurveFilter = Callable[[torch.Tensor], torch.Tensor]

#: Anything :meth:`Enhancer.enhance` takes; it returns the same type.
ImageLike = TypeVar("ImageLike", torch.Tensor, np.ndarray, Image.Image, ImageData)


class Enhancer:
    """Enhance images with a Zero-DCE model.

    Args:
        model: a registered model name, or a model instance.
        checkpoint: weights file; ``None`` loads the shipped weights for a name.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or a ``torch.device``.
        strength: scales the curve maps ``alpha`` (clamped to [-1, 1]): 0 leaves
            the image unchanged, 1 is the model as trained, above 1 brightens more.
        tile: tile side / band height in pixels for large images; 0 disables tiling.
        scale_factor: override the model's curve-estimation downscale factor.

    Example:
        >>> from zerodce.models import create_model
        >>> enhancer = Enhancer(create_model("zero_dce_pp"), device="cpu")
        >>> enhancer.enhance_tensor(torch.rand(1, 3, 20, 30)).shape
        torch.Size([1, 3, 20, 30])
    """

    def __init__(
        self,
        model: str | DCENet = DEFAULT_MODEL,
        checkpoint: str | Path | None = None,
        device: str | torch.device = "auto",
        strength: float = 1.0,
        tile: int = DEFAULT_TILE,
        scale_factor: int | None = None,
    ) -> None:
        if strength < 0:
            raise ValueError(f"strength must be >= 0, got {strength}")
        if tile < 0:
            raise ValueError(f"tile must be >= 0 (0 disables tiling), got {tile}")
        self.device = resolve_device(device)
        if isinstance(model, str):
            kwargs = {} if scale_factor is None else {"scale_factor": scale_factor}
            model = create_model(model, pretrained=checkpoint is None, checkpoint=checkpoint, **kwargs)
        elif scale_factor is not None or checkpoint is not None:
            raise ValueError("scale_factor and checkpoint apply to a model name, not to a model instance")
        self.model = model.to(self.device).eval()
        self.strength = float(strength)
        self.tile = int(tile)

    def _scaled(self, curves: torch.Tensor) -> torch.Tensor:
        if self.strength == 1.0:
            return curves
        return (curves * self.strength).clamp(-1.0, 1.0)

    def _tiles(self, h: int, w: int):
        """``(core, context)`` slice pairs covering an ``h x w`` image; one pair if it fits a tile."""
        t, o = self.tile, TILE_OVERLAP
        if not t or (h <= t and w <= t):
            yield (slice(0, h), slice(0, w)), (slice(0, h), slice(0, w))
            return
        for r0 in range(0, h, t):
            for c0 in range(0, w, t):
                r1, c1 = min(r0 + t, h), min(c0 + t, w)
                yield (slice(r0, r1), slice(c0, c1)), (slice(max(r0 - o, 0), min(r1 + o, h)), slice(max(c0 - o, 0), min(c1 + o, w)))

    @staticmethod
    def _crop(piece: torch.Tensor, core: tuple[slice, slice], context: tuple[slice, slice]) -> torch.Tensor:
        (r, c), (pr, pc) = core, context
        return piece[..., r.start - pr.start : r.stop - pr.start, c.start - pc.start : c.stop - pc.start]

    @torch.inference_mode()
    def curves(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Curve maps of ``x`` before strength: ``(maps, padded_size)``.

        For ``scale_factor > 1`` the maps are at the network's (low) resolution;
        otherwise full resolution, estimated tile by tile. Video smooths these over
        time and passes them to :meth:`apply`.
        """
        check_image_tensor(x, "x")
        x = x.to(self.device, torch.float32)
        if self.model.scale_factor > 1:
            return self.model.estimate_low_res_curves(x)
        h, w = x.shape[-2:]
        maps = x.new_empty(x.shape[0], self.model.out_channels, h, w)
        for core, context in self._tiles(h, w):
            maps[..., core[0], core[1]] = self._crop(self.model.estimate_curves(x[..., context[0], context[1]]), core, context)
        return maps, (h, w)

    @torch.inference_mode()
    def apply(self, x: torch.Tensor, maps: torch.Tensor, padded: tuple[int, int]) -> torch.Tensor:
        """Apply curve maps from :meth:`curves` (with strength) to ``x``, in bands of ``tile`` rows."""
        x = x.to(self.device, torch.float32)
        maps = self._scaled(maps.to(self.device, torch.float32))
        h, w = x.shape[-2:]
        band = self.tile or h
        out = torch.empty_like(x)
        for r0 in range(0, h, band):
            r1 = min(r0 + band, h)
            # Fused: curves are upsampled block by block where they are applied, written straight into out.
            if self.model.scale_factor > 1:
                apply_low_res_curves(x[..., r0:r1, :], maps, padded, self.model.iterations, r0, out=out[..., r0:r1, :])
            else:
                apply_curves_fused(x[..., r0:r1, :], maps[..., r0:r1, :], self.model.iterations, out=out[..., r0:r1, :])
        return out

    @torch.inference_mode()
    def enhance_tensor(self, x: torch.Tensor, curve_filter: CurveFilter | None = None) -> torch.Tensor:
        """Enhance ``(B, 3, H, W)`` float in [0, 1]; returns the same shape, dtype and device.

        ``curve_filter`` maps the curve maps of :meth:`curves` to the ones applied
        (video smooths them over time); with it, Zero-DCE's full-resolution maps are
        estimated for the whole image before any is applied.
        """
        check_image_tensor(x, "x")
        if not x.numel():  # nothing to enhance (the network cannot run on an empty image)
            return x.clone()
        out_device, out_dtype = x.device, x.dtype
        x = x.to(self.device, torch.float32)
        if self.model.scale_factor > 1 or curve_filter is not None:
            maps, padded = self.curves(x)
            y = self.apply(x, maps if curve_filter is None else curve_filter(maps), padded)
        else:
            # Estimate and apply per tile, so full-resolution curve maps never exist at once.
            y = torch.empty_like(x)
            for core, context in self._tiles(*x.shape[-2:]):
                piece = x[..., context[0], context[1]]
                enhanced = apply_curves(piece, self._scaled(self.model.estimate_curves(piece)), self.model.iterations)
                y[..., core[0], core[1]] = self._crop(enhanced, core, context)
        return y.to(out_device, out_dtype)

    def enhance_array(self, pixels: np.ndarray, curve_filter: CurveFilter | None = None) -> np.ndarray:
        """Enhance an image array, returning the same shape and dtype.

        Args:
            pixels: ``(H, W)`` gray, ``(H, W, 2)`` gray + alpha, ``(H, W, 3)`` RGB or
                ``(H, W, 4)`` RGBA; ``uint8``, ``uint16`` or float in [0, 1]. Gray
                stays gray (the luma of the enhanced colour), alpha is copied untouched,
                and 16-bit values are processed in float without 8-bit rounding.
            curve_filter: as for :meth:`enhance_tensor`.

        Example:
            >>> from zerodce.models import create_model
            >>> enhancer = Enhancer(create_model("zero_dce_pp"), device="cpu")
            >>> enhancer.enhance_array(np.zeros((5, 7, 4), np.uint16)).dtype
            dtype('uint16')
        """
        if np.issubdtype(pixels.dtype, np.floating) and pixels.size and not (0.0 <= pixels.min() and pixels.max() <= 1.0):
            raise ValueError("float image arrays must hold values in [0, 1]; divide 8-bit values by 255")
        if not pixels.size:
            return pixels.copy()
        enhanced = self._enhance_rgb8(pixels, curve_filter)
        if enhanced is not None:
            return enhanced
        return tensor_to_pixels(self.enhance_tensor(pixels_to_tensor(pixels), curve_filter), like=pixels)

    @torch.inference_mode()
    def _enhance_rgb8(self, pixels: np.ndarray, curve_filter: CurveFilter | None) -> np.ndarray | None:
        """8-bit RGB(A) straight to 8-bit with the compiled kernel (Zero-DCE++ style, on the CPU).

        The general path makes a float copy of the image, applies the curves and
        rounds back: three full passes over a 4x larger image. Here the network
        reads its few pixels from the 8-bit image and the kernel converts, applies
        and rounds each row in one pass, giving what the general path gives
        (rounding half to even either way). ``None`` where it does not apply.
        """
        if not (pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] in (3, 4)
                and isinstance(self.model, DCENet) and self.model.scale_factor > 1
                and self.device.type == "cpu" and _native.available()):
            return None
        with warnings.catch_warnings():
            # Decoded images are read-only arrays; nothing here writes to the input.
            warnings.filterwarnings("ignore", "The given NumPy array is not writable")
            x = torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0)[:, :3]
        maps, padded = self.model.estimate_low_res_curves(x)  # converts only the pixels the network reads
        if curve_filter is not None:
            maps = curve_filter(maps)
        out = np.empty_like(pixels)
        target = torch.from_numpy(out).permute(2, 0, 1).unsqueeze(0)[:, :3]
        steps = step_count(maps.shape[1], self.model.iterations)
        if not _native.apply_low_res(x, self._scaled(maps), padded, steps, 0, target):
            return None
        if pixels.shape[2] == 4:
            out[..., 3] = pixels[..., 3]
        return out

    def enhance(self, image: ImageLike) -> ImageLike:
        """Enhance a tensor ``(B, 3, H, W)``, a numpy array, a PIL image or an :class:`~zerodce.io.ImageData`.

        Returns the same type, with the same dtype and shape (see :meth:`enhance_tensor`
        and :meth:`enhance_array`). PIL images keep their mode where it can hold
        the result (palette, bilevel and CMYK images come back RGB, or RGBA
        with transparency) and their ICC profile, EXIF and resolution.
        """
        if isinstance(image, torch.Tensor):
            return self.enhance_tensor(image)
        if isinstance(image, np.ndarray):
            return self.enhance_array(image)
        if isinstance(image, ImageData):
            return replace(image, pixels=self.enhance_array(image.pixels))
        if isinstance(image, Image.Image):
            out = pixels_to_pil(self.enhance_array(pil_to_pixels(image)))
            out.info.update({k: image.info[k] for k in ("icc_profile", "exif", "dpi") if k in image.info})
            return out
        raise TypeError(f"expected a torch.Tensor, numpy array, PIL image or ImageData, got {type(image).__name__}")

    def enhance_file(
        self,
        source: str | Path | bytes | BinaryIO,
        target: str | Path | BinaryIO,
        *,
        format: str | None = None,
        quality: int | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> ImageData:
        """Read ``source``, enhance it and write ``target`` (atomically); returns the enhanced image.

        Bit depth, gray, alpha, ICC profile and EXIF are kept where the output
        format allows (see :func:`zerodce.io.write_image`). Raises
        :class:`~zerodce.io.ImageError` for a file that cannot be read or written.
        """
        enhanced = self.enhance(read_image(source, max_pixels=max_pixels))
        write_image(target, enhanced, format=format, quality=quality)
        return enhanced


@functools.lru_cache(maxsize=4)
def _cached_enhancer(model: str, checkpoint: str | None, device: str, strength: float, tile: int) -> Enhancer:
    return Enhancer(model, checkpoint=checkpoint, device=device, strength=strength, tile=tile)


def enhance(
    image: ImageLike,
    model: str | DCENet = DEFAULT_MODEL,
    strength: float = 1.0,
    *,
    checkpoint: str | Path | None = None,
    device: str = "auto",
    tile: int = DEFAULT_TILE,
) -> ImageLike:
    """Brighten a low-light image; returns the same type, dtype and shape.

    Args:
        image: a PIL image, a numpy array (``(H, W)`` or ``(H, W, C)``; ``uint8``,
            ``uint16`` or float in [0, 1]) or a float tensor ``(B, 3, H, W)``.
        model: a registered model name (with its shipped weights, or ``checkpoint``) or a model.
        strength: scales the curves: 0 = unchanged, 1 = the model as trained.
        checkpoint: weights file to load instead of the shipped weights.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        tile: tile side for large images (bounds memory); 0 = whole image at once.

    Enhancers for model names are cached, so repeated calls don't reload weights;
    hold an :class:`Enhancer` to control that yourself.

    Example:
        >>> import zerodce
        >>> net = zerodce.create_model("zero_dce_pp")  # random weights, for the example
        >>> zerodce.enhance(np.zeros((4, 6, 3), np.uint8), model=net).shape
        (4, 6, 3)
    """
    if isinstance(model, str):
        enhancer = _cached_enhancer(model, None if checkpoint is None else str(checkpoint), str(device),
                                    float(strength), int(tile))
    else:
        enhancer = Enhancer(model, checkpoint=checkpoint, device=device, strength=strength, tile=tile)
    return enhancer.enhance(image)


@dataclass(frozen=True)
class FileResult:
    """What happened to one file of :func:`enhance_files`."""

    source: str | Path
    target: str | Path
    status: Literal["done", "failed"]
    reason: str = ""
    megapixels: float = 0.0


Job = tuple[Union[str, Path], Union[str, Path]]


def enhance_files(
    enhancer: Enhancer,
    jobs: Iterable[Job],
    *,
    quality: int | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    workers: int = 2,
) -> Iterator[FileResult]:
    """Enhance ``(source, target)`` files, yielding a :class:`FileResult` as each finishes.

    Each file is read, enhanced and written on one of ``workers`` threads, so
    one file's decoding or encoding overlaps another's enhancement (Pillow,
    zlib and torch release the GIL); only ``workers`` images are in memory at
    once. On a small CPU, one torch thread per worker beats several threads
    fighting over each image (the CLI sets that). A file that fails is reported
    and the rest go on. The output format comes from each target's extension.
    """

    def one(source: str | Path, target: str | Path) -> FileResult:
        try:
            image = enhancer.enhance_file(source, target, quality=quality, max_pixels=max_pixels)
        except ImageError as exc:
            return FileResult(source, target, "failed", str(exc))
        except (MemoryError, torch.OutOfMemoryError):
            return FileResult(source, target, "failed", f"cannot enhance {source}: out of memory; try a smaller --tile")
        return FileResult(source, target, "done", megapixels=image.megapixels)

    jobs = iter(jobs)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        running = {pool.submit(one, *job) for job in itertools.islice(jobs, max(1, workers))}
        while running:
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()
                job = next(jobs, None)
                if job is not None:
                    running.add(pool.submit(one, *job))
