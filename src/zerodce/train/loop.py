"""The training loop, top to bottom: :func:`train`, one step (:func:`train_step`) and its objective."""

from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Subset
from tqdm import tqdm

from zerodce._device import resolve_device
from zerodce.curves import apply_curves, upsample_curves
from zerodce.data import ImageFolder, find_images, split
from zerodce.losses import COMPONENTS, LossOutput, LossWeights, ZeroReferenceLoss
from zerodce.models import DCENet, create_model
from zerodce.models._dce_net import cpu_has_native_bf16
from zerodce.train.checkpoints import read_checkpoint, save_checkpoint
from zerodce.train.config import (AUTHORS_IMAGE_SIZE, RESUMABLE_CHANGES, Precision, TrainConfig, TrainingError,
                                  _check_config, training_recipe)
from zerodce.train.history import write_history
from zerodce.weights import flush_subnormals_, save_safetensors


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
    """One optimization step: forward, finite check, backward, gradient clip, update, subnormal weights to zero.

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
    # Weight decay shrinks weights that get no gradient towards zero through the subnormal range, where
    # CPUs compute many times slower (the authors' zero_dce checkpoint holds 19,266 such weights).
    # torch.set_flush_denormal reaches only the calling thread, not the intra-op workers (docs/training.md).
    flush_subnormals_(p for group in optimizer.param_groups for p in group["params"])
    return LossOutput(out.total.detach(), {k: v.detach() for k, v in out.components.items()})


@torch.no_grad()
def initialize(model: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default initialization of every convolution of ``model``, drawn from ``generator``.

    The same draws, in the same order, as the layers make from the global generator when they are
    built (``Conv2d.reset_parameters``), so a seed gives the weights it gave with ``torch.manual_seed``;
    the global generator, which other code in the process may be using, is neither seeded nor read.

    Example:
        >>> a, b = create_model("zero_dce_pp"), create_model("zero_dce_pp")
        >>> initialize(a, torch.Generator().manual_seed(0)); initialize(b, torch.Generator().manual_seed(0))
        >>> torch.equal(a.conv1.depthwise.weight, b.conv1.depthwise.weight)
        True
    """
    for module in model.modules():
        if list(module.parameters(recurse=False)) and not isinstance(module, nn.Conv2d):
            raise TypeError(f"initialize() knows convolutions only, not {type(module).__name__}")
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
            if module.bias is not None:
                fan_in, _ = nn.init._calculate_fan_in_and_fan_out(module.weight)
                nn.init.uniform_(module.bias, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in), generator=generator)


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
        last = out / "last.pt"
        if saved is None and last.exists():
            raise TrainingError(f"{out} already holds a run; continue it with --resume {last} or choose another --out")
        if saved is not None and last.exists() and not last.samefile(config.resume):
            raise TrainingError(f"{out} holds another run; resume {config.resume} into an empty --out")
        if is_writer:
            out.mkdir(parents=True, exist_ok=True)
        result = _run(config, saved, out, device, world, rank, is_writer)
        if world > 1:
            # Rank 0 still writes the last files when the others are done: a process that tore its
            # connections down then was seen to abort in gloo ("terminate called"), under load.
            dist.barrier()
        return result
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
    # The loaders' own generator seeds their workers, instead of the global one.
    generator = torch.Generator().manual_seed(config.seed)
    train_loader = DataLoader(train_set, per_rank, sampler=sampler, drop_last=True, num_workers=workers,
                              generator=generator)
    # Validation: an unpadded shard per process; sums are reduced, so the mean is over the whole set.
    val_loader = DataLoader(Subset(val_set, range(rank, len(val_set), world)), per_rank, num_workers=workers,
                            generator=generator)
    steps_per_epoch = len(train_loader)
    total_steps = steps_per_epoch * config.epochs
    crop = f", crops of {config.crop_size}x{config.crop_size}" if config.crop_size else ""
    log(f"{len(train_set)} training and {len(val_set)} validation images at {image_size}x{image_size}{crop}, "
        f"{steps_per_epoch} steps/epoch, {world} process(es) on {device}")

    # Model, loss, optimizer. Same seed everywhere, so every process starts identical.
    model_args = {"scale_factor": config.train_scale_factor}
    with torch.random.fork_rng(devices=[]):  # the layers' own initialization draws from the global generator
        model = create_model(config.model, checkpoint=config.init_weights, **model_args).train()
    if config.init_weights is None:
        initialize(model, torch.Generator().manual_seed(config.seed))
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
                        save_checkpoint(checkpoint(epoch, i), out / "last.pt")
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
                save_checkpoint(state, out / "last.pt")
                if best_epoch == epoch + 1:
                    save_checkpoint(state, out / "best.pt")
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
