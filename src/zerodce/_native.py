"""Compiled curve kernels (``_native_curves.c``), built on first use where a C compiler exists.

The eight curve steps are a few multiply-adds per value, so in PyTorch they are
bound by memory traffic: every operation reads and writes a whole tensor. The
C kernels read each image row once (uint8 or float32), keep it in L1 cache
through all steps and write it once. They need only a C compiler (``cc``, or
``$CC``), not Python or torch headers, so building takes about a second.

The built library is cached, and a cached library is code every process runs,
so the cache is trusted only as far as it is checked:

- the folder is ``$ZERODCE_CACHE``, else ``$XDG_CACHE_HOME/zerodce``, else
  ``~/.cache/zerodce``, created with mode 0700. A folder that is not owned by
  this user, or that group or others can write to, is not used: the kernels are
  built into a private temporary folder for this process instead;
- a library file is loaded only if it is a regular file owned by this user and
  not writable by group or others; otherwise it is rebuilt in its place;
- its name is a hash of the C source, the compiler (its path and ``--version``
  output), the flags and the CPU (``-march=native`` code only runs on the CPU
  it was built for), so any change builds a new one;
- a library that fails to load (a corrupt file) is rebuilt once.

``ZERODCE_NATIVE=0`` turns the kernels off, ``ZERODCE_NATIVE=1`` makes them
required (a failed build is an error carrying the compiler's message), unset
means use them where they build. ``ZERODCE_NATIVE_CFLAGS`` adds compiler flags
(e.g. ``-fsanitize=address,undefined`` for a checked build; part of the name).
Why the kernels are not used is logged (logger ``"zerodce"``), and every
function here then returns ``False`` (``None``) so callers take their PyTorch
path, which is the definition the kernels are tested against.

Each function checks its arguments before anything reaches C: a call that could
never be right (shapes, sizes, strides, an output overlapping an input) raises
``ValueError``; ``False`` means only "not a kind of tensor the kernel handles".
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import math
import os
import platform
import shlex
import shutil
import stat
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence, Union

import torch

from zerodce._checks import InputError, ZerodceError

log = logging.getLogger("zerodce")

_SOURCE = Path(__file__).with_name("_native_curves.c")
#: Pixels below which splitting rows over threads costs more than it saves.
_PARALLEL_PIXELS = 1 << 16
#: Flags of every build; the variants after them are tried in turn (some compilers lack -march=native,
#: which vectorises for this CPU's widest registers). No code here reads floating-point exception
#: flags, and without -fno-trapping-math GCC will not if-convert the denoiser's selects: on CPUs
#: without AVX-512's masked operations (AVX2) its loops then stay scalar, ~15x slower.
_FLAGS = ("-O3", "-std=c99", "-fno-trapping-math", "-shared", "-fPIC")
_VARIANTS = (("-march=native",), ())
#: Sizes are C ints in the kernels.
_INT_MAX = 2**31 - 1


class _Plane(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("u8", ctypes.c_int),
                ("sc", ctypes.c_int64), ("sh", ctypes.c_int64), ("sw", ctypes.c_int64)]


class _Unavailable(Exception):
    """Why the compiled kernels cannot be used (the message says it)."""


class KernelsUnavailableError(ZerodceError, RuntimeError):
    """``ZERODCE_NATIVE=1`` asked for the compiled kernels and they could not be built or loaded."""


# ---------------------------------------------------------------------------------------------
# Building and loading
# ---------------------------------------------------------------------------------------------

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


def _mode() -> str:
    mode = os.environ.get("ZERODCE_NATIVE", "").strip()
    if mode not in ("", "0", "1"):
        raise InputError(f"ZERODCE_NATIVE must be 0 (off), 1 (required) or unset (automatic), got {mode!r}")
    return mode


def _compiler() -> list[str]:
    """The compiler command (``$CC``, split like a shell does, else cc, gcc or clang), its program resolved."""
    configured = os.environ.get("CC", "").strip()
    command = shlex.split(configured) if configured else [next(
        (name for name in ("cc", "gcc", "clang") if shutil.which(name)), "cc")]
    program = shutil.which(command[0])
    if program is None:
        where = "CC" if configured else "the PATH (cc, gcc, clang)"
        raise _Unavailable(f"no C compiler: {command[0]!r} from {where} not found")
    return [os.path.abspath(program), *command[1:]]


def _compiler_identity(compiler: list[str]) -> bytes:
    """What tells two compilers apart: their ``--version`` output (whatever it is)."""
    try:
        result = subprocess.run([*compiler, "--version"], capture_output=True, timeout=60)
        return result.stdout + result.stderr + str(result.returncode).encode()
    except (OSError, subprocess.SubprocessError) as error:
        return repr(error).encode()


def _library_name(compiler: list[str], identity: bytes, flags: list[str]) -> str:
    digest = hashlib.sha256()
    for part in (_SOURCE.read_bytes(), "\0".join(compiler).encode(), identity, "\0".join(flags).encode(),
                 platform.machine().encode(), _cpu_key().encode()):
        digest.update(len(part).to_bytes(8, "little") + part)  # length-prefixed: parts cannot run together
    return f"curves-{digest.hexdigest()[:24]}.so"


def _distrust(st: os.stat_result, what: str) -> str | None:
    """Why a file or folder with status ``st`` is not to be trusted, or ``None``."""
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():  # POSIX; elsewhere the mode bits are all there is
        return f"{what} is owned by uid {st.st_uid}, not by this user (uid {os.geteuid()})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{what} is writable by group or others (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def _private_cache() -> Path:
    """The cache folder, created 0700; raises ``_Unavailable`` when it is not private to this user."""
    folder = _cache_dir()
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = folder.stat()
    except OSError as error:
        raise _Unavailable(f"cannot create the kernel cache folder {folder}: {error}") from error
    if not stat.S_ISDIR(st.st_mode):
        raise _Unavailable(f"the kernel cache {folder} is not a folder")
    problem = _distrust(st, f"the kernel cache folder {folder}")
    if problem:
        raise _Unavailable(problem)
    return folder


def _build(compiler: list[str], variants: list[list[str]], names: list[str], folder: Path) -> Path:
    """Compile into ``folder`` with the first flag variant that works; the library's path."""
    errors = []
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        for flags, name in zip(variants, names):
            built = Path(tmp) / name
            try:
                result = subprocess.run([*compiler, *flags, str(_SOURCE), "-o", str(built), "-lm"],
                                        capture_output=True, timeout=300)
            except (OSError, subprocess.SubprocessError) as error:
                errors.append(f"{shlex.join(flags)}: {error}")
                continue
            if result.returncode == 0:
                os.chmod(built, 0o700)  # whatever the umask: a library others could write is refused
                target = folder / name
                os.replace(built, target)  # atomic: concurrent builders never load half a file
                return target
            message = result.stderr.decode(errors="replace").strip() or f"exit code {result.returncode}, no message"
            errors.append(f"{shlex.join(flags)}:\n{message}")
    # The first line names the last attempt's first complaint (a one-line summary); the rest is all of it.
    first = errors[-1].splitlines()[1] if errors[-1].count("\n") else errors[-1]
    raise _Unavailable(f"the C compiler {compiler[0]} failed: {first}\n" + "\n".join(errors))


def _open(path: Path) -> ctypes.CDLL:
    """Load the library at ``path`` and declare its functions; ``OSError`` when it cannot be used."""
    lib = ctypes.CDLL(str(path))
    plane, i, ptr, i64 = _Plane, ctypes.c_int, ctypes.c_void_p, ctypes.c_int64
    try:
        lib.zdce_apply_maps.argtypes = [plane, plane, i, i, i, plane, i, i, ptr, i64]
        lib.zdce_apply_low_res.argtypes = [plane, plane, i, i, i, ptr, i, i, i, i, i, i, i, ptr, i64]
        lib.zdce_denoise.argtypes = [ptr, ptr, i, i, ptr, i, i, i, plane, i, i, i, i, i]
        lib.zdce_denoise_low_res.argtypes = [plane, i, i, ptr, i, i, i, i, i, i, i, ptr, i, i, i, plane, i, i, i, i, i]
        lib.zdce_downscale.argtypes = [plane, i, i, i, i, ptr]
        lib.zdce_store.argtypes = [plane, plane, i, i, i]
    except AttributeError as error:  # an old or foreign library
        raise OSError(f"{path} lacks the kernels: {error}") from error
    for fn in (lib.zdce_apply_maps, lib.zdce_apply_low_res, lib.zdce_denoise, lib.zdce_denoise_low_res,
               lib.zdce_downscale, lib.zdce_store):
        fn.restype = i
    return lib


def _load_cached(path: Path) -> ctypes.CDLL | None:
    """The trusted library at ``path``; ``None`` (after removing it) where it must be rebuilt."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    problem = ("it is not a regular file" if not stat.S_ISREG(st.st_mode)
               else _distrust(st, "it"))
    if problem is None:
        try:
            return _open(path)
        except OSError as error:
            problem = f"it failed to load ({error})"
    log.warning("zerodce: not loading the cached kernels %s: %s; rebuilding them", path, problem)
    path.unlink()
    return None


def _candidates(compiler: list[str]) -> tuple[list[list[str]], list[str]]:
    """The flags of each build variant, in the order tried, and the file name of each."""
    identity = _compiler_identity(compiler)
    extra = shlex.split(os.environ.get("ZERODCE_NATIVE_CFLAGS", ""))
    variants = [[*_FLAGS, *extra, *variant] for variant in _VARIANTS]
    return variants, [_library_name(compiler, identity, flags) for flags in variants]


def _find_or_build() -> ctypes.CDLL:
    """The kernels, from the cache or freshly built; raises ``_Unavailable`` saying why not."""
    compiler = _compiler()
    variants, names = _candidates(compiler)
    try:
        folder = _private_cache()
    except _Unavailable as refused:
        log.warning("zerodce: %s; building the compiled kernels in a private temporary folder instead", refused)
        with tempfile.TemporaryDirectory(prefix="zerodce-kernels-") as tmp:
            # Loaded before the folder goes: the process keeps its mapping of the file.
            return _open_built(_build(compiler, variants, names, Path(tmp)))
    for name in names:
        lib = _load_cached(folder / name)
        if lib is not None:
            return lib
    return _open_built(_build(compiler, variants, names, folder))


def _open_built(path: Path) -> ctypes.CDLL:
    try:
        return _open(path)
    except OSError as error:
        path.unlink()  # useless to the next process too: it builds again (once)
        raise _Unavailable(f"the freshly built kernels {path} failed to load: {error}") from error


@functools.lru_cache(maxsize=None)
def _library_or_reason() -> tuple[ctypes.CDLL | None, str]:
    if _mode() == "0":
        return None, "turned off by ZERODCE_NATIVE=0"
    try:
        return _find_or_build(), ""
    except (_Unavailable, OSError) as error:
        return None, str(error)


def library() -> ctypes.CDLL | None:
    """The compiled kernels, built and cached on first call; ``None`` where unavailable (the reason logged).

    Raises:
        KernelsUnavailableError: under ``ZERODCE_NATIVE=1`` when they cannot be built or loaded
            (the message holds the compiler's).
        InputError: ``ZERODCE_NATIVE`` is neither 0, 1 nor unset.
    """
    first = _library_or_reason.cache_info().currsize == 0
    lib, reason = _library_or_reason()
    if lib is None:
        if _mode() == "1":
            raise KernelsUnavailableError(f"the compiled kernels are required (ZERODCE_NATIVE=1) but unavailable: {reason}")
        if first:
            log.log(logging.INFO if reason.startswith(("turned off", "no C compiler")) else logging.WARNING,
                    "zerodce: compiled kernels not used, taking the PyTorch path: %s", reason)
    return lib


# Forgets the kernels (and why they were unavailable), so that the next call looks again (tests).
library.cache_clear = _library_or_reason.cache_clear  # type: ignore[attr-defined]


def unavailable_reason() -> str:
    """Why :func:`library` is ``None`` (``""`` when the kernels are in use)."""
    return _library_or_reason()[1]


def available() -> bool:
    """Whether the compiled kernels can be used in this process."""
    return library() is not None


# ---------------------------------------------------------------------------------------------
# Argument checks at the ctypes boundary
# ---------------------------------------------------------------------------------------------

def _span(t: torch.Tensor) -> tuple[int, int]:
    """The bytes ``[start, end)`` holding ``t``'s elements (strides are never negative in torch)."""
    if t.numel() == 0:
        return 0, 0
    last = sum((n - 1) * s for n, s in zip(t.shape, t.stride()))
    return t.data_ptr(), t.data_ptr() + (last + 1) * t.element_size()


def _overlap(a: torch.Tensor, b: torch.Tensor) -> bool:
    (a0, a1), (b0, b1) = _span(a), _span(b)
    return a0 < b1 and b0 < a1


def _same_view(a: torch.Tensor, b: torch.Tensor) -> bool:
    return (a.data_ptr() == b.data_ptr() and a.dtype == b.dtype and a.shape == b.shape
            and a.stride() == b.stride())


def _check_layout(t: torch.Tensor, name: str, written: bool) -> None:
    if any(s < 0 for s in t.stride()):
        raise ValueError(f"{name} has a negative stride {t.stride()}")
    if written and any(s == 0 and n > 1 for n, s in zip(t.shape, t.stride())):
        raise ValueError(f"{name} has a zero stride {t.stride()} (an expanded view): "
                         "each of its elements would be written several times; pass a real tensor")
    if any(n > _INT_MAX for n in t.shape):
        raise ValueError(f"{name} of shape {tuple(t.shape)} is too large for the compiled kernels")


def _check_batch(x: torch.Tensor, other: torch.Tensor, out: torch.Tensor, other_name: str) -> int:
    """The broadcast batch of ``x`` and ``other`` (as torch broadcasts: 1 with 0 is 0), which ``out`` must have."""
    bx, bo = x.shape[0], other.shape[0]
    b = bo if bx == 1 else bx
    if bo not in (1, b):
        raise ValueError(f"the batches of x {tuple(x.shape)} and {other_name} {tuple(other.shape)} do not broadcast")
    expected = (b, 3, *x.shape[-2:])
    if tuple(out.shape) != expected:
        raise ValueError(f"out must have the broadcast shape {expected}, got {tuple(out.shape)}")
    return b


def _check_group_maps(maps: torch.Tensor, name: str) -> None:
    if maps.dim() != 4 or maps.shape[1] == 0 or maps.shape[1] % 3:
        raise ValueError(f"{name} must be (B, 3*n, h, w) with n >= 1, got shape {tuple(maps.shape)}")


def _check_count(value: int, name: str, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= _INT_MAX:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def _kind_ok(x: torch.Tensor, out: torch.Tensor, maps: torch.Tensor, gain: torch.Tensor | None) -> bool:
    """Tensors of kinds the curve kernels handle (else the PyTorch path does)."""
    # A trace (ONNX export) would record a ctypes call's result as a constant, and autograd
    # cannot see through it: both take the PyTorch path.
    return (
        x.device.type == out.device.type == maps.device.type == "cpu"
        and not torch.jit.is_tracing() and not (torch.is_grad_enabled() and x.requires_grad)
        and x.dtype in (torch.float32, torch.uint8)
        and out.dtype in (torch.float32, torch.uint8)
        and maps.dtype == torch.float32
        # the kernels write gain rows as contiguous floats; a wrong shape is refused later, with a message
        and (gain is None or (gain.device.type == "cpu" and (gain.dim() != 4 or gain.shape[-1] <= 1
                                                             or gain.stride(-1) == 1)))
    )


def _check_curve_call(x: torch.Tensor, maps: torch.Tensor, steps: int, out: torch.Tensor,
                      gain: torch.Tensor | None, maps_name: str) -> int:
    """Everything about a curve kernel call that does not depend on the kind of maps; the batch."""
    for t, name in ((x, "x"), (out, "out")):
        if t.dim() != 4 or t.shape[1] != 3:
            raise ValueError(f"{name} must be (B, 3, H, W), got shape {tuple(t.shape)}")
    _check_group_maps(maps, maps_name)
    b = _check_batch(x, maps, out, maps_name)
    _check_count(steps, "steps", 0)
    _check_layout(x, "x", written=False)
    _check_layout(maps, maps_name, written=False)
    _check_layout(out, "out", written=True)
    if _overlap(out, x) and not _same_view(out, x):
        raise ValueError("out overlaps x without being x: pass a separate tensor, or x itself to work in place")
    if _overlap(out, maps):
        raise ValueError(f"out overlaps {maps_name}")
    if gain is not None:
        expected = (b, 1, *x.shape[-2:])
        if tuple(gain.shape) != expected or gain.dtype != torch.float32:
            raise ValueError(f"gain must be float32 of shape {expected}, got {gain.dtype} {tuple(gain.shape)}")
        _check_layout(gain, "gain", written=True)
        if any(_overlap(gain, t) for t in (x, maps, out)):
            raise ValueError("gain overlaps x, the curves or out")
    return b


# ---------------------------------------------------------------------------------------------
# Calls
# ---------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(workers, thread_name_prefix="zerodce-curves")


#: ``_Plane.u8`` of a uint8 image read as :func:`zerodce.curves.least_saturated_values` (``LEAST_SATURATED`` in C).
_LEAST_SATURATED = 2


#: How each image of a batch reads uint8 levels: one flag for all, or one per image of the (broadcast) batch.
LeastSaturated = Union[bool, Sequence[bool]]


def image_flag(least_saturated: LeastSaturated, i: int) -> bool:
    """Image ``i``'s flag of ``least_saturated``."""
    return least_saturated if isinstance(least_saturated, bool) else bool(least_saturated[i])


def _plane(t: torch.Tensor, row: int, least_saturated: bool = False) -> _Plane:
    """Image ``t`` ``(C, H, W)`` (any strides) from row ``row`` on; uint8 read least-saturated if asked."""
    u8 = (_LEAST_SATURATED if least_saturated else 1) if t.dtype == torch.uint8 else 0
    return _Plane(t.data_ptr() + row * t.stride(1) * t.element_size(), u8, *t.stride())


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
    if -1 in results:
        raise MemoryError("out of memory in the curve kernel")
    if any(results):
        raise RuntimeError(f"the compiled kernel refused its arguments (code {max(results, key=abs)})")


def _batch_item(t: torch.Tensor, i: int) -> torch.Tensor:
    """Image ``i`` of ``t``, whose batch is ``i``'s broadcast batch or 1."""
    return t[i if t.shape[0] > 1 else 0]


def apply_maps(x: torch.Tensor, maps: torch.Tensor, steps: int, out: torch.Tensor,
               gain: torch.Tensor | None = None, least_saturated: LeastSaturated = False) -> bool:
    """Full-resolution curves: ``steps`` curve steps of ``x`` into ``out``, the RGB groups of ``maps`` in turn.

    ``x`` is ``(B or 1, 3, H, W)`` uint8 or float32, ``maps`` ``(B or 1, 3n, H, W)``
    float32 and ``out`` ``(B, 3, H, W)`` uint8 or float32 with the broadcast batch,
    all on the CPU, any strides; ``out`` may be ``x`` itself (in place) but must not
    otherwise overlap an input. ``gain``, if given, is ``(B, 1, H, W)`` float32 and
    receives the luma-weighted slope of the curves at each pixel. ``least_saturated``
    (for all images, or per image of the broadcast batch): uint8 ``x`` is read as
    :func:`zerodce.curves.least_saturated_values`.

    Returns ``False`` (doing nothing) where the kernels are unavailable or the
    tensors are not of those kinds (device, dtype, autograd, a gain plane with
    strided columns); raises ``ValueError`` for arguments that do not fit together.

    Example:
        >>> x, maps = torch.rand(1, 3, 4, 5), torch.zeros(2, 3, 4, 5)
        >>> out = torch.empty(2, 3, 4, 5)
        >>> not available() or (apply_maps(x, maps, 8, out) and out.equal(x.expand(2, -1, -1, -1)))
        True
    """
    if not _kind_ok(x, out, maps, gain):
        return False
    b = _check_curve_call(x, maps, steps, out, gain, "maps")
    if maps.shape[-2:] != x.shape[-2:]:
        raise ValueError(f"maps {tuple(maps.shape)} and x {tuple(x.shape)} must have the same height and width")
    lib = library()
    if lib is None:
        return False
    h, w = x.shape[-2:]
    if not out.numel():
        return True
    interleaved = x.stride(1) == 1
    for i in range(b):
        xi, oi, mi = _batch_item(x, i), out[i], _batch_item(maps, i)
        _run_rows(h, w, lambda r, n: lib.zdce_apply_maps(
            _plane(xi, r, image_flag(least_saturated, i)), _plane(oi, r), n, w, interleaved, _plane(mi, r),
            mi.shape[0] // 3, steps, *_gain_args(gain, i, r)))
    return True


def apply_low_res(
    x: torch.Tensor, small: torch.Tensor, padded: tuple[int, int], steps: int, row_start: int, out: torch.Tensor,
    gain: torch.Tensor | None = None, least_saturated: LeastSaturated = False,
) -> bool:
    """Low-resolution curves stretched over ``padded`` (bilinear, align_corners), then :func:`apply_maps`.

    ``x`` is rows ``[row_start, row_start + H)`` and the first ``W`` columns of an
    image of padded size ``padded`` (so ``row_start + H <= padded[0]`` and
    ``W <= padded[1]``), ``(B or 1, 3, H, W)`` uint8 or float32; ``small`` is
    ``(B or 1, 3n, h, w)`` float32; ``out``, ``gain`` and ``least_saturated`` as for :func:`apply_maps`.
    Returns ``False`` (doing nothing) where the kernels are unavailable or the
    tensors are not of those kinds; raises ``ValueError`` for arguments that do
    not fit together.

    Example:
        >>> x, small = torch.rand(1, 3, 4, 5), torch.zeros(1, 3, 2, 2)
        >>> apply_low_res(x, small, (4, 4), 8, 0, torch.empty_like(x))
        Traceback (most recent call last):
        ...
        ValueError: x's 5 columns do not fit in the padded width 4
    """
    if not _kind_ok(x, out, small, gain):
        return False
    b = _check_curve_call(x, small, steps, out, gain, "small")
    h, w = x.shape[-2:]
    if not (isinstance(padded, (tuple, list)) and len(padded) == 2):
        raise ValueError(f"padded must be (height, width), got {padded!r}")
    _check_count(padded[0], "the padded height", 1)
    _check_count(padded[1], "the padded width", 1)
    _check_count(row_start, "row_start", 0)
    if row_start + h > padded[0]:
        raise ValueError(f"rows [{row_start}, {row_start + h}) of x do not fit in the padded height {padded[0]}")
    if w > padded[1]:
        raise ValueError(f"x's {w} columns do not fit in the padded width {padded[1]}")
    if small.shape[-2] < 1 or small.shape[-1] < 1:
        raise ValueError(f"small must have at least one row and column, got shape {tuple(small.shape)}")
    lib = library()
    if lib is None:
        return False
    if not out.numel():
        return True
    interleaved = x.stride(1) == 1
    for i in range(b):
        xi, oi = _batch_item(x, i), out[i]
        si = _batch_item(small, i).contiguous()
        _run_rows(h, w, lambda r, n: lib.zdce_apply_low_res(
            _plane(xi, r, image_flag(least_saturated, i)), _plane(oi, r), n, w, interleaved, si.data_ptr(),
            si.shape[0] // 3, si.shape[1], si.shape[2], padded[0], padded[1], row_start + r, steps,
            *_gain_args(gain, i, r)))
    return True


#: Passes of :func:`denoise` at most (as ``DENOISE_MAX_LEVELS`` in the C code).
DENOISE_MAX_LEVELS = 8


def _plain_kind(*tensors: torch.Tensor) -> bool:
    """CPU tensors outside a trace and outside autograd: what every kernel needs."""
    return (all(t.device.type == "cpu" for t in tensors) and not torch.jit.is_tracing()
            and not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors)))


def denoise(y: torch.Tensor, gain: torch.Tensor, hscales: list[float], dst: torch.Tensor,
            offset: tuple[int, int] = (0, 0), origin: tuple[int, int] = (0, 0)) -> bool:
    """All passes of ``zerodce.enhance.denoise.denoise_amplified`` on one image, streamed, into ``dst``.

    The passes of ``zerodce.enhance.denoise._filter`` with scales ``hscales`` (at most
    :data:`DENOISE_MAX_LEVELS`; ``origin``: the image coordinates of ``y``'s first row and
    column, whose parity decides the pixels the half-resolution passes pair); the result
    equals them on the whole image, but every pass runs on a few rows held in cache, and
    only the rows the next pass needs. ``y`` is ``(3, H, W)`` and ``gain`` ``(H, W)``, contiguous float32
    on the CPU; ``dst`` ``(3, h, w)`` uint8 (rounded half to even) or float32, any
    strides, receives rows ``[r, r + h)`` and columns ``[c, c + w)`` of the result
    clamped to [0, 1], ``(r, c) = offset``. Returns ``False`` (doing nothing) where
    the kernels are unavailable or cannot do it (other dtypes or devices, ``y`` or
    ``gain`` not contiguous); raises ``ValueError`` for arguments that do not fit.

    Example:
        >>> y, gain = torch.rand(3, 4, 4), torch.ones(4, 4)  # a gain of 1: nothing amplified
        >>> out = torch.empty(3, 2, 4)
        >>> not available() or (denoise(y, gain, [0.1, 0.05], out, (1, 0)) and out.equal(y[:, 1:3]))
        True
    """
    if not (_plain_kind(y, gain, dst) and y.dtype == gain.dtype == torch.float32
            and dst.dtype in (torch.float32, torch.uint8)):
        return False
    if y.dim() != 3 or y.shape[0] != 3:
        raise ValueError(f"y must be (3, H, W), got shape {tuple(y.shape)}")
    if gain.shape != y.shape[1:]:
        raise ValueError(f"gain must have shape {tuple(y.shape[1:])}, got {tuple(gain.shape)}")
    _check_layout(y, "y", written=False)
    _check_layout(gain, "gain", written=False)
    h, w, r0, c0 = _check_stream_out(tuple(y.shape[1:]), hscales, dst, offset, (y, gain), "y or gain")
    if not (y.is_contiguous() and gain.is_contiguous()):
        return False
    lib = library()
    if lib is None:
        return False
    if not dst.numel():
        return True
    scales = (ctypes.c_float * max(1, len(hscales)))(*hscales)
    interleaved = dst.stride(0) == 1
    _run_rows(h, w, lambda r, n: lib.zdce_denoise(
        y.data_ptr(), gain.data_ptr(), y.shape[1], y.shape[2], scales, len(hscales), origin[0] % 2, origin[1] % 2,
        _plane(dst, r), r0 + r, n, c0, w, interleaved))
    return True


def _check_stream_out(size: tuple[int, int], hscales: list[float], dst: torch.Tensor, offset: tuple[int, int],
                      inputs: tuple[torch.Tensor, ...], names: str) -> tuple[int, int, int, int]:
    """The checks of a streamed filter's passes and output window; ``(h, w, row, column)``."""
    if dst.dim() != 3 or dst.shape[0] != 3:
        raise ValueError(f"dst must be (3, h, w), got shape {tuple(dst.shape)}")
    if not (isinstance(hscales, (list, tuple)) and len(hscales) <= DENOISE_MAX_LEVELS
            and all(isinstance(v, (int, float)) and math.isfinite(v) and v >= 0 for v in hscales)):
        raise ValueError(f"hscales must be at most {DENOISE_MAX_LEVELS} finite numbers >= 0, got {hscales!r}")
    if not (isinstance(offset, (tuple, list)) and len(offset) == 2):
        raise ValueError(f"offset must be (row, column), got {offset!r}")
    _check_count(offset[0], "the row offset", 0)
    _check_count(offset[1], "the column offset", 0)
    (_, h, w), (r0, c0) = dst.shape, offset
    if r0 + h > size[0] or c0 + w > size[1]:
        raise ValueError(f"rows [{r0}, {r0 + h}) and columns [{c0}, {c0 + w}) do not fit in an image of {size}")
    _check_layout(dst, "dst", written=dst.numel() > 0)  # an empty view may have zero strides
    if any(_overlap(dst, t) for t in inputs):
        raise ValueError(f"dst overlaps {names}")
    return h, w, r0, c0


def denoise_low_res(x: torch.Tensor, small: torch.Tensor, padded: tuple[int, int], steps: int, row_start: int,
                    hscales: list[float], dst: torch.Tensor, offset: tuple[int, int] = (0, 0),
                    least_saturated: bool = False) -> bool:
    """:func:`denoise` of the image :func:`apply_low_res` makes, each row computed as the filter needs it.

    ``x`` ``(3, H, W)`` (uint8 or float32, any strides) and ``small``
    ``(3n, h, w)`` float32 as one image of :func:`apply_low_res` (``least_saturated``
    as there); the curves' output (clamped to [0, 1]) and gain never exist as
    images. ``hscales``, ``dst`` and ``offset`` as for :func:`denoise` (the origin: row ``row_start``,
    column 0). Returns ``False`` (doing
    nothing) where the kernels are unavailable or the tensors are not of those
    kinds; raises ``ValueError`` for arguments that do not fit.
    """
    if not (_plain_kind(x, small, dst) and x.dtype in (torch.float32, torch.uint8) and small.dtype == torch.float32
            and dst.dtype in (torch.float32, torch.uint8)):
        return False
    if x.dim() != 3 or x.shape[0] != 3:
        raise ValueError(f"x must be (3, H, W), got shape {tuple(x.shape)}")
    _check_group_maps(small[None] if small.dim() == 3 else small, "small")
    _check_count(steps, "steps", 0)
    _check_count(row_start, "row_start", 0)
    if not (isinstance(padded, (tuple, list)) and len(padded) == 2):
        raise ValueError(f"padded must be (height, width), got {padded!r}")
    _check_count(padded[0], "the padded height", 1)
    _check_count(padded[1], "the padded width", 1)
    _, height, width = x.shape
    if row_start + height > padded[0] or width > padded[1]:
        raise ValueError(f"x's rows [{row_start}, {row_start + height}) and {width} columns do not fit in the padded "
                         f"size {tuple(padded)}")
    if small.shape[-2] < 1 or small.shape[-1] < 1:
        raise ValueError(f"small must have at least one row and column, got shape {tuple(small.shape)}")
    _check_layout(x, "x", written=False)
    _check_layout(small, "small", written=False)
    h, w, r0, c0 = _check_stream_out((height, width), hscales, dst, offset, (x, small), "x or small")
    lib = library()
    if lib is None:
        return False
    if not dst.numel():
        return True
    small = small.contiguous()
    scales = (ctypes.c_float * max(1, len(hscales)))(*hscales)
    _run_rows(h, w, lambda r, n: lib.zdce_denoise_low_res(
        _plane(x, 0, least_saturated), height, width, small.data_ptr(), small.shape[0] // 3,
        small.shape[1], small.shape[2], padded[0], padded[1], row_start, steps, scales, len(hscales), row_start % 2, 0,
        _plane(dst, r), r0 + r, n, c0, w, dst.stride(0) == 1))
    return True


def store(src: torch.Tensor, dst: torch.Tensor) -> bool:
    """``src`` ``(B, 3, H, W)`` float32 (any strides) into ``dst`` of its shape, uint8 (rounded half
    to even) or float32, any strides, clamped to [0, 1]: one pass, no temporaries.

    Returns ``False`` (doing nothing) where the kernels are unavailable or cannot do it;
    raises ``ValueError`` for shapes that do not fit or a ``dst`` overlapping ``src``.
    """
    if not (src.device.type == dst.device.type == "cpu" and src.dtype == torch.float32
            and dst.dtype in (torch.float32, torch.uint8) and not torch.jit.is_tracing()
            and not (torch.is_grad_enabled() and src.requires_grad)):
        return False
    if src.dim() != 4 or src.shape[1] != 3 or dst.shape != src.shape:
        raise ValueError(f"src and dst must both be (B, 3, H, W), got {tuple(src.shape)} and {tuple(dst.shape)}")
    _check_layout(src, "src", written=False)
    _check_layout(dst, "dst", written=True)
    if _overlap(src, dst):
        raise ValueError("dst overlaps src")
    lib = library()
    if lib is None:
        return False
    b, _, h, w = src.shape
    interleaved = dst.stride(1) == 1
    for i in range(b):
        si, di = src[i], dst[i]
        _run_rows(h, w, lambda r, n: lib.zdce_store(_plane(si, r), _plane(di, r), n, w, interleaved))
    return True


def downscale(x: torch.Tensor, factor: int) -> torch.Tensor | None:
    """Zero-DCE++'s input downscaling (see ``zerodce.models._dce_net.downscale``), float32 out.

    ``x`` is ``(B, C, H, W)`` uint8 or float32 on the CPU, any strides; ``factor >= 1``.
    ``None`` where the kernels are unavailable or ``x`` is not of those kinds;
    ``ValueError`` for a wrong shape or factor.

    Example:
        >>> y = downscale(torch.rand(1, 3, 25, 37), 12)
        >>> y is None or tuple(y.shape) == (1, 3, 3, 4)
        True
    """
    if not (x.device.type == "cpu" and x.dtype in (torch.float32, torch.uint8) and not torch.jit.is_tracing()
            and not (torch.is_grad_enabled() and x.requires_grad)):
        return None
    if x.dim() != 4:
        raise ValueError(f"x must be (B, C, H, W), got shape {tuple(x.shape)}")
    _check_count(factor, "factor", 1)
    _check_layout(x, "x", written=False)
    lib = library()
    if lib is None:
        return None
    b, c, h, w = x.shape
    out = torch.empty(b, c, (h + factor - 1) // factor, (w + factor - 1) // factor)
    for i in range(b):
        if lib.zdce_downscale(_plane(x[i], 0), c, h, w, factor, out[i].data_ptr()):
            raise RuntimeError("the compiled downscale kernel refused its arguments")
    return out
