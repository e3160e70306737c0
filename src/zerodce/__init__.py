"""zerodce: Zero-DCE and Zero-DCE++ low-light enhancement in PyTorch.

Example:
    >>> import torch, zerodce
    >>> model = zerodce.create_model("zero_dce_pp")
    >>> model(torch.rand(1, 3, 32, 48)).shape
    torch.Size([1, 3, 32, 48])
"""

from zerodce.curves import ApplyCurves, apply_curves
from zerodce.enhance import Enhancer, enhance
from zerodce.io import ImageData, read_image, write_image
from zerodce.losses import LossWeights, ZeroReferenceLoss
from zerodce.models import DEFAULT_MODEL, create_model, list_models

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MODEL",
    "ApplyCurves",
    "Enhancer",
    "ImageData",
    "LossWeights",
    "ZeroReferenceLoss",
    "__version__",
    "apply_curves",
    "create_model",
    "enhance",
    "list_models",
    "read_image",
    "write_image",
]
