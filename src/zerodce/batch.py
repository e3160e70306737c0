"""Large runs: the work split over processes and machines, and a manifest of what became of each file.

**Shards.** :func:`shard_of` puts a file in one of ``N`` parts from a hash (SHA-256,
the same in every process, unlike Python's salted ``hash``) of its path relative to
the folder it was found in. N processes given the same inputs, on one machine or
on many over a shared file system, each take their part without talking: every
file is enhanced by exactly one of them, exactly as one process would (each image
is enhanced on its own). :func:`shard_from_environment` reads the part a launcher
gives: ``torchrun`` sets ``RANK`` and ``WORLD_SIZE``.

**Manifest.** :class:`Manifest` writes one JSON line per input as it finishes
(``source``, ``target``, ``status`` done/skipped/failed, ``reason``, ``megapixels``,
``seconds``, ``sha256`` of the output written), flushed line by line, so a run killed
half-way leaves the lines of what it finished. The file is appended to: a re-run
adds its own lines (the outputs it skips as ``skipped``), and the last line of a
source is its state. One file per shard (:func:`manifest_path`), so no two
processes append to one file.

**Summaries.** :class:`Summary` counts a run; under torchrun :func:`gather_summaries`
collects every process's through ``torch.distributed`` (gloo: a few bytes each,
whatever the device).

Example:
    >>> shard = parse_shard("1/3")
    >>> [shard_of(name, 3) for name in ("a.jpg", "b.jpg", "c/d.png")] == [shard_of(n, 3) for n in ("a.jpg", "b.jpg", "c/d.png")]
    True
    >>> str(manifest_path("run.jsonl", shard))
    'run.1.jsonl'
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal

import torch

from zerodce._checks import InputError

#: How long a process waits for the others at the end of a torchrun run: shards of a large
#: library may finish hours apart (torchrun ends the others if one dies, so none waits forever).
DISTRIBUTED_TIMEOUT = datetime.timedelta(days=7)

Status = Literal["done", "skipped", "failed"]


@dataclass(frozen=True)
class Shard:
    """Part ``index`` (from 0) of ``count``; ``distributed`` when torchrun launched this process."""

    index: int
    count: int
    distributed: bool = False
    local_rank: int = 0

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, key: str) -> bool:
        """Whether the file of relative path ``key`` is in this part."""
        return shard_of(key, self.count) == self.index


def shard_of(key: str, count: int) -> int:
    """The part (``0 .. count - 1``) of the file whose relative path is ``key``: the same on every machine.

    Example:
        >>> shard_of("holiday/img_0001.heic", 1)
        0
    """
    digest = hashlib.sha256(Path(key).as_posix().encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % count


def parse_shard(text: str) -> Shard:
    """``"K/N"``: part K (0 to N-1) of N; :class:`~zerodce._checks.InputError` with a one-line reason otherwise.

    Example:
        >>> parse_shard("0/4")
        Shard(index=0, count=4, distributed=False, local_rank=0)
    """
    index, _, count = text.partition("/")
    try:
        k, n = int(index), int(count)
    except ValueError:
        raise InputError(f"a shard is K/N (part K of N, K from 0 to N-1), got {text!r}") from None
    if n < 1 or not 0 <= k < n:
        raise InputError(f"a shard K/N needs N >= 1 and 0 <= K < N, got {text!r}")
    return Shard(k, n)


def shard_from_environment(environ: Mapping[str, str] = os.environ) -> Shard | None:
    """This process's part under ``torchrun`` (``RANK`` of ``WORLD_SIZE``, GPU ``LOCAL_RANK``), else ``None``.

    Example:
        >>> shard_from_environment({"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1"})
        Shard(index=3, count=8, distributed=True, local_rank=1)
    """
    if "RANK" not in environ or "WORLD_SIZE" not in environ:
        return None
    try:
        shard = parse_shard(f"{environ['RANK']}/{environ['WORLD_SIZE']}")
        local_rank = int(environ.get("LOCAL_RANK", "0"))
    except (InputError, ValueError):
        raise InputError(f"RANK={environ['RANK']!r} WORLD_SIZE={environ['WORLD_SIZE']!r} "
                         f"LOCAL_RANK={environ.get('LOCAL_RANK')!r} do not describe a torchrun process") from None
    return Shard(shard.index, shard.count, distributed=True, local_rank=local_rank)


def shard_device(shard: Shard | None, device: str) -> str:
    """The device of this process: under torchrun, ``auto``/``cuda`` mean this process's GPU ``cuda:LOCAL_RANK``.

    Example:
        >>> shard_device(Shard(0, 2, distributed=True, local_rank=1), "cpu")
        'cpu'
    """
    if shard is None or not shard.distributed or device not in ("auto", "cuda") or not torch.cuda.is_available():
        return device
    return f"cuda:{shard.local_rank}"


def manifest_path(path: str | os.PathLike, shard: Shard | None) -> Path:
    """``FILE.K.jsonl`` for shard K, so that each process writes a file of its own; ``path`` without one."""
    path = Path(path)
    return path if shard is None else path.with_name(f"{path.stem}.{shard.index}{path.suffix}")


def sha256_file(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class Manifest:
    """A JSON-lines record of a run, one line per input, appended and flushed as each finishes.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "run.jsonl"
        >>> with Manifest(path) as manifest:
        ...     manifest.record("a.png", "out/a.png", "failed", reason="cannot read a.png: empty file")
        >>> json.loads(path.read_text())["status"]
        'failed'
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a+b")
        self._file.seek(0, os.SEEK_END)
        if self._file.tell():
            self._file.seek(-1, os.SEEK_END)
            if self._file.read(1) != b"\n":  # a line cut short by a killed run: end it, so ours stay whole
                self._file.write(b"\n")

    def record(self, source: str | os.PathLike | None, target: str | os.PathLike | None, status: Status, *,
               reason: str = "", megapixels: float | None = None, seconds: float | None = None,
               sha256: str | None = None) -> None:
        """Append the line of one input (``None`` for a failure that has no file, such as a missing folder)."""
        line = {"source": None if source is None else str(source), "target": None if target is None else str(target),
                "status": status, "reason": reason, "megapixels": megapixels,
                "seconds": None if seconds is None else round(seconds, 4), "sha256": sha256}
        self._file.write(json.dumps(line, ensure_ascii=False).encode() + b"\n")
        self._file.flush()  # per line: what a killed run finished stays on record

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "Manifest":
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


@dataclass(frozen=True)
class Summary:
    """The counts of one run (or of several combined)."""

    done: int = 0
    skipped: int = 0
    failed: int = 0
    megapixels: float = 0.0
    seconds: float = 0.0

    @staticmethod
    def combined(parts: list["Summary"]) -> "Summary":
        """All parts as one run: counts added, the time of the slowest (they ran side by side).

        Example:
            >>> Summary.combined([Summary(2, 0, 1, 1.0, 3.0), Summary(1, 1, 0, 0.5, 4.0)])
            Summary(done=3, skipped=1, failed=1, megapixels=1.5, seconds=4.0)
        """
        return Summary(sum(p.done for p in parts), sum(p.skipped for p in parts), sum(p.failed for p in parts),
                       sum(p.megapixels for p in parts), max((p.seconds for p in parts), default=0.0))


def init_distributed() -> None:
    """Join the torchrun process group (gloo, over the ``MASTER_ADDR``/``MASTER_PORT`` torchrun sets);
    :class:`~zerodce._checks.InputError` in one line if the environment cannot start one."""
    import torch.distributed as dist

    if dist.is_initialized():
        return
    try:
        dist.init_process_group("gloo", timeout=DISTRIBUTED_TIMEOUT)
    except (ValueError, RuntimeError) as exc:  # e.g. RANK and WORLD_SIZE set by hand, without MASTER_ADDR
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"RANK and WORLD_SIZE are set, as torchrun does, but torch.distributed cannot start "
                         f"({reason}); launch with torchrun, or unset them and use --shard K/N") from None


def gather_summaries(summary: Summary) -> list[Summary]:
    """Every process's summary, in rank order (all of them wait for the last); then leave the group."""
    import torch.distributed as dist

    parts: list[dict | None] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, asdict(summary))
    dist.destroy_process_group()
    return [Summary(**part) for part in parts]
