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

Modules: :mod:`~zerodce.train.config` (:class:`TrainConfig`, presets),
:mod:`~zerodce.train.loop` (the loop and one step), :mod:`~zerodce.train.checkpoints`
and :mod:`~zerodce.train.history` (``history.csv``, the plot, the loss table).
Every public name is importable from ``zerodce.train``.

One optimization step is :func:`train_step`, on a :class:`TrainingObjective`
(network + loss in one module, so DDP sees the whole computation).
"""

from zerodce.train.checkpoints import read_checkpoint, resume_config
from zerodce.train.config import (AUTHORS_IMAGE_SIZE, PRESETS, RESUMABLE_CHANGES, Precision, Schedule, TrainConfig,
                                  TrainingError, training_recipe)
from zerodce.train.history import format_table, history_columns, plot_history, write_history
from zerodce.train.loop import TrainingObjective, TrainResult, cpu_has_native_bf16, learning_rate, train, train_step

__all__ = [
    "AUTHORS_IMAGE_SIZE",
    "PRESETS",
    "RESUMABLE_CHANGES",
    "Precision",
    "Schedule",
    "TrainConfig",
    "TrainResult",
    "TrainingError",
    "TrainingObjective",
    "cpu_has_native_bf16",
    "format_table",
    "history_columns",
    "learning_rate",
    "plot_history",
    "read_checkpoint",
    "resume_config",
    "train",
    "train_step",
    "training_recipe",
    "write_history",
]
