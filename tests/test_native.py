"""The compiled kernels of ``zerodce._native``: memory-safe calls and a trusted cache.

Memory safety: a seeded fuzz over shapes, strides (slices, permutes,
channels-last, expanded views), batch broadcasting both ways, uint8/float32 in
and out, row bands and low-resolution sizes, each case against the PyTorch
reference (``apply_curves_reference``, ``curve_gain``, ``F.interpolate``, and
the passes of ``zerodce.enhance.denoise.denoise_level`` in turn for the streamed
``denoise``); calls that cannot be right must raise
``ValueError`` before reaching C, and the C code clamps on its own. The same
cases run once more in a subprocess against the kernels built with
``-fsanitize=address,undefined``: no report allowed (and a deliberate
out-of-bounds call must be reported, so that silence means something).

Run as a script (``python tests/test_native.py --fuzz``) it runs the fuzz cases;
the sanitizer test does that.
"""

from __future__ import annotations

import ctypes
import logging
import os
import random
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from zerodce import _native
from zerodce._checks import InputError, ZerodceError
from zerodce.curves import apply_curves_fused, apply_curves_reference, curve_gain, least_saturated_values, step_count
from zerodce.enhance.denoise import _filter

from conftest import missing, require_native

FUZZ_CASES = 300
TOL = 1e-4


# ---------------------------------------------------------------------------------------------
# Tensors in every layout
# ---------------------------------------------------------------------------------------------

def random_values(rng: random.Random, shape: tuple[int, ...], uint8: bool) -> torch.Tensor:
    gen = torch.Generator().manual_seed(rng.randrange(2**31))
    if uint8:
        return torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen)
    return torch.rand(shape, generator=gen)


def laid_out(values: torch.Tensor, layout: str) -> torch.Tensor:
    """``values`` in the memory layout ``layout`` (a copy, never a view of ``values``)."""
    if layout == "contiguous":
        return values.clone()
    if layout == "channels_last":
        return values.contiguous(memory_format=torch.channels_last)
    if layout == "transposed":  # columns outermost: the column stride is the largest
        return values.transpose(-1, -2).contiguous().transpose(-1, -2)
    if layout == "batch_inner":
        return values.permute(1, 2, 3, 0).contiguous().permute(3, 0, 1, 2)
    if layout == "sliced":  # every other row and every third column of a larger tensor, with offsets
        b, c, h, w = values.shape
        big = torch.zeros((b, c + 1, 2 * h + 1, 3 * w + 2), dtype=values.dtype)
        view = big[:, 1:, 1::2, 2::3][..., :h, :w]
        view.copy_(values)
        return view
    raise AssertionError(layout)


READ_LAYOUTS = ("contiguous", "channels_last", "transposed", "batch_inner", "sliced")


def input_tensor(rng: random.Random, shape: tuple[int, ...], uint8: bool = False, signed: bool = False) -> torch.Tensor:
    """A random input of ``shape`` (in [-1, 1] where ``signed``), in a random layout; sometimes an
    expanded view (zero strides)."""
    expanded = rng.random() < 0.15
    dim = rng.choice([0, 2, 3])
    values = random_values(rng, tuple(1 if expanded and d == dim else n for d, n in enumerate(shape)), uint8)
    values = values * 2 - 1 if signed else values
    return values.expand(shape) if expanded else laid_out(values, rng.choice(READ_LAYOUTS))


class Canvas:
    """An output tensor in a random layout, inside a sentinel-filled buffer whose rest must stay untouched."""

    def __init__(self, rng: random.Random, shape: tuple[int, ...], dtype: torch.dtype):
        layout = rng.choice(("contiguous", "channels_last", "sliced", "transposed"))
        sentinel = torch.full(shape, 77, dtype=dtype)
        self.tensor = laid_out(sentinel, layout)
        self.buffer = self.tensor._base  # contiguous, where there is one
        self.before = None if self.buffer is None else self.buffer.clone()

    def rest_untouched(self) -> bool:
        if self.buffer is None:  # the tensor is all of its memory
            return True
        after, before = self.buffer, self.before
        mask = torch.zeros(self.buffer.shape, dtype=torch.bool)
        view_mask = mask.as_strided(self.tensor.shape, self.tensor.stride(),
                                    self.tensor.storage_offset() - self.buffer.storage_offset())
        view_mask.fill_(True)
        return bool(after[~mask].eq(before[~mask]).all())


def as_float(x: torch.Tensor, least_saturated: bool = False) -> torch.Tensor:
    if x.dtype == torch.uint8:
        return least_saturated_values(x) if least_saturated else x.float() / 255
    return x.float()


def check_result(out: torch.Tensor, expected: torch.Tensor) -> None:
    """``out`` (float or uint8) equals the float reference ``expected``."""
    assert out.shape == expected.shape
    if out.dtype == torch.uint8:
        levels = (expected * 255).round()
        # Rounded half to even as torch.round; a value within float rounding of a .5 may land one level off.
        assert (out.double() - levels.double()).abs().max() <= 1
    else:
        assert (out.double() - expected.double()).abs().max() <= TOL


def check_gain(gain: torch.Tensor, expected: torch.Tensor) -> None:
    assert ((gain - expected).abs() / expected.abs().clamp(min=1)).max() <= TOL


# ---------------------------------------------------------------------------------------------
# Fuzz cases
# ---------------------------------------------------------------------------------------------

def batches(rng: random.Random) -> tuple[int, int, int]:
    """The batch of x, of the curves and of the result: broadcasting either way, or none."""
    b = rng.choice([1, 2, 3])
    bx, bm = rng.choice([(b, b), (1, b), (b, 1)])
    return bx, bm, max(bx, bm)


def curve_case(rng: random.Random, low_res: bool) -> None:
    bx, bm, b = batches(rng)
    channels = rng.choice([3, 3, 6, 24])
    iterations = rng.randint(0, 8) if channels == 3 else 8
    steps = step_count(channels, iterations)
    x_u8, out_u8 = rng.random() < 0.5, rng.random() < 0.5
    if low_res:
        padded = (rng.randint(1, 30), rng.randint(1, 30))
        row_start = rng.randrange(padded[0])
        h, w = rng.randint(1, padded[0] - row_start), rng.randint(1, padded[1])
        small = input_tensor(rng, (bm, channels, rng.randint(1, 6), rng.randint(1, 6)), signed=True)
        maps = F.interpolate(small, size=padded, mode="bilinear", align_corners=True)[..., row_start:row_start + h, :w]
    else:
        h, w = rng.randint(1, 20), rng.randint(1, 24)
        maps = input_tensor(rng, (bm, channels, h, w), signed=True)
    x = input_tensor(rng, (bx, 3, h, w), x_u8)
    least_saturated = rng.random() < 0.5  # only changes how uint8 x is read
    x_float = as_float(x, least_saturated).expand(b, -1, -1, -1)
    expected = apply_curves_reference(x_float, maps.expand(b, -1, -1, -1), iterations)
    expected_gain = curve_gain(x_float, maps.expand(b, -1, -1, -1), iterations)
    expanded = any(s == 0 and n > 1 for n, s in zip(x.shape, x.stride()))
    in_place = bx == b and x_u8 == out_u8 and not expanded and rng.random() < 0.2
    canvas = None if in_place else Canvas(rng, (b, 3, h, w), torch.uint8 if out_u8 else torch.float32)
    out = x if in_place else canvas.tensor
    gain = None
    if rng.random() < 0.4:  # rows of a larger plane: row stride > width
        gain = torch.full((b, 1, h + 2, w + 3), -5.0)[..., 1:h + 1, 2:w + 2]
    if low_res:
        done = _native.apply_low_res(x, small, padded, steps, row_start, out, gain, least_saturated)
    else:
        done = _native.apply_maps(x, maps, steps, out, gain, least_saturated)
    assert done
    check_result(out, expected)
    if canvas is not None:
        assert canvas.rest_untouched()
    if gain is not None:
        check_gain(gain, expected_gain)
        assert gain._base[..., 0, :].eq(-5).all() and gain._base[..., :, 0].eq(-5).all()


def downscale_case(rng: random.Random) -> None:
    b, c = rng.randint(1, 3), rng.choice([1, 3, 4])
    h, w, factor = rng.randint(1, 30), rng.randint(1, 30), rng.randint(1, 13)
    x = input_tensor(rng, (b, c, h, w), rng.random() < 0.5)
    padded = F.pad(as_float(x), (0, -w % factor, 0, -h % factor), mode="replicate")
    # The size, not scale_factor=1/factor, so that no float rounding drops a row; same sampling points.
    expected = F.interpolate(padded, size=(padded.shape[2] // factor, padded.shape[3] // factor), mode="bilinear")
    got = _native.downscale(x, factor)
    assert got is not None and (got - expected).abs().max() <= TOL


def stream_case(rng: random.Random) -> None:
    """The streamed filter: any size, passes, window of rows and columns, uint8 or float out in any layout."""
    h, w = rng.randint(1, 40), rng.randint(1, 40)
    src = random_values(rng, (3, h, w), False)
    gain = 0.5 + 6 * random_values(rng, (h, w), False)
    hscales = [rng.choice([0.0, rng.uniform(0.0, 0.2)]) for _ in range(rng.randint(0, 5))]
    r0, c0 = rng.randint(0, h - 1), rng.randint(0, w - 1)
    rows, cols = rng.randint(0, h - r0), rng.randint(0, w - c0)
    uint8 = rng.random() < 0.5
    dtype = torch.uint8 if uint8 else torch.float32
    dst = laid_out(torch.zeros(1, 3, rows, cols, dtype=dtype), rng.choice(READ_LAYOUTS))[0]
    origin = (rng.randint(0, 3), rng.randint(0, 3))  # a tile's offset: the half-resolution passes follow its parity
    assert _native.denoise(src, gain, hscales, dst, (r0, c0), origin)
    expected = _filter(src, gain, hscales, (origin[0] % 2, origin[1] % 2))[:, r0 : r0 + rows, c0 : c0 + cols]
    if uint8:
        expected = expected.mul(255).round()
    assert torch.all((dst.float() - expected).abs() <= (1 if uint8 else 1e-5))


def stream_low_res_case(rng: random.Random) -> None:
    """Curves and filter in one stream against the curve kernel, then the passes in PyTorch."""
    padded = (rng.randint(1, 40), rng.randint(1, 40))
    row_start = rng.randrange(padded[0])
    h, w = rng.randint(1, padded[0] - row_start), rng.randint(1, padded[1])
    channels = rng.choice([3, 24])
    steps = step_count(channels, rng.randint(0, 8) if channels == 3 else 8)
    small = input_tensor(rng, (1, channels, rng.randint(1, 6), rng.randint(1, 6)), signed=True)[0]
    x = input_tensor(rng, (1, 3, h, w), rng.random() < 0.5)[0]
    least_saturated = rng.random() < 0.5
    y, gain = torch.empty(1, 3, h, w), torch.empty(1, 1, h, w)
    assert _native.apply_low_res(x[None], small[None], padded, steps, row_start, y, gain, least_saturated)
    hscales = [rng.choice([0.0, rng.uniform(0.0, 0.2)]) for _ in range(rng.randint(0, 5))]
    r0, c0 = rng.randint(0, h - 1), rng.randint(0, w - 1)
    rows, cols = rng.randint(0, h - r0), rng.randint(0, w - c0)
    uint8 = rng.random() < 0.5
    dst = laid_out(torch.zeros(1, 3, rows, cols, dtype=torch.uint8 if uint8 else torch.float32),
                   rng.choice(READ_LAYOUTS))[0]
    assert _native.denoise_low_res(x, small, padded, steps, row_start, hscales, dst, (r0, c0), least_saturated)
    expected = _filter(y[0], gain[0, 0], hscales, (row_start % 2, 0))[:, r0 : r0 + rows, c0 : c0 + cols]
    if uint8:
        expected = expected.mul(255).round()
    assert torch.all((dst.float() - expected).abs() <= (1 if uint8 else 1e-5))


def run_case(seed: int) -> None:
    rng = random.Random(seed)
    kind = rng.choice(["maps", "maps", "low_res", "low_res", "downscale", "stream", "stream", "stream_low_res"])
    threads = rng.choice([1, 1, 3])  # rows split over threads (at any size: see _PARALLEL_PIXELS below)
    old = torch.get_num_threads(), _native._PARALLEL_PIXELS
    torch.set_num_threads(threads)
    _native._PARALLEL_PIXELS = 1
    try:
        if kind in ("maps", "low_res"):
            curve_case(rng, low_res=kind == "low_res")
        elif kind == "downscale":
            downscale_case(rng)
        elif kind == "stream":
            stream_case(rng)
        else:
            stream_low_res_case(rng)
    finally:
        torch.set_num_threads(old[0])
        _native._PARALLEL_PIXELS = old[1]


# ---------------------------------------------------------------------------------------------
# Calls that are wrong: ValueError, nothing read or written
# ---------------------------------------------------------------------------------------------

def _x(b=1, h=8, w=8):
    return torch.rand(b, 3, h, w)


def _maps(b=1, c=3, h=8, w=8):
    return torch.rand(b, c, h, w) * 2 - 1


def _stream(y=(3, 8, 8), gain=(8, 8), hscales=(0.1, 0.05), dst=(3, 8, 8), offset=(0, 0), dtype=torch.uint8):
    return _native.denoise(torch.rand(y), torch.ones(gain), list(hscales), torch.empty(dst, dtype=dtype), offset)


def _stream_low_res(x=(3, 8, 8), small=(3, 2, 2), padded=(8, 8), row_start=0, dst=(3, 8, 8), offset=(0, 0)):
    return _native.denoise_low_res(torch.rand(x), torch.rand(small), padded, 8, row_start, [0.1], torch.empty(dst),
                                   offset)


def _stream_into_y():
    y = torch.rand(3, 8, 8)
    return _native.denoise(y, torch.ones(8, 8), [0.1], y[:, :4])


def _shared_buffer():
    buffer = torch.rand(1, 3, 9, 8)
    return buffer[..., :8, :], buffer[..., 1:, :]  # overlapping by 7 rows


WRONG_CALLS = {
    # apply_low_res: sizes against the padded size
    "columns past the padded width": (lambda: _native.apply_low_res(
        _x(w=64), _maps(h=2, w=2), (8, 8), 8, 0, torch.empty(1, 3, 8, 64)), "padded width"),
    "rows past the padded height": (lambda: _native.apply_low_res(
        _x(h=8), _maps(h=2, w=2), (10, 8), 8, 4, torch.empty(1, 3, 8, 8)), "padded height"),
    "negative row_start": (lambda: _native.apply_low_res(
        _x(), _maps(h=2, w=2), (8, 8), 8, -1, torch.empty(1, 3, 8, 8)), "row_start"),
    "empty padded size": (lambda: _native.apply_low_res(
        _x(), _maps(h=2, w=2), (0, 8), 8, 0, torch.empty(1, 3, 8, 8)), "padded height"),
    "empty low-res maps": (lambda: _native.apply_low_res(
        _x(), _maps(h=0, w=2), (8, 8), 8, 0, torch.empty(1, 3, 8, 8)), "at least one row"),
    "out batch of x, not the broadcast one": (lambda: _native.apply_low_res(
        _x(b=1), _maps(b=2, h=2, w=2), (8, 8), 8, 0, torch.empty(1, 3, 8, 8)), "broadcast shape"),
    # apply_maps
    "out batch of x with maps of batch 2": (lambda: _native.apply_maps(
        _x(b=1), _maps(b=2), 8, torch.empty(1, 3, 8, 8)), "broadcast shape"),
    "batches that do not broadcast": (lambda: _native.apply_maps(
        _x(b=2), _maps(b=3), 8, torch.empty(3, 3, 8, 8)), "do not broadcast"),
    "maps of another size": (lambda: _native.apply_maps(
        _x(), _maps(h=7), 8, torch.empty(1, 3, 8, 8)), "same height and width"),
    "maps with 4 channels": (lambda: _native.apply_maps(
        _x(), _maps(c=4), 8, torch.empty(1, 3, 8, 8)), "3\\*n"),
    "x with 4 channels": (lambda: _native.apply_maps(
        torch.rand(1, 4, 8, 8), _maps(), 8, torch.empty(1, 4, 8, 8)), "x must be"),
    "out of 3 dims": (lambda: _native.apply_maps(_x(), _maps(), 8, torch.empty(3, 8, 8)), "out must be"),
    "negative steps": (lambda: _native.apply_maps(_x(), _maps(), -1, torch.empty(1, 3, 8, 8)), "steps"),
    "expanded out": (lambda: _native.apply_maps(
        _x(b=2), _maps(), 8, torch.empty(1, 3, 8, 8).expand(2, -1, -1, -1)), "zero stride"),
    "out overlapping x": (lambda: _native.apply_maps(*_overlapping_x_out()), "overlaps x"),
    "out overlapping maps": (lambda: _native.apply_maps(*_overlapping_maps_out()), "overlaps maps"),
    "gain of the wrong shape": (lambda: _native.apply_maps(
        _x(b=1), _maps(b=2), 8, torch.empty(2, 3, 8, 8), torch.empty(1, 1, 8, 8)), "gain must be"),
    "gain overlapping out": (lambda: _native.apply_maps(*_gain_in_out()), "gain overlaps"),
    # downscale
    "downscale by 0": (lambda: _native.downscale(_x(), 0), "factor"),
    "downscale of 3 dims": (lambda: _native.downscale(torch.rand(3, 8, 8), 2), "x must be"),
    # the streamed filter
    "stream of 4 channels": (lambda: _stream(y=(4, 8, 8)), "y must"),
    "stream with a gain of another size": (lambda: _stream(gain=(8, 7)), "gain must"),
    "stream into 2 dims": (lambda: _stream(dst=(8, 8)), "dst must"),
    "stream with a NaN scale": (lambda: _stream(hscales=(0.1, float("nan"))), "hscales"),
    "stream with a negative scale": (lambda: _stream(hscales=(-0.1,)), "hscales"),
    "stream with 9 passes": (lambda: _stream(hscales=(0.1,) * 9), "hscales"),
    "stream past the last row": (lambda: _stream(dst=(3, 4, 8), offset=(5, 0)), "do not fit"),
    "stream past the last column": (lambda: _stream(dst=(3, 8, 8), offset=(0, 1)), "do not fit"),
    "stream with a negative offset": (lambda: _stream(dst=(3, 4, 8), offset=(-1, 0)), "row offset"),
    "stream into y": (_stream_into_y, "overlaps"),
    "curve stream of 4 channels": (lambda: _stream_low_res(x=(4, 8, 8)), "x must"),
    "curve stream with 4 curve channels": (lambda: _stream_low_res(small=(4, 2, 2)), "3\\*n"),
    "curve stream past the padded height": (lambda: _stream_low_res(row_start=1), "do not fit in the padded"),
    "curve stream past the padded width": (lambda: _stream_low_res(padded=(8, 7)), "do not fit in the padded"),
    "curve stream with empty curves": (lambda: _stream_low_res(small=(3, 0, 2)), "at least one row"),
    "curve stream past the last row": (lambda: _stream_low_res(dst=(3, 4, 8), offset=(5, 0)), "do not fit in an"),
}


def _overlapping_x_out():
    x, out = _shared_buffer()
    return x, _maps(), 8, out


def _overlapping_maps_out():
    maps = _maps(c=6)
    return _x(), maps, 2, maps[:, :3]


def _gain_in_out():
    out = torch.empty(1, 3, 8, 8)
    return _x(), _maps(), 8, out, out[:, :1]


def run_wrong_calls() -> None:
    for name, (call, message) in WRONG_CALLS.items():
        with pytest.raises(ValueError, match=message):
            call()


def run_direct_c_calls() -> None:
    """The C code clamps what it derives and refuses sizes that cannot be right, whatever Python passed."""
    lib = _native.library()
    small = (torch.rand(1, 3, 2, 2) * 2 - 1)[0].contiguous()
    x = torch.rand(3, 4, 64)
    out = torch.empty_like(x)
    # 64 columns against a padded width of 8: columns past it take the last map column.
    assert lib.zdce_apply_low_res(_native._plane(x, 0), _native._plane(out, 0), 4, 64, 0, small.data_ptr(), 1,
                                  2, 2, 4, 8, 0, 8, None, 0) == 0
    full = F.interpolate(small[None], size=(4, 8), mode="bilinear", align_corners=True)
    full = torch.cat([full, full[..., -1:].expand(-1, -1, -1, 56)], dim=-1)
    assert (out - apply_curves_reference(x[None], full)[0]).abs().max() <= TOL
    # Rows past the map (row_start beyond the padded height) are clamped to its last row.
    assert lib.zdce_apply_low_res(_native._plane(x, 0), _native._plane(out, 0), 4, 8, 0, small.data_ptr(), 1,
                                  2, 2, 4, 8, 1000, 8, None, 0) == 0
    bad = -2
    assert lib.zdce_apply_low_res(_native._plane(x, 0), _native._plane(out, 0), 4, 8, 0, small.data_ptr(), 1,
                                  0, 2, 4, 8, 0, 8, None, 0) == bad
    assert lib.zdce_apply_maps(_native._plane(x, 0), _native._plane(out, 0), 4, 8, 0, _native._plane(x, 0), 0, 8,
                               None, 0) == bad
    src, gain, dst = torch.rand(3, 4, 5), torch.ones(4, 5), torch.empty(3, 4, 5)
    assert lib.zdce_downscale(_native._plane(x, 0), 3, 4, 64, 0, dst.data_ptr()) == bad
    scales = (ctypes.c_float * 9)(*[0.1] * 9)
    for rows, cols, levels, r0, c0, parity in ((3, 5, 2, 2, 0, 0), (4, 5, 2, 0, 1, 0), (4, 5, 9, 0, 0, 0),
                                               (4, 5, -1, 0, 0, 0), (4, 5, 3, 0, 0, 2), (4, 5, 3, 0, 0, -1)):
        assert lib.zdce_denoise(src.data_ptr(), gain.data_ptr(), 4, 5, scales, levels, parity, 0,
                                _native._plane(dst, 0), r0, rows, c0, cols, 0) == bad
        assert lib.zdce_denoise_low_res(_native._plane(src, 0), 4, 5, small.data_ptr(), 1, 2, 2, 4, 8, 0, 8, scales,
                                        levels, 0, parity, _native._plane(dst, 0), r0, rows, c0, cols, 0) == bad
    # 5 columns against a padded width of 2: columns past it take the last map column, as zdce_apply_low_res does
    curves = torch.empty(3, 4, 5)
    assert lib.zdce_apply_low_res(_native._plane(src, 0), _native._plane(curves, 0), 4, 5, 0, small.data_ptr(), 1, 2,
                                  2, 4, 2, 0, 8, None, 0) == 0
    assert lib.zdce_denoise_low_res(_native._plane(src, 0), 4, 5, small.data_ptr(), 1, 2, 2, 4, 2, 0, 8, scales, 0,
                                    0, 0, _native._plane(dst, 0), 0, 4, 0, 5, 0) == 0
    assert (dst - curves.clamp(0, 1)).abs().max() <= TOL


def run_fuzz(cases: int = FUZZ_CASES) -> None:
    for seed in range(cases):
        try:
            run_case(seed)
        except AssertionError as error:
            raise AssertionError(f"fuzz case {seed}: {error}") from error
    run_wrong_calls()
    run_direct_c_calls()


# ---------------------------------------------------------------------------------------------
# Tests: memory safety
# ---------------------------------------------------------------------------------------------

class TestMemorySafety:
    @pytest.fixture(autouse=True)
    def native(self):
        require_native()

    def test_fuzz_against_the_references(self):
        run_fuzz()

    @pytest.mark.parametrize("low_res", [False, True])
    def test_x_of_batch_1_with_curves_of_batch_2(self, low_res):
        # The kernel used to loop over x's batch while out had the broadcast one: image 1 was never written.
        x, maps = torch.rand(1, 3, 6, 7), torch.rand(2, 3, 6, 7) * 2 - 1
        out = torch.full((2, 3, 6, 7), float("nan"))
        if low_res:
            small = torch.rand(2, 3, 2, 3) * 2 - 1
            maps = F.interpolate(small, size=(6, 7), mode="bilinear", align_corners=True)
            assert _native.apply_low_res(x, small, (6, 7), 8, 0, out)
        else:
            assert _native.apply_maps(x, maps, 8, out)
        assert (out - apply_curves_reference(x.expand(2, -1, -1, -1), maps)).abs().max() <= TOL

    def test_apply_curves_broadcasts_both_ways(self):
        import zerodce

        x, maps = torch.rand(1, 3, 5, 4), torch.rand(2, 24, 5, 4) * 2 - 1
        for a, m in ((x, maps), (x.expand(2, -1, -1, -1).clone(), maps[:1])):
            expected = apply_curves_reference(a.expand(2, -1, -1, -1), m.expand(2, -1, -1, -1))
            assert (zerodce.apply_curves(a, m) - expected).abs().max() <= TOL

    @pytest.mark.parametrize("name", sorted(WRONG_CALLS))
    def test_wrong_calls_raise(self, name):
        call, message = WRONG_CALLS[name]
        with pytest.raises(ValueError, match=message):
            call()

    def test_the_c_code_clamps_on_its_own(self):
        run_direct_c_calls()

    @pytest.mark.parametrize("shape", [(0, 4, 4), (1, 0, 4), (1, 4, 0)])
    def test_empty_images(self, shape):
        b, h, w = shape
        x = torch.rand(b, 3, h, w)
        out = torch.empty(b, 3, h, w)
        assert _native.apply_maps(x, _maps(b=1, h=h, w=w), 8, out)  # a batch of 0 broadcast with 1: 0, as torch
        assert _native.apply_low_res(x, _maps(b=1, h=2, w=2), (max(h, 1), max(w, 1)), 8, 0, out)
        assert _native.downscale(x, 3).shape == (b, 3, -(-h // 3), -(-w // 3))
        y = torch.rand(3, h, w)
        assert _native.denoise(y, torch.ones(h, w), [0.1, 0.05], torch.empty(3, h, w))
        assert _native.denoise_low_res(y, torch.rand(3, 2, 2), (max(h, 1), max(w, 1)), 8, 0, [0.1], torch.empty(3, h, w))

    def test_in_place_is_allowed(self):
        x, maps = torch.rand(2, 3, 9, 11), torch.rand(1, 3, 9, 11) * 2 - 1
        expected = apply_curves_reference(x, maps)
        assert _native.apply_maps(x, maps, 8, x)
        assert (x - expected).abs().max() <= TOL

    def test_kinds_it_cannot_do_fall_back(self):
        x = torch.rand(1, 3, 4, 4)
        assert not _native.apply_maps(x.double(), _maps(h=4, w=4).double(), 8, torch.empty(1, 3, 4, 4).double())
        strided_gain = torch.empty(1, 1, 4, 8)[..., ::2]
        assert not _native.apply_maps(x, _maps(h=4, w=4), 8, torch.empty(1, 3, 4, 4), strided_gain)
        y = torch.rand(3, 8, 8)
        transposed = y.transpose(1, 2).contiguous().transpose(1, 2)
        assert not _native.denoise(transposed, torch.ones(8, 8), [0.1], torch.empty(3, 8, 8))
        assert not _native.denoise(y.double(), torch.ones(8, 8).double(), [0.1], torch.empty(3, 8, 8))
        # ...and the fused path then gives the right answer all the same.
        maps, out = _maps(h=4, w=4), torch.empty(1, 3, 4, 4)
        apply_curves_fused(x, maps, out=out, gain=strided_gain)
        assert (out - apply_curves_reference(x, maps)).abs().max() <= TOL
        # the gain is a product of 8 slopes (up to ~250 here): its float32 rounding is relative
        assert torch.allclose(strided_gain, curve_gain(x, maps), rtol=2e-5, atol=TOL)


def sanitizer_runtime() -> tuple[str, str] | None:
    """(compiler, the ASan runtime to preload) where the compiler builds with the sanitizers, else ``None``."""
    try:
        compiler = _native._compiler()
    except _native._Unavailable:
        return None
    names = ["libasan.so", "libclang_rt.asan-x86_64.so", "libclang_rt.asan-aarch64.so"]
    for name in names:
        found = subprocess.run([*compiler, f"-print-file-name={name}"], capture_output=True, text=True)
        path = found.stdout.strip()
        if found.returncode == 0 and os.path.isabs(path) and os.path.exists(path):
            probe = subprocess.run([*compiler, "-fsanitize=address,undefined", "-shared", "-fPIC", "-x", "c", "-",
                                    "-o", os.devnull], input="int f(int x) { return x + 1; }", capture_output=True,
                                   text=True)
            if probe.returncode == 0:
                return " ".join(compiler), path
    return None


SANITIZER_FLAGS = "-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g"


def run_sanitized(mode: str, cache: Path, runtime: tuple[str, str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, ZERODCE_CACHE=str(cache), ZERODCE_NATIVE="1", ZERODCE_NATIVE_CFLAGS=SANITIZER_FLAGS,
               CC=runtime[0], LD_PRELOAD=runtime[1], OMP_NUM_THREADS="1",
               # python itself is not instrumented: its own allocations are not leaks to report
               ASAN_OPTIONS="detect_leaks=0:halt_on_error=1", UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    return subprocess.run([sys.executable, __file__, mode], env=env, capture_output=True, text=True, timeout=300)


def test_fuzz_cases_under_address_and_undefined_behaviour_sanitizers(tmp_path):
    require_native()
    runtime = sanitizer_runtime()
    if runtime is None:
        missing("no C compiler here builds with -fsanitize=address,undefined")
    # First a deliberate out-of-bounds read: the setup must catch it, or silence below means nothing.
    canary = run_sanitized("--canary", tmp_path, runtime)
    assert canary.returncode != 0 and "AddressSanitizer" in canary.stderr, canary.stderr[-2000:]
    result = run_sanitized("--fuzz", tmp_path, runtime)
    report = result.stderr[-4000:]
    assert "AddressSanitizer" not in result.stderr and "runtime error" not in result.stderr, report
    assert result.returncode == 0, report
    assert "instrumented" in result.stdout and f"{FUZZ_CASES} fuzz cases ok" in result.stdout, result.stdout + report


def _script(mode: str) -> None:
    """The subprocess side of the sanitizer test."""
    lib = _native.library()
    assert b"__asan_report" in Path(lib._name).read_bytes(), "the library is not instrumented"
    print("instrumented:", lib._name)
    if mode == "--canary":  # 8 rows of 64 columns from a 4 x 8 image: past its buffer
        x, out = torch.rand(3, 4, 8), torch.empty(3, 8, 64)
        lib.zdce_apply_maps(_native._plane(x, 0), _native._plane(out, 0), 8, 64, 0, _native._plane(out, 0), 1, 8,
                            None, 0)
        print("canary not caught")
        return
    run_fuzz()
    print(f"{FUZZ_CASES} fuzz cases ok")


# ---------------------------------------------------------------------------------------------
# Tests: the kernel cache
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def cache(monkeypatch, tmp_path) -> Path:
    """A fresh kernel cache folder (not created yet), the choice of kernels made again."""
    require_native()
    folder = tmp_path / "cache" / "zerodce"
    monkeypatch.setenv("ZERODCE_CACHE", str(folder))
    for name in ("ZERODCE_NATIVE", "ZERODCE_NATIVE_CFLAGS"):
        monkeypatch.delenv(name, raising=False)
    _native.library.cache_clear()
    yield folder
    monkeypatch.undo()
    _native.library.cache_clear()


@pytest.fixture(scope="session")
def prebuilt(tmp_path_factory) -> Path:
    """The kernels built once for the cache tests, which copy them in instead of compiling each time."""
    require_native()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ZERODCE_CACHE", str(tmp_path_factory.mktemp("prebuilt")))
        for name in ("ZERODCE_NATIVE", "ZERODCE_NATIVE_CFLAGS"):
            patch.delenv(name, raising=False)
        _native.library.cache_clear()
        path = library_path()
    _native.library.cache_clear()
    return path


@pytest.fixture
def cached(cache, prebuilt) -> Path:
    """The cache folder holding a good library, as a previous process left it; the library's path."""
    cache.mkdir(mode=0o700, parents=True)
    path = cache / prebuilt.name
    shutil.copyfile(prebuilt, path)
    path.chmod(0o700)
    return path


def fake_compiler(tmp_path: Path, body: str, name: str = "fake-cc") -> Path:
    """A compiler script that logs each call (one line per call) and then runs ``body``."""
    script = tmp_path / name
    script.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        echo "$@" >> "{tmp_path}/{name}.calls"
        if [ "$1" = "--version" ]; then echo "{name} 1.0"; exit 0; fi
        """) + textwrap.dedent(body))
    script.chmod(0o755)
    return script


def compile_calls(tmp_path: Path, name: str = "fake-cc") -> int:
    calls = tmp_path / f"{name}.calls"
    return sum(1 for line in calls.read_text().splitlines() if line != "--version") if calls.exists() else 0


def library_path() -> Path:
    lib = _native.library()
    assert lib is not None, _native.unavailable_reason()
    return Path(lib._name)


class TestCache:
    def test_folder_is_created_private_and_the_library_too(self, cache):
        path = library_path()
        assert path.parent == cache
        assert stat.S_IMODE(cache.stat().st_mode) == 0o700
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0 and path.stat().st_uid == os.geteuid()

    @pytest.mark.parametrize("problem", ["writable by others", "owned by someone else"])
    def test_an_untrusted_folder_is_not_used(self, cache, monkeypatch, caplog, problem):
        cache.mkdir(parents=True)
        if problem == "writable by others":
            cache.chmod(0o777)
            expected = "writable by group or others"
        else:
            uid = os.geteuid()
            monkeypatch.setattr(_native.os, "geteuid", lambda: uid + 1)
            expected = "not by this user"
        with caplog.at_level(logging.WARNING, logger="zerodce"):
            path = library_path()
        assert path.parent != cache and not any(cache.iterdir())  # built privately, nothing left in the folder
        assert expected in caplog.text and str(cache) in caplog.text

    @pytest.mark.parametrize("problem", ["group-writable", "world-writable", "another owner", "a symlink"])
    def test_an_untrusted_library_is_rebuilt(self, cached, tmp_path, caplog, problem):
        path = cached
        if problem == "group-writable":
            path.chmod(0o770)
        elif problem == "world-writable":
            path.chmod(0o707)
        elif problem == "another owner":
            if os.geteuid() != 0:
                pytest.skip("changing a file's owner needs root")
            os.chown(path, 65534, 65534)
        else:
            elsewhere = tmp_path / "elsewhere.so"
            shutil.copy(path, elsewhere)
            path.unlink()
            path.symlink_to(elsewhere)
        before = path.lstat()
        with caplog.at_level(logging.WARNING, logger="zerodce"):
            assert library_path() == path
        after = path.lstat()
        assert stat.S_ISREG(after.st_mode) and after.st_uid == os.geteuid() and stat.S_IMODE(after.st_mode) == 0o700
        assert after.st_ino != before.st_ino and "rebuilding" in caplog.text and str(path) in caplog.text

    def test_a_corrupt_library_is_rebuilt(self, cached, caplog):
        cached.write_bytes(b"\x7fELF not really")  # a half-written or damaged file
        with caplog.at_level(logging.WARNING, logger="zerodce"):
            assert library_path() == cached
        assert "failed to load" in caplog.text
        assert b"not really" not in cached.read_bytes()

    def test_rebuilt_only_once(self, cache, tmp_path, monkeypatch, caplog):
        # A compiler whose output never loads: one build, then the PyTorch path, with the reason.
        cc = fake_compiler(tmp_path, """\
            while [ "$#" -gt 0 ]; do if [ "$1" = "-o" ]; then echo garbage > "$2"; fi; shift; done
            exit 0
            """)
        monkeypatch.setenv("CC", str(cc))
        with caplog.at_level(logging.WARNING, logger="zerodce"):
            assert _native.library() is None
        assert compile_calls(tmp_path) == 1
        assert "failed to load" in caplog.text and "PyTorch path" in caplog.text
        assert not list(cache.glob("curves-*.so"))  # not kept: useless to the next process too
        # A corrupt file in the cache: removed, rebuilt once (still corrupt), then the PyTorch path.
        _native.library.cache_clear()
        _, names = _native._candidates(_native._compiler())
        (cache / names[0]).write_text("garbage")
        (cache / names[0]).chmod(0o700)
        assert _native.library() is None and compile_calls(tmp_path) == 2

    def test_name_follows_source_compiler_flags_and_cpu(self, monkeypatch, tmp_path):
        compiler, flags = ["/usr/bin/cc"], ["-O3"]
        name = _native._library_name(compiler, b"cc 12", flags)
        assert name == _native._library_name(list(compiler), b"cc 12", list(flags))
        assert name != _native._library_name(["/usr/local/bin/cc"], b"cc 12", flags)
        assert name != _native._library_name(compiler, b"cc 13", flags)
        assert name != _native._library_name(compiler, b"cc 12", ["-O2"])
        monkeypatch.setattr(_native, "_cpu_key", lambda: "another CPU")
        assert name != _native._library_name(compiler, b"cc 12", flags)
        source = tmp_path / "changed.c"
        source.write_bytes(_native._SOURCE.read_bytes() + b"\n")
        monkeypatch.undo()
        monkeypatch.setattr(_native, "_SOURCE", source)
        assert name != _native._library_name(compiler, b"cc 12", flags)

    def test_a_trusted_library_is_loaded_as_it_is(self, cached):
        before = cached.stat()
        assert library_path() == cached and cached.stat().st_ino == before.st_ino

    def test_extra_flags_build_another_library(self, cached, monkeypatch):
        plain = cached
        monkeypatch.setenv("ZERODCE_NATIVE_CFLAGS", "-DZERODCE_TEST_FLAG=1")
        _native.library.cache_clear()
        assert library_path() != plain and plain.exists()

    def test_a_failed_build_falls_back_and_says_why(self, cache, tmp_path, monkeypatch, caplog):
        monkeypatch.setenv("CC", str(fake_compiler(tmp_path, 'echo "fake-cc: error: no such thing" >&2; exit 1\n')))
        with caplog.at_level(logging.WARNING, logger="zerodce"):
            assert not _native.available()
        assert "fake-cc: error: no such thing" in caplog.text and "PyTorch path" in caplog.text
        assert "fake-cc: error: no such thing" in _native.unavailable_reason()
        x, alpha = torch.rand(1, 3, 9, 8), torch.rand(1, 3, 9, 8) * 2 - 1
        assert (apply_curves_fused(x, alpha) - apply_curves_reference(x, alpha)).abs().max() <= TOL

    def test_required_kernels_that_fail_to_build_are_an_error(self, cache, tmp_path, monkeypatch):
        monkeypatch.setenv("ZERODCE_NATIVE", "1")
        monkeypatch.setenv("CC", str(fake_compiler(tmp_path, 'echo "fake-cc: error: no such thing" >&2; exit 1\n')))
        with pytest.raises(_native.KernelsUnavailableError, match="ZERODCE_NATIVE=1(.|\n)*fake-cc: error: no such thing"):
            _native.library()
        with pytest.raises(ZerodceError, match="fake-cc: error"):  # the CLI's own kind of error: no traceback
            apply_curves_fused(torch.rand(1, 3, 2, 2), torch.rand(1, 3, 2, 2))
        monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
        _native.library.cache_clear()
        with pytest.raises(_native.KernelsUnavailableError, match="no C compiler"):
            _native.library()

    def test_turned_off(self, cache, tmp_path, monkeypatch, caplog):
        monkeypatch.setenv("ZERODCE_NATIVE", "0")
        monkeypatch.setenv("CC", str(fake_compiler(tmp_path, "exit 1\n")))
        with caplog.at_level(logging.INFO, logger="zerodce"):
            assert _native.library() is None
        assert not (tmp_path / "fake-cc.calls").exists()  # not even asked for its version
        assert "ZERODCE_NATIVE=0" in caplog.text and not cache.exists()

    def test_other_values_of_the_switch_are_refused(self, cache, monkeypatch):
        monkeypatch.setenv("ZERODCE_NATIVE", "yes")
        with pytest.raises(InputError, match="ZERODCE_NATIVE must be 0"):
            _native.library()


if __name__ == "__main__":
    _script(sys.argv[1])
