"""Shared fixtures: the ../shared data folder, optional dependencies, devices and dtypes.

``ZERODCE_SHARED`` points at the data folder (default ``../shared`` from the repo
root). Under ``CI=true`` a missing folder or optional dependency fails the run
instead of skipping (:func:`missing`): CI must test everything.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ZERODCE_SHARED", REPO_ROOT.parent / "shared")).resolve()
OFFICIAL = SHARED / "weights" / "official"

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def missing(message: str) -> None:
    """Something a test needs is not here: skip it, or fail it under ``CI=true`` (also at module level)."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: nothing may be skipped)", pytrace=False)
    pytest.skip(message, allow_module_level=True)


def shared_path(*parts: str) -> Path:
    """A path inside the shared data folder; skip (or fail under CI) if it is missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        missing(f"shared data not found: {path} (set ZERODCE_SHARED)")
    return path


def require(module: str, extra: str) -> ModuleType:
    """Import the optional dependency ``module`` (of the ``extra``); skip (or fail under CI) without it.

    Replaces ``pytest.importorskip``, which skips under CI too.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing(f"{module} not installed ({exc}); pip install \"zerodce[{extra}]\"")


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    return torch.device(request.param)


@pytest.fixture(params=[torch.float32, torch.float64], ids=["f32", "f64"])
def dtype(request) -> torch.dtype:
    return request.param


@pytest.fixture(scope="session")
def reference():
    import numpy as np

    return dict(np.load(shared_path("reference", "official_reference.npz")))


def require_native() -> None:
    """Skip without the compiled kernels; under CI=true, fail (its machines have a C compiler)."""
    from zerodce import _native

    if not _native.available():
        missing("the compiled curve kernels could not be built (is a C compiler installed?)")
