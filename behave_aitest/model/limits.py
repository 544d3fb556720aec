"""``max_model_concurrency``: at most N calls to one model at a time, across every worker of a run.

Providers with a concurrency quota answer 429 when too many requests arrive at once; a
parallel run must not cause that by itself. Every real model call (agent, judge) holds a
slot of its model for as long as it runs. Replayed calls take no slot: they reach no model.

Across processes, a slot is an exclusive ``flock`` on one of N files in a folder the parallel
runner creates for the run (``BEHAVE_AITEST_MODEL_SLOTS``); the kernel frees the lock when a
process dies, so a killed worker never keeps a slot. In a run without workers the slots are
an in-process limiter.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

SLOTS_ENV = "BEHAVE_AITEST_MODEL_SLOTS"
# Server starts at once across the workers of a parallel run (see start_slot).
START_SLOTS_ENV = "BEHAVE_AITEST_START_SLOTS"
_POLL_S = 0.02


class ModelLimiter:
    """Slots per model name; ``limit`` None means no limit."""

    def __init__(self, limit: int | None, directory: Path | None = None) -> None:
        self.limit = limit
        self.directory = directory
        self._local: dict[str, object] = {}

    @classmethod
    def for_run(cls, limit: int | None) -> ModelLimiter:
        folder = os.environ.get(SLOTS_ENV)
        return cls(limit, Path(folder) if folder else None)

    @contextlib.asynccontextmanager
    async def slot(self, model: str) -> AsyncIterator[None]:
        """Hold one of the model's slots while the body runs (waits for one to be free)."""
        if self.limit is None:
            yield
            return
        if self.directory is None:
            import anyio

            limiter = self._local.setdefault(model, anyio.CapacityLimiter(self.limit))
            async with limiter:  # type: ignore[attr-defined]
                yield
            return
        fd = await self._acquire(model)
        try:
            yield
        finally:
            _release(fd)

    async def _acquire(self, model: str) -> int:

        import anyio

        assert self.directory is not None and self.limit is not None
        folder = self.directory / hashlib.sha256(model.encode("utf-8")).hexdigest()[:16]
        folder.mkdir(parents=True, exist_ok=True)
        while True:
            fd = try_lock(folder / str(index) for index in range(self.limit))
            if fd is not None:
                return fd
            await anyio.sleep(_POLL_S)


def try_lock(paths: Iterable[Path]) -> int | None:
    """An exclusive lock on the first of ``paths`` no process holds (its open fd), or None.

    A slot is a file lock, not a count in a file: the kernel frees it when its holder dies,
    so a killed worker never keeps a slot (the concurrency limits and the adaptive limiter)."""
    import fcntl

    for path in paths:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return fd
    return None


def _release(fd: int) -> None:
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def start_slots() -> int:
    """How many local servers the workers of a run start at the same time: one per usable core."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):
        return max(os.cpu_count() or 1, 1)


@contextlib.asynccontextmanager
async def start_slot() -> AsyncIterator[None]:
    """Hold one of the run's server-start slots while a local (stdio) server starts.

    Starting a Python MCP server is CPU work (the SDK's import: about a second of CPU). When
    the N workers of a parallel run all start theirs at once they share the cores, and every
    one of them is ready only when all are; with one start per core the first workers talk to
    their servers (and wait for the model) while the next servers start, and the total CPU
    is the same. Outside a parallel run (``BEHAVE_AITEST_START_SLOTS`` unset) this is a no-op.
    The slots are the same kernel file locks as the model slots: a killed worker frees its own.
    """
    folder = os.environ.get(START_SLOTS_ENV)
    if not folder:
        yield
        return
    async with ModelLimiter(start_slots(), Path(folder)).slot("server-starts"):
        yield
