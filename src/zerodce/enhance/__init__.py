"""The enhancer: a loaded model plus everything around it (strength, denoising, tiling, devices, files).

:class:`Enhancer` holds a model and enhances images of any size with bounded
memory: tensors, numpy arrays, PIL images and :class:`~zerodce.io.ImageData`,
each returned as the type, dtype and layout it was given. Its settings are
fixed at construction (:meth:`Enhancer.with_settings` makes a variant sharing
the model), so one object can serve many threads. :func:`enhance` is the
one-call form, and :func:`enhance_files` streams files through one enhancer,
overlapping decoding, enhancing and encoding.

Every input takes ONE pipeline (:meth:`Enhancer.enhance_tensor`; 8-bit images
stay 8-bit throughout, everything else is float):

1. **curves**: the network estimates the curve maps (:meth:`Enhancer.curves`);
2. **strength**: the maps are scaled, by a fixed factor or by the one that
   brings this photo to a natural exposure (``strength="auto"``,
   :mod:`zerodce.enhance.exposure`); video smooths the scaled maps over time
   here (``curve_filter``), so the exposure is steady too;
3. **apply**: the curves are applied (:mod:`zerodce.curves`), giving the enhanced
   image and, where denoising follows, the curves' gain at each pixel;
4. **denoise**: the noise the curves amplified is filtered out, as strongly as
   the gain and the photo's own noise level ask (:mod:`zerodce.enhance.denoise`);
5. **output** in the input's type, dtype and layout.

Large images are processed in pieces whose result equals the whole-image result:

* ``scale_factor > 1`` (Zero-DCE++ by default): the curve network runs once on
  the downscaled image (small), then curves are upsampled and applied in bands
  of ``tile`` rows, so the full-resolution curve map never exists at once (where
  the filter runs every pass, as on dark photos, curves and filter stream over
  the whole image instead, a few rows in memory at a time);
* ``scale_factor == 1`` (Zero-DCE): the network runs on ``tile x tile`` tiles
  with an overlap wider than its receptive field (7 pixels);

with :data:`~zerodce.enhance.denoise.RADIUS` more rows and columns of context
when denoising. The strength and the noise level are measured once per image,
so pieces never disagree.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator, Literal, Protocol, TypeVar, Union

import numpy as np
import torch
from PIL import Image

from zerodce import _native
from zerodce._checks import InputError, check_image_tensor
from zerodce._device import resolve_device
from zerodce.curves import apply_curves_fused, apply_low_res_curves, scale_curves
from zerodce.enhance import denoise as denoising
from zerodce.enhance.exposure import auto_strength
from zerodce.io import (DEFAULT_MAX_PIXELS, ImageData, ImageError, pil_to_pixels, pixels_to_pil, pixels_to_tensor,
                        read_image, tensor_to_pixels, write_image)
from zerodce.models import DEFAULT_MODEL, create_model
from zerodce.models._dce_net import downscale, one_thread

#: Context around a Zero-DCE tile: the network's receptive field plus a margin.
TILE_OVERLAP = 16
DEFAULT_TILE = 512
#: Longest side of the reduced copy on which a full-resolution model's strength is chosen.
STRENGTH_PROXY_SIDE = 256

#: A function from (strength-scaled) curve maps to the curve maps to apply (same shape), e.g. temporal smoothing.
CurveFilter = Callable[[torch.Tensor], torch.Tensor]
#: ``"auto"`` (exposure-adaptive) or a factor on the curves (1 = the model as trained).
Strength = Union[float, Literal["auto"]]
#: ``"auto"`` (adaptive, level 1), ``"off"``, or a level: a factor on the automatic strength.
Denoise = Union[float, Literal["auto", "off"]]
#: The curve network's precision (see :class:`Enhancer`).
Precision = Literal["fp32", "bf16"]

#: Anything :meth:`Enhancer.enhance` takes; it returns the same type.
ImageLike = TypeVar("ImageLike", torch.Tensor, np.ndarray, Image.Image, ImageData)


class CurveModel(Protocol):
    """What :class:`Enhancer` needs of a model (a :class:`~zerodce.models.DCENet`, or the onnxruntime backend)."""

    scale_factor: int
    iterations: int
    out_channels: int

    def estimate_low_res_curves(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Curve maps at the network's resolution for ``x`` (float in [0, 1] or uint8), and the padded size."""

    def estimate_curves(self, x: torch.Tensor) -> torch.Tensor:
        """Curve maps at full resolution."""

    def to(self, device: torch.device) -> "CurveModel": ...

    def eval(self) -> "CurveModel": ...


def _parse_setting(value: str | float, name: str, words: tuple[str, ...]) -> str | float:
    """One of ``words`` (any case) or a finite number >= 0; :class:`~zerodce._checks.InputError` otherwise."""
    if isinstance(value, str) and value.strip().lower() in words:
        return value.strip().lower()
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number < 0:
        allowed = ", ".join(repr(w) for w in words)
        raise InputError(f"{name} must be {allowed} or a number >= 0, got {value!r}")
    return number


def parse_strength(value: str | float) -> Strength:
    """``"auto"`` or a number >= 0, from user input (CLI, HTTP); :class:`~zerodce._checks.InputError` (a
    ``ValueError``) with a one-line reason otherwise.

    Example:
        >>> parse_strength("auto"), parse_strength("1.5")
        ('auto', 1.5)
    """
    return _parse_setting(value, "strength", ("auto",))  # type: ignore[return-value]


def parse_denoise(value: str | float) -> Denoise:
    """``"auto"``, ``"off"`` or a level >= 0, from user input; :class:`~zerodce._checks.InputError` otherwise.

    Example:
        >>> parse_denoise("off"), parse_denoise("AUTO"), parse_denoise("2")
        ('off', 'auto', 2.0)
    """
    return _parse_setting(value, "denoise", ("auto", "off"))  # type: ignore[return-value]


def _denoise_level(setting: Denoise) -> float:
    return 1.0 if setting == "auto" else 0.0 if setting == "off" else float(setting)


class Enhancer:
    """Enhance images with a Zero-DCE model.

    Args:
        model: a registered model name, or a model instance (moved to ``device``
            and put in eval mode: pass a copy to keep yours as it is).
        checkpoint: weights file; ``None`` loads the shipped weights for a name.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or a ``torch.device``.
        strength: ``"auto"`` (default) brings each photo to a natural exposure and
            leaves well-exposed ones unchanged (:mod:`zerodce.enhance.exposure`);
            a number scales the curve maps ``alpha`` (clamped to [-1, 1]): 0 leaves
            the image unchanged, 1 is the model as trained, above 1 brightens more.
        denoise: ``"auto"`` (default) removes the noise the curves amplified
            (:mod:`zerodce.enhance.denoise`); ``"off"``; or a level, a factor on
            the automatic filter strength (0 = off, 1 = auto, 2 = twice as strong).
        tile: tile side / band height in pixels for large images; 0 disables tiling.
        scale_factor: override the model's curve-estimation downscale factor.
        precision: ``"fp32"`` (default) or ``"bf16"``: Zero-DCE's network in bfloat16
            where the CPU computes it natively (:attr:`~zerodce.models.DCENet.inference_dtype`;
            a property of the model, so variants from :meth:`with_settings` share it).

    ``strength=1, denoise="off"`` gives exactly the model as trained.

    Example:
        >>> from zerodce.models import create_model
        >>> enhancer = Enhancer(create_model("zero_dce_pp"), device="cpu")
        >>> enhancer.enhance_tensor(torch.rand(1, 3, 20, 30)).shape
        torch.Size([1, 3, 20, 30])
        >>> enhancer.with_settings(strength=1.0, denoise="off").strength
        1.0
    """

    def __init__(
        self,
        model: str | CurveModel = DEFAULT_MODEL,
        checkpoint: str | Path | None = None,
        device: str | torch.device = "auto",
        strength: Strength = "auto",
        denoise: Denoise = "auto",
        tile: int = DEFAULT_TILE,
        scale_factor: int | None = None,
        precision: Precision = "fp32",
    ) -> None:
        if precision not in ("fp32", "bf16"):
            raise InputError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
        self._strength = parse_strength(strength)
        self._denoise = parse_denoise(denoise)
        if tile < 0:
            raise InputError(f"tile must be >= 0 (0 disables tiling), got {tile}")
        self._device = resolve_device(device)
        if isinstance(model, str):
            kwargs = {} if scale_factor is None else {"scale_factor": scale_factor}
            model = create_model(model, pretrained=checkpoint is None, checkpoint=checkpoint, **kwargs)
        elif scale_factor is not None or checkpoint is not None:
            raise InputError("scale_factor and checkpoint apply to a model name, not to a model instance")
        if precision == "bf16":
            if not hasattr(model, "inference_dtype"):
                raise InputError(f"precision bf16 applies to the PyTorch networks, not to {type(model).__name__}")
            try:
                model.inference_dtype = torch.bfloat16
            except ValueError as error:  # a network it is not offered for (Zero-DCE++)
                raise InputError(f"precision bf16: {error}") from None
        self._model = model.to(self._device).eval()
        self._tile = int(tile)

    @property
    def model(self) -> CurveModel:
        """The curve model, on :attr:`device`, in eval mode."""
        return self._model

    @property
    def device(self) -> torch.device:
        """Where the model runs."""
        return self._device

    @property
    def strength(self) -> Strength:
        """``"auto"`` or the factor on the curve maps."""
        return self._strength

    @property
    def denoise(self) -> Denoise:
        """``"auto"``, ``"off"`` or the denoising level."""
        return self._denoise

    @property
    def tile(self) -> int:
        """Tile side / band height in pixels (0: whole images)."""
        return self._tile

    def with_settings(self, *, strength: Strength | None = None, denoise: Denoise | None = None,
                      tile: int | None = None) -> "Enhancer":
        """A new enhancer with the same (shared) model and the given settings changed; cheap."""
        other = object.__new__(Enhancer)
        other.__dict__.update(self.__dict__)
        if strength is not None:
            other._strength = parse_strength(strength)
        if denoise is not None:
            other._denoise = parse_denoise(denoise)
        if tile is not None:
            if tile < 0:
                raise InputError(f"tile must be >= 0 (0 disables tiling), got {tile}")
            other._tile = int(tile)
        return other

    @torch.inference_mode()
    def curves(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Curve maps of ``x`` (float in [0, 1] or uint8) before strength: ``(maps, padded_size)``.

        For ``scale_factor > 1`` the maps are at the network's (low) resolution;
        otherwise full resolution, estimated tile by tile. :meth:`apply` takes them.
        """
        check_image_tensor(x, "x", uint8=True)
        x = x.to(self.device)
        if self.model.scale_factor > 1:
            return self.model.estimate_low_res_curves(x)
        h, w = x.shape[-2:]
        maps = torch.empty(x.shape[0], self.model.out_channels, h, w, device=self.device)
        for core, context in self._tiles(h, w, TILE_OVERLAP):
            maps[..., core[0], core[1]] = _crop(self.model.estimate_curves(x[..., context[0], context[1]]), core, context)
        return maps, (h, w)

    def _tiles(self, h: int, w: int, overlap: int, full_width: bool = False):
        """``(core, context)`` slice pairs covering an ``h x w`` image, ``overlap`` pixels of context
        around each core; one pair if it fits a tile. ``full_width``: bands of rows."""
        t = self.tile
        if not t or (h <= t and (w <= t or full_width)):
            yield (slice(0, h), slice(0, w)), (slice(0, h), slice(0, w))
            return
        for r0 in range(0, h, t):
            for c0 in range(0, w, w if full_width else t):
                r1, c1 = min(r0 + t, h), min(c0 + (w if full_width else t), w)
                yield ((slice(r0, r1), slice(c0, c1)),
                       (slice(max(r0 - overlap, 0), min(r1 + overlap, h)), slice(max(c0 - overlap, 0), min(c1 + overlap, w))))

    def _strengths(self, x: torch.Tensor, maps: torch.Tensor | None) -> torch.Tensor:
        """The strengths for each image of ``x`` and channel: ``(B, 3)``, from the setting or chosen on a small copy."""
        if self.strength != "auto":
            return torch.full((x.shape[0], 3), float(self.strength))
        factor = self.model.scale_factor
        if factor > 1:  # the maps are known at the network's input size
            return auto_strength(downscale(x, factor), maps, self.model.iterations)
        factor = max(1, math.ceil(max(x.shape[-2:]) / STRENGTH_PROXY_SIDE))
        small = downscale(x, factor)
        small_maps = downscale(maps, factor) if maps is not None else self.model.estimate_low_res_curves(small)[0]
        return auto_strength(small, small_maps, self.model.iterations)

    @torch.inference_mode()
    def apply(
        self,
        x: torch.Tensor,
        maps: torch.Tensor | None,
        padded: tuple[int, int],
        out: torch.Tensor | None = None,
        curve_filter: CurveFilter | None = None,
    ) -> torch.Tensor:
        """Strength, curves and denoising: the pipeline after :meth:`curves`, in pieces of ``tile`` pixels.

        Args:
            x: ``(B, 3, H, W)``, float in [0, 1] or uint8, on any device.
            maps: curve maps from :meth:`curves` (possibly filtered), or ``None``
                for a full-resolution model to estimate them tile by tile.
            padded: the padded size from :meth:`curves` (``(H, W)`` for ``None`` maps).
            out: optional tensor like ``x`` (shape and dtype) on :attr:`device` to write into.
            curve_filter: applied to the maps after strength (not with ``None`` maps).

        Returns:
            The enhanced images, shaped like ``x``, dtype of ``x``, on :attr:`device`.
        """
        check_image_tensor(x, "x", uint8=True)
        x = x.to(self.device)
        if out is None:
            out = torch.empty_like(x)  # in x's memory layout
        if not x.numel():
            return out
        low_res = self.model.scale_factor > 1
        if maps is None and low_res:
            raise InputError("maps are needed for a model that estimates curves at low resolution")
        level = _denoise_level(self.denoise)
        with one_thread():  # small work: the strength search on small maps, the noise of sampled rows
            strengths = self._strengths(x, maps)
            sigma = denoising.estimate_noise(x) if level > 0 else None
        if maps is not None:
            with one_thread() if low_res else contextlib.nullcontext():  # low-resolution maps are small too
                maps = scale_curves(maps.to(self.device, torch.float32), strengths)
                maps = maps if curve_filter is None else curve_filter(maps)
        # With denoising, the curves read 8-bit levels as the least saturated colours they stand for, so they
        # do not lift the quantization's colour out of crushed shadows (zerodce.curves.least_saturated_values);
        # an image the curves leave alone (strength 0) is given back exactly as stored.
        least_saturated = [sigma is not None and x.dtype == torch.uint8 and bool(s.gt(0).any()) for s in strengths]
        if sigma is not None and low_res and denoising.denoise_low_res_into(
                x, maps, padded, self.model.iterations, 0, sigma, level, out, (0, 0), least_saturated):
            # curves, filter and store in one stream over the whole image: it holds a few rows at a
            # time, so bands would only add their probes and the rows each recomputes at its ends
            return out
        margin = denoising.RADIUS if sigma is not None else 0
        h, w = x.shape[-2:]
        pieces = list(self._tiles(h, w, margin, full_width=True) if low_res else self._tiles(h, w, TILE_OVERLAP + margin))
        # One buffer for every piece's curve output (and gain): fresh pages for each would be faulted in again.
        largest = max((r.stop - r.start) * (c.stop - c.start) for _, (r, c) in pieces)
        buffers = None
        for core, context in pieces:
            piece = x[..., context[0], context[1]]
            if maps is None:
                piece_maps = scale_curves(self.model.estimate_curves(piece), strengths)
            elif not low_res:
                piece_maps = maps[..., context[0], context[1]]
            whole = core == context
            target = out[..., core[0], core[1]]
            offset = (core[0].start - context[0].start, core[1].start - context[1].start)
            if whole and sigma is None:
                y, gain = target, None
            else:
                if buffers is None:
                    buffers = (torch.empty(x.shape[0] * 3 * largest, device=self.device),
                               torch.empty(x.shape[0] * largest, device=self.device) if sigma is not None else None)
                n = piece.shape[0] * piece.shape[-2] * piece.shape[-1]
                y = buffers[0][: 3 * n].view(piece.shape)
                gain = None if sigma is None else buffers[1][:n].view(piece.shape[0], 1, *piece.shape[-2:])
            if low_res:
                apply_low_res_curves(piece, maps, padded, self.model.iterations, context[0].start, out=y, gain=gain,
                                     least_saturated=least_saturated)
            else:
                apply_curves_fused(piece, piece_maps, self.model.iterations, out=y, gain=gain,
                                   least_saturated=least_saturated)
            origin = (context[0].start, context[1].start)
            if sigma is not None and denoising.denoise_into(y, gain, sigma, level, target, offset, origin):
                continue  # filtered and stored in one pass
            if sigma is not None:
                y = denoising.denoise_amplified(y, gain, sigma, level, origin)
            if y is not target:
                _store(_crop(y, core, context), target)
        return out

    @torch.inference_mode()
    def enhance_tensor(self, x: torch.Tensor, curve_filter: CurveFilter | None = None,
                       out: torch.Tensor | None = None) -> torch.Tensor:
        """Enhance ``(B, 3, H, W)``, float in [0, 1] or uint8; returns the same shape, dtype and device.

        ``curve_filter`` maps the strength-scaled curve maps to the ones applied
        (video smooths them over time); with it, Zero-DCE's full-resolution maps are
        estimated for the whole image before any is applied. ``out``, if given, is
        written and returned (same shape and dtype as ``x``).
        """
        check_image_tensor(x, "x", uint8=True)
        out_device, out_dtype = x.device, x.dtype
        if not x.numel():  # nothing to enhance (the network cannot run on an empty image)
            return x.clone() if out is None else out
        # 8-bit stays 8-bit; every float dtype is computed in float32 (the network's).
        x = x.to(self.device, torch.uint8 if x.dtype == torch.uint8 else torch.float32)
        if self.model.scale_factor > 1 or curve_filter is not None:
            maps, padded = self.curves(x)
        else:
            # Estimated per tile inside apply, so full-resolution curve maps never exist at once.
            maps, padded = None, tuple(x.shape[-2:])
        direct = out is not None and out.device == self.device and out.dtype == x.dtype
        y = self.apply(x, maps, padded, out=out if direct else None, curve_filter=curve_filter)
        if out is not None and not direct:
            return out.copy_(y)
        return y if direct else y.to(out_device, out_dtype)

    def enhance_array(self, pixels: np.ndarray, curve_filter: CurveFilter | None = None) -> np.ndarray:
        """Enhance an image array, returning the same shape and dtype.

        Args:
            pixels: ``(H, W)`` gray, ``(H, W, 2)`` gray + alpha, ``(H, W, 3)`` RGB or
                ``(H, W, 4)`` RGBA; ``uint8``, ``uint16`` or float in [0, 1]. Gray
                stays gray (the luma of the enhanced colour), alpha is copied untouched,
                8-bit RGB stays 8-bit throughout (no float copy of the image) and
                16-bit values are processed in float without 8-bit rounding.
            curve_filter: as for :meth:`enhance_tensor`.

        Example:
            >>> from zerodce.models import create_model
            >>> enhancer = Enhancer(create_model("zero_dce_pp"), device="cpu")
            >>> enhancer.enhance_array(np.zeros((5, 7, 4), np.uint16)).dtype
            dtype('uint16')
        """
        if np.issubdtype(pixels.dtype, np.floating) and pixels.size and not (0.0 <= pixels.min() and pixels.max() <= 1.0):
            raise InputError("float image arrays must hold values in [0, 1]; divide 8-bit values by 255")
        if not pixels.size:
            return pixels.copy()
        if pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] in (3, 4):
            out = np.empty_like(pixels)
            with warnings.catch_warnings():
                # Decoded images are read-only arrays; nothing here writes to the input.
                warnings.filterwarnings("ignore", "The given NumPy array is not writable")
                x = torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0)[:, :3]
            self.enhance_tensor(x, curve_filter, out=torch.from_numpy(out).permute(2, 0, 1).unsqueeze(0)[:, :3])
            if pixels.shape[2] == 4:
                out[..., 3] = pixels[..., 3]
            return out
        return tensor_to_pixels(self.enhance_tensor(pixels_to_tensor(pixels), curve_filter), like=pixels)

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


def _crop(piece: torch.Tensor, core: tuple[slice, slice], context: tuple[slice, slice]) -> torch.Tensor:
    (r, c), (pr, pc) = core, context
    return piece[..., r.start - pr.start : r.stop - pr.start, c.start - pc.start : c.stop - pc.start]


def _store(y: torch.Tensor, target: torch.Tensor) -> None:
    """Float ``y`` in [0, 1] into ``target`` of its dtype: uint8 rounded half to even, as ``zerodce.io`` does."""
    if _native.store(y, target):
        return
    if target.dtype == torch.uint8:
        target.copy_(y.mul(255.0).round_().clamp_(0.0, 255.0))
    else:
        target.copy_(y)


@functools.lru_cache(maxsize=4)
def _cached_model(model: str, checkpoint: str | None, device: str, tile: int) -> Enhancer:
    return Enhancer(model, checkpoint=checkpoint, device=device, tile=tile)


def enhance(
    image: ImageLike,
    model: str | CurveModel = DEFAULT_MODEL,
    strength: Strength = "auto",
    *,
    denoise: Denoise = "auto",
    checkpoint: str | Path | None = None,
    device: str = "auto",
    tile: int = DEFAULT_TILE,
) -> ImageLike:
    """Brighten a low-light image; returns the same type, dtype and shape.

    Args:
        image: a PIL image, a numpy array (``(H, W)`` or ``(H, W, C)``; ``uint8``,
            ``uint16`` or float in [0, 1]) or a tensor ``(B, 3, H, W)`` (float or uint8).
        model: a registered model name (with its shipped weights, or ``checkpoint``) or a model.
        strength: ``"auto"`` (natural exposure; well-exposed photos unchanged) or a
            factor on the curves: 0 = unchanged, 1 = the model as trained.
        denoise: ``"auto"``, ``"off"`` or a level (factor on the automatic strength).
        checkpoint: weights file to load instead of the shipped weights.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        tile: tile side for large images (bounds memory); 0 = whole image at once.

    Models loaded by name are cached, so repeated calls don't reload weights;
    hold an :class:`Enhancer` to control that yourself.

    Example:
        >>> import zerodce
        >>> net = zerodce.create_model("zero_dce_pp")  # random weights, for the example
        >>> zerodce.enhance(np.zeros((4, 6, 3), np.uint8), model=net).shape
        (4, 6, 3)
    """
    if isinstance(model, str):
        loaded = _cached_model(model, None if checkpoint is None else str(checkpoint), str(device), int(tile))
        enhancer = loaded.with_settings(strength=strength, denoise=denoise)
    else:
        enhancer = Enhancer(model, checkpoint=checkpoint, device=device, strength=strength, denoise=denoise, tile=tile)
    return enhancer.enhance(image)


@dataclass(frozen=True)
class FileResult:
    """What happened to one file of :func:`enhance_files`."""

    source: str | Path
    target: str | Path
    status: Literal["done", "failed"]
    reason: str = ""
    megapixels: float = 0.0
    #: Wall time of this file: reading, enhancing and writing.
    seconds: float = 0.0


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
    and the rest go on, whatever the failure (an unexpected one is reported with
    its type). The output format comes from each target's extension.
    """

    def one(source: str | Path, target: str | Path) -> FileResult:
        start = time.perf_counter()
        try:
            image = enhancer.enhance_file(source, target, quality=quality, max_pixels=max_pixels)
        except ImageError as exc:
            reason = str(exc)
        except (MemoryError, torch.OutOfMemoryError):
            reason = f"cannot enhance {source}: out of memory; try a smaller --tile"
        except _native.KernelsUnavailableError:
            raise  # ZERODCE_NATIVE=1 and no kernels: the whole run cannot work, not this file
        except Exception as exc:  # one file's failure, whatever it is, must not stop the batch
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            detail = f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__
            reason = f"cannot enhance {source}: unexpected error ({detail})"
        else:
            return FileResult(source, target, "done", megapixels=image.megapixels, seconds=time.perf_counter() - start)
        return FileResult(source, target, "failed", reason, seconds=time.perf_counter() - start)

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
