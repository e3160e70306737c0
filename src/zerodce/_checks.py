"""Input checks shared by the tensor operations, with messages that say how to fix the input, and the
base of the errors this package raises on purpose."""

from __future__ import annotations

import torch


class ZerodceError(Exception):
    """Base of the errors zerodce raises on purpose (a file, setting or input the user can fix).

    The message is one line for the user; the CLI prints it with exit code 1.
    Any other exception is a bug, reported as such (``--debug`` shows the traceback).
    """


class InputError(ZerodceError, ValueError):
    """A setting or data path that cannot work (a missing folder, a value out of range...)."""


def check_image_tensor(x: torch.Tensor, name: str = "input", channels: int | None = 3, uint8: bool = False) -> None:
    """Raise ``ValueError`` unless ``x`` is a floating tensor of shape ``(B, C, H, W)``.

    ``channels`` is the required channel count, or ``None`` for any count;
    ``uint8`` also accepts 8-bit tensors (0..255).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(
            f"{name} must have shape (B, C, H, W), got {tuple(x.shape)}; "
            "add a batch dimension with x.unsqueeze(0)"
        )
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{name} must have {channels} channels, got shape {tuple(x.shape)}")
    if not (x.is_floating_point() or (uint8 and x.dtype == torch.uint8)):
        raise ValueError(
            f"{name} must be a floating tensor with values in [0, 1], got dtype {x.dtype}; "
            "convert 8-bit images with x.float() / 255"
        )
