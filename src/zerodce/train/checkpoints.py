"""Training checkpoints: written atomically, read back on the CPU, turned into a resumed configuration."""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import torch

from zerodce._atomic import atomic_file
from zerodce._checks import InputError
from zerodce.train.config import RESUMABLE_CHANGES, TrainConfig, TrainingError

def save_checkpoint(obj: dict, path: Path) -> None:
    """``torch.save`` atomically: a crash never leaves half a checkpoint."""
    with atomic_file(path) as file:
        torch.save(obj, file)


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


def resume_config(checkpoint: str | Path, **changes: Any) -> TrainConfig:
    """The configuration of the run saved in ``checkpoint``, set to resume it.

    The resumed run writes into the folder holding ``checkpoint`` (or ``out``, if
    given), never to the paths recorded inside it: a checkpoint is data, and it
    may have been copied from another machine or another user.

    Args:
        checkpoint: a ``last.pt`` (or ``best.pt``) written by :func:`train`.
        **changes: new values of :data:`RESUMABLE_CHANGES` (e.g. more ``epochs``, another ``out``).
    """
    fixed = sorted(set(changes) - set(RESUMABLE_CHANGES))
    if fixed:
        raise InputError(f"{', '.join(fixed)} cannot change when resuming; only {', '.join(RESUMABLE_CHANGES)} can")
    changes.setdefault("out", str(Path(checkpoint).parent))
    return replace(TrainConfig(**read_checkpoint(checkpoint)["config"]), resume=str(checkpoint), **changes)
