"""tests/conftest.py: under CI=true a missing optional dependency or data folder fails instead of skipping."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


@pytest.mark.parametrize("ci", ["true", ""])
def test_missing_dependency_fails_under_ci(tmp_path, ci):
    (tmp_path / "test_needs_it.py").write_text(
        "from conftest import require\nrequire('no_such_module_for_zerodce', 'video')\n\n"
        "def test_uses_it():\n    pass\n")
    env = {**os.environ, "CI": ci, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                           str(tmp_path / "test_needs_it.py")], capture_output=True, text=True, env=env, timeout=120,
                          cwd=tmp_path)
    if ci:
        assert done.returncode != 0 and "nothing may be skipped" in done.stdout, done.stdout + done.stderr
        assert 'pip install "zerodce[video]"' in done.stdout
    else:
        assert done.returncode in (0, 5) and "1 skipped" in done.stdout, done.stdout + done.stderr  # 5: none ran
