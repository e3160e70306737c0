"""Speed benchmark: our inference and training paths against a naive baseline, in one run.

    python benchmarks/bench.py              # everything (about 10 minutes on a 2-core CPU)
    python benchmarks/bench.py --quick      # fewer sizes and runs, about 2 minutes
    zerodce bench [--quick]                 # the same, from a source checkout

The naive baseline (``naive_baseline.py``) is a plain eager transcription of the
authors' released code. Sections, each measured against its baseline in the same
run (so the ratios hold even on a busy machine):

* kernels: on one thread, this CPU's peak (a large sgemm's FLOP/s, a large copy's
  bandwidth) and, as a fraction of it, Zero-DCE++'s curve network at 160x90, the
  1080p curve pass from uint8 to uint8 and the streamed denoiser;
* inference: ms/image, megapixels/s, peak memory and ratio to naive for 600x400,
  1920x1080 and 3840x2160, both models, tensor in -> tensor out (``Enhancer`` with
  ``strength=1, denoise="off"``: the model as trained, what the naive code computes),
  with the PyTorch and onnxruntime backends, Zero-DCE at reduced resolution and, where
  the CPU computes bfloat16 natively, Zero-DCE's opt-in bf16 network;
* pipeline: the default pipeline (auto strength, denoising) against that plain
  path on a dark, noisy 1080p photo, 8-bit array in and out and float tensor;
* memory: peak RSS of a process enhancing a 6000x4000 image with Zero-DCE;
* training: images/s of one optimization step, batch 8, 256x256 (fp32 channels-last
  and NCHW, bf16);
* folder: ``zerodce enhance`` (default model) on a folder of 1080p JPEGs against
  decoding and encoding the same files alone (both with 2 threads);
* quality: LOL eval15 PSNR/SSIM of Zero-DCE with curves estimated at 1/k.

Times are medians of several runs after one warm-up (a case whose warm-up alone
exceeds its time budget is measured by that single run). The cases compared
with each other (naive and ours, per model and size) run in alternation, round
by round, and a ratio is the median of the per-round ratios: on a shared VM
whose speed drifts, measuring one case after the other biased ratios by up to 1.5x. Peak memory of a case
is the resident memory the call adds on top of what the process held before it
(Linux; on CUDA, allocated device memory). The end lists the targets of issues 5, 9
and 13, met or missed on the running CPU.
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import gc
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from naive_baseline import NaiveTrainer, naive_from, naive_input_size  # noqa: E402

from zerodce import create_model  # noqa: E402
from zerodce._table import format_table  # noqa: E402
from zerodce.enhance import Enhancer  # noqa: E402
from zerodce.losses import LossWeights, ZeroReferenceLoss  # noqa: E402
from zerodce.models import DEFAULT_MODEL, list_models  # noqa: E402
from zerodce.models._dce_net import DCENet, cpu_has_native_bf16  # noqa: E402
from zerodce.train import TrainingObjective, train_step  # noqa: E402
from zerodce.weights import pretrained_path, save_safetensors  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ZERODCE_SHARED", REPO.parent / "shared")).resolve()
SIZES = {"600x400": (400, 600), "1920x1080": (1080, 1920), "3840x2160": (2160, 3840)}
SECTIONS = ("kernels", "inference", "pipeline", "memory", "training", "folder", "quality")
PLAIN = {"strength": 1.0, "denoise": "off"}
#: The authors' checkpoints (CC BY-NC: comparisons only), loaded as users load them.
OFFICIAL_WEIGHTS = SHARED / "weights" / "official"
OFFICIAL_LABEL = "authors' weights (torch)"
#: Reduced-resolution Zero-DCE variants benchmarked (curves estimated at 1/k).
REDUCED = (4, 12)
TRAIN_BATCH, TRAIN_SIZE = 8, 256
NAIVE = "naive (released code)"
BF16_LABEL = "ours, bf16 network (torch)"
MEMORY_SIZE = (4000, 6000)


@dataclass
class Row:
    """One measured case."""

    section: str
    model: str
    size: str
    path: str
    ms: float
    runs: int
    megapixels: float = 0.0
    peak_mb: float | None = None
    ratio: float | None = None
    note: str = ""

    @property
    def mp_per_s(self) -> float:
        return self.megapixels / (self.ms / 1000) if self.ms else math.nan


# --------------------------------------------------------------------------- measuring


def _proc_status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _glibc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # noqa: B018 - glibc only
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _glibc()


class PeakMemory:
    """Peak memory added inside the ``with`` block, in MB (``None`` where it cannot be measured).

    On the CPU it returns cached free heap memory to the system (glibc
    ``malloc_trim``, so memory freed by earlier cases does not hide this one's
    needs), resets the kernel's high-water mark of this process (Linux
    ``/proc/self/clear_refs``) and reads it back; on CUDA, torch's allocator peak.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.mb: float | None = None

    def __enter__(self) -> "PeakMemory":
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
            return self
        if _LIBC is not None:
            _LIBC.malloc_trim(0)
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self._base = _proc_status_mb("VmRSS")
        except OSError:
            self._base = None
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.mb = (torch.cuda.max_memory_allocated() - self._base) / 2**20
        elif self._base is not None:
            self.mb = _proc_status_mb("VmHWM") - self._base


def _timed(fn: Callable[[], object], device: torch.device) -> float:
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def measure(fn: Callable[[], object], device: torch.device, repeats: int, budget_s: float) -> tuple[float, int, float | None]:
    """``(median seconds, runs, peak MB)`` of ``fn``: one warm-up (its peak memory), then up to ``repeats`` runs within ``budget_s``."""
    timing = measure_together({"case": fn}, device, repeats, budget_s)["case"]
    return timing.seconds, len(timing.times), timing.peak_mb


@dataclass
class Timing:
    """Times of one case of :func:`measure_together`: its runs in round order, and its warm-up's peak memory."""

    times: list[float]
    peak_mb: float | None

    @property
    def seconds(self) -> float:
        return statistics.median(self.times)

    def speedup_over(self, base: "Timing") -> float:
        """How many times faster than ``base``: the median of the ratios of runs of the same round."""
        if len(self.times) == len(base.times) > 1:
            return statistics.median(b / t for b, t in zip(base.times, self.times))
        return base.seconds / self.seconds


def measure_together(
    cases: dict[str, Callable[[], object]], device: torch.device, repeats: int, budget_s: float
) -> dict[str, Timing]:
    """Time several cases in alternation: one warm-up each (its peak memory), then rounds of one run of each.

    On a shared VM the CPU's speed drifts over seconds to minutes; runs of the
    cases compared to each other are interleaved (the order rotating from round
    to round), so a drift slows them alike and the per-round ratios
    (:meth:`Timing.speedup_over`) stay true. A case whose warm-up alone exceeds
    ``budget_s`` is measured by that run; the others get up to ``repeats``
    rounds, while the rounds fit ``budget_s`` per case.
    """
    timings: dict[str, Timing] = {}
    for label, fn in cases.items():
        with PeakMemory(device) as memory:
            warmup = _timed(fn, device)
        timings[label] = Timing([warmup] if warmup > budget_s else [], memory.mb)
    active = [label for label, timing in timings.items() if not timing.times]
    deadline = time.perf_counter() + budget_s * len(active)
    for round_ in range(repeats):
        if round_ and time.perf_counter() > deadline:
            break
        shift = round_ % max(len(active), 1)
        for label in active[shift:] + active[:shift]:
            timings[label].times.append(_timed(cases[label], device))
    return timings


def _available_memory_mb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return math.inf


# --------------------------------------------------------------------------- kernels


def _conv_flops(model: torch.nn.Module, h: int, w: int) -> float:
    """Multiply-adds x 2 of every convolution of ``model`` on an ``h x w`` image (all keep the size)."""
    return sum(2.0 * h * w * m.out_channels * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
               for m in model.modules() if isinstance(m, torch.nn.Conv2d))


def kernels(args: argparse.Namespace) -> Iterator[Row]:
    """One thread: the machine's peak, and the small network, the curve pass and the denoiser against it."""
    from zerodce import _native
    from zerodce.curves import apply_low_res_curves
    from zerodce.enhance import denoise as denoising

    if args.device != "cpu":
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            a, b = torch.rand(2048, 2048), torch.rand(2048, 2048)
            seconds, runs, _ = measure(lambda: torch.mm(a, b), torch.device("cpu"), args.repeats, args.budget)
            peak_flops = 2 * 2048**3 / seconds
            yield Row("kernels", "-", "2048x2048", "sgemm (peak FLOP/s)", seconds * 1000, runs,
                      note=f"{peak_flops / 1e9:.1f} GFLOP/s")
            src, dst = torch.rand(2**26), torch.empty(2**26)
            seconds, runs, _ = measure(lambda: dst.copy_(src), torch.device("cpu"), args.repeats, args.budget)
            bandwidth = 2 * src.numel() * 4 / seconds
            yield Row("kernels", "-", "256 MB", "copy (peak bandwidth, read + write)", seconds * 1000, runs,
                      note=f"{bandwidth / 1e9:.1f} GB/s")
            model = _model("zero_dce_pp")
            small = torch.rand(1, 3, 90, 160) * 0.4
            flops = _conv_flops(model, 90, 160)
            seconds, runs, _ = measure(lambda: model.curve_net(small), torch.device("cpu"), args.repeats, args.budget)
            yield Row("kernels", "zero_dce_pp", "160x90", "curve network (torch)", seconds * 1000, runs, 160 * 90 / 1e6,
                      note=f"{flops / 1e9:.3f} GFLOP: {flops / seconds / peak_flops:.0%} of the sgemm peak")
            h, w = SIZES["1920x1080"]
            x8 = torch.randint(0, 100, (1, h, w, 3), dtype=torch.uint8).permute(0, 3, 1, 2)
            out8 = torch.empty_like(x8.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            maps = torch.rand(1, 3, 90, 160) * 0.8
            moved = 2 * x8.numel()
            seconds, runs, _ = measure(lambda: apply_low_res_curves(x8, maps, (h, w), out=out8), torch.device("cpu"),
                                       args.repeats, args.budget)
            note = f"{moved / seconds / bandwidth:.0%} of the copy bandwidth (6 MB in, 6 MB out)"
            if not _native.available():
                note += "; compiled kernels unavailable: PyTorch path"
            yield Row("kernels", "zero_dce_pp", "1920x1080", "curve pass uint8 -> uint8", seconds * 1000, runs,
                      h * w / 1e6, note=note)
            if not _native.available():
                return
            y, gain = torch.rand(1, 3, h, w) * 0.8, 1 + 4 * torch.rand(1, 1, h, w)
            scales = denoising._pass_scales(gain, 0.01, 1.0)
            seconds, runs, _ = measure(lambda: denoising.denoise_into(y, gain, 0.01, 1.0, out8, (0, 0)),
                                       torch.device("cpu"), args.repeats, args.budget)
            # per pixel and pass: 8 taps of ~15 operations (distance, biweight, 3 sums), the centre, the division
            ops = h * w * len(scales) * (8 * 15 + 10)
            yield Row("kernels", "zero_dce_pp", "1920x1080", f"denoiser, {len(scales)} passes, into uint8",
                      seconds * 1000, runs, h * w / 1e6,
                      note=f"~{ops / seconds / peak_flops:.0%} of the sgemm peak (~{ops / 1e9:.2f} G operations)")
    finally:
        torch.set_num_threads(threads)


# --------------------------------------------------------------------------- inference


def _model(name: str, scale_factor: int | None = None) -> DCENet:
    # Random weights: speed does not depend on their values.
    torch.manual_seed(0)
    return create_model(name, **({} if scale_factor is None else {"scale_factor": scale_factor}))


def _onnxruntime_backend(model: DCENet, device: torch.device):
    """The onnxruntime model, or ``None`` where it cannot run here (missing extra, no CUDA provider)."""
    try:
        from zerodce.export import OnnxRuntimeModel

        return OnnxRuntimeModel.from_model(model).to(device)
    except (ImportError, ValueError):
        return None


def inference(args: argparse.Namespace) -> Iterator[Row]:
    device = torch.device(args.device)
    # Quick: the 4K case only for zero_dce_pp (its scaling target); Zero-DCE at 4K takes minutes.
    sizes = {name: list(SIZES) if not args.quick or name == "zero_dce_pp" else list(SIZES)[:2] for name in list_models()}
    for name in list_models():
        model = _model(name)
        naive = naive_from(model).to(device)
        x = torch.rand(1, 3, 48, 72, device=device) * 0.4
        with torch.inference_mode():
            check = (naive(x)[0] - model.to(device)(x)).abs().max().item()
        print(f"  {name}: naive baseline == ours within {check:.1e} (max abs difference)", flush=True)
        variants: list[tuple[str, DCENet | object]] = [("ours (torch)", model)]
        official = OFFICIAL_WEIGHTS / f"{name}_epoch99.pth"
        if official.is_file():  # their subnormal weights are flushed when loaded
            variants.append((OFFICIAL_LABEL, create_model(name, checkpoint=official)))
        ort = _onnxruntime_backend(model, device)
        if ort is not None:
            variants.append(("ours (onnxruntime)", ort))
        if name == "zero_dce":
            if cpu_has_native_bf16():  # opt-in, where the CPU computes bf16 natively (within 1/255 of float32)
                fast = _model(name)
                fast.inference_dtype = torch.bfloat16
                variants.append((BF16_LABEL, fast))
            variants += [(f"ours, curves at 1/{k} (torch)", _model(name, k)) for k in REDUCED]
        for size in sizes[name]:
            h, w = SIZES[size]
            x = torch.rand(1, 3, h, w, device=device) * 0.4
            nh, nw = naive_input_size(model, h, w)
            xn = x[..., :nh, :nw]
            need_mb = nh * nw * 4 * 32 * 10 / 2**20 if model.scale_factor == 1 else 0
            cases = {}
            if need_mb * 1.3 > _available_memory_mb():
                yield Row("inference", name, size, NAIVE, math.nan, 0,
                          note=f"skipped: needs about {need_mb / 1024:.0f} GB of free memory")
            else:
                cases[NAIVE] = lambda: naive(xn)
            for label, variant in variants:
                cases[label] = functools.partial(Enhancer(variant, device=device, **PLAIN).enhance_tensor, x)
            with torch.inference_mode():
                timings = measure_together(cases, device, args.repeats, args.budget)
            for label, timing in timings.items():
                pixels = nh * nw if label == NAIVE else h * w
                ratio = timing.speedup_over(timings[NAIVE]) if NAIVE in timings else math.nan
                note = f"cropped to {nw}x{nh} (multiple of 12), as released" if label == NAIVE and (nh, nw) != (h, w) else ""
                yield Row("inference", name, size, label, timing.seconds * 1000, len(timing.times), pixels / 1e6,
                          timing.peak_mb, ratio, note)


# --------------------------------------------------------------------------- pipeline


def _dark_photo(h: int, w: int) -> np.ndarray:
    """A dark, noisy 8-bit photo of ``h x w``: a scikit-image sample under-exposed 5 stops, with sensor noise."""
    from skimage import data as samples

    photo = np.asarray(Image.fromarray(samples.astronaut()).resize((w, h), Image.BILINEAR)) / 255.0
    rng = np.random.default_rng(0)
    linear = np.where(photo <= 0.04045, photo / 12.92, ((photo + 0.055) / 1.055) ** 2.4) / 32
    linear = np.clip(rng.poisson(linear * 2000) / 2000 + rng.normal(0, 0.001, linear.shape), 0, 1)
    return (255 * np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)).round().astype(np.uint8)


def pipeline(args: argparse.Namespace) -> Iterator[Row]:
    """The default pipeline (strength auto, denoise auto) against the plain path, same image, same run."""
    device = torch.device(args.device)
    model = create_model(DEFAULT_MODEL, pretrained=pretrained_path(DEFAULT_MODEL).is_file())
    plain, default = Enhancer(model, device=device, **PLAIN), Enhancer(model, device=device)
    h, w = SIZES["1920x1080"]
    photo = _dark_photo(h, w)
    tensor = torch.from_numpy(photo).permute(2, 0, 1)[None].float().div(255).contiguous()
    for kind, image, call in (("8-bit array", photo, "enhance_array"), ("float tensor", tensor, "enhance_tensor")):
        cases = {"plain (strength 1, denoise off)": functools.partial(getattr(plain, call), image),
                 "default (strength auto, denoise auto)": functools.partial(getattr(default, call), image)}
        with torch.inference_mode():
            timings = measure_together(cases, device, args.repeats, args.budget)
        base = timings["plain (strength 1, denoise off)"]
        for label, timing in timings.items():
            yield Row("pipeline", DEFAULT_MODEL, f"1920x1080 {kind}", label, timing.seconds * 1000, len(timing.times),
                      h * w / 1e6, timing.peak_mb, base.speedup_over(timing),
                      note="ratio: this time / the plain path's")


# --------------------------------------------------------------------------- memory

_MEMORY_SCRIPT = """
import resource, sys, torch
from zerodce import create_model
from zerodce.enhance import Enhancer
torch.manual_seed(0)
torch.set_num_threads({threads})
enhancer = Enhancer(create_model("zero_dce"), device="cpu")
x = torch.rand(1, 3, {h}, {w}) * 0.4
enhancer.enhance_tensor(x)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def memory(args: argparse.Namespace) -> Iterator[Row]:
    """Peak RSS of a fresh process enhancing one 6000x4000 image with Zero-DCE (tiles of 512)."""
    h, w = MEMORY_SIZE
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT.format(h=h, w=w, threads=torch.get_num_threads())], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        yield Row("memory", "zero_dce", f"{w}x{h}", "ours (torch), whole process", math.nan, 0,
                  note="failed: " + (done.stderr.strip().splitlines() or ["?"])[-1])
        return
    yield Row("memory", "zero_dce", f"{w}x{h}", "ours (torch), whole process", seconds * 1000, 1, h * w / 1e6,
              float(done.stdout.split()[-1]), note="wall time includes starting Python and torch")


# --------------------------------------------------------------------------- training


def training(args: argparse.Namespace) -> Iterator[Row]:
    device = torch.device(args.device)
    images = torch.rand(TRAIN_BATCH, 3, TRAIN_SIZE, TRAIN_SIZE, device=device) * 0.4
    size = f"{TRAIN_SIZE}x{TRAIN_SIZE} x{TRAIN_BATCH}"
    for name in list_models():
        model = _model(name, 1).train()  # both train at full resolution, as released
        tv_weight = LossWeights.for_model(name).illumination_smoothness
        naive = NaiveTrainer(naive_from(model, 1), tv_weight).to(device)
        cases = {NAIVE: lambda: naive.step(images)}
        for precision, layout in (("fp32", "channels-last"), ("fp32", "NCHW"), ("bf16", "channels-last")):
            ours = _model(name, 1).train()
            objective = TrainingObjective(ours, ZeroReferenceLoss(LossWeights.for_model(name)), precision)
            memory_format = torch.channels_last if layout == "channels-last" else torch.contiguous_format
            objective = objective.to(device, memory_format=memory_format)
            batch = images.contiguous(memory_format=memory_format)
            optimizer = torch.optim.Adam(ours.parameters(), lr=1e-4, weight_decay=1e-4)
            cases[f"ours (zerodce.train, {precision}, {layout})"] = functools.partial(
                train_step, objective, batch, optimizer, grad_clip=0.1)
        timings = measure_together(cases, device, args.train_repeats, args.budget)
        for label, timing in timings.items():
            yield Row("training", name, size, label, timing.seconds * 1000, len(timing.times), 0, timing.peak_mb,
                      timing.speedup_over(timings[NAIVE]), f"{TRAIN_BATCH / timing.seconds:.2f} images/s")


# --------------------------------------------------------------------------- folder


def _make_jpegs(folder: Path, count: int) -> None:
    """``count`` 1920x1080 JPEGs (quality 95): the real dark photos of ../shared if present, else synthetic."""
    sources = sorted((SHARED / "data" / "real_highres").glob("*.png"))
    rng = np.random.default_rng(0)
    for i in range(count):
        if sources:
            image = Image.open(sources[i % len(sources)]).convert("RGB").resize((1920, 1080), Image.BILINEAR)
            if i >= len(sources):  # different files, not byte-identical copies
                image = image.transpose(Image.FLIP_LEFT_RIGHT if i // len(sources) % 2 else Image.FLIP_TOP_BOTTOM)
        else:
            yy, xx = np.mgrid[0:1080, 0:1920]
            base = (xx / 1920 * 40 + yy / 1080 * 20)[..., None] + rng.normal(0, 6, (1080, 1920, 3))
            image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
        image.save(folder / f"img_{i:03d}.jpg", quality=95)


def _decode_encode(source: Path, target: Path) -> None:
    with Image.open(source) as image:
        image.convert("RGB").save(target, quality=95)


def folder(args: argparse.Namespace) -> Iterator[Row]:
    """``zerodce enhance`` (a subprocess, 2 workers) against PIL decode + encode with 2 threads, same files."""
    count = 12 if args.quick else 32
    with tempfile.TemporaryDirectory(prefix="zerodce-bench-") as tmp:
        tmp = Path(tmp)
        inputs, outputs = tmp / "in", tmp / "out"
        inputs.mkdir()
        outputs.mkdir()
        _make_jpegs(inputs, count)
        files = sorted(inputs.iterdir())

        def decode_encode() -> None:
            with ThreadPoolExecutor(2) as pool:
                list(pool.map(lambda f: _decode_encode(f, outputs / f.name), files))

        seconds, runs, _ = measure(decode_encode, torch.device("cpu"), 3, args.budget)
        base_ms = seconds * 1000 / count
        yield Row("folder", "-", "1920x1080 JPEG", "PIL decode + encode only (2 threads)", base_ms, runs, 1920 * 1080 / 1e6,
                  ratio=1.0, note=f"{count} files")
        for name in [DEFAULT_MODEL]:  # Zero-DCE's network costs seconds per 1080p image: I/O does not matter there
            checkpoint = pretrained_path(name)
            if not checkpoint.is_file():
                checkpoint = tmp / f"{name}.safetensors"
                save_safetensors(_model(name).state_dict(), checkpoint)
            command = [sys.executable, "-m", "zerodce.cli", "enhance", str(inputs), "-o", str(tmp / name),
                       "--overwrite", "--model", name, "--checkpoint", str(checkpoint), "--device", args.device]
            walls, steadies = [], []
            for _ in range(1 if args.quick else 2):
                start = time.perf_counter()
                done = subprocess.run(command, capture_output=True, text=True)
                walls.append(time.perf_counter() - start)
                if done.returncode != 0:
                    yield Row("folder", name, "1920x1080 JPEG", "zerodce enhance", math.nan, 0,
                              note="failed: " + (done.stderr.strip().splitlines() or ["?"])[-1])
                    break
                # The CLI's summary times the work after start-up (imports): "... in 4.2 s, ..."
                found = re.search(r" in ([0-9.]+) s\b", done.stderr)
                steadies.append(float(found.group(1)) if found else walls[-1])
            else:
                steady_ms = statistics.median(steadies) * 1000 / count
                wall_ms = statistics.median(walls) * 1000 / count
                yield Row("folder", name, "1920x1080 JPEG", "zerodce enhance (2 workers)", steady_ms, len(walls),
                          1920 * 1080 / 1e6, ratio=base_ms / steady_ms,
                          note=f"{wall_ms:.0f} ms/image counting process start-up; ratio = throughput / decode+encode")


# --------------------------------------------------------------------------- quality


def quality(args: argparse.Namespace) -> Iterator[Row]:
    """LOL eval15 PSNR/SSIM of Zero-DCE with curves at 1/k (shipped weights, else the official ones for comparison)."""
    from zerodce.evaluate import evaluate, find_pairs, model_method

    data = SHARED / "data" / "lol_eval15"
    checkpoint, label = None, "shipped weights"
    if not pretrained_path("zero_dce").is_file():
        checkpoint, label = SHARED / "weights" / "official" / "zero_dce_epoch99.pth", "official weights (comparison only)"
    if not data.is_dir() or (checkpoint is not None and not checkpoint.is_file()):
        yield Row("quality", "zero_dce", "600x400", "-", math.nan, 0, note="skipped: no LOL eval15 data or weights")
        return
    pairs = find_pairs(data / "low", data / "high")
    factors = (1, 2) + REDUCED
    methods = {f"curves at 1/{k}": model_method(Enhancer(create_model("zero_dce", pretrained=checkpoint is None,
                                                                      checkpoint=checkpoint, scale_factor=k),
                                                         device=args.device, **PLAIN))
               for k in factors}
    results = evaluate(pairs, methods).results
    full = results[0].psnr
    for result in results:
        yield Row("quality", "zero_dce", "600x400", result.method, math.nan, len(result.images),
                  note=f"PSNR {result.psnr:.2f} dB ({result.psnr - full:+.2f}), SSIM {result.ssim:.3f}; {label}")


# --------------------------------------------------------------------------- report


def _find(rows: list[Row], section: str, model: str, size: str, path: str) -> Row | None:
    return next((r for r in rows if (r.section, r.model, r.size, r.path) == (section, model, size, path) and r.runs), None)


def targets(rows: list[Row]) -> list[tuple[str, str, bool | None]]:
    """``(target, measured, met)`` for each target of issues 5, 9 and 13 that this run measured."""
    out: list[tuple[str, str, bool | None]] = []

    def ratio(description: str, row: Row | None, need: float) -> None:
        if row is not None and row.ratio is not None and not math.isnan(row.ratio):
            out.append((description, _ratio(row.ratio), row.ratio >= need))

    ratio("zero_dce_pp 1920x1080 >= 10x naive", _find(rows, "inference", "zero_dce_pp", "1920x1080", "ours (torch)"), 10)
    ratio("zero_dce full resolution 1920x1080 >= 1.5x naive (torch)",
          _find(rows, "inference", "zero_dce", "1920x1080", "ours (torch)"), 1.5)
    ratio("issue 13: zero_dce full resolution 1920x1080 >= 2x naive (torch)",
          _find(rows, "inference", "zero_dce", "1920x1080", "ours (torch)"), 2)
    ratio("issue 13: zero_dce full resolution 1920x1080 >= 2x naive (torch, opt-in bf16 network where native)",
          _find(rows, "inference", "zero_dce", "1920x1080", BF16_LABEL), 2)
    for path, limit in (("curve network (torch)", 4.0), ("curve pass uint8 -> uint8", 3.0)):
        row = next((r for r in rows if r.section == "kernels" and r.path == path and r.runs), None)
        if row is not None:
            out.append((f"issue 13: {row.model} {path} at {row.size}, one thread: <= {limit:g} ms",
                        f"{row.ms:.1f} ms ({row.note.split(': ')[-1]})", row.ms <= limit))
    ratio("zero_dce full resolution 1920x1080 >= 1.5x naive (onnxruntime)",
          _find(rows, "inference", "zero_dce", "1920x1080", "ours (onnxruntime)"), 1.5)
    ratio(f"zero_dce curves at 1/{REDUCED[0]} 1920x1080 >= 20x naive full resolution",
          _find(rows, "inference", "zero_dce", "1920x1080", f"ours, curves at 1/{REDUCED[0]} (torch)"), 20)
    for name in list_models():
        ours = _find(rows, "inference", name, "1920x1080", "ours (torch)")
        theirs = _find(rows, "inference", name, "1920x1080", OFFICIAL_LABEL)
        if ours and theirs:
            out.append((f"{name} with the authors' weights 1920x1080 <= 1.5x the time of ours",
                        f"{theirs.ms / ours.ms:.2f}x", theirs.ms <= 1.5 * ours.ms))
    for kind in ("8-bit array", "float tensor"):
        row = _find(rows, "pipeline", DEFAULT_MODEL, f"1920x1080 {kind}", "default (strength auto, denoise auto)")
        if row is not None and row.ratio:
            out.append((f"issue 9: default pipeline, 1920x1080 {kind}: <= 2.5x the plain path's time",
                        f"{row.ratio:.1f}x", row.ratio <= 2.5))
    hd = _find(rows, "inference", "zero_dce_pp", "1920x1080", "ours (torch)")
    uhd = _find(rows, "inference", "zero_dce_pp", "3840x2160", "ours (torch)")
    if hd and uhd:
        out.append(("zero_dce_pp 3840x2160 <= 5x its 1920x1080 time", f"{uhd.ms / hd.ms:.1f}x", uhd.ms / hd.ms <= 5))
    big = next((r for r in rows if r.section == "memory" and r.peak_mb is not None), None)
    if big:
        out.append(("zero_dce 6000x4000 peak memory <= 2 GB", f"{big.peak_mb / 1024:.2f} GB", big.peak_mb <= 2048))
    folder_row = _find(rows, "folder", DEFAULT_MODEL, "1920x1080 JPEG", "zerodce enhance (2 workers)")
    ratio(f"folder of 1080p JPEGs, {DEFAULT_MODEL}: >= 0.8x decode+encode throughput (issue 5, before denoising)",
          folder_row, 0.8)
    ratio(f"issue 13: folder of 1080p JPEGs, {DEFAULT_MODEL}, default pipeline: >= 0.5x decode+encode throughput",
          folder_row, 0.5)
    for name in list_models():
        for variant in ("fp32, channels-last", "fp32, NCHW", "bf16, channels-last"):
            ratio(f"training {name} ({variant}) >= 3x naive images/s",
                  _find(rows, "training", name, f"{TRAIN_SIZE}x{TRAIN_SIZE} x{TRAIN_BATCH}",
                        f"ours (zerodce.train, {variant})"), 3)
    return out


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def _ratio(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.2f}x" if value < 1 else f"{value:.1f}x"


def table(rows: list[Row], markdown: bool = False) -> str:
    headers = ["section", "model", "size", "path", "ms/image", "MP/s", "peak MB", "vs naive", "runs", "note"]
    body = [[r.section, r.model, r.size, r.path, _fmt(r.ms, ".1f"), _fmt(r.mp_per_s if r.megapixels else None, ".2f"),
             _fmt(r.peak_mb, ".0f"), _ratio(r.ratio),
             str(r.runs), r.note] for r in rows]
    return format_table(headers, body, markdown=markdown, align="llll" + "r" * 5 + "l")


def machine(args: argparse.Namespace) -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    bf16 = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)()
    info = {"cpu": f"{cpu}, {os.cpu_count()} logical cores",
            "capability": f"torch CPU capability {torch.backends.cpu.get_cpu_capability()}, oneDNN bf16 "
                          f"{'supported' if bf16 else 'not supported'}",
            "torch": torch.__version__,
            "threads": str(torch.get_num_threads()), "device": args.device, "python": platform.python_version()}
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    if hasattr(os, "getloadavg"):
        info["load average at start (1, 5, 15 min)"] = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return info


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's options (shared by ``python benchmarks/bench.py`` and ``zerodce bench``)."""
    parser.add_argument("--quick", action="store_true",
                        help="fewer sizes and runs; skips the 6000x4000 memory and quality sections")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"comma-separated subset of {','.join(SECTIONS)} (default: all)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's, one per core)")
    parser.add_argument("--repeats", type=int, help="timed runs per inference case (default: 7, quick 3)")
    parser.add_argument("--budget", type=float, help="seconds of timed runs per case (default: 20, quick 6)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--markdown", metavar="PATH", help="also write the results as a Markdown table")


def run(args: argparse.Namespace) -> int:
    """Run the selected sections, print the table and the targets; exit code 0."""
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise ValueError(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    if args.quick:
        sections = [s for s in sections if s not in ("memory", "quality")]
    args.repeats = args.repeats or (3 if args.quick else 7)
    args.train_repeats = 2 if args.quick else 3
    args.budget = args.budget or (6.0 if args.quick else 20.0)
    if args.threads:
        torch.set_num_threads(args.threads)
    info = machine(args)
    print("zerodce benchmark: " + "; ".join(f"{k}: {v}" for k, v in info.items()), flush=True)
    runners = {"kernels": kernels, "inference": inference, "pipeline": pipeline, "memory": memory, "training": training, "folder": folder,
               "quality": quality}
    rows: list[Row] = []
    start = time.perf_counter()
    for section in sections:
        print(f"[{section}]", flush=True)
        for row in runners[section](args):
            rows.append(row)
            versus = "" if row.ratio is None else f", {_ratio(row.ratio)} naive"
            print(f"  {row.model} {row.size} {row.path}: {_fmt(row.ms, '.1f')} ms{versus} {row.note}", flush=True)
    if hasattr(os, "getloadavg"):
        info["load average at end (1, 5, 15 min)"] = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    info["total time"] = f"{time.perf_counter() - start:.0f} s"
    print()
    print(table(rows))
    checks = targets(rows)
    print(f"\nTargets (issues 5, 9, 13) on this CPU ({info['cpu']}; {info['capability']}):")
    for description, value, met in checks:
        print(f"  [{'met' if met else 'MISSED'}] {description}: {value}")
    print(f"\n{info['total time']}; load average at end {info.get('load average at end (1, 5, 15 min)', '?')}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "rows": [asdict(r) | {"mp_per_s": r.mp_per_s} for r in rows],
                                               "targets": [{"target": d, "measured": v, "met": m} for d, v, m in checks]},
                                              indent=2, default=str))
    if args.markdown:
        lines = ["Machine: " + "; ".join(f"{k}: {v}" for k, v in info.items()), "", table(rows, markdown=True), "",
                 "| target | measured | met |", "|---|---|---|"]
        lines += [f"| {d} | {v} | {'yes' if m else '**no**'} |" for d, v, m in checks]
        Path(args.markdown).write_text("\n".join(lines) + "\n")
    return 0


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
