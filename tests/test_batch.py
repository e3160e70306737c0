"""Large runs: --shard and torchrun give the outputs of one process; the manifest; re-runs after a kill."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from test_cli_enhance import checkpoints, digests, in_process  # noqa: F401 - fixtures
from test_enhance import dark
from zerodce import batch
from zerodce._checks import InputError
from zerodce.cli import main
from zerodce.io import write_image

REPO = Path(__file__).resolve().parents[1]
#: The model as trained: the cheapest settings; sharding does not depend on them.
PLAIN = ("--strength", "1", "--denoise", "off")


def cli(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    environ = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1", **(env or {})}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):  # a pytest run under torchrun must not leak its rank
        if env is None or name not in env:
            environ.pop(name, None)
    return subprocess.Popen([sys.executable, "-m", "zerodce.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=environ)


def finish(process: subprocess.Popen) -> tuple[int, str]:
    _, err = process.communicate(timeout=300)
    return process.returncode, err


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    """20 good images in subfolders (two of the same name) and one bad file."""
    root = tmp_path_factory.mktemp("library")
    for i in range(20):
        folder = root / f"roll{i % 3}"
        folder.mkdir(exist_ok=True)
        write_image(folder / f"img{i // 3}.png", dark((12 + i % 4, 16, 3)))
    (root / "roll0" / "broken.png").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def single(library, checkpoints, tmp_path_factory) -> Path:
    """The outputs of one process: what every split must reproduce byte for byte."""
    out = tmp_path_factory.mktemp("single")
    code, err = finish(cli("enhance", library, "-o", out, "--checkpoint", checkpoints["zero_dce_pp"], *PLAIN))
    assert code == 1 and "20 done, 0 skipped, 1 failed" in err, err
    return out


def manifest_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


class TestShards:
    def test_parts_are_disjoint_cover_everything_and_are_balanced(self):
        keys = [f"roll{i % 7}/IMG_{i:05d}.HEIC" for i in range(3000)]
        parts = [batch.shard_of(key, 3) for key in keys]
        assert set(parts) == {0, 1, 2}
        assert all(800 < parts.count(k) < 1200 for k in range(3))
        shards = [batch.parse_shard(f"{k}/3") for k in range(3)]
        assert all(sum(shard.holds(key) for shard in shards) == 1 for key in keys)

    def test_same_part_in_every_process(self):
        keys = ["a.jpg", "sub/b.png", "été/ç.heic"]
        code = "import sys; from zerodce.batch import shard_of; print([shard_of(k, 5) for k in sys.argv[1:]])"
        seen = {subprocess.run([sys.executable, "-c", code, *keys], capture_output=True, text=True, check=True,
                               env={**os.environ, "PYTHONPATH": str(REPO / "src"), "PYTHONHASHSEED": seed}).stdout
                for seed in ("1", "2")}
        assert seen == {f"{[batch.shard_of(k, 5) for k in keys]}\n"}

    @pytest.mark.parametrize("text", ["2/2", "-1/3", "1", "a/b", "0/0"])
    def test_bad_shards(self, text):
        with pytest.raises(InputError, match="K/N"):
            batch.parse_shard(text)

    def test_bad_shard_is_a_usage_error(self, library, capsys):
        with pytest.raises(SystemExit) as exit_info:
            main(["enhance", str(library), "--shard", "3/3"])
        assert exit_info.value.code == 2 and "0 <= K < N" in capsys.readouterr().err

    def test_torchrun_and_shard_together_is_a_usage_error(self, library, monkeypatch, in_process, capsys):
        monkeypatch.setenv("RANK", "0")
        monkeypatch.setenv("WORLD_SIZE", "2")
        assert main(["enhance", str(library), "--shard", "0/2"]) == 2
        assert "under torchrun" in capsys.readouterr().err

    def test_rank_without_torchrun_is_one_line(self, library, monkeypatch, in_process, capsys):
        monkeypatch.setenv("RANK", "0")
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.delenv("MASTER_ADDR", raising=False)
        assert main(["enhance", str(library)]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "torch.distributed cannot start" in err[0] and "--shard" in err[0], err

    def test_environment(self):
        assert batch.shard_from_environment({}) is None
        with pytest.raises(InputError, match="torchrun"):
            batch.shard_from_environment({"RANK": "2", "WORLD_SIZE": "2"})

    def test_two_processes_give_the_outputs_of_one(self, library, single, checkpoints, tmp_path):
        out, manifest = tmp_path / "out", tmp_path / "run.jsonl"
        processes = [cli("enhance", library, "-o", out, "--shard", f"{k}/2", "--manifest", manifest,
                         "--checkpoint", checkpoints["zero_dce_pp"], *PLAIN) for k in range(2)]
        results = [finish(p) for p in processes]  # side by side
        assert digests(out) == digests(single)
        parts = [manifest_lines(tmp_path / f"run.{k}.jsonl") for k in range(2)]
        sources = [{line["source"] for line in part} for part in parts]
        assert not sources[0] & sources[1] and len(sources[0] | sources[1]) == 21
        assert all(part for part in parts)  # 21 files: both parts have work
        for (code, err), k in zip(results, range(2)):
            has_bad = any(line["status"] == "failed" for line in parts[k])
            assert code == (1 if has_bad else 0) and f"shard {k}/2: " in err, err
        assert not manifest.exists()

    def test_torchrun_gives_the_outputs_of_one(self, library, single, checkpoints, tmp_path):
        with socket.socket() as sock:  # a free port for the rendezvous
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
        result = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
             "--master_port", str(port), "-m", "zerodce.cli", "enhance", str(library), "-o", str(tmp_path / "out"),
             "--manifest", str(tmp_path / "run.jsonl"), "--checkpoint", str(checkpoints["zero_dce_pp"]), *PLAIN],
            capture_output=True, text=True, env=env, timeout=600)
        assert digests(tmp_path / "out") == digests(single)
        assert result.returncode != 0  # the broken file failed in one of the parts
        for k in range(2):
            assert f"zerodce enhance: shard {k}/2: " in result.stderr
            assert (tmp_path / f"run.{k}.jsonl").is_file()
        combined = [line for line in result.stderr.splitlines() if "all 2 shards:" in line]
        assert len(combined) == 1 and "zerodce enhance: all 2 shards: 20 done, 0 skipped, 1 failed in" in combined[0]


class TestManifest:
    def test_lines_then_a_rerun_says_skipped(self, library, checkpoints, in_process, tmp_path):
        out, manifest = tmp_path / "out", tmp_path / "logs" / "run.jsonl"
        args = ["enhance", str(library), "-o", str(out), "--manifest", str(manifest),
                "--checkpoint", str(checkpoints["zero_dce_pp"]), *PLAIN]
        assert main(args) == 1
        first = manifest_lines(manifest)
        assert len(first) == 21
        assert {line["status"] for line in first} == {"done", "failed"}
        for line in first:
            assert set(line) == {"source", "target", "status", "reason", "megapixels", "seconds", "sha256"}
            if line["status"] == "done":
                target = Path(line["target"])
                assert line["sha256"] == batch.sha256_file(target) and not line["reason"]
                assert line["megapixels"] > 0 and line["seconds"] > 0
            else:
                assert "broken.png" in line["source"] and "not an image" in line["reason"] and line["sha256"] is None
        assert main(args) == 1  # the broken file is tried again
        second = manifest_lines(manifest)[21:]
        assert sorted(line["status"] for line in second) == ["failed"] + ["skipped"] * 20
        done = {line["source"]: line["target"] for line in first if line["status"] == "done"}
        skipped = [line for line in second if line["status"] == "skipped"]
        assert {line["source"]: line["target"] for line in skipped} == done
        assert all(line["reason"] == "output exists" and line["sha256"] is None for line in skipped)

    def test_a_line_cut_short_by_a_kill_is_ended(self, tmp_path):
        path = tmp_path / "run.jsonl"
        path.write_bytes(b'{"source": "a.png", "status": "do')
        with batch.Manifest(path) as manifest:
            manifest.record("b.png", "out/b.png", "skipped", reason="output exists")
        lines = path.read_bytes().splitlines()
        assert len(lines) == 2 and json.loads(lines[1])["source"] == "b.png"

    def test_failures_of_no_file_are_recorded_once(self, checkpoints, in_process, tmp_path, capsys):
        write_image(tmp_path / "a.png", dark((6, 6, 3)))
        for k in range(2):
            main(["enhance", str(tmp_path / "a.png"), str(tmp_path / "missing"), "-o", str(tmp_path / "out"),
                  "--shard", f"{k}/2", "--manifest", str(tmp_path / "m.jsonl"), "--checkpoint",
                  str(checkpoints["zero_dce_pp"])])
        lines = [line for k in range(2) for line in manifest_lines(tmp_path / f"m.{k}.jsonl")]
        assert [line["source"] for line in lines if line["status"] == "failed"] == [None]
        assert "missing" in capsys.readouterr().err

    def test_stdio_refuses_batch_options(self, in_process, capsys):
        assert main(["enhance", "-", "--manifest", "m.jsonl"]) == 2
        assert "not - (stdin/stdout)" in capsys.readouterr().err


def test_rerun_removes_what_a_killed_run_left_half_written(library, checkpoints, in_process, tmp_path):
    out = tmp_path / "out"
    (out / "roll1").mkdir(parents=True)
    stale = out / "roll1" / ".img0.png.0123abcd.part"  # as a killed writer of roll1/img0.png leaves it
    stale.write_bytes(b"\x89PNG half")
    others = out / "roll1" / ".notours.png.0123abcd.part"  # a temporary of a target this run does not write
    others.write_bytes(b"")
    assert main(["enhance", str(library / "roll1"), "-o", str(out / "roll1"),
                 "--checkpoint", str(checkpoints["zero_dce_pp"]), *PLAIN]) == 0
    assert not stale.exists() and others.exists()
    assert np.all([p.name.startswith("img") or p == others for p in (out / "roll1").iterdir()])
