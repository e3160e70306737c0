"""Reading, converting and writing model weights.

Three sources load through the same path (:func:`load_state_dict`):

* our shipped weights (safetensors files inside the package, ``pretrained=True``);
* our training checkpoints (``{"model": state_dict, "model_name": ..., ...}``);
* the authors' released state dicts (``e_conv1.weight`` ...), converted by
  :func:`checkpoint_filter_fn`.

The authors' network outputs ``r = -alpha`` (their curve step is
``x + r * (x**2 - x)``); ours outputs the paper's ``alpha``. Because ``tanh`` is
odd, the conversion negates the weight and bias of the last convolution.

Every file loaded has its subnormal weights (nonzero, below the smallest
normal float: ``1.2e-38`` in float32) set to zero, see :func:`flush_subnormals`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import torch

from zerodce._atomic import write_atomic
from zerodce._checks import ZerodceError
PRETRAINED_DIR = Path(__file__).parent / "pretrained"

#: Prefixes added by wrappers: DataParallel/DDP and torch.compile.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
#: Official key fragments -> ours.
_OFFICIAL_RENAMES = ((re.compile(r"^e_conv(\d)\."), r"conv\1."), (re.compile(r"\.depth_conv\."), ".depthwise."),
                     (re.compile(r"\.point_conv\."), ".pointwise."))
#: The last layer before tanh, whose sign differs between the official release and ours.
_OUTPUT_LAYER = re.compile(r"^conv7\.(pointwise\.)?(weight|bias)$")


class WeightsError(ZerodceError, ValueError):
    """A weights file that cannot be read or does not fit the model."""


def _unwrap(obj: dict) -> dict[str, torch.Tensor]:
    for key in ("model", "state_dict", "model_state_dict"):
        if isinstance(obj.get(key), dict):
            return obj[key]
    return obj


def checkpoint_filter_fn(state_dict: dict) -> dict[str, torch.Tensor]:
    """Turn any supported checkpoint into a state dict of our models.

    Unwraps training checkpoints, strips ``module.`` / ``_orig_mod.`` prefixes and,
    for the authors' released files (keys ``e_conv*``), renames keys and negates
    the output layer (``r = -alpha``).

    Example:
        >>> sd = checkpoint_filter_fn({"module.e_conv7.bias": torch.ones(2)})
        >>> sd["conv7.bias"].tolist()
        [-1.0, -1.0]
    """
    state_dict = _unwrap(state_dict)
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        for prefix in _WRAPPER_PREFIXES:
            key = key.removeprefix(prefix)
        official = key.startswith("e_conv")
        for pattern, repl in _OFFICIAL_RENAMES:
            key = pattern.sub(repl, key)
        if official and _OUTPUT_LAYER.match(key):
            value = -value
        out[key] = value
    return out


def flush_subnormals(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state_dict`` with its subnormal floats set to zero (other tensors returned as they are).

    CPUs compute with subnormal numbers in slow microcode: the authors' ``zero_dce``
    checkpoint holds 19,266 of them, which made inference many times slower than
    with the same network holding normal weights. Each is smaller than
    ``1.2e-38``, so setting it to zero leaves the outputs as they were.

    Example:
        >>> flush_subnormals({"w": torch.tensor([1e-40, 1e-3, -1e-41])})["w"].tolist()
        [0.0, 0.0010000000474974513, 0.0]
    """
    out = {}
    for key, value in state_dict.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            subnormal = _subnormal(value)
            if subnormal.any():
                value = value.masked_fill(subnormal, 0.0)
        out[key] = value
    return out


@torch.no_grad()
def flush_subnormals_(tensors: Iterable[torch.Tensor]) -> None:
    """Set the subnormal values of ``tensors`` to zero, in place (training flushes its weights after each step).

    Example:
        >>> w = torch.tensor([1e-40, 0.5])
        >>> flush_subnormals_([w]); w.tolist()
        [0.0, 0.5]
    """
    for value in tensors:
        if value.is_floating_point():
            value.masked_fill_(_subnormal(value), 0.0)


def _subnormal(value: torch.Tensor) -> torch.Tensor:
    return (value != 0) & (value.abs() < torch.finfo(value.dtype).tiny)


def read_weights_file(path: str | Path) -> dict:
    """Read a ``.safetensors`` file or a PyTorch checkpoint (``weights_only=True``) on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any decoder failure means the same thing to the user
        raise WeightsError(f"cannot read weights file {path}: {exc}") from exc


def load_state_dict(model: torch.nn.Module, path: str | Path) -> None:
    """Load weights from ``path`` into ``model`` (strict), converting as needed and flushing subnormals to zero."""
    obj = read_weights_file(path)
    if not isinstance(obj, dict):
        raise WeightsError(f"{path} does not hold a state dict")
    state_dict = flush_subnormals(checkpoint_filter_fn(obj))
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise WeightsError(
            f"{path} does not fit {type(model).__name__}: {' '.join(first[:3])}"
        ) from None


def save_safetensors(state_dict: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """Write a state dict as safetensors (contiguous CPU tensors), atomically."""
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    write_atomic(path, save(tensors, metadata=metadata))


def pretrained_path(model_name: str) -> Path:
    """Path of the shipped weights of ``model_name`` (may not exist)."""
    return PRETRAINED_DIR / f"{model_name}.safetensors"
