"""Training: one step, the loop, checkpoints and resume, NaN stop, Ctrl-C, history, CLI, DDP."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

import zerodce.train.loop as train_module
from zerodce.cli import main
from zerodce.data import ImageFolder
from zerodce.losses import COMPONENTS, LossWeights, ZeroReferenceLoss
from zerodce.models import create_model
from zerodce.train import (TrainConfig, TrainingError, TrainingObjective, format_table, history_columns,
                           learning_rate, read_checkpoint, resume_config, train, train_step)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """12 small dark images with some structure (random, fixed seed)."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for k in range(12):
        base = rng.uniform(0.05, 0.3, size=(1, 1, 3))
        noise = rng.uniform(0, 0.15, size=(32, 32, 3))
        Image.fromarray(((base + noise) * 255).astype(np.uint8)).save(folder / f"img{k:02d}.png")
    return folder


def tiny(images: Path, out: Path, **kwargs) -> TrainConfig:
    """A run of a few seconds: 10 train / 2 val images at 32x32, batch 4 (2 steps per epoch)."""
    defaults = dict(data=(str(images),), out=str(out), model="zero_dce_pp", image_size=32, batch_size=4,
                    epochs=2, lr=1e-3, val_split=0.2, progress=False, workers=1)
    return TrainConfig(**{**defaults, **kwargs})


def weights(run: Path, name: str = "last.pt") -> dict[str, torch.Tensor]:
    return read_checkpoint(run / name)["model"]


def assert_same_weights(a: dict, b: dict, atol: float = 0.0) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=atol, msg=key)


class TestObjective:
    @pytest.mark.parametrize("scale", [1, 4])
    def test_matches_model_and_losses(self, scale):
        torch.manual_seed(0)
        model = create_model("zero_dce_pp", scale_factor=scale)
        loss_fn = ZeroReferenceLoss(LossWeights.for_model("zero_dce_pp"))
        x = torch.rand(2, 3, 32, 32)
        out = TrainingObjective(model, loss_fn)(x)
        small, _ = model.estimate_low_res_curves(x)
        assert small.shape[-1] == 32 // scale
        # Every term at full resolution: the output and the curves applied to it.
        expected = loss_fn(model(x), x, model.estimate_curves(x))
        torch.testing.assert_close(out.total, expected.total)
        assert out.components.keys() == set(COMPONENTS)

    def test_bf16_close_to_fp32(self):
        model = create_model("zero_dce", scale_factor=1)
        loss_fn = ZeroReferenceLoss(LossWeights.for_model("zero_dce"))
        x = torch.rand(2, 3, 32, 32)
        fp32 = TrainingObjective(model, loss_fn)(x).total
        bf16 = TrainingObjective(model, loss_fn, "bf16")(x).total
        assert bf16.dtype == torch.float32
        torch.testing.assert_close(bf16, fp32, rtol=2e-2, atol=0)

    def test_bad_precision(self):
        with pytest.raises(ValueError, match="precision"):
            TrainingObjective(create_model("zero_dce_pp"), ZeroReferenceLoss(), "fp8")


class TestTrainStep:
    def test_updates_and_lowers_loss(self):
        torch.manual_seed(0)
        model = create_model("zero_dce_pp", scale_factor=1)
        objective = TrainingObjective(model, ZeroReferenceLoss(LossWeights.for_model("zero_dce_pp")))
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        x = torch.rand(4, 3, 32, 32) * 0.2
        before = {k: v.clone() for k, v in model.state_dict().items()}
        losses = [train_step(objective, x, optimizer).total.item() for _ in range(5)]
        assert losses[-1] < losses[0]
        assert not torch.equal(before["conv7.pointwise.bias"], model.conv7.pointwise.bias)

    def test_subnormal_weights_are_flushed_after_the_update(self):
        model = create_model("zero_dce_pp", scale_factor=1)
        objective = TrainingObjective(model, ZeroReferenceLoss(LossWeights.for_model("zero_dce_pp")))
        weight = model.conv1.depthwise.weight

        class LeavesSubnormals(torch.optim.SGD):
            """As weight decay does to weights without gradient: values below float32's smallest normal."""

            def step(self, closure=None):
                super().step(closure)
                with torch.no_grad():
                    weight.view(-1)[:5] = torch.tensor([1e-40, -1e-41, 1e-45, 5e-39, -1e-39])

        train_step(objective, torch.rand(2, 3, 32, 32), LeavesSubnormals(model.parameters(), lr=1e-3))
        assert weight.view(-1)[:5].tolist() == [0.0] * 5
        tiny = torch.finfo(torch.float32).tiny
        assert not any(((p != 0) & (p.abs() < tiny)).any() for p in model.parameters())

    def test_non_finite_loss_changes_nothing(self):
        model = create_model("zero_dce_pp", scale_factor=1)
        objective = TrainingObjective(model, ZeroReferenceLoss(LossWeights.for_model("zero_dce_pp")))
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        with pytest.raises(train_module._NonFiniteLoss):
            train_step(objective, torch.full((2, 3, 32, 32), math.nan), optimizer)
        assert_same_weights(before, model.state_dict())


def test_learning_rate_schedules():
    config = TrainConfig(lr=1.0, lr_schedule="cosine", warmup_steps=10)
    assert learning_rate(config, 0, 110) == pytest.approx(0.1)
    assert learning_rate(config, 10, 110) == pytest.approx(1.0)
    assert learning_rate(config, 60, 110) == pytest.approx(0.5)
    assert learning_rate(config, 110, 110) == pytest.approx(0.0)
    assert learning_rate(replace(config, lr_schedule="constant"), 60, 110) == 1.0


class TestRun:
    def test_outputs_and_history(self, images, tmp_path):
        result = train(tiny(images, tmp_path / "run"))
        run = tmp_path / "run"
        for name in ("last.pt", "best.pt", "best.safetensors", "history.csv", "history.png"):
            assert (run / name).is_file(), name
        assert not list(run.glob(".*"))  # no temporary files left
        # The weights record how they were trained, but not where this machine kept the run.
        with safe_open(str(run / "best.safetensors"), "pt") as file:
            recipe = json.loads(file.metadata()["config"])
        assert recipe["epochs"] == 2 and "out" not in recipe and str(run) not in json.dumps(recipe)
        with open(run / "history.csv") as file:
            rows = list(csv.DictReader(file))
        assert list(rows[0]) == history_columns()
        assert [int(r["epoch"]) for r in rows] == [1, 2]
        for split in ("train", "val"):
            for name in ("total", *COMPONENTS):
                assert all(math.isfinite(float(r[f"{split}_{name}"])) for r in rows)
        # The total is the weighted sum of the components (zero_dce_pp weights).
        w = LossWeights.for_model("zero_dce_pp")
        row = {k: float(v) for k, v in rows[-1].items()}
        assert row["val_total"] == pytest.approx(sum(getattr(w, c) * row[f"val_{c}"] for c in COMPONENTS), rel=1e-5)
        assert Image.open(run / "history.png").size == (900, 400)
        checkpoint = read_checkpoint(run / "last.pt")
        assert checkpoint["model_name"] == "zero_dce_pp" and checkpoint["epoch"] == 2
        assert checkpoint["config"]["image_size"] == 32 and checkpoint["history"] == result.history
        # Shipped-weights format: loads into the inference model (scale factor 12).
        model = create_model("zero_dce_pp", checkpoint=result.weights)
        assert_same_weights(model.state_dict(), weights(run, "best.pt"))
        assert result.best_val == min(r["val_total"] for r in result.history)

    @pytest.mark.parametrize("native", [True, False])
    def test_emulated_bf16_is_warned_about(self, images, tmp_path, monkeypatch, capsys, native):
        monkeypatch.setattr(train_module, "cpu_has_native_bf16", lambda: native)
        train(tiny(images, tmp_path / "run", precision="bf16", epochs=1, device="cpu"))
        assert ("no native bfloat16" in capsys.readouterr().out) is not native

    def test_deterministic_with_seed(self, images, tmp_path):
        train(tiny(images, tmp_path / "a", epochs=1))
        train(tiny(images, tmp_path / "b", epochs=1))
        train(tiny(images, tmp_path / "c", epochs=1, seed=1))
        assert_same_weights(weights(tmp_path / "a"), weights(tmp_path / "b"))
        assert not torch.equal(weights(tmp_path / "a")["conv1.depthwise.weight"],
                               weights(tmp_path / "c")["conv1.depthwise.weight"])

    def test_global_random_state_left_alone(self, images, tmp_path):
        # Same weights as the global generator seeded with the seed gave (runs stay reproducible) ...
        torch.manual_seed(0)
        seeded = create_model("zero_dce_pp", scale_factor=1).state_dict()
        state = torch.get_rng_state()
        train(tiny(images, tmp_path / "run", epochs=1, lr=1e-12, grad_clip=0.0, workers=0))
        # ... and the caller's random stream is neither reseeded nor advanced.
        assert torch.equal(torch.get_rng_state(), state)
        first = read_checkpoint(tmp_path / "run" / "last.pt")["model"]
        assert_same_weights(first, seeded, atol=1e-6)  # lr 1e-12: the start, up to 2 steps of 1e-12

    def test_resume_writes_beside_the_checkpoint_not_to_its_recorded_folder(self, images, tmp_path):
        train(tiny(images, tmp_path / "a", epochs=1))
        before = {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir()}
        (tmp_path / "copy").mkdir()
        (tmp_path / "copy" / "last.pt").write_bytes((tmp_path / "a" / "last.pt").read_bytes())
        result = train(resume_config(tmp_path / "copy" / "last.pt", epochs=2))
        assert result.out == tmp_path / "copy" and (tmp_path / "copy" / "best.safetensors").is_file()
        assert {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir()} == before  # recorded folder untouched
        # An explicit out wins; one holding another run is refused.
        result = train(resume_config(tmp_path / "copy" / "last.pt", epochs=3, out=str(tmp_path / "elsewhere")))
        assert result.out == tmp_path / "elsewhere" and read_checkpoint(tmp_path / "elsewhere" / "last.pt")["epoch"] == 3
        with pytest.raises(TrainingError, match="holds another run"):
            train(resume_config(tmp_path / "copy" / "last.pt", epochs=3, out=str(tmp_path / "a")))

    def test_resume_equals_uninterrupted(self, images, tmp_path):
        train(tiny(images, tmp_path / "full", epochs=3))
        train(tiny(images, tmp_path / "part", epochs=1))
        # Resuming takes the run's settings from the checkpoint; epochs may grow.
        result = train(resume_config(tmp_path / "part" / "last.pt", epochs=3))
        assert [r["epoch"] for r in result.history] == [1, 2, 3]
        assert_same_weights(weights(tmp_path / "full"), weights(tmp_path / "part"))

    def test_ctrl_c_saves_and_resumes_mid_epoch(self, images, tmp_path, monkeypatch):
        train(tiny(images, tmp_path / "full", epochs=2, lr_schedule="cosine"))
        real_step, calls = train_module.train_step, []

        def interrupted_step(*args, **kwargs):
            calls.append(1)
            if len(calls) == 3:  # Ctrl-C during the first step of epoch 2
                os.kill(os.getpid(), signal.SIGINT)
            return real_step(*args, **kwargs)

        monkeypatch.setattr(train_module, "train_step", interrupted_step)
        with pytest.raises(KeyboardInterrupt):
            train(tiny(images, tmp_path / "run", epochs=2, lr_schedule="cosine"))
        saved = read_checkpoint(tmp_path / "run" / "last.pt")
        assert (saved["epoch"], saved["batches_done"], saved["step"]) == (1, 1, 3)
        monkeypatch.setattr(train_module, "train_step", real_step)
        train(resume_config(tmp_path / "run" / "last.pt"))
        assert_same_weights(weights(tmp_path / "full"), weights(tmp_path / "run"))
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored

    def test_non_finite_loss_names_files_and_keeps_checkpoint(self, images, tmp_path, monkeypatch):
        real_getitem, calls, poisoned_names = ImageFolder.__getitem__, [], []

        def poisoned(self, index):
            image, index = real_getitem(self, index)
            calls.append(index)
            # Epoch 1 reads 8 training images (2 batches of 4) and 2 validation images;
            # then the first image of epoch 2 turns NaN.
            if len(calls) == 11:
                poisoned_names.append(self.paths[index].name)
                image = torch.full_like(image, math.nan)
            return image, index

        monkeypatch.setattr(ImageFolder, "__getitem__", poisoned)
        with pytest.raises(TrainingError, match=r"non-finite loss at epoch 2, batch 1; batch files: ") as error:
            train(tiny(images, tmp_path / "run", epochs=3))
        assert poisoned_names[0] in str(error.value)
        assert str(error.value).count(".png") == 4  # the whole batch is named
        saved = read_checkpoint(tmp_path / "run" / "last.pt")
        assert saved["epoch"] == 1
        assert all(torch.isfinite(v).all() for v in saved["model"].values())

    def test_resume_checks_the_recipe(self, images, tmp_path):
        train(tiny(images, tmp_path / "run", epochs=1))
        last = tmp_path / "run" / "last.pt"
        with pytest.raises(TrainingError, match="lr differ"):
            train(replace(resume_config(last), lr=0.5))
        with pytest.raises(ValueError, match="model cannot change"):
            resume_config(last, model="zero_dce")

    def test_refuses_to_overwrite_a_run(self, images, tmp_path):
        train(tiny(images, tmp_path / "run", epochs=1))
        with pytest.raises(TrainingError, match="already holds a run"):
            train(tiny(images, tmp_path / "run", epochs=1))

    def test_no_validation_selects_by_training_loss(self, images, tmp_path):
        result = train(tiny(images, tmp_path / "run", val_split=0.0))
        assert all(math.isnan(r["val_total"]) for r in result.history)
        assert result.best_val == min(r["train_total"] for r in result.history)

    @pytest.mark.parametrize("bad, message", [
        ({"batch_size": 0}, "batch_size"), ({"lr": 0.0}, "lr"), ({"model": "nope"}, "known models"),
        ({"lr_schedule": "step"}, "lr_schedule"), ({"data": ()}, "no training data"),
    ])
    def test_bad_config(self, images, tmp_path, bad, message):
        with pytest.raises(ValueError, match=message):
            train(tiny(images, tmp_path / "run", **bad))

    def test_too_few_images(self, images, tmp_path):
        with pytest.raises(TrainingError, match="fewer than one batch"):
            train(tiny(images, tmp_path / "run", batch_size=16))


class TestCli:
    def test_train_prints_table(self, images, tmp_path, capsys):
        code = main(["train", str(images), "--out", str(tmp_path / "run"), "--image-size", "32", "--epochs", "1",
                     "--batch-size", "4", "--quiet", "--model", "zero_dce"])
        out = capsys.readouterr().out
        assert code == 0
        for name in ("total", *COMPONENTS):
            assert name in out
        assert read_checkpoint(tmp_path / "run" / "last.pt")["model_name"] == "zero_dce"

    def test_preset_report_and_explicit_options_win(self):
        from zerodce.cli import build_parser
        from zerodce.cli.train import config_from_args

        args = build_parser().parse_args(["train", "lol", "--preset", "report", "--epochs", "3"])
        config = config_from_args(args)
        assert (config.model, config.image_size, config.val_split, config.split_shuffle) == ("zero_dce", 256, 0.2, False)
        assert config.epochs == 3 and config.data == ("lol",)

    def test_resume_writes_into_the_checkpoint_folder_or_out(self, images, tmp_path, capsys):
        common = ["--image-size", "32", "--batch-size", "4", "--quiet"]
        assert main(["train", str(images), "--out", str(tmp_path / "run"), "--epochs", "1", *common]) == 0
        moved = tmp_path / "moved"
        (tmp_path / "run").rename(moved)
        assert main(["train", "--resume", str(moved / "last.pt"), "--epochs", "2"]) == 0
        assert read_checkpoint(moved / "last.pt")["epoch"] == 2 and not (tmp_path / "run").exists()
        assert main(["train", "--resume", str(moved / "last.pt"), "--epochs", "3", "--out", str(tmp_path / "new")]) == 0
        assert read_checkpoint(tmp_path / "new" / "last.pt")["epoch"] == 3
        assert read_checkpoint(moved / "last.pt")["epoch"] == 2

    def test_resume_cannot_change_the_recipe(self, images, tmp_path, capsys):
        main(["train", str(images), "--out", str(tmp_path / "run"), "--image-size", "32", "--epochs", "1",
              "--batch-size", "4", "--quiet"])
        capsys.readouterr()
        code = main(["train", "--resume", str(tmp_path / "run" / "last.pt"), "--lr", "1"])
        err = capsys.readouterr().err
        assert code == 2 and "--lr cannot change when resuming" in err and len(err.strip().splitlines()) == 1

    @pytest.mark.parametrize("argv, code, message", [
        (["train"], 2, "give image folders"),
        (["train", "/nonexistent/folder"], 1, "data path not found"),
        (["train", "--resume", "/nonexistent/last.pt"], 1, "checkpoint not found"),
    ])
    def test_errors_are_one_line(self, argv, code, message, capsys):
        assert main(argv) == code
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1


def test_ddp_two_processes_equal_one(images, tmp_path):
    """torchrun --nproc_per_node 2 (gloo, CPU) trains the same as one process on the same global batch."""
    common = [str(images), "--image-size", "40", "--crop-size", "32", "--batch-size", "4", "--epochs", "2", "--lr", "1e-3",
              "--val-split", "0.25", "--quiet", "--workers", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    launched = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "zerodce.cli", "train", *common, "--out", str(tmp_path / "ddp")],
        env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert launched.stdout.count("epoch 2 (best: epoch") == 1  # one writer reports
    assert main(["train", *common, "--out", str(tmp_path / "single")]) == 0
    ddp, single = read_checkpoint(tmp_path / "ddp" / "last.pt"), read_checkpoint(tmp_path / "single" / "last.pt")
    assert_same_weights(ddp["model"], single["model"], atol=1e-5)
    assert len(ddp["history"]) == len(single["history"]) == 2
    for a, b in zip(ddp["history"], single["history"]):
        for key in ("train_total", "val_total", *(f"val_{c}" for c in COMPONENTS)):
            assert a[key] == pytest.approx(b[key], rel=1e-4), key
