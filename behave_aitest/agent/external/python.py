"""The python kind: ``python = "package.module:callable"``, called in the test process.

The callable gets one :class:`~behave_aitest.agent.external.base.AgentInput` per turn and
returns the answer (see :mod:`.messages`). It is imported from the config file's folder
(put on ``sys.path``). A sync callable runs in a worker thread, so it may block or call
``asyncio.run`` (``Runner.run_sync``, ``agent.run_sync``) freely; an async one runs on an
event loop of its own, kept for the whole run (frameworks keep clients bound to their
loop), never on behave-aitest's loop — an agent that blocks cannot stall the endpoints
it is talking to.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .base import AgentError, AgentInput, Endpoints


def load_callable(spec: str, base_dir: Path, where: str) -> Callable[..., Any]:
    """Import ``package.module:callable`` (``module:obj.attr`` works too); one line on failure."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise AgentError(f"{where}: 'python' must be \"package.module:callable\" (got {spec!r}).")
    folder = str(base_dir.resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:
        detail = f"{type(exc).__name__}: {exc}".splitlines()[0]
        raise AgentError(f"{where}: 'python' = {spec!r} does not import ({detail}; looked from {folder}).") from None
    for part in attr.split("."):
        if not hasattr(target, part):
            names = [n for n in dir(target) if not n.startswith("_")]
            import difflib

            close = difflib.get_close_matches(part, names, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise AgentError(f"{where}: 'python' = {spec!r}: {module_name} has no {part!r}.{hint}")
        target = getattr(target, part)
    if not callable(target):
        raise AgentError(f"{where}: 'python' = {spec!r} is a {type(target).__name__}, not a callable.")
    return target


def _is_async(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))


class PythonAgent:
    """A callable in the test process."""

    kind = "python"

    def __init__(self, spec: str, base_dir: Path, where: str, stateful: bool = False) -> None:
        self.spec, self.base_dir, self.where, self.stateful = spec, base_dir, where, stateful
        self.describe = f"the python agent {spec}"
        self.fn: Callable[..., Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    async def start(self, endpoints: Endpoints) -> None:
        if self.fn is None:
            self.fn = load_callable(self.spec, self.base_dir, self.where)

    def _agent_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=loop.run_forever, name="aitest-agent-loop", daemon=True)
            self._thread.start()
            self._loop = loop
        return self._loop

    async def _on_agent_loop(self, awaitable: Any) -> Any:
        async def wrapped() -> Any:
            return await awaitable

        future = asyncio.run_coroutine_threadsafe(wrapped(), self._agent_loop())
        try:
            return await asyncio.wrap_future(future)
        except BaseException:
            future.cancel()  # the turn timed out or the run stops: cancel the agent's task too
            raise

    async def call(self, given: AgentInput) -> Any:
        import anyio

        fn = self.fn
        assert fn is not None
        if _is_async(fn):
            return await self._on_agent_loop(_call(fn, given))
        result = await anyio.to_thread.run_sync(fn, given, abandon_on_cancel=True)
        if inspect.isawaitable(result):
            result = await self._on_agent_loop(result)
        return result

    async def close(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=5)
            if not loop.is_running():
                loop.close()


async def _call(fn: Callable[..., Any], given: AgentInput) -> Any:
    return await fn(given)
