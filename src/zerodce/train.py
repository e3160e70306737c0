"""Zero-reference training of Zero-DCE and Zero-DCE++, top to bottom.

:func:`train` runs one training from a :class:`TrainConfig`: data, model,
optimizer, the epoch loop with validation, checkpoints and history. Launched
with ``torchrun --nproc_per_node N`` it trains data-parallel (DDP; gloo on CPU,
nccl on CUDA) on the same global batch: ``batch_size`` is split over the
processes, rank 0 writes every file.

Run folder (``config.out``):

* ``last.pt`` / ``best.pt``: checkpoints after each epoch and at the best
  validation loss, written atomically. A checkpoint is a dict ``{model,
  model_name, model_args, optimizer, epoch, batches_done, step, config,
  history, best_epoch, best_val}``; ``--resume`` rebuilds exactly the same run
  from it (the data order depends only on the seed and the epoch).
* ``best.safetensors``: the best model's weights, the file to ship or to give
  ``--checkpoint``.
* ``history.csv`` (one row per epoch: train and validation total loss and its
  four components) and ``history.png`` (their curves).

Ctrl-C stops after the current step, saves ``last.pt`` (resumable mid-epoch)
and raises ``KeyboardInterrupt``. A NaN or infinite loss stops before the
optimizer step with a :class:`TrainingError` naming the batch's files;
checkpoints already written stay as they were.

One optimization step is :func:`train_step`, on a :class:`TrainingObjective`
(network + loss in one module, so DDP sees the whole computation).
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Subset
from tqdm import tqdm

from zerodce._device import resolve_device
from zerodce.curves import apply_curves
from zerodce.data import ImageFolder, find_images, split
from zerodce.losses import COMPONENTS, LossOutput, LossWeights, ZeroReferenceLoss
from zerodce.models import DEFAULT_MODEL, DCENet, create_model, get_model_spec
from zerodce.curves import upsample_curves
from zerodce.weights import save_safetensors

#: The authors' training image sizes (their data loaders): Zero-DCE 256, Zero-DCE++ 512.
AUTHORS_IMAGE_SIZE = {"zero_dce": 256, "zero_dce_pp": 512}

Precision = Literal["fp32", "bf16"]
Schedule = Literal["constant", "cosine"]


@dataclass
class TrainConfig:
    """Every knob of a training run. The defaults are the authors' released recipe."""

    data: tuple[str, ...] = ()
    """Image folders (searched recursively) or files."""
    out: str = "runs/zerodce"
    """Run folder: checkpoints, history, weights."""
    model: str = DEFAULT_MODEL
    """Registered model name."""

    image_size: int | None = None
    """Training images are resized to this square; None: the authors' size (256 zero_dce, 512 zero_dce_pp)."""
    crop_size: int | None = None
    """Train on random crops of this side from the resized images (validation: fixed crops);
    None: whole images."""
    train_scale_factor: int = 1
    """Curves estimated on a 1/s downscale during training (1 as released), then upsampled;
    the losses still apply at full resolution."""
    val_split: float = 0.2
    """Fraction of the images held out for the validation loss (0: select by training loss)."""
    split_shuffle: bool = True
    """Shuffle (seeded) before splitting; False: sorted, first files train, last validate."""
    preload: bool = True
    """Decode every image once into memory (3 * size**2 bytes each) instead of every epoch."""
    workers: int = 2
    """Decoding threads for the preload, or DataLoader workers without it."""

    epochs: int = 100
    """The released Zero-DCE++ trains 100 epochs."""
    batch_size: int = 8
    """Global batch; split evenly over DDP processes."""
    lr: float = 1e-4
    """Adam learning rate (released: 1e-4)."""
    lr_schedule: Schedule = "constant"
    """constant (released) or cosine decay to 0 over the run."""
    warmup_steps: int = 0
    """Linear learning-rate warm-up steps."""
    weight_decay: float = 1e-4
    """Adam weight decay (released: 1e-4)."""
    grad_clip: float = 0.1
    """Gradient-norm clip (released: 0.1); 0 disables."""

    formulation: str = "released"
    """Loss formulas: released code or paper (see zerodce.losses)."""
    exposure_level: float = 0.6
    """Well-exposedness level E of the exposure loss (paper: 0.6)."""

    precision: Precision = "fp32"
    """bf16 runs the curve network under CPU/CUDA autocast (faster convolutions)."""
    channels_last: bool = True
    """NHWC memory layout: 2-2.5x faster convolutions on CPU, same results to float rounding."""
    device: str = "auto"
    """auto, cpu or cuda (DDP on CUDA uses cuda:LOCAL_RANK)."""
    seed: int = 0
    """Seeds the initialization, the split and the data order."""
    init_weights: str | None = None
    """Start from these weights (fine-tuning) instead of a random initialization."""
    resume: str | None = None
    """Checkpoint to continue from."""
    progress: bool = True
    """Show a progress bar (rank 0)."""


#: Fields that may change when a run is resumed; the others come from the checkpoint.
RESUMABLE_CHANGES = ("epochs", "device", "workers", "progress")

#: Documented presets: overrides of the defaults.
PRESETS: dict[str, dict[str, Any]] = {
    # The course report this project started from (DEVELOPERS.md): Zero-DCE on LOL
    # low-light images, 256x256, sorted, first 4/5 train, last 1/5 validate, 100 epochs.
    "report": {"model": "zero_dce", "image_size": 256, "val_split": 0.2, "split_shuffle": False, "epochs": 100},
}


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss, bad data or configuration); one line."""


class _NonFiniteLoss(Exception):
    def __init__(self, here: bool) -> None:
        super().__init__()
        self.here = here  # whether this process's batch was the bad one


class _StopRequested(Exception):
    pass


@dataclass
class TrainResult:
    """What a finished run produced."""

    out: Path
    history: list[dict[str, float]]
    best_epoch: int
    best_val: float
    weights: Path


# --------------------------------------------------------------------------- one step


class TrainingObjective(nn.Module):
    """Network and zero-reference loss in one forward: images ``(B, 3, H, W)`` in [0, 1] -> :class:`LossOutput`.

    The curves are estimated as the model does at its ``scale_factor`` (the
    network runs on a downscale, its maps are upsampled back) and every loss
    term sees full resolution: the enhanced image, and for the smoothness term
    the curve maps that were applied to it. So a ``scale_factor > 1`` changes
    how the curves are parameterized, not the objective of the released code.

    Example:
        >>> model = create_model("zero_dce_pp", scale_factor=4)
        >>> objective = TrainingObjective(model, ZeroReferenceLoss(LossWeights.for_model("zero_dce_pp")))
        >>> sorted(objective(torch.rand(2, 3, 32, 32)).components) == sorted(COMPONENTS)
        True
    """

    def __init__(self, model: DCENet, loss_fn: ZeroReferenceLoss, precision: Precision = "fp32") -> None:
        super().__init__()
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be fp32 or bf16, got {precision!r}")
        self.model, self.loss_fn, self.precision = model, loss_fn, precision

    def forward(self, images: torch.Tensor) -> LossOutput:
        with torch.autocast(images.device.type, torch.bfloat16, enabled=self.precision == "bf16"):
            small, padded = self.model.estimate_low_res_curves(images)  # (B, C, H/s, W/s)
        small = small.float()
        h, w = images.shape[-2:]
        curves = small if self.model.scale_factor == 1 else upsample_curves(small, padded, 0, h)[..., :w]
        # Elementwise ops on tensors of different memory layouts take a slow path (about 2x).
        layout = torch.channels_last if images.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        curves = curves.contiguous(memory_format=layout)
        enhanced = apply_curves(images, curves, self.model.iterations)  # (B, 3, H, W)
        return self.loss_fn(enhanced, images, curves)


def train_step(
    objective: nn.Module,
    images: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    grad_clip: float = 0.1,
    stop_requested: bool = False,
) -> LossOutput:
    """One optimization step: forward, finite check, backward, gradient clip, update.

    Args:
        objective: a :class:`TrainingObjective`, possibly wrapped in DDP.
        images: the batch (this process's share under DDP), ``(B, 3, H, W)`` in [0, 1].
        optimizer: over ``objective``'s parameters.
        grad_clip: gradient-norm clip; 0 disables.
        stop_requested: this process wants to stop (Ctrl-C); under DDP every
            process learns it in the same all-reduce as the finite check, so all
            stop at the same step.

    Returns:
        The loss of the batch, detached.

    Raises:
        _NonFiniteLoss, _StopRequested: before any parameter changed (used by :func:`train`).

    Example:
        >>> model = create_model("zero_dce_pp", scale_factor=1)
        >>> objective = TrainingObjective(model, ZeroReferenceLoss(LossWeights.for_model("zero_dce_pp")))
        >>> optimizer = torch.optim.Adam(objective.parameters(), lr=1e-4)
        >>> train_step(objective, torch.rand(2, 3, 32, 32), optimizer).total.requires_grad
        False
    """
    out = objective(images)
    flags = torch.stack([(~torch.isfinite(out.total.detach())).float(), torch.tensor(float(stop_requested))])
    if dist.is_available() and dist.is_initialized():
        local_bad = bool(flags[0])
        flags = flags.to(images.device)
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        flags = flags.cpu()
    else:
        local_bad = bool(flags[0])
    if flags[0]:
        raise _NonFiniteLoss(here=local_bad)
    if flags[1]:
        raise _StopRequested()
    optimizer.zero_grad(set_to_none=True)
    out.total.backward()
    if grad_clip > 0:
        nn.utils.clip_grad_norm_(objective.parameters(), grad_clip)
    optimizer.step()
    return LossOutput(out.total.detach(), {k: v.detach() for k, v in out.components.items()})


def learning_rate(config: TrainConfig, step: int, total_steps: int) -> float:
    """Learning rate at ``step`` (0-based) of ``total_steps``: warm-up, then constant or cosine to 0.

    Example:
        >>> learning_rate(TrainConfig(lr=1.0, lr_schedule="cosine"), 50, 100)
        0.5
    """
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if config.lr_schedule == "constant":
        return config.lr
    t = (step - config.warmup_steps) / max(1, total_steps - config.warmup_steps)
    return config.lr * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


# --------------------------------------------------------------------------- the run


def train(config: TrainConfig) -> TrainResult:
    """Run a training (see the module docstring for what it writes).

    To continue a run, pass ``resume_config(path)``: the checkpoint's settings
    with ``resume`` set (and, optionally, :data:`RESUMABLE_CHANGES`).

    Raises:
        TrainingError: non-finite loss, no usable images, an existing run in
            ``out``, a resumed run whose settings differ from its checkpoint's.
        KeyboardInterrupt: Ctrl-C, after saving ``last.pt``.
    """
    saved = None
    if config.resume:
        saved = read_checkpoint(config.resume)
        changed = [k for k, v in saved["config"].items()
                   if k not in (*RESUMABLE_CHANGES, "resume") and getattr(config, k) != v]
        if changed:
            raise TrainingError(f"{', '.join(changed)} differ from the run in {config.resume}; "
                                "build the configuration with resume_config()")
    _check_config(config)
    out = Path(config.out)

    # Distributed setup: torchrun sets WORLD_SIZE, RANK and LOCAL_RANK.
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = resolve_device(config.device)
    if world > 1:
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if config.batch_size % world:
        raise TrainingError(f"--batch-size {config.batch_size} must be a multiple of the {world} processes")
    is_writer = rank == 0
    try:
        # Every process checks (same files), so none is left waiting for a process that stopped.
        if saved is None and (out / "last.pt").exists():
            raise TrainingError(f"{out} already holds a run; continue it with --resume {out / 'last.pt'} or choose another --out")
        if is_writer:
            out.mkdir(parents=True, exist_ok=True)
        return _run(config, saved, out, device, world, rank, is_writer)
    finally:
        if world > 1:
            dist.destroy_process_group()


def _run(config: TrainConfig, saved: dict | None, out: Path, device: torch.device,
         world: int, rank: int, is_writer: bool) -> TrainResult:
    log = print if is_writer else (lambda *a, **k: None)
    image_size = config.image_size or AUTHORS_IMAGE_SIZE.get(config.model, 256)

    # Data: split the sorted file list, load (usually into memory), shard over processes.
    train_paths, val_paths = split(find_images(config.data), config.val_split, config.seed, config.split_shuffle)
    train_set = ImageFolder(train_paths, image_size, config.preload, config.workers, config.crop_size, config.seed)
    val_set = ImageFolder(val_paths, image_size, config.preload, config.workers, config.crop_size, config.seed)
    for skipped in train_set.skipped + val_set.skipped:
        log(f"skipped: {skipped.reason}")
    per_rank = config.batch_size // world
    if len(train_set) < config.batch_size:
        raise TrainingError(f"{len(train_set)} training images are fewer than one batch of {config.batch_size}")
    # Same permutation on every process (seed + epoch); each takes every world-th
    # index, so one step's global batch is the same as in a 1-process run.
    sampler = DistributedSampler(train_set, world, rank, shuffle=True, seed=config.seed, drop_last=True)
    workers = 0 if config.preload else config.workers  # from memory, another process only adds copies
    # Workers are made anew each epoch, so they see the dataset's epoch (crop positions).
    train_loader = DataLoader(train_set, per_rank, sampler=sampler, drop_last=True, num_workers=workers)
    # Validation: an unpadded shard per process; sums are reduced, so the mean is over the whole set.
    val_loader = DataLoader(Subset(val_set, range(rank, len(val_set), world)), per_rank, num_workers=workers)
    steps_per_epoch = len(train_loader)
    total_steps = steps_per_epoch * config.epochs
    crop = f", crops of {config.crop_size}x{config.crop_size}" if config.crop_size else ""
    log(f"{len(train_set)} training and {len(val_set)} validation images at {image_size}x{image_size}{crop}, "
        f"{steps_per_epoch} steps/epoch, {world} process(es) on {device}")

    # Model, loss, optimizer. Same seed everywhere, so every process starts identical.
    torch.manual_seed(config.seed)
    model_args = {"scale_factor": config.train_scale_factor}
    model = create_model(config.model, checkpoint=config.init_weights, **model_args).train()
    loss_fn = ZeroReferenceLoss(LossWeights.for_model(config.model), config.exposure_level,
                                formulation=config.formulation)
    if config.precision == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
        log("warning: this CPU has no native bfloat16 arithmetic (no AVX-512 BF16 or AMX), so bf16 is "
            "emulated: about 10x slower than fp32 on such a CPU (docs/training.md); use --precision fp32")
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    objective = TrainingObjective(model, loss_fn, config.precision).to(device, memory_format=memory_format)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    start_epoch, skip_batches, step = 0, 0, 0
    history: list[dict[str, float]] = []
    best_epoch, best_val = 0, math.inf
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        start_epoch, skip_batches, step = saved["epoch"], saved["batches_done"], saved["step"]
        history, best_epoch, best_val = saved["history"], saved["best_epoch"], saved["best_val"]
        log(f"resumed from {config.resume}: epoch {start_epoch + 1}, batch {skip_batches + 1}")
    trainer = nn.parallel.DistributedDataParallel(objective) if world > 1 else objective

    def checkpoint(epoch: int, batches_done: int) -> dict:
        return {"model": model.state_dict(), "model_name": config.model, "model_args": model_args,
                "optimizer": optimizer.state_dict(), "epoch": epoch, "batches_done": batches_done,
                "step": step, "config": asdict(config), "history": history,
                "best_epoch": best_epoch, "best_val": best_val}

    stop = _StopFlag()
    with stop:
        for epoch in range(start_epoch, config.epochs):
            sampler.set_epoch(epoch)
            train_set.set_epoch(epoch)
            objective.train()
            sums, seen, started = _LossSums(), 0, time.perf_counter()
            lr = learning_rate(config, step, total_steps)
            bar = tqdm(total=steps_per_epoch, initial=skip_batches, desc=f"epoch {epoch + 1}/{config.epochs}",
                       disable=not (config.progress and is_writer), dynamic_ncols=True, leave=False)
            for i, (images, indices) in enumerate(train_loader):
                if i < skip_batches:
                    continue  # resumed mid-epoch: these batches were trained before the stop
                lr = learning_rate(config, step, total_steps)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                images = images.to(device, non_blocking=True).contiguous(memory_format=memory_format)
                try:
                    loss = train_step(trainer, images, optimizer, config.grad_clip, stop.requested)
                except _NonFiniteLoss as exc:
                    bar.close()
                    names = ", ".join(str(train_set.paths[j]) for j in indices.tolist())
                    where = f"at epoch {epoch + 1}, batch {i + 1}"
                    raise TrainingError(
                        f"non-finite loss {where}; batch files: {names}" if exc.here
                        else f"non-finite loss {where} in another process; stopped"
                    ) from None
                except _StopRequested:
                    bar.close()
                    if is_writer:
                        _save_atomic(checkpoint(epoch, i), out / "last.pt")
                    log(f"interrupted: saved {out / 'last.pt'}; continue with --resume {out / 'last.pt'}")
                    raise KeyboardInterrupt from None
                step += 1
                sums.add(loss, len(images))
                seen += len(images) * world
                bar.set_postfix(loss=f"{loss.total.item():.4f}", img_s=f"{seen / (time.perf_counter() - started):.1f}")
                bar.update()
            bar.close()
            skip_batches = 0
            seconds = time.perf_counter() - started
            row = {"epoch": epoch + 1, "lr": lr, "seconds": round(seconds, 2),
                   "images_per_s": round(seen / seconds, 2)}
            row.update({f"train_{k}": v for k, v in sums.means(device).items()})
            row.update({f"val_{k}": v for k, v in _validate(objective, val_loader, device, memory_format).items()})
            history.append(row)
            score = row["val_total"] if len(val_set) else row["train_total"]
            if score < best_val:
                best_epoch, best_val = epoch + 1, score
            if is_writer:
                state = checkpoint(epoch + 1, 0)
                _save_atomic(state, out / "last.pt")
                if best_epoch == epoch + 1:
                    _save_atomic(state, out / "best.pt")
                write_history(history, out)
            log(f"epoch {epoch + 1}/{config.epochs}: train {row['train_total']:.5f}  val {row['val_total']:.5f}"
                f"  {row['images_per_s']:.1f} img/s")
            if stop.requested:  # Ctrl-C during validation: the epoch is saved, stop here
                raise KeyboardInterrupt
    weights = out / "best.safetensors"
    if is_writer:
        best = read_checkpoint(out / "best.pt")
        save_safetensors(best["model"], weights, metadata={
            "model_name": config.model, "epoch": str(best["epoch"]), "val_total": f"{best_val:.6f}",
            "config": json.dumps(training_recipe(config))})
    return TrainResult(out, history, best_epoch, best_val, weights)


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN computes bfloat16 natively on this CPU (else autocast to bf16 is emulated and slow)."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(check is not None and torch.backends.mkldnn.is_available() and check())


def training_recipe(config: TrainConfig) -> dict[str, Any]:
    """What a weights file records of how it was trained: the config without this machine's paths.

    Example:
        >>> "out" in training_recipe(TrainConfig(data=("photos",), out="/tmp/run"))
        False
    """
    return {k: v for k, v in asdict(config).items() if k not in ("out", "resume", "progress")}


def resume_config(checkpoint: str | Path, **changes: Any) -> TrainConfig:
    """The configuration of the run saved in ``checkpoint``, set to resume it.

    Args:
        checkpoint: a ``last.pt`` (or ``best.pt``) written by :func:`train`.
        **changes: new values of :data:`RESUMABLE_CHANGES` (e.g. more ``epochs``).
    """
    fixed = sorted(set(changes) - set(RESUMABLE_CHANGES))
    if fixed:
        raise ValueError(f"{', '.join(fixed)} cannot change when resuming; only {', '.join(RESUMABLE_CHANGES)} can")
    return replace(TrainConfig(**read_checkpoint(checkpoint)["config"]), resume=str(checkpoint), **changes)


def _check_config(config: TrainConfig) -> None:
    get_model_spec(config.model)  # unknown names: ValueError listing the known ones
    if not config.data:
        raise ValueError("no training data given")
    positive = {"epochs": config.epochs, "batch_size": config.batch_size, "train_scale_factor": config.train_scale_factor}
    for name, value in positive.items():
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if config.lr <= 0:
        raise ValueError(f"lr must be positive, got {config.lr}")
    if config.lr_schedule not in ("constant", "cosine"):
        raise ValueError(f"lr_schedule must be constant or cosine, got {config.lr_schedule!r}")


# --------------------------------------------------------------------------- helpers


class _StopFlag:
    """Turns the first Ctrl-C (SIGINT/SIGTERM) into a request to stop after the current step.

    A second Ctrl-C interrupts at once. Only the main thread can own signals;
    elsewhere this does nothing.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> "_StopFlag":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@dataclass
class _LossSums:
    """Per-image sums of the loss terms (the losses are batch means), reduced over processes."""

    sums: dict[str, float] = field(default_factory=dict)
    count: int = 0

    def add(self, loss: LossOutput, n: int) -> None:
        for name, value in {"total": loss.total, **loss.components}.items():
            self.sums[name] = self.sums.get(name, 0.0) + float(value) * n
        self.count += n

    def means(self, device: torch.device) -> dict[str, float]:
        names = ("total", *COMPONENTS)
        totals = torch.tensor([self.sums.get(k, 0.0) for k in names] + [self.count], dtype=torch.float64)
        if dist.is_available() and dist.is_initialized():
            totals = totals.to(device)
            dist.all_reduce(totals)
            totals = totals.cpu()
        count = totals[-1].item()
        return {k: (v / count if count else math.nan) for k, v in zip(names, totals[:-1].tolist())}


@torch.no_grad()
def _validate(objective: TrainingObjective, loader: DataLoader, device: torch.device,
              memory_format: torch.memory_format) -> dict[str, float]:
    objective.eval()
    sums = _LossSums()
    for images, _ in loader:
        sums.add(objective(images.to(device).contiguous(memory_format=memory_format)), len(images))
    return sums.means(device)


def _save_atomic(obj: dict, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename: a crash never leaves half a checkpoint."""
    tmp = path.with_name(f".{path.name}.part")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_checkpoint(path: str | Path) -> dict:
    """A training checkpoint written by :func:`train` (CPU tensors)."""
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any decoder failure means the same thing to the user
        raise TrainingError(f"cannot read checkpoint {path}: {exc}") from None
    if not isinstance(obj, dict) or "config" not in obj or "optimizer" not in obj:
        raise TrainingError(f"{path} is not a training checkpoint of zerodce train")
    known = {f.name for f in fields(TrainConfig)}
    obj["config"] = {k: (tuple(v) if k == "data" else v) for k, v in obj["config"].items() if k in known}
    return obj


# --------------------------------------------------------------------------- history


def history_columns() -> list[str]:
    """Columns of ``history.csv``.

    Example:
        >>> history_columns()[:5]
        ['epoch', 'lr', 'seconds', 'images_per_s', 'train_total']
    """
    losses = ("total", *COMPONENTS)
    return ["epoch", "lr", "seconds", "images_per_s", *(f"train_{k}" for k in losses), *(f"val_{k}" for k in losses)]


def write_history(history: list[dict[str, float]], out: Path) -> None:
    """Write ``history.csv`` and ``history.png`` into ``out`` (each atomically)."""
    tmp = out / ".history.csv.part"
    with open(tmp, "w", newline="") as file:
        writer = csv.DictWriter(file, history_columns())
        writer.writeheader()
        writer.writerows(history)
    os.replace(tmp, out / "history.csv")
    image = plot_history(history)
    tmp = out / ".history.png.part"
    image.save(tmp, format="PNG")
    os.replace(tmp, out / "history.png")


def format_table(row: dict[str, float]) -> str:
    """The report's loss table for one epoch: each loss, train and validation.

    Example:
        >>> row = {f"{s}_{k}": 0.5 for s in ("train", "val") for k in ("total", *COMPONENTS)}
        >>> print(format_table(row).splitlines()[1])
        total                        0.500000    0.500000
    """
    lines = [f"{'loss':<24} {'train':>12} {'validation':>11}"]
    for name in ("total", *COMPONENTS):
        lines.append(f"{name:<24} {row[f'train_{name}']:>12.6f} {row[f'val_{name}']:>11.6f}")
    return "\n".join(lines)


def plot_history(history: list[dict[str, float]], panel: tuple[int, int] = (300, 200)):
    """Loss curves (train blue, validation orange), one panel per loss, as a PIL image.

    Example:
        >>> rows = [{f"{s}_{k}": 1 / e for s in ("train", "val") for k in ("total", *COMPONENTS)} | {"epoch": e}
        ...         for e in (1, 2, 3)]
        >>> plot_history(rows).size
        (900, 400)
    """
    from PIL import Image, ImageDraw

    colors = {"train": (31, 119, 180), "val": (255, 127, 14)}
    width, height = panel
    image = Image.new("RGB", (3 * width, 2 * height), "white")
    draw = ImageDraw.Draw(image)
    margin = 10
    epochs = [row["epoch"] for row in history]
    for n, name in enumerate(("total", *COMPONENTS)):
        x0, y0 = (n % 3) * width + margin, (n // 3) * height + 20
        x1, y1 = x0 + width - 2 * margin, y0 + height - 40
        draw.rectangle((x0, y0, x1, y1), outline="gray")
        values = [row[f"{s}_{name}"] for row in history for s in colors if math.isfinite(row[f"{s}_{name}"])]
        if not values:
            draw.text((x0, y0 - 14), name, fill="black")
            continue
        low, high = min(values), max(values)
        span = (high - low) or 1.0
        # The range goes in the title: the panels share no scale, the terms differ by orders of magnitude.
        draw.text((x0, y0 - 14), f"{name}  [{low:.3g}, {high:.3g}]", fill="black")
        draw.text((x0, y1 + 4), f"epoch {int(epochs[0])}", fill="black")
        draw.text((x1 - 60, y1 + 4), f"epoch {int(epochs[-1])}", fill="black")
        e_span = (epochs[-1] - epochs[0]) or 1
        for s, color in colors.items():
            points = [(x0 + (row["epoch"] - epochs[0]) / e_span * (x1 - x0), y1 - (row[f"{s}_{name}"] - low) / span * (y1 - y0))
                      for row in history if math.isfinite(row[f"{s}_{name}"])]
            if len(points) > 1:
                draw.line(points, fill=color, width=2)
            elif points:
                draw.ellipse((points[0][0] - 2, points[0][1] - 2, points[0][0] + 2, points[0][1] + 2), fill=color)
    lx, ly = 2 * width + margin, height + 30
    for k, (s, color) in enumerate(colors.items()):
        draw.line((lx, ly + 20 * k + 6, lx + 30, ly + 20 * k + 6), fill=color, width=3)
        draw.text((lx + 40, ly + 20 * k), "train" if s == "train" else "validation", fill="black")
    return image
