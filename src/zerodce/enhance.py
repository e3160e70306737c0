"""The enhancer: a loaded model plus everything around it (strength, tiling, devices).

:class:`Enhancer` holds a model and enhances tensors of any size with bounded
memory. It keeps no per-call state, so one object can serve many threads.

Large images are processed in pieces whose result equals the whole-image result:

* ``scale_factor > 1`` (Zero-DCE++ by default): the curve network runs once on
  the downscaled image (small), then curves are upsampled and applied in bands
  of ``tile`` rows, so the full-resolution curve map never exists at once.
* ``scale_factor == 1`` (Zero-DCE): the network runs on ``tile x tile`` tiles
  with an overlap wider than its receptive field (7 pixels), so tiles are seamless.
"""

from __future__ import annotations

from pathlib import Path

import torch

from zerodce._checks import check_image_tensor
from zerodce._device import resolve_device
from zerodce.curves import apply_curves
from zerodce.models import DEFAULT_MODEL, DCENet, create_model
from zerodce.models._dce_net import upsample_curves

#: Receptive-field radius of DCE-Net (seven 3x3 convolutions) plus a margin.
TILE_OVERLAP = 16
DEFAULT_TILE = 512


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
        elif scale_factor is not None:
            raise ValueError("scale_factor applies to a model name, not to a model instance")
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
        maps = self._scaled(maps.to(self.device))
        h, w = x.shape[-2:]
        band = self.tile or h
        out = torch.empty_like(x)
        for r0 in range(0, h, band):
            r1 = min(r0 + band, h)
            if self.model.scale_factor > 1:
                curves = upsample_curves(maps, padded, r0, r1)[..., :w]
            else:
                curves = maps[..., r0:r1, :]
            out[..., r0:r1, :] = apply_curves(x[..., r0:r1, :], curves, self.model.iterations)
        return out

    @torch.inference_mode()
    def enhance_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """Enhance ``(B, 3, H, W)`` float in [0, 1]; returns the same shape, dtype and device."""
        check_image_tensor(x, "x")
        out_device, out_dtype = x.device, x.dtype
        x = x.to(self.device, torch.float32)
        if self.model.scale_factor > 1:
            y = self.apply(x, *self.curves(x))
        else:
            # Estimate and apply per tile, so full-resolution curve maps never exist at once.
            y = torch.empty_like(x)
            for core, context in self._tiles(*x.shape[-2:]):
                piece = x[..., context[0], context[1]]
                enhanced = apply_curves(piece, self._scaled(self.model.estimate_curves(piece)), self.model.iterations)
                y[..., core[0], core[1]] = self._crop(enhanced, core, context)
        return y.to(out_device, out_dtype)
