"""zerodce.weights: conversion of foreign checkpoints, subnormal flushing, atomic safetensors."""

from __future__ import annotations

import os

import pytest
import torch
from conftest import shared_path

from zerodce.models import create_model
from zerodce.weights import checkpoint_filter_fn, flush_subnormals, read_weights_file, save_safetensors


def count_subnormals(state_dict: dict) -> int:
    return sum(int(((v != 0) & (v.abs() < torch.finfo(v.dtype).tiny)).sum())
               for v in state_dict.values() if v.is_floating_point())


class TestSubnormals:
    def test_official_zero_dce_loads_without_subnormals_and_same_output(self):
        path = shared_path("weights", "official", "zero_dce_epoch99.pth")
        raw = checkpoint_filter_fn(read_weights_file(path))
        assert count_subnormals(raw) > 1000  # the authors' file: the reason for the flush
        model = create_model("zero_dce", checkpoint=path).eval()
        assert count_subnormals(model.state_dict()) == 0
        unflushed = create_model("zero_dce").eval()
        unflushed.load_state_dict(raw)
        x = torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            assert torch.equal(model(x), unflushed(x))
            assert torch.equal(model.estimate_curves(x), unflushed.estimate_curves(x))

    def test_only_subnormals_change(self):
        tiny = torch.finfo(torch.float32).tiny
        values = torch.tensor([0.0, tiny, -tiny, tiny / 2, -tiny / 4, 1e-45, 3.0, -2e-30])
        out = flush_subnormals({"w": values, "steps": torch.tensor([1, 2])})
        assert out["w"].tolist() == [0.0, tiny, -tiny, 0.0, 0.0, 0.0, 3.0, values[-1].item()]
        assert out["steps"].tolist() == [1, 2]

    def test_float64_uses_its_own_limit(self):
        tiny64 = torch.finfo(torch.float64).tiny
        out = flush_subnormals({"w": torch.tensor([tiny64 / 8, 1e-300], dtype=torch.float64)})["w"]
        assert out.tolist() == [0.0, 1e-300]  # 1e-300 is normal in float64 (below float32's range)


def test_safetensors_written_atomically(tmp_path, monkeypatch):
    target = tmp_path / "best.safetensors"
    save_safetensors({"w": torch.ones(3)}, target)
    before = target.read_bytes()

    def fail(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="No space"):
        save_safetensors({"w": torch.zeros(1000)}, target)
    assert target.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["best.safetensors"]
