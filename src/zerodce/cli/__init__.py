"""The ``zerodce`` command: a thin layer of subcommands over the library.

Each subcommand lives in its own module with ``register(subparsers)``, which adds
its parser and sets ``func``. Exit codes: 0 success, 1 an input or run failed,
2 usage error, 130 interrupted.

Errors: zerodce's own errors (:class:`~zerodce._checks.ZerodceError` and the
other error types the package defines: a file, setting or input the user can
fix) and failed system calls (disk full,
permission denied...) are printed as one line. Anything else is a bug: one line
saying so, exit code 1, and the traceback with ``--debug`` or ``ZERODCE_DEBUG=1``.

Process-wide settings: a command changes only two, both here, and :func:`main`
restores them when the command ends, so ``main()`` can be called from Python:

* Pillow's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``), set from
  ``--max-pixels`` where a command has it (``0`` turns it off): Pillow refuses
  images of more pixels than ``--max-pixels`` as ``read_image`` does;
* torch's intra-op thread count, through :func:`set_torch_threads`;
* how warnings are shown: one line, ``zerodce COMMAND: warning: ...``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from PIL import Image

from zerodce import __version__
from zerodce._checks import ZerodceError

#: Subcommand modules of ``zerodce.cli``, in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = ("enhance", "video", "eval", "train", "export", "serve", "bench")


class CommandError(ZerodceError):
    """A failure to report as one line, exit code 1."""


class UsageError(Exception):
    """Arguments that cannot work together, found after parsing: one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zerodce", description="Low-light image and video enhancement (Zero-DCE, Zero-DCE++).")
    parser.add_argument("--version", action="version", version=f"zerodce {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="print the traceback of an unexpected error (also: environment ZERODCE_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"zerodce.cli.{name}").register(sub)
    for command in sub.choices.values():  # also after the subcommand; SUPPRESS keeps a --debug given before it
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def set_torch_threads(threads: int) -> None:
    """Set torch's intra-op thread count for the rest of the command (:func:`main` restores the caller's)."""
    torch.set_num_threads(max(1, threads))


@contextmanager
def process_settings(args: argparse.Namespace) -> Iterator[None]:
    """The process-wide settings of one command (see the module docstring), restored on exit.

    Example:
        >>> before = Image.MAX_IMAGE_PIXELS
        >>> with process_settings(argparse.Namespace(max_pixels=1000)):
        ...     Image.MAX_IMAGE_PIXELS
        500
        >>> Image.MAX_IMAGE_PIXELS == before
        True
    """
    pixels, threads = Image.MAX_IMAGE_PIXELS, torch.get_num_threads()
    prefix = f"zerodce {getattr(args, 'command', None) or ''}".strip()
    with warnings.catch_warnings():
        # Warnings are one line for the user, like errors; ours name the file, Pillow's EXIF one does not.
        warnings.showwarning = lambda message, *_, **__: print(f"{prefix}: warning: {message}", file=sys.stderr)
        warnings.filterwarnings("ignore", "Corrupt EXIF data", UserWarning, r"PIL\.")
        max_pixels = getattr(args, "max_pixels", None)
        if max_pixels is not None:
            # Pillow warns above its limit and refuses above twice it: refuse where --max-pixels does,
            # and leave the warnings for images below that out (they are allowed).
            Image.MAX_IMAGE_PIXELS = (max_pixels + 1) // 2 if max_pixels else None
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = pixels
            torch.set_num_threads(threads)


def _expected(exc: BaseException) -> bool:
    """Whether ``exc`` is a failure to report in one line, not a bug: one of zerodce's own error types
    (:class:`~zerodce._checks.ZerodceError` and any other class defined in the package), or a failed
    system call (an OSError with an errno: disk full, permission denied, no such file)."""
    own = any(cls.__module__.partition(".")[0] == "zerodce" for cls in type(exc).__mro__)
    return own or (isinstance(exc, OSError) and exc.errno is not None)


def main(argv: list[str] | None = None) -> int:
    """Run ``zerodce`` with ``argv`` (default: the command line); returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug or os.environ.get("ZERODCE_DEBUG", "") not in ("", "0")
    prefix = f"zerodce {args.command}"
    with process_settings(args):
        try:
            return int(args.func(args) or 0)
        except KeyboardInterrupt:
            print(f"{prefix}: interrupted", file=sys.stderr)
            return 130
        except UsageError as exc:
            print(f"{prefix}: error: {exc}", file=sys.stderr)
            return 2
        except Exception as exc:  # noqa: BLE001 - the one place every failure is reported
            if debug:
                traceback.print_exc()
            if _expected(exc):
                print(f"{prefix}: error: {exc}", file=sys.stderr)
            else:
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                hint = "" if debug else "; run with --debug (or ZERODCE_DEBUG=1) for the traceback"
                print(f"{prefix}: unexpected error (a bug, please report it): {type(exc).__name__}"
                      f"{': ' + reason if reason else ''}{hint}", file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main())
