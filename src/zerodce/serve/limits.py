"""Bounded work for the server: a fixed pool of enhancement threads behind a bounded line of waiting requests.

A request takes a place with :meth:`WorkPool.admit` before its body is read, so
the requests the server holds (uploading, waiting or enhancing) never exceed
``workers + queue``: beyond that :class:`Busy` is raised and the client gets 503
with ``Retry-After``. The place is given back when the request's job has
finished on its thread (not merely when the client stops waiting), so memory
stays bounded even when clients disconnect.

Example:
    >>> import asyncio
    >>> pool = WorkPool(workers=1, queue=0)
    >>> async def one():
    ...     with pool.admit() as place:
    ...         return await place.run(sum, [1, 2, 3])
    >>> asyncio.run(one())
    6
    >>> pool.close()
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, TypeVar

import torch

T = TypeVar("T")

#: Largest image accepted by default, in pixels: 50 MP covers phone and most camera photos
#: (8000 x 6000 is 48 MP) while bounding each request's memory.
DEFAULT_MAX_PIXELS = 50_000_000
#: Largest upload by default, in MiB.
DEFAULT_MAX_UPLOAD_MB = 50.0
#: Requests held beyond the running ones by default.
DEFAULT_QUEUE = 8

#: Weight of the newest job in the running mean of job times (behind ``Retry-After``).
_MEAN_WEIGHT = 0.2


class Busy(Exception):
    """Every place is taken; the client should retry after ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the server is busy (all places taken); retry in {retry_after} s")
        self.retry_after = retry_after


class WorkPool:
    """``workers`` threads (each with ``torch_threads`` torch threads) and up to ``queue`` requests waiting.

    Args:
        workers: jobs run at once.
        queue: requests held beyond those running, uploading or waiting for a thread.
        torch_threads: intra-op threads of each worker; 1 keeps workers from fighting over cores.
    """

    def __init__(self, workers: int, queue: int, torch_threads: int = 1) -> None:
        if workers < 1 or queue < 0:
            raise ValueError(f"need workers >= 1 and queue >= 0, got {workers} and {queue}")
        self.workers = workers
        self.capacity = workers + queue
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="zerodce-serve",
                                            initializer=torch.set_num_threads, initargs=(torch_threads,))
        self._lock = threading.Lock()  # places are taken on the event loop and given back on worker threads
        self._held = 0
        self._running = 0
        self._mean_seconds = 1.0

    @property
    def held(self) -> int:
        """Places taken: requests uploading, waiting or running."""
        return self._held

    @property
    def running(self) -> int:
        """Jobs running on a worker thread now."""
        return self._running

    def retry_after(self) -> int:
        """Seconds until a place is likely free: the queue ahead divided among the workers, at least 1."""
        return max(1, math.ceil(self._mean_seconds * self._held / self.workers))

    def admit(self) -> Place:
        """Take a place, or raise :class:`Busy` when all ``workers + queue`` are taken."""
        with self._lock:
            if self._held >= self.capacity:
                raise Busy(self.retry_after())
            self._held += 1
        return Place(self)

    def _release(self) -> None:
        with self._lock:
            self._held -= 1

    def _timed(self, fn: Callable[..., T], *args) -> T:
        with self._lock:
            self._running += 1
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            seconds = time.perf_counter() - start
            with self._lock:
                self._running -= 1
                self._mean_seconds += _MEAN_WEIGHT * (seconds - self._mean_seconds)

    def close(self) -> None:
        """Wait for the jobs already submitted, then stop the threads."""
        self._executor.shutdown(wait=True)


class Place:
    """One request's place in a :class:`WorkPool`: a context manager that gives it back, after its job if it has one."""

    def __init__(self, pool: WorkPool) -> None:
        self._pool = pool
        self._job: Future | None = None
        self._given_back = False

    def __enter__(self) -> Place:
        return self

    def __exit__(self, *exc_info) -> None:
        if self._job is None:
            self._give_back()

    def _give_back(self, _future: Future | None = None) -> None:
        if not self._given_back:
            self._given_back = True
            self._pool._release()

    async def run(self, fn: Callable[..., T], *args) -> T:
        """Run ``fn(*args)`` on a worker thread (one job per place) and return its result."""
        if self._job is not None:
            raise RuntimeError("a place runs one job")
        self._job = self._pool._executor.submit(self._pool._timed, fn, *args)
        self._job.add_done_callback(self._give_back)
        return await asyncio.wrap_future(self._job)
