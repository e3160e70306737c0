"""The ``zerodce`` command: a thin layer of subcommands over the library.

Each subcommand lives in its own module with ``register(subparsers)``, which adds
its parser and sets ``func``. Exit codes: 0 success, 1 an input or run failed,
2 usage error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from zerodce import __version__

#: Subcommand modules of ``zerodce.cli``, in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = ("enhance", "video", "eval", "train", "export", "serve", "bench")


class CommandError(Exception):
    """A failure to report as one line, exit code 1."""


class UsageError(Exception):
    """Arguments that cannot work together, found after parsing: one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zerodce", description="Low-light image and video enhancement (Zero-DCE, Zero-DCE++).")
    parser.add_argument("--version", action="version", version=f"zerodce {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"zerodce.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"zerodce {args.command}: interrupted", file=sys.stderr)
        return 130
    except UsageError as exc:
        print(f"zerodce {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (CommandError, ValueError, OSError) as exc:
        print(f"zerodce {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
