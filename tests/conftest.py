"""Shared fixtures: the ../shared data folder, devices and dtypes.

``ZERODCE_SHARED`` points at the data folder (default ``../shared`` from the repo
root). Under ``CI=true`` a missing folder fails the run instead of skipping.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ZERODCE_SHARED", REPO_ROOT.parent / "shared")).resolve()
OFFICIAL = SHARED / "weights" / "official"

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def shared_path(*parts: str) -> Path:
    """A path inside the shared data folder; skip (or fail under CI) if it is missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        message = f"shared data not found: {path} (set ZERODCE_SHARED)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


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
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("the compiled curve kernels could not be built (is a C compiler installed?)")
        pytest.skip("no C compiler: compiled curve kernels unavailable")
