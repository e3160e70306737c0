"""Atomic file writes: the one way this package writes an output file.

The data goes to a new hidden temporary file in the target's folder (so the
rename cannot cross file systems), is flushed and ``fsync``-ed, then renamed
over the target. A crash or an exception never leaves a half-written target:
the old file stays as it was and the temporary is removed. The temporary is
created with the mode ``open()`` gives a new file (``0o666`` less the umask),
so outputs are not private the way ``tempfile.mkstemp`` files are, and no
process-wide umask is read or changed.

Example:
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "notes.txt"
    >>> with atomic_file(target) as file:
    ...     _ = file.write(b"written whole or not at all")
    >>> target.read_bytes()
    b'written whole or not at all'
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """A new empty temporary file beside ``path``, for writers that need a path (FFmpeg).

    When the block ends normally the temporary is fsync-ed and renamed over
    ``path``; on any exception it is removed and ``path`` is untouched.

    Args:
        path: the target file.
        suffix: appended to the temporary's name (FFmpeg chooses the container by suffix).
    """
    path = Path(path)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part{suffix}")
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            break
        except FileExistsError:  # another writer drew the same name
            continue
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDWR)
        try:
            os.fsync(fd)  # the data is on disk before the name points at it
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary file to write ``path``'s new contents into; see :func:`atomic_path`."""
    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        yield file


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_file(path) as file:
        file.write(data)
