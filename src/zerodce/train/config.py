"""The configuration of a training run: every knob with its default (the authors' recipe), presets."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from zerodce._checks import InputError, ZerodceError
from zerodce.models import DEFAULT_MODEL, get_model_spec

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


#: Fields that may change when a run is resumed; the others come from the checkpoint. ``out`` is
#: never taken from the checkpoint (a checkpoint is data): a resumed run writes beside it, or to a given out.
RESUMABLE_CHANGES = ("epochs", "device", "workers", "progress", "out")

#: Documented presets: overrides of the defaults.
PRESETS: dict[str, dict[str, Any]] = {
    # The course report this project started from (DEVELOPERS.md): Zero-DCE on LOL
    # low-light images, 256x256, sorted, first 4/5 train, last 1/5 validate, 100 epochs.
    "report": {"model": "zero_dce", "image_size": 256, "val_split": 0.2, "split_shuffle": False, "epochs": 100},
}


class TrainingError(ZerodceError, RuntimeError):
    """Training cannot go on (non-finite loss, bad data or configuration); one line."""


def training_recipe(config: TrainConfig) -> dict[str, Any]:
    """What a weights file records of how it was trained: the config without this machine's paths.

    Example:
        >>> "out" in training_recipe(TrainConfig(data=("photos",), out="/tmp/run"))
        False
    """
    return {k: v for k, v in asdict(config).items() if k not in ("out", "resume", "progress")}


def _check_config(config: TrainConfig) -> None:
    try:
        get_model_spec(config.model)
    except ValueError as exc:  # its message lists the known names
        raise InputError(str(exc)) from None
    if not config.data:
        raise InputError("no training data given")
    positive = {"epochs": config.epochs, "batch_size": config.batch_size, "train_scale_factor": config.train_scale_factor}
    for name, value in positive.items():
        if value < 1:
            raise InputError(f"{name} must be at least 1, got {value}")
    if config.lr <= 0:
        raise InputError(f"lr must be positive, got {config.lr}")
    if config.precision not in ("fp32", "bf16"):
        raise InputError(f"precision must be fp32 or bf16, got {config.precision!r}")
    if config.lr_schedule not in ("constant", "cosine"):
        raise InputError(f"lr_schedule must be constant or cosine, got {config.lr_schedule!r}")
