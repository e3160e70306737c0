"""Model registry: ``create_model(name, pretrained=..., checkpoint=...)`` and ``list_models()``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from zerodce.models import zero_dce, zero_dce_pp
from zerodce.models._dce_net import DCENet
from zerodce.models.zero_dce import ZeroDCE
from zerodce.models.zero_dce_pp import ZeroDCEPP
from zerodce.weights import WeightsError, load_state_dict, pretrained_path


@dataclass(frozen=True)
class ModelSpec:
    """A registered architecture: its class, default arguments, and what its weights expect."""

    cls: type[DCENet]
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    input: str = "RGB float (B, 3, H, W) in [0, 1]"
    license: str = "MIT (weights trained by this project with `zerodce train`)"


_REGISTRY: dict[str, ModelSpec] = {
    "zero_dce": ModelSpec(ZeroDCE, zero_dce.DEFAULT_CONFIG, "Zero-DCE (CVPR 2020), 79,416 parameters"),
    "zero_dce_pp": ModelSpec(ZeroDCEPP, zero_dce_pp.DEFAULT_CONFIG, "Zero-DCE++ (TPAMI 2021), 10,561 parameters"),
}

DEFAULT_MODEL = "zero_dce_pp"


def list_models() -> list[str]:
    """Names of the registered models.

    Example:
        >>> list_models()
        ['zero_dce', 'zero_dce_pp']
    """
    return sorted(_REGISTRY)


def get_model_spec(name: str) -> ModelSpec:
    """The registry record of ``name``; ``ValueError`` listing the known names if unknown."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(list_models())}") from None


def create_model(
    name: str, *, pretrained: bool = False, checkpoint: str | Path | None = None, **kwargs: Any
) -> DCENet:
    """Build a registered model, in eval mode.

    Args:
        name: one of :func:`list_models`.
        pretrained: load the weights shipped with the package (trained by this project).
        checkpoint: load weights from a file instead: our ``.safetensors`` or
            training checkpoint, or the authors' released ``.pth``.
        **kwargs: constructor arguments (e.g. ``scale_factor``); they win over the
            model's defaults.

    Example:
        >>> model = create_model("zero_dce_pp", scale_factor=1)
        >>> model.scale_factor
        1
    """
    spec = get_model_spec(name)
    if pretrained and checkpoint is not None:
        raise ValueError("give either pretrained=True or checkpoint=..., not both")
    model = spec.cls(**{**spec.defaults, **kwargs})
    if pretrained:
        path = pretrained_path(name)
        if not path.is_file():
            raise WeightsError(f"no shipped weights for {name!r} in this installation ({path})")
        load_state_dict(model, path)
    elif checkpoint is not None:
        load_state_dict(model, checkpoint)
    return model.eval()


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = [
    "DEFAULT_MODEL",
    "DCENet",
    "ModelSpec",
    "ZeroDCE",
    "ZeroDCEPP",
    "count_parameters",
    "create_model",
    "get_model_spec",
    "list_models",
]
