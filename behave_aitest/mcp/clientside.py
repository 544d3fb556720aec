"""The client side of one MCP connection: what behave-aitest answers when a server asks.

The SDK's ``ClientSession`` calls these callbacks (elicitation, sampling, roots, logging,
notifications); on a 2026-07-28 server the same callbacks answer the ``input_required``
round trips. Which tool call an event belongs to: on a 2026-07-28 server it is exact (the
SDK answers ``input_required`` inside the call's own task, which carries the call in a
context variable); progress is exact in both eras (each call has its own progress token).
A 2025-11-25 server's request arrives on the session's own task, tied to no call: it is
put on the call of this connection that is running (the most recent one when several run
at once), else on the call that ended last (a notification sent just before a result can
be read just after it; the record shares the lists, so it still shows), else it waits in
``unattached`` for the next call.
"""

from __future__ import annotations

import contextvars
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..record.records import SamplingCall
from .elicitation import ElicitationPlan, answer
from .sampling import Sampler, sample

log = logging.getLogger("behave_aitest.mcp")


@dataclass
class CallEvents:
    """What happened during one tool call besides its result."""

    elicitations: list[dict[str, Any]] = field(default_factory=list)
    sampling_calls: list[SamplingCall] = field(default_factory=list)
    progress: list[dict[str, Any]] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)


_CURRENT: contextvars.ContextVar[CallEvents | None] = contextvars.ContextVar("behave_aitest_mcp_call", default=None)


class ClientSide:
    """Callbacks for one connection, and what the scenario set for them."""

    def __init__(self, server: str, sampling: str = "agent", roots: tuple[str, ...] = ()) -> None:
        self.server = server
        self.sampling = sampling
        self.roots = roots
        self.plan = ElicitationPlan()  # set per conversation by the runtime
        self.sampler: Sampler | None = None  # set per turn by the runtime
        self.active: list[CallEvents] = []
        self.unattached = CallEvents()
        self.last: CallEvents | None = None  # the call that ended last (the record shares its lists)
        self.tools_changed = False

    # ----------------------------------------------------------------- routing

    def _target(self) -> CallEvents:
        current = _CURRENT.get()
        if current is not None and current in self.active:
            return current
        if self.active:
            return self.active[-1]
        # a notification sent just before the result may be read just after it
        return self.last if self.last is not None else self.unattached

    def begin_call(self) -> CallEvents:
        """A call starts: its events (with what arrived since the last call) become current in this task."""
        events, self.unattached = self.unattached, CallEvents()
        self.active.append(events)
        _CURRENT.set(events)
        return events

    def end_call(self, events: CallEvents) -> None:
        if events in self.active:
            self.active.remove(events)
        self.last = events

    # ----------------------------------------------------------------- callbacks (SDK signatures)

    def callbacks(self) -> dict[str, Any]:
        """Keyword arguments for ``ClientSession``: a capability is declared only when offered."""
        found: dict[str, Any] = {
            "elicitation_callback": self.elicit,
            "logging_callback": self.log,
            "message_handler": self.on_message,
        }
        if self.sampling != "off":
            found["sampling_callback"] = self.sample
        if self.roots:
            found["list_roots_callback"] = self.list_roots
        return found

    async def elicit(self, context: Any, params: Any) -> Any:
        import anyio
        import mcp_types as types

        # off the event loop: the schema is the server's (its patterns are bounded, but a
        # check must never hold the loop, or the turn's timeout_s could not cut it)
        result, record = await anyio.to_thread.run_sync(answer, self.plan, params, abandon_on_cancel=True)
        self._target().elicitations.append(record)
        return types.ElicitResult.model_validate(result)

    async def sample(self, context: Any, params: Any) -> Any:
        import mcp_types as types

        if self.sampler is None:
            return types.ErrorData(code=types.INVALID_REQUEST, message="Sampling is not available outside a turn")
        target = self._target()
        try:
            result, record = await sample(self.sampler, params, self.server)
        except Exception as exc:
            target.sampling_calls.append(SamplingCall(server=self.server, model=str(self.sampler.settings.model), error=f"{type(exc).__name__}: {exc}"))
            return types.ErrorData(code=types.INTERNAL_ERROR, message=f"The client's model failed: {type(exc).__name__}")
        target.sampling_calls.append(record)
        return types.CreateMessageResult.model_validate(result)

    async def list_roots(self, context: Any) -> Any:
        import mcp_types as types

        return types.ListRootsResult(roots=[types.Root(uri=Path(r).as_uri(), name=Path(r).name) for r in self.roots])

    async def log(self, params: Any) -> None:
        self._target().logs.append({"level": str(params.level), "logger": params.logger, "data": _plain(params.data)})

    async def on_message(self, message: Any) -> None:
        """Server notifications: a changed tool list is noted (the engine lists again)."""
        method = getattr(message, "method", None)
        if method == "notifications/tools/list_changed":
            self.tools_changed = True
        elif isinstance(message, Exception):
            log.debug("MCP server %s: transport message: %s", self.server, message)

    def progress_callback(self, events: CallEvents) -> Any:
        async def progress(value: float, total: float | None, message: str | None) -> None:
            events.progress.append({"progress": value, "total": total, "message": message})

        return progress


def _plain(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump(mode="json") if dump else value
