"""The DCE-Net topology shared by Zero-DCE and Zero-DCE++, and resolution handling.

Seven convolutions with 32 filters and ReLU, symmetric skip concatenations
(conv5 takes conv3||conv4, conv6 takes conv2||conv5, conv7 takes conv1||conv6) and
a tanh output: the paper's curve maps ``alpha``. The two architectures differ in
the convolution block (plain 3x3 or depthwise-separable) and in the number of
output maps (8 RGB groups or one RGB map shared by all iterations).

Curves may be estimated on a bilinearly downscaled input and upsampled back
(Zero-DCE++'s ``scale_factor``). Sizes that are not a multiple of the factor are
padded (edge replication) and the curves cropped back, so the output always has
the input's size.

Speed (inference, see ``docs/speed.md``): the network runs in channels-last
memory format (oneDNN's fast layout for these convolutions on CPU, also good for
cuDNN) and, on large inputs, in cache-sized bands of rows; :func:`downscale`
reads only the pixels the downscaled input needs. Applying the curves (at full or
low resolution) is :mod:`zerodce.curves`' job.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from zerodce import _native
from zerodce._checks import check_image_tensor
from zerodce.curves import apply_curves, apply_low_res_curves, is_channels_last, upsample_curves

ConvFactory = Callable[[int, int], nn.Module]

#: Rows of input one output row depends on, on each side: seven 3x3 convolutions.
RECEPTIVE_RADIUS = 7
#: Input pixels per band of the network at inference. Smaller bands keep the
#: activations in cache but recompute 14 overlap rows each; 2**17 (3 bands per 512-pixel
#: tile) was fastest on the AVX2 CPU measured (docs/speed.md).
NET_BAND_PIXELS = 1 << 17
#: Inference calls of at most this many multiply-adds (~15 ms on one core; Zero-DCE++'s 160x90
#: network is 145 M) run on one torch thread: see :func:`one_thread`.
ONE_THREAD_MACS = 1 << 28


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN computes bfloat16 natively on this CPU (else autocast to bf16 is emulated and slow)."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(check is not None and torch.backends.mkldnn.is_available() and check())


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Torch on one thread for small work (Zero-DCE++'s network at 160x90, the strength search, noise samples).

    Each torch operation split over threads waits for all of them: on tensors this
    small that costs more than it saves, and on a loaded machine a thread waiting for
    a core costs a scheduler slice (milliseconds) per operation. Measured on a busy
    2-core VM: the 160x90 network took 26 ms on one thread and 244 ms on two. With
    torch's OpenMP backend the setting belongs to the calling thread (threads already
    running keep theirs; one started in this short window starts with 1): it changes
    speed only, never results.

    Example:
        >>> with one_thread():
        ...     torch.get_num_threads()
        1
    """
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class DCENet(nn.Module):
    """Curve estimation network: ``(B, 3, H, W)`` in [0, 1] -> ``(B, out_channels, H, W)`` in [-1, 1].

    Subclasses choose the convolution block and the number of output maps.
    """

    def __init__(
        self,
        conv: ConvFactory,
        out_channels: int,
        iterations: int = 8,
        channels: int = 32,
        scale_factor: int = 1,
    ) -> None:
        super().__init__()
        if int(scale_factor) != scale_factor or scale_factor < 1:
            raise ValueError(f"scale_factor must be an integer >= 1, got {scale_factor!r}")
        self.iterations = iterations
        self.out_channels = out_channels
        self._inference_dtype = torch.float32
        self.scale_factor = int(scale_factor)
        c = channels
        self.conv1 = conv(3, c)
        self.conv2 = conv(c, c)
        self.conv3 = conv(c, c)
        self.conv4 = conv(c, c)
        self.conv5 = conv(2 * c, c)
        self.conv6 = conv(2 * c, c)
        self.conv7 = conv(2 * c, out_channels)

    def curve_net(self, x: torch.Tensor) -> torch.Tensor:
        """The network at the resolution it is given: ``(B, 3, h, w)`` -> ``(B, out, h, w)``.

        Computed in channels-last layout (2-4x faster on CPU than NCHW here, same
        values); the maps come back in the memory layout of ``x``. Without
        autograd, inputs larger than :data:`NET_BAND_PIXELS` run in bands of rows
        overlapping by the receptive radius, so the activations stay closer to
        the cores (5-20% faster here); the result is the same, as every output
        row sees exactly the input rows it would see in one piece. Calls of at most
        :data:`ONE_THREAD_MACS` multiply-adds run on one thread (:func:`one_thread`).
        """
        b, _, h, w = x.shape
        rows = max(1, NET_BAND_PIXELS // (b * w))
        if not torch.is_grad_enabled() and not torch.jit.is_tracing() and b * h * w * self.macs_per_pixel() <= ONE_THREAD_MACS:
            with one_thread():
                return self._net(x)
        if torch.is_grad_enabled() or torch.jit.is_tracing() or h <= rows + 2 * RECEPTIVE_RADIUS:
            return self._net(x)
        out = None
        for r0 in range(0, h, rows):
            r1 = min(r0 + rows, h)
            top, bottom = max(r0 - RECEPTIVE_RADIUS, 0), min(r1 + RECEPTIVE_RADIUS, h)
            band = self._net(x[..., top:bottom, :])
            if out is None:
                out = torch.empty((b, band.shape[1], h, w), dtype=band.dtype, device=band.device, memory_format=_layout(x))
            out[..., r0:r1, :] = band[..., r0 - top : r1 - top, :]
        return out

    def macs_per_pixel(self) -> int:
        """Multiply-adds of the network per input pixel (every convolution keeps the size).

        Example:
            >>> from zerodce import create_model
            >>> create_model("zero_dce").macs_per_pixel(), create_model("zero_dce_pp").macs_per_pixel()
            (79200, 10075)
        """
        return sum(m.out_channels * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
                   for m in self.modules() if isinstance(m, nn.Conv2d))

    @property
    def inference_dtype(self) -> torch.dtype:
        """Precision of the network's inference convolutions: ``torch.float32`` (default) or ``torch.bfloat16``.

        bfloat16 is opt-in, for networks of plain 3x3 convolutions (Zero-DCE) only, and
        used only where :func:`cpu_has_native_bf16` (float32 elsewhere, bit for bit):
        with the shipped weights on real photos it changes the enhanced image by
        0.6/255 at most (tests/test_fast_paths.py), at 2.2-2.6x the speed on the
        AVX-512 BF16 VM. Zero-DCE++'s depthwise-separable network was 1.2/255 off,
        over the 1/255 the project allows, so it stays float32. Training is unaffected.

        Example:
            >>> from zerodce import create_model
            >>> net = create_model("zero_dce")
            >>> net.inference_dtype = torch.bfloat16
            >>> create_model("zero_dce_pp").inference_dtype = torch.bfloat16
            Traceback (most recent call last):
            ...
            ValueError: bfloat16 inference is offered for networks of plain convolutions (Zero-DCE) only
        """
        return self._inference_dtype

    @inference_dtype.setter
    def inference_dtype(self, dtype: torch.dtype) -> None:
        if dtype not in (torch.float32, torch.bfloat16):
            raise ValueError(f"inference_dtype must be torch.float32 or torch.bfloat16, got {dtype!r}")
        if dtype == torch.bfloat16 and not isinstance(self.conv1, nn.Conv2d):
            raise ValueError("bfloat16 inference is offered for networks of plain convolutions (Zero-DCE) only")
        self._inference_dtype = dtype

    def _bf16(self, x: torch.Tensor) -> bool:
        """Whether this call runs in bfloat16 (:attr:`inference_dtype`, inference on a CPU that computes it natively)."""
        return (self.inference_dtype == torch.bfloat16 and x.device.type == "cpu" and x.dtype == torch.float32
                and not torch.is_grad_enabled() and not torch.jit.is_tracing() and cpu_has_native_bf16())

    def _net(self, x: torch.Tensor) -> torch.Tensor:
        layout = _layout(x)
        x = x.contiguous(memory_format=torch.channels_last)
        bf16 = self._bf16(x)
        # autocast converts the inputs of nn.Conv2d calls, not of oneDNN's fused operator
        conv = _conv_activation if _fuses_activations(x) and not bf16 else _conv_then_activation
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            x1 = conv(self.conv1, x, "relu")
            x2 = conv(self.conv2, x1, "relu")
            x3 = conv(self.conv3, x2, "relu")
            x4 = conv(self.conv4, x3, "relu")
            x5 = conv(self.conv5, torch.cat([x3, x4], 1), "relu")
            x6 = conv(self.conv6, torch.cat([x2, x5], 1), "relu")
            out = conv(self.conv7, torch.cat([x1, x6], 1), "tanh")
        return out.float().contiguous(memory_format=layout)

    def estimate_low_res_curves(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Curve maps at the network's resolution, and the padded full size they map onto.

        For ``scale_factor`` 1 the maps are already full size. Otherwise the input
        is downscaled as released: padded to a multiple of the factor by edge
        replication, bilinear, ``align_corners=False``, with the scale factor
        itself (computed by :func:`downscale` without the padded copy), which
        also takes 8-bit ``x`` (0..255) and converts only the pixels it reads
        (at ``scale_factor`` 1, 8-bit ``x`` is converted whole).
        """
        s = self.scale_factor
        check_image_tensor(x, "x", uint8=True)
        if s == 1:
            x = x.float().mul_(1.0 / 255.0) if x.dtype == torch.uint8 else x  # as zerodce.io converts
            return self.curve_net(x), tuple(x.shape[-2:])
        return self.curve_net(downscale(x, s)), padded_size(x.shape[-2:], s)

    def estimate_curves(self, x: torch.Tensor) -> torch.Tensor:
        """Curve maps ``alpha`` at full resolution, ``(B, out_channels, H, W)`` in [-1, 1]."""
        small, padded = self.estimate_low_res_curves(x)
        if self.scale_factor == 1:
            return small
        h, w = x.shape[-2:]
        return upsample_curves(small, padded, 0, h)[..., :w]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Enhanced image, ``(B, 3, H, W)`` in [0, 1]."""
        if self.scale_factor == 1:
            return apply_curves(x, self.curve_net(x), self.iterations)
        return apply_low_res_curves(x, *self.estimate_low_res_curves(x), self.iterations)


_ACTIVATIONS = {"relu": F.relu, "tanh": torch.tanh}


def _conv_then_activation(block: nn.Module, x: torch.Tensor, activation: str) -> torch.Tensor:
    return _ACTIVATIONS[activation](block(x))


def _fuses_activations(x: torch.Tensor) -> bool:
    """Whether to let oneDNN apply the activations inside the convolutions (CPU float32 inference).

    Measured here (docs/speed.md): 10-40% faster for the Zero-DCE++ network on one
    thread, as the folder and video workers run it, but 20-30% slower on two,
    where PyTorch's own 1x1 convolution (a threaded matrix product) scales better.
    """
    return (
        torch.get_num_threads() == 1
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and not torch.is_grad_enabled()
        and not torch.jit.is_tracing()
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
    )


def _conv_activation(block: nn.Module, x: torch.Tensor, activation: str) -> torch.Tensor:
    """``activation(block(x))`` with the activation fused into the block's last convolution.

    oneDNN applies it as the convolution writes its output (the fusion PyTorch's
    own compiler uses), saving a pass over the activations per layer. ``block``
    is an ``nn.Conv2d`` or has ``depthwise`` and ``pointwise`` ones.
    """
    if not isinstance(block, nn.Conv2d):
        x, block = block.depthwise(x), block.pointwise
    return torch.ops.mkldnn._convolution_pointwise(
        x, block.weight, block.bias, block.padding, block.stride, block.dilation, block.groups, activation, [], ""
    )


def _layout(x: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if is_channels_last(x) else torch.contiguous_format


def padded_size(size: tuple[int, int], factor: int) -> tuple[int, int]:
    """``(height, width)`` rounded up to multiples of ``factor``, the size low-resolution curves map onto.

    Example:
        >>> padded_size((1080, 1920), 12)
        (1080, 1920)
        >>> padded_size((25, 37), 12)
        (36, 48)
    """
    h, w = size
    return (h + factor - 1) // factor * factor, (w + factor - 1) // factor * factor


def downscale(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Zero-DCE++'s input downscaling, reading only the pixels it uses.

    Equal (within float rounding) to padding ``x`` to a multiple of ``factor`` by
    edge replication and ``F.interpolate(x, scale_factor=1 / factor, mode="bilinear")``
    as released (``align_corners=False``): each output pixel blends the 2x2 input
    pixels around ``(i + 0.5) * factor - 0.5``. Gathering those rows and columns
    costs a fraction of a full pass; replication becomes clamping the indices.
    The compiled kernel of ``zerodce._native`` does the same where available.

    Args:
        x: ``(B, C, H, W)`` float, or uint8 (0..255, converted to [0, 1] after the
            gather, so a decoded image never needs a full-size float copy).
        factor: integer downscale factor >= 1.

    Returns:
        ``(B, C, ceil(H / factor), ceil(W / factor))``, float (float32 for uint8).

    Example:
        >>> x = torch.rand(1, 3, 25, 37)
        >>> plain = F.interpolate(F.pad(x, (0, 11, 0, 11), mode="replicate"), scale_factor=1 / 12, mode="bilinear")
        >>> torch.allclose(downscale(x, 12), plain, atol=1e-6)
        True
    """
    fast = _native.downscale(x, factor)
    if fast is not None:
        return fast
    for dim in (2, 3):
        n = x.shape[dim]
        src = (torch.arange((n + factor - 1) // factor, device=x.device, dtype=torch.float64) + 0.5) * factor - 0.5
        i0 = src.floor()
        frac = (src - i0).view([-1 if d == dim else 1 for d in range(4)])
        i0 = i0.long()
        a, b = x.index_select(dim, i0.clamp(max=n - 1)), x.index_select(dim, (i0 + 1).clamp(max=n - 1))
        if x.dtype == torch.uint8:  # as zerodce.io.pixels_to_tensor converts
            a, b = a.float().mul_(1.0 / 255.0), b.float().mul_(1.0 / 255.0)
        x = torch.lerp(a, b, frac.to(a.dtype))
    return x
