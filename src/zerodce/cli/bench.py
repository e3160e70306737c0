"""``zerodce bench``: run the speed benchmark (``benchmarks/bench.py``) of a source checkout.

The benchmark compares our inference and training paths with a naive
transcription of the released code, in one run; its options are its own
(``zerodce bench --help``). It ships with the repository, not the package: an
installation without the checkout reports that in one line (exit code 1).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from zerodce.cli import CommandError

#: The benchmark script, beside ``src/`` in a checkout.
BENCH_SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "bench.py"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``bench`` subcommand; its options are parsed by the benchmark itself."""
    # No options of its own ("+" prefixes nothing in use): every argument, "--help" included, goes to the benchmark.
    parser = subparsers.add_parser(
        "bench", add_help=False, prefix_chars="+", help="speed benchmark against the naive baseline (source checkout)")
    parser.add_argument("options", nargs="*", help="options of the benchmark (zerodce bench --help)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not BENCH_SCRIPT.is_file():
        raise CommandError(f"the benchmark ships with the source repository, not the package: {BENCH_SCRIPT} "
                           "not found; run it from a checkout (make bench)")
    spec = importlib.util.spec_from_file_location("zerodce_benchmark", BENCH_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.main(args.options, prog="zerodce bench")
