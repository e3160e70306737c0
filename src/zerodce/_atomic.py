"""Atomic file writes: the one way this package writes an output file.

The data goes to a new hidden temporary file in the target's folder (so the
rename cannot cross file systems), is flushed and ``fsync``-ed, then renamed
over the target. A crash or an exception never leaves a half-written target:
the old file stays as it was and the temporary is removed. The temporary is
created with the mode ``open()`` gives a new file (``0o666`` less the umask),
so outputs are not private the way ``tempfile.mkstemp`` files are, and no
process-wide umask is read or changed. A writer killed outright (SIGKILL) leaves
its temporary behind: :func:`remove_stale_temporaries` clears those of a re-run's
targets.

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
import re
import secrets
from collections.abc import Iterable, Iterator
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


#: The names :func:`atomic_path` gives its temporaries: ``.<target name>.<8 hex digits>.part[suffix]``.
_TEMPORARY = re.compile(r"\.(?P<target>.+)\.[0-9a-f]{8}\.part(\..+)?")


def remove_stale_temporaries(targets: Iterable[str | os.PathLike]) -> int:
    """Remove the temporaries that writers of ``targets`` left when they were killed (SIGKILL, power
    loss: no ``except`` ran); returns how many. Only those of these targets: a process never removes
    the temporary of another's write in progress, as long as no two write the same target at once.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / ".a.png.0123abcd.part").write_bytes(b"half"), (folder / ".b.png.0123abcd.part").write_bytes(b"")
        >>> remove_stale_temporaries([folder / "a.png"]), sorted(p.name for p in folder.iterdir())
        (1, ['.b.png.0123abcd.part'])
    """
    names: dict[Path, set[str]] = {}
    for target in map(Path, targets):
        names.setdefault(target.parent, set()).add(target.name)
    removed = 0
    for folder, wanted in names.items():
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            match = _TEMPORARY.fullmatch(entry.name)
            if match and match["target"] in wanted and entry.is_file(follow_symlinks=False):
                Path(entry.path).unlink(missing_ok=True)
                removed += 1
    return removed
