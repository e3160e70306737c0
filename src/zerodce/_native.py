"""Compiled curve kernels (``_native_curves.c``), built on first use where a C compiler exists.

The eight curve steps are a few multiply-adds per value, so in PyTorch they are
bound by memory traffic: every operation reads and writes a whole tensor. The
C kernels read each image row once (uint8 or float32), keep it in L1 cache
through all steps and write it once. They need only a C compiler (``cc``, or
``$CC``), not Python or torch headers, so building takes about a second; the
library is cached per source and CPU under ``$ZERODCE_CACHE`` (default
``~/.cache/zerodce``). Without a compiler, or with ``ZERODCE_NATIVE=0``, every
function here returns ``False`` and callers take their PyTorch path, which is
the definition the kernels are tested against.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

_SOURCE = Path(__file__).with_name("_native_curves.c")
#: Pixels below which splitting rows over threads costs more than it saves.
_PARALLEL_PIXELS = 1 << 16


class _Plane(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("u8", ctypes.c_int),
                ("sc", ctypes.c_int64), ("sh", ctypes.c_int64), ("sw", ctypes.c_int64)]


def _cache_dir() -> Path:
    configured = os.environ.get("ZERODCE_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "zerodce"


def _cpu_key() -> str:
    # -march=native code is only valid on the CPU it was built for.
    try:
        info = Path("/proc/cpuinfo").read_text()
        lines = [line for line in info.splitlines() if line.startswith(("model name", "flags"))][:2]
        return "\n".join(lines)
    except OSError:
        return platform.processor()


def _build(compiler: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        built = Path(tmp) / target.name
        base = [compiler, "-O3", "-std=c99", "-shared", "-fPIC", str(_SOURCE), "-o", str(built), "-lm"]
        # -march=native vectorises for this CPU's widest registers; some compilers lack it.
        for flags in (["-march=native"], []):
            result = subprocess.run(base[:2] + flags + base[2:], capture_output=True, timeout=120)
            if result.returncode == 0:
                os.replace(built, target)  # atomic: concurrent builders never load half a file
                return
        raise OSError(result.stderr.decode(errors="replace").strip())


@functools.lru_cache(maxsize=None)
def library() -> ctypes.CDLL | None:
    """The compiled kernels, built and cached on first call; ``None`` where unavailable."""
    if os.environ.get("ZERODCE_NATIVE", "1") == "0":
        return None
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not compiler:
        return None
    key = hashlib.sha256(_SOURCE.read_bytes() + compiler.encode() + platform.machine().encode()
                         + _cpu_key().encode()).hexdigest()[:16]
    target = _cache_dir() / f"curves-{key}.so"
    try:
        if not target.exists():
            _build(compiler, target)
        lib = ctypes.CDLL(str(target))
    except (OSError, subprocess.SubprocessError):
        return None
    plane, i, ptr, i64 = _Plane, ctypes.c_int, ctypes.c_void_p, ctypes.c_int64
    lib.zdce_apply_maps.argtypes = [plane, plane, i, i, i, plane, i, i, ptr, i64]
    lib.zdce_apply_low_res.argtypes = [plane, plane, i, i, i, ptr, i, i, i, i, i, i, i, ptr, i64]
    lib.zdce_denoise_level.argtypes = [ptr, ptr, ptr, i, i, ptr, ctypes.c_float, i, i, i]
    for fn in (lib.zdce_apply_maps, lib.zdce_apply_low_res, lib.zdce_denoise_level):
        fn.restype = i
    lib.zdce_downscale.argtypes = [plane, i, i, i, i, ctypes.c_void_p]
    lib.zdce_downscale.restype = None
    return lib


def available() -> bool:
    """Whether the compiled kernels can be used in this process."""
    return library() is not None


@functools.lru_cache(maxsize=1)
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(workers, thread_name_prefix="zerodce-curves")


def _plane(t: torch.Tensor, row: int) -> _Plane:
    """Image ``t`` ``(3, H, W)`` (any strides) from row ``row`` on."""
    return _Plane(t.data_ptr() + row * t.stride(1) * t.element_size(), t.dtype == torch.uint8, *t.stride())


def _callable(x: torch.Tensor) -> bool:
    # A trace (ONNX export) would record a ctypes call's result as a constant, and autograd
    # cannot see through it: both take the PyTorch path.
    return (x.device.type == "cpu" and not torch.jit.is_tracing() and not (torch.is_grad_enabled() and x.requires_grad)
            and library() is not None)


def _usable(x: torch.Tensor, out: torch.Tensor, curves: torch.Tensor, gain: torch.Tensor | None) -> bool:
    return (
        _callable(x)
        and out.device.type == curves.device.type == "cpu"
        and x.dtype in (torch.float32, torch.uint8)
        and out.dtype in (torch.float32, torch.uint8)
        and curves.dtype == torch.float32
        and (gain is None or _gain_plane_ok(gain, out))
    )


def _gain_plane_ok(gain: torch.Tensor, out: torch.Tensor) -> bool:
    """``gain`` is ``(B, 1, H, W)`` float32 on the CPU with unit column stride, like ``out`` in size."""
    return (gain.dtype == torch.float32 and gain.device.type == "cpu" and gain.dim() == 4
            and gain.shape[0] == out.shape[0] and gain.shape[1] == 1 and gain.shape[-2:] == out.shape[-2:]
            and (gain.shape[-1] <= 1 or gain.stride(-1) == 1))


def _gain_args(gain: torch.Tensor | None, i: int, row: int) -> tuple[int | None, int]:
    """Pointer to row ``row`` of image ``i``'s gain plane and its row stride, or ``(None, 0)``."""
    if gain is None:
        return None, 0
    g = gain[i, 0]
    return g.data_ptr() + row * g.stride(0) * g.element_size(), g.stride(0)


def _run_rows(height: int, width: int, call) -> None:
    """``call(row, rows)`` over ``[0, height)``, split across torch's threads when large."""
    threads = torch.get_num_threads()
    if threads <= 1 or height * width < _PARALLEL_PIXELS or height < 2 * threads:
        results = [call(0, height)]
    else:
        edges = [height * k // threads for k in range(threads + 1)]
        results = list(_pool(threads).map(lambda k: call(edges[k], edges[k + 1] - edges[k]), range(threads)))
    if any(results):
        raise MemoryError("out of memory in the curve kernel")


def apply_maps(x: torch.Tensor, maps: torch.Tensor, steps: int, out: torch.Tensor,
               gain: torch.Tensor | None = None) -> bool:
    """Full-resolution curves: ``steps`` curve steps of ``x`` into ``out``, the RGB groups of ``maps`` in turn.

    ``x``/``out`` are ``(B, 3, H, W)`` uint8 or float32, ``maps`` ``(B or 1, 3n, H, W)``
    float32, all on the CPU, any strides. ``gain``, if given, is ``(B, 1, H, W)``
    float32 and receives the luma-weighted slope of the curves at each pixel.
    Returns ``False`` (doing nothing) where the kernels are unavailable or the
    tensors are not of those kinds.
    """
    if not _usable(x, out, maps, gain):
        return False
    lib, (b, _, h, w) = library(), x.shape
    interleaved = x.stride(1) == 1 and x.shape[1] > 1
    for i in range(b):
        xi, oi, mi = x[i], out[i], maps[min(i, maps.shape[0] - 1)]
        _run_rows(h, w, lambda r, n: lib.zdce_apply_maps(
            _plane(xi, r), _plane(oi, r), n, w, interleaved, _plane(mi, r), mi.shape[0] // 3, steps,
            *_gain_args(gain, i, r)))
    return True


def apply_low_res(
    x: torch.Tensor, small: torch.Tensor, padded: tuple[int, int], steps: int, row_start: int, out: torch.Tensor,
    gain: torch.Tensor | None = None,
) -> bool:
    """Low-resolution curves stretched over ``padded`` (bilinear, align_corners), then :func:`apply_maps`.

    ``x``/``out`` are rows ``[row_start, row_start + H)`` of the image, ``(B, 3, H, W)``
    uint8 or float32; ``small`` is ``(B or 1, 3n, h, w)`` float32; ``gain`` as for
    :func:`apply_maps`. Returns ``False`` (doing nothing) where the kernels are
    unavailable or the tensors are not of those kinds.
    """
    if not _usable(x, out, small, gain):
        return False
    lib, (b, _, h, w) = library(), x.shape
    interleaved = x.stride(1) == 1
    for i in range(b):
        xi, oi = x[i], out[i]
        si = small[min(i, small.shape[0] - 1)].contiguous()
        _run_rows(h, w, lambda r, n: lib.zdce_apply_low_res(
            _plane(xi, r), _plane(oi, r), n, w, interleaved, si.data_ptr(), si.shape[0] // 3, si.shape[1], si.shape[2],
            padded[0], padded[1], row_start + r, steps, *_gain_args(gain, i, r)))
    return True


def denoise_level(src: torch.Tensor, guide: torch.Tensor, gain: torch.Tensor, hscale: float, dilation: int,
                  dst: torch.Tensor) -> bool:
    """One level of the edge-stopping filter of ``zerodce.enhance.denoise`` from ``src`` into ``dst``.

    ``src``/``guide``/``dst`` are ``(3, H, W)`` and ``gain`` ``(H, W)``, contiguous
    float32 on the CPU, ``dst`` overlapping neither ``src`` nor ``guide``. Returns
    ``False`` (doing nothing) where the kernels are unavailable or the tensors are
    not of those kinds.
    """
    _, h, w = src.shape
    if not (_callable(src) and src.dtype == dst.dtype == gain.dtype == guide.dtype == torch.float32
            and src.shape == dst.shape == guide.shape and src.shape[0] == 3 and gain.shape == (h, w)
            and src.is_contiguous() and dst.is_contiguous() and gain.is_contiguous() and guide.is_contiguous()
            and dst.device.type == gain.device.type == guide.device.type == "cpu"
            and dst.data_ptr() not in (src.data_ptr(), guide.data_ptr())):
        return False
    lib = library()
    _run_rows(h, w, lambda r, n: lib.zdce_denoise_level(
        src.data_ptr(), guide.data_ptr(), dst.data_ptr(), h, w, gain.data_ptr(), hscale, dilation, r, n))
    return True


def downscale(x: torch.Tensor, factor: int) -> torch.Tensor | None:
    """Zero-DCE++'s input downscaling (see ``zerodce.models._dce_net.downscale``), float32 out.

    ``x`` is ``(B, C, H, W)`` uint8 or float32 on the CPU, any strides. ``None``
    where the kernels are unavailable or ``x`` is not of those kinds.
    """
    if x.dtype not in (torch.float32, torch.uint8) or not _callable(x):
        return None
    b, c, h, w = x.shape
    out = torch.empty(b, c, (h + factor - 1) // factor, (w + factor - 1) // factor)
    for i in range(b):
        library().zdce_downscale(_plane(x[i], 0), c, h, w, factor, out[i].data_ptr())
    return out
