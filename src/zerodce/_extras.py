"""Optional dependencies (pip extras), imported on first use with an error that says what to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from zerodce._checks import ZerodceError


class MissingExtraError(ZerodceError, ImportError):
    """An optional dependency is not installed; the message names the ``pip install`` command."""


def import_extra(module: str, extra: str) -> ModuleType:
    """Import ``module``, or raise :class:`MissingExtraError` naming ``pip install "zerodce[extra]"``.

    Example:
        >>> import_extra("numpy", "metrics").__name__
        'numpy'
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{module} is needed for this feature but is not installed; run: pip install \"zerodce[{extra}]\""
        ) from exc
