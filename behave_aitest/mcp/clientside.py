"""The client side of one MCP connection: what behave-aitest answers when a server asks.

The SDK's ``ClientSession`` calls these callbacks (elicitation, sampling, roots, logging,
notifications); on a 2026-07-28 server the same callbacks answer the ``input_required``
round trips. Which tool call an event belongs to: on a 2026-07-28 server it is exact (the
SDK answers ``input_required`` inside the call's own task, which carries the call in a
context variable); progress is exact in both eras (each call has its own progress token).
A 2025-11-25 server's request (and a log message in either era) arrives tied to no call:
it is put on the call of this connection when exactly one is running, or when none is, on
the call that ended less than ``LATE_S`` ago (a notification sent just before a result can
be read just after it; the record shares the lists, so it still shows). Otherwise (several
calls at once, or nothing running) it is never guessed: it goes on the server's
``timeline``, which the runtime moves onto the turn's record (``Turn.server_events``) with
the server's name (issue 24 item 10, issue 25 H16).

What a server may ask is bounded (issue 25; docs/mcp.md "Limits"; :class:`ClientLimits`,
from the configuration): sampling requests per tool call and per turn (past them the
server gets an error and the turn's record says so: :func:`sampling_refusal`), each
request's ``maxTokens`` (lowered to a ceiling before it reaches the provider), progress
notifications and log messages per call (the first and the last half kept, one entry in
between counting the rest).
"""

from __future__ import annotations

import contextvars
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..record.records import SamplingCall
from .elicitation import ElicitationPlan, answer
from .sampling import Sampler, sample

log = logging.getLogger("behave_aitest.mcp")


@dataclass(frozen=True)
class ClientLimits:
    """What one tool call (or turn) may ask of the client; the defaults are the config's."""

    max_sampling_calls_per_tool_call: int = 10
    max_sampling_calls_per_turn: int = 25
    max_sampling_tokens: int = 4096
    max_progress_per_call: int = 200
    max_logs_per_call: int = 200

    @classmethod
    def from_config(cls, config: Any) -> ClientLimits:
        return cls(**{name: getattr(config, name) for name in cls.__dataclass_fields__ if hasattr(config, name)})


REFUSED = "refused"  # the start of a refused sampling call's error (see sampling_refusal)
LATE_S = 0.5  # a message read this long after its call ended still belongs to it


@dataclass
class CallEvents:
    """What happened during one tool call besides its result."""

    elicitations: list[dict[str, Any]] = field(default_factory=list)
    sampling_calls: list[SamplingCall] = field(default_factory=list)
    progress: list[dict[str, Any]] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)
    sampling_refused: int = 0  # sampling requests refused past a limit (the first is recorded)
    dropped: dict[str, int] = field(default_factory=dict)  # "progress"/"logs": entries not kept


def keep_bounded(items: list[dict[str, Any]], item: dict[str, Any], limit: int, dropped: dict[str, int], kind: str, note: Any) -> None:
    """Append ``item`` keeping at most ``limit`` entries of ``items`` (in place: the record
    shares the list): the first half, then one entry saying how many were not kept
    (``note(n)``), then the latest ones."""
    head = (limit + 1) // 2
    if not dropped.get(kind):
        items.append(item)
        if len(items) <= limit:
            return
        del items[head]  # the oldest of the latest half
        dropped[kind] = 1
        items.insert(head, note(1))
        return
    items.append(item)
    del items[head + 1]
    dropped[kind] += 1
    items[head] = note(dropped[kind])


_CURRENT: contextvars.ContextVar[CallEvents | None] = contextvars.ContextVar("behave_aitest_mcp_call", default=None)


class ClientSide:
    """Callbacks for one connection, and what the scenario set for them."""

    def __init__(self, server: str, sampling: str = "agent", roots: tuple[str, ...] = (), limits: ClientLimits | None = None) -> None:
        self.server = server
        self.limits = limits or ClientLimits()
        self.turn_sampling: list[int] | None = None  # sampling calls of the running turn, shared by its servers (set by the runtime)
        self.sampling = sampling
        self.roots = roots
        self.plan = ElicitationPlan()  # set per conversation by the runtime
        self.sampler: Sampler | None = None  # set per turn by the runtime
        self.active: list[CallEvents] = []
        self.timeline = CallEvents()  # what no single call can own (see the module's docstring)
        self.last: CallEvents | None = None  # the call that ended last (the record shares its lists)
        self.last_ended = 0.0  # time.monotonic() when it ended
        self.tools_changed = False

    # ----------------------------------------------------------------- routing

    def _target(self) -> CallEvents:
        current = _CURRENT.get()
        if current is not None and current in self.active:
            return current
        if len(self.active) == 1:
            return self.active[0]
        if not self.active and self.last is not None and time.monotonic() - self.last_ended < LATE_S:
            return self.last  # a notification sent just before the result may be read just after it
        return self.timeline

    def begin_call(self) -> CallEvents:
        """A call starts: its events become current in this task."""
        events = CallEvents()
        self.active.append(events)
        _CURRENT.set(events)
        return events

    def end_call(self, events: CallEvents) -> None:
        if events in self.active:
            self.active.remove(events)
        self.last, self.last_ended = events, time.monotonic()

    def take_timeline(self) -> CallEvents | None:
        """What arrived on the server's timeline since the last time (None: nothing)."""
        events = self.timeline
        if not (events.elicitations or events.sampling_calls or events.logs):
            return None
        self.timeline = CallEvents()
        return events

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
        refusal = self._over_sampling_limit(target)
        if refusal is not None:
            return types.ErrorData(code=types.INVALID_REQUEST, message=refusal)
        if self.turn_sampling is not None:
            self.turn_sampling[0] += 1
        try:
            result, record = await sample(self.sampler, params, self.server, max_tokens=self.limits.max_sampling_tokens)
        except Exception as exc:
            failed = getattr(exc, "sampling_record", None)  # the request, as sample() recorded it
            target.sampling_calls.append(failed or SamplingCall(server=self.server, model=str(self.sampler.settings.model), error=f"{type(exc).__name__}: {exc}"))
            return types.ErrorData(code=types.INTERNAL_ERROR, message=f"The client's model failed: {type(exc).__name__}")
        target.sampling_calls.append(record)
        return types.CreateMessageResult.model_validate(result)

    def _over_sampling_limit(self, target: CallEvents) -> str | None:
        """Why one more sampling request is refused (a limit of :class:`ClientLimits`), or None.
        The first refusal of a call is recorded on it; later ones are only counted."""
        limits = self.limits
        if len(target.sampling_calls) - (1 if target.sampling_refused else 0) >= limits.max_sampling_calls_per_tool_call:
            why = f"more than {limits.max_sampling_calls_per_tool_call} sampling requests during one tool call (max_sampling_calls_per_tool_call)"
        elif self.turn_sampling is not None and self.turn_sampling[0] >= limits.max_sampling_calls_per_turn:
            why = f"more than {limits.max_sampling_calls_per_turn} sampling requests during one turn (max_sampling_calls_per_turn)"
        else:
            return None
        target.sampling_refused += 1
        message = f"{REFUSED}: MCP server {self.server!r} made {why}"
        if target.sampling_refused == 1:
            model = str(self.sampler.settings.model) if self.sampler is not None else None
            target.sampling_calls.append(SamplingCall(server=self.server, model=model, error=message))
        else:
            target.sampling_calls[-1].error = f"{message}; {target.sampling_refused} requests refused"
        return f"The client refuses: {why}."

    async def list_roots(self, context: Any) -> Any:
        import mcp_types as types

        return types.ListRootsResult(roots=[types.Root(uri=Path(r).as_uri(), name=Path(r).name) for r in self.roots])

    async def log(self, params: Any) -> None:
        target = self._target()
        item = {"level": str(params.level), "logger": params.logger, "data": _plain(params.data)}
        limit = self.limits.max_logs_per_call
        keep_bounded(target.logs, item, limit, target.dropped, "logs", lambda n: {
            "level": "notice", "logger": "behave-aitest",
            "data": f"{n} log messages not kept (max_logs_per_call = {limit}: the first and the latest are)",
        })

    async def on_message(self, message: Any) -> None:
        """Server notifications: a changed tool list is noted (the engine lists again)."""
        method = getattr(message, "method", None)
        if method == "notifications/tools/list_changed":
            self.tools_changed = True
        elif isinstance(message, Exception):
            log.debug("MCP server %s: transport message: %s", self.server, message)

    def progress_callback(self, events: CallEvents) -> Any:
        limit = self.limits.max_progress_per_call

        async def progress(value: float, total: float | None, message: str | None) -> None:
            keep_bounded(events.progress, {"progress": value, "total": total, "message": message}, limit, events.dropped, "progress", lambda n: {
                "progress": None, "total": None,
                "message": f"{n} progress notifications not kept (max_progress_per_call = {limit}: the first and the latest are)",
            })

        return progress


def sampling_refusal(owners: list[Any]) -> str | None:
    """The first refused sampling request among the turn's tool calls (and its servers'
    timelines, ``record.ServerEvents``), as the turn's error."""
    for owner in owners:
        for sampled in getattr(owner, "sampling_calls", None) or []:
            if (sampled.error or "").startswith(REFUSED):
                name = getattr(owner, "name", None)
                where = f"during the call to {name!r}" if name else "while several of its tool calls ran"
                return f"{sampled.error[len(REFUSED) + 2:]}, {where}: the rest were refused"
    return None


def _plain(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump(mode="json") if dump else value
