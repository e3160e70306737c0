"""The soak of benchmarks/soak.py at CI size: 2,000 small files with broken ones, SIGKILLed mid-run, run again."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

from conftest import missing

REPO = Path(__file__).resolve().parents[1]
FILES = 2000
#: Peak resident memory may grow this much between a fifth of the files and all of them: allocator noise.
#: The 10,000-file soak measured 0.1 MB of growth from 2,000 to 10,000 files (docs/scale.md).
RSS_GROWTH_MB = 32


def load_soak():
    spec = importlib.util.spec_from_file_location("soak", REPO / "benchmarks" / "soak.py")
    soak = importlib.util.module_from_spec(spec)
    sys.modules["soak"] = soak  # its dataclasses look their module up there
    spec.loader.exec_module(soak)
    return soak


def test_killed_and_rerun_library_ends_complete(tmp_path):
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        missing("setpriv (util-linux) is needed to make unreadable files unreadable to root")
    soak = load_soak()
    figures, problems = soak.soak(tmp_path, files=FILES, bad_every=50, kill_at=0.5, workers=2, rss_run=True)
    assert problems == [], problems
    assert figures["killed_after_inputs"] is not None and 0 < figures["outputs_after_kill"] < figures["good"]
    assert all(count > 0 for count in figures["bad_kinds"].values())
    assert figures["leftover_files_after_second_run"] == 0
    start, end = figures[f"peak_rss_mb_at_{FILES // 5}"], figures[f"peak_rss_mb_at_{FILES}"]
    assert start is not None and end - start < RSS_GROWTH_MB, figures
