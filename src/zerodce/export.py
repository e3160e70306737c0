"""ONNX export, its check in onnxruntime, and onnxruntime as an inference backend.

:func:`export_onnx` writes one of two graphs, both with a named input ``image``
``(B, 3, H, W)`` float in [0, 1] of any batch, height and width:

* ``graph="curves"`` (default): the curve network, as ``estimate_low_res_curves``
  gives it: ``curves`` ``(B, 3*n, ceil(H/s), ceil(W/s))`` in [-1, 1] (``s`` the
  scale factor; full size for ``s == 1``). Upsampling (bilinear,
  ``align_corners=True``, to the size padded to a multiple of ``s``, then
  cropped) and the curves are left to the caller: :class:`OnnxRuntimeModel`
  does that for the :class:`~zerodce.enhance.Enhancer`, with strength and tiling.
* ``graph="enhanced"``: a self-contained graph, ``image -> enhanced``, for
  running the model outside this package.

The file's metadata records the model name, scale factor, iterations, output
channels and which graph it is. Every export is checked in onnxruntime against
PyTorch (max abs difference <= :data:`ONNX_TOLERANCE`) before the file is
written, atomically.

:class:`OnnxRuntimeModel` has the interface the enhancer uses from a model
(``scale_factor``, ``iterations``, ``out_channels``, ``estimate_low_res_curves``,
``estimate_curves``, ``to``, ``eval``), so ``Enhancer(model=OnnxRuntimeModel(...))``
works unchanged. On this project's 2-core CPU it runs Zero-DCE's full-resolution
network 1.4-1.8x faster than PyTorch (see ``docs/speed.md``).

Needs the ``onnx`` extra (``pip install "zerodce[onnx]"``).
"""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from zerodce import __version__
from zerodce._checks import check_image_tensor
from zerodce._extras import import_extra
from zerodce.curves import apply_curves, apply_curves_reference
from zerodce.models import DCENet, create_model, get_model_spec, list_models
from zerodce.curves import apply_low_res_curves, upsample_curves

Graph = Literal["curves", "enhanced"]
GRAPHS: tuple[Graph, ...] = ("curves", "enhanced")
#: Largest difference from PyTorch an export may show in onnxruntime.
ONNX_TOLERANCE = 1e-4
DEFAULT_OPSET = 17
#: Sizes (B, H, W) checked after export: odd, not multiples of the scale factor, batched.
CHECK_SIZES = ((1, 75, 101), (2, 40, 29))


class ExportError(ValueError):
    """The exported graph does not reproduce PyTorch, or the file cannot be used."""


class CurveGraph(nn.Module):
    """Export-only wrapper: ``image`` -> ``curves`` at the network's resolution."""

    def __init__(self, model: DCENet) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model.estimate_low_res_curves(image)[0]


class EnhanceGraph(CurveGraph):
    """Export-only wrapper: ``image`` -> ``enhanced``, written with traceable plain operations."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        curves, padded = self.model.estimate_low_res_curves(image)
        if self.model.scale_factor > 1:
            h, w = image.shape[-2:]
            curves = F.interpolate(curves, size=padded, mode="bilinear", align_corners=True)[..., :h, :w]
        return apply_curves_reference(image, curves, self.model.iterations)


def _model_name(model: DCENet) -> str:
    for name in list_models():
        if type(model) is get_model_spec(name).cls:
            return name
    return type(model).__name__


def onnx_bytes(model: DCENet, graph: Graph = "curves", opset: int = DEFAULT_OPSET) -> bytes:
    """The ONNX graph of ``model`` (see the module docstring), with its metadata, unchecked."""
    if graph not in GRAPHS:
        raise ValueError(f"graph must be one of {', '.join(GRAPHS)}, got {graph!r}")
    onnx = import_extra("onnx", "onnx")
    wrapper = (CurveGraph if graph == "curves" else EnhanceGraph)(model).eval()
    device = next(model.parameters()).device
    sample = torch.rand(1, 3, 2 * model.scale_factor + 5, 3 * model.scale_factor + 7, device=device)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The tracer warns about shape arithmetic; the checks after export prove the graph is dynamic.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper, (sample,), buffer, dynamo=False, opset_version=opset,
            input_names=["image"], output_names=[graph],
            dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"},
                          graph: {0: "batch", 2: f"{graph}_height", 3: f"{graph}_width"}},
        )
    proto = onnx.load_from_string(buffer.getvalue())
    metadata = {"zerodce_version": __version__, "model": _model_name(model), "graph": graph,
                "scale_factor": str(model.scale_factor), "iterations": str(model.iterations),
                "out_channels": str(model.out_channels)}
    onnx.helper.set_model_props(proto, metadata)
    return proto.SerializeToString()


def check_onnx(source: str | Path | bytes, model: DCENet, sizes=CHECK_SIZES, seed: int = 0) -> float:
    """Run the graph in onnxruntime and PyTorch on random images; the max abs difference.

    Raises:
        ExportError: the difference exceeds :data:`ONNX_TOLERANCE`.
    """
    ort_model = OnnxRuntimeModel(source)
    wrapper = (CurveGraph if ort_model.graph == "curves" else EnhanceGraph)(model).eval()
    generator = torch.Generator().manual_seed(seed)
    worst = 0.0
    for b, h, w in sizes:
        x = torch.rand(b, 3, h, w, generator=generator)
        with torch.inference_mode():
            expected = wrapper(x.to(next(model.parameters()).device)).cpu()
        got = torch.from_numpy(ort_model.run(x))
        if got.shape != expected.shape:
            raise ExportError(f"onnxruntime gives shape {tuple(got.shape)}, PyTorch {tuple(expected.shape)} for input {tuple(x.shape)}")
        worst = max(worst, (got - expected).abs().max().item())
    if worst > ONNX_TOLERANCE:
        raise ExportError(f"onnxruntime differs from PyTorch by {worst:.2e} (> {ONNX_TOLERANCE:g})")
    return worst


def export_onnx(
    model: DCENet, path: str | Path, graph: Graph = "curves", opset: int = DEFAULT_OPSET, check: bool = True
) -> float | None:
    """Export ``model`` to an ONNX file with dynamic batch, height and width.

    Args:
        model: a model from :func:`~zerodce.models.create_model` (any scale factor).
        path: the ``.onnx`` file to write; written only if the check passes.
        graph: ``"curves"`` (usable as a backend) or ``"enhanced"`` (self-contained).
        opset: ONNX opset version.
        check: verify in onnxruntime against PyTorch first.

    Returns:
        The max abs difference found by the check, or ``None`` without check.

    Example:
        >>> import tempfile, zerodce
        >>> path = Path(tempfile.mkdtemp()) / "zero_dce_pp.onnx"
        >>> export_onnx(zerodce.create_model("zero_dce_pp"), path) <= ONNX_TOLERANCE
        True
    """
    data = onnx_bytes(model.eval(), graph, opset)
    difference = check_onnx(data, model) if check else None
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return difference


class OnnxRuntimeModel:
    """An exported curve graph run by onnxruntime, usable wherever the enhancer takes a model.

    Args:
        source: an ``.onnx`` file from :func:`export_onnx` (``graph="curves"`` to
            estimate curves; an ``"enhanced"`` graph can only :meth:`run`), or its bytes.
        threads: onnxruntime intra-op threads; ``None`` follows ``torch.get_num_threads()``
            as it is at each run (the CLI lowers it when it runs files in parallel).

    Example:
        >>> from zerodce import create_model
        >>> from zerodce.enhance import Enhancer
        >>> ort_model = OnnxRuntimeModel.from_model(create_model("zero_dce_pp"))
        >>> Enhancer(ort_model, device="cpu").enhance_tensor(torch.rand(1, 3, 30, 40)).shape
        torch.Size([1, 3, 30, 40])
    """

    def __init__(self, source: str | Path | bytes, threads: int | None = None) -> None:
        self._ort = import_extra("onnxruntime", "onnx")
        if not isinstance(source, bytes):
            path = Path(source)
            if not path.is_file():
                raise ExportError(f"ONNX file not found: {path}")
            source = path.read_bytes()
        self._source = source
        self._fixed_threads = threads
        self._threads = threads or torch.get_num_threads()
        self.device = torch.device("cpu")
        self._provider = "CPUExecutionProvider"
        self._session = self._new_session()
        meta = self._session.get_modelmeta().custom_metadata_map
        try:
            self.name = meta["model"]
            self.graph = meta["graph"]
            self.scale_factor = int(meta["scale_factor"])
            self.iterations = int(meta["iterations"])
            self.out_channels = int(meta["out_channels"])
        except (KeyError, ValueError):
            raise ExportError("this ONNX file was not written by `zerodce export onnx` (its metadata is missing)") from None

    @classmethod
    def from_model(cls, model: DCENet, threads: int | None = None) -> "OnnxRuntimeModel":
        """Export ``model``'s curve graph in memory (checked) and load it."""
        data = onnx_bytes(model.eval(), "curves")
        check_onnx(data, model)
        return cls(data, threads)

    def _new_session(self):
        options = self._ort.SessionOptions()
        options.intra_op_num_threads = self._threads
        try:
            return self._ort.InferenceSession(self._source, options, providers=[self._provider])
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            raise ExportError(f"onnxruntime cannot load this model: {str(exc).splitlines()[0]}") from None

    def to(self, device: str | torch.device) -> "OnnxRuntimeModel":
        """Run on ``device``: the CPU, or CUDA through onnxruntime-gpu's CUDA provider."""
        device = torch.device(device)
        if device.type == self.device.type:
            return self
        if device.type != "cuda" or "CUDAExecutionProvider" not in self._ort.get_available_providers():
            raise ValueError(f"the onnxruntime backend cannot run on {device}: "
                             "it needs onnxruntime-gpu for CUDA; use --backend torch or --device cpu")
        self._provider = "CUDAExecutionProvider"
        self._session = self._new_session()
        self.device = device
        return self

    def eval(self) -> "OnnxRuntimeModel":
        """No-op, for the model interface."""
        return self

    def run(self, x: torch.Tensor) -> np.ndarray:
        """The graph's output for ``x`` ``(B, 3, H, W)`` float in [0, 1], as a numpy array."""
        check_image_tensor(x, "x")
        image = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        if self._fixed_threads is None and torch.get_num_threads() != self._threads:
            self._threads = torch.get_num_threads()
            self._session = self._new_session()
        return self._session.run(None, {"image": image})[0]

    def estimate_low_res_curves(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """As :meth:`DCENet.estimate_low_res_curves <zerodce.models.DCENet.estimate_low_res_curves>`."""
        if self.graph != "curves":
            raise ExportError("this ONNX file holds the 'enhanced' graph; export it with --graph curves to use it as a backend")
        s = self.scale_factor
        h, w = x.shape[-2:]
        x = x.float().mul_(1.0 / 255.0) if x.dtype == torch.uint8 else x  # the graph takes float, as zerodce.io converts
        curves = torch.from_numpy(self.run(x)).to(x.device)
        return curves, ((h + s - 1) // s * s, (w + s - 1) // s * s)

    def estimate_curves(self, x: torch.Tensor) -> torch.Tensor:
        """Curve maps at full resolution, ``(B, out_channels, H, W)``."""
        small, padded = self.estimate_low_res_curves(x)
        if self.scale_factor == 1:
            return small
        return upsample_curves(small, padded, 0, x.shape[-2])[..., : x.shape[-1]]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Enhanced image, ``(B, 3, H, W)`` in [0, 1]."""
        if self.graph == "enhanced":
            return torch.from_numpy(self.run(x)).to(x.device)
        if self.scale_factor == 1:
            return apply_curves(x, self.estimate_curves(x), self.iterations)
        return apply_low_res_curves(x, *self.estimate_low_res_curves(x), self.iterations)


def onnxruntime_model(name: str, checkpoint: str | Path | None = None, scale_factor: int | None = None) -> OnnxRuntimeModel:
    """The onnxruntime backend for a registered model (shipped weights or ``checkpoint``), or for an exported ``.onnx`` file.

    A ``.onnx`` checkpoint carries its own model and scale factor; ``name`` is then not used.
    """
    if checkpoint is not None and str(checkpoint).endswith(".onnx"):
        model = OnnxRuntimeModel(checkpoint)
        if scale_factor is not None and scale_factor != model.scale_factor:
            raise ValueError(f"{checkpoint} was exported with scale factor {model.scale_factor}; "
                             f"export it again with --scale-factor {scale_factor}")
        return model
    kwargs = {} if scale_factor is None else {"scale_factor": scale_factor}
    return OnnxRuntimeModel.from_model(create_model(name, pretrained=checkpoint is None, checkpoint=checkpoint, **kwargs))
