"""The agent loop: model -> tool calls (concurrently) -> model, until it answers in text.

:func:`run_turn` takes one user message through the loop and returns a complete
:class:`~behave_aitest.records.Turn`, also when the turn fails: the record of what the
agent did before a timeout or a turn limit is exactly what a failing test must show.
Messages are added to the history in whole groups (an assistant message with all its
tool results), so an interrupted turn never leaves a history a provider would reject.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .llm import ModelError, ModelReply, ToolRequest, is_retryable, retry_after
from .records import ModelCall, ToolCall, Turn
from .safetext import plural
from .servers import ServerConnection, ServerError, ToolSpec, first_leaf

Completer = Callable[..., Awaitable[ModelReply]]
_SAFE = re.compile(r"[^a-zA-Z0-9_-]")


class AgentSetupError(Exception):
    """The agent's tools cannot be offered as configured (clash, unknown allowed tool)."""


@dataclass
class TurnSettings:
    """How one turn is run: the model request parameters and the loop's limits."""

    model: str  # as shown in records and reports ("scripted", "openai/gpt-4.1-mini")
    request: dict[str, Any] = field(default_factory=dict)  # extra litellm kwargs: temperature, api_base, ...
    max_turns: int = 10
    timeout_s: float = 120.0
    retries: int = 2
    retry_backoff_s: float = 1.0


class TurnFailure(Exception):
    """Raised inside the loop; ``kind`` is "max_turns", "timeout", "model" or "server"."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


# --------------------------------------------------------------------------- tools


def provider_name(name: str, taken: set[str]) -> str:
    """A name providers accept (``^[a-zA-Z0-9_-]{1,64}$``), unique among ``taken``."""
    safe = _SAFE.sub("_", name)[:64] or "tool"
    if safe in taken:
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        safe = f"{safe[:55]}_{digest}"
    return safe


class ToolBox:
    """The tools one agent may use, with provider-safe names mapped back to MCP names."""

    def __init__(self, connections: Sequence[ServerConnection], allowed: Sequence[str] | None = None) -> None:
        self._by_provider: dict[str, tuple[ServerConnection, ToolSpec]] = {}
        self._all: dict[str, list[tuple[ServerConnection, ToolSpec]]] = {}
        for conn in connections:
            for spec in conn.tools:
                self._all.setdefault(spec.name, []).append((conn, spec))
        chosen = self._choose(allowed)
        for conn, spec in chosen:
            if spec.schema_problem:
                raise AgentSetupError(
                    f"MCP server {conn.name!r}: tool {spec.name!r} has an invalid input schema: {spec.schema_problem}. "
                    "Fix the tool's parameters in the server, or leave the tool out with the agent's allowed_tools."
                )
        taken: set[str] = set()
        for conn, spec in chosen:
            name = provider_name(spec.name, taken)
            taken.add(name)
            self._by_provider[name] = (conn, spec)

    def _choose(self, allowed: Sequence[str] | None) -> list[tuple[ServerConnection, ToolSpec]]:
        if allowed is None:
            for name, offers in self._all.items():
                if len(offers) > 1:
                    servers = " and ".join(repr(c.name) for c, _ in offers)
                    raise AgentSetupError(
                        f"Tool {name!r} is offered by servers {servers}. Pick one with allowed_tools "
                        f'(e.g. allowed_tools = ["{offers[0][0].name}.{name}"]) or give the agent one of the servers.'
                    )
            return [offer for offers in self._all.values() for offer in offers]
        chosen: list[tuple[ServerConnection, ToolSpec]] = []
        for entry in allowed:
            server, _, tool = entry.rpartition(".")
            offers = [o for o in self._all.get(tool, []) if not server or o[0].name == server]
            if not offers and "." in entry and entry in self._all:  # a tool whose own name has a dot
                offers = self._all[entry]
            if not offers:
                raise AgentSetupError(
                    f"Allowed tool {entry!r} is not offered by the agent's servers. "
                    f"Available: {', '.join(self.available()) or 'no tools'}."
                )
            if len(offers) > 1:
                raise AgentSetupError(
                    f"Allowed tool {entry!r} is offered by several servers "
                    f"({', '.join(c.name for c, _ in offers)}); write it as server.tool."
                )
            chosen.append(offers[0])
        return chosen

    def available(self) -> list[str]:
        """Every tool of every server, as ``server.tool``."""
        return sorted(f"{c.name}.{name}" for name, offers in self._all.items() for c, _ in offers)

    def schemas(self) -> list[dict[str, Any]]:
        """The tools in the OpenAI function-calling format litellm expects."""
        return [
            {
                "type": "function",
                "function": {"name": pname, "description": spec.description, "parameters": dict(spec.input_schema)},
            }
            for pname, (_, spec) in self._by_provider.items()
        ]

    def resolve(self, pname: str) -> tuple[ServerConnection, ToolSpec] | None:
        return self._by_provider.get(pname)

    def known_elsewhere(self, pname: str) -> str | None:
        """The MCP name of a tool the servers offer but this agent may not use."""
        return pname if pname in self._all else None


# The result of a call the turn's timeout cut off: calls are recorded before they run, so a
# timeout during one still shows it (and the message names it).
CUT_OFF = "(no answer: the call was cut off by the turn timeout, timeout_s)"


def requested_call(request: ToolRequest) -> ToolCall:
    """The record of a requested call before it runs: an error until an answer replaces it."""
    return ToolCall(request.id, "", None, request.name, None, request.arguments, result=CUT_OFF, is_error=True)


async def run_tool(toolbox: ToolBox, request: ToolRequest, call: ToolCall | None = None) -> ToolCall:
    """Run one requested tool call, filling ``call`` (its record); every failure becomes an
    error result for the model, except a dead server (:class:`ServerError`, re-raised)."""
    call = call or requested_call(request)
    target = toolbox.resolve(request.name)
    if target is None:
        refused = toolbox.known_elsewhere(request.name)
        call.name = refused or request.name
        call.is_error = True
        call.result = (
            f"Tool {request.name!r} is not allowed for this agent."
            if refused
            else f"Unknown tool {request.name!r}. Use one of the tools you were given."
        )
        return call
    conn, spec = target
    call.name, call.server = spec.name, conn.name
    try:
        arguments = json.loads(request.arguments) if request.arguments.strip() else {}
    except json.JSONDecodeError as exc:
        call.is_error = True
        call.result = f"Arguments are not valid JSON ({exc.msg} at position {exc.pos}); send a JSON object."
        return call
    if not isinstance(arguments, dict):
        call.is_error = True
        call.result = "Arguments must be a JSON object."
        return call
    call.arguments = arguments
    try:
        outcome = await conn.call(spec.name, arguments)
    except ServerError as exc:
        call.result = f"(no answer: {str(exc).splitlines()[0]})"
        raise
    call.result, call.is_error, call.duration_s = outcome.text, outcome.is_error, outcome.duration_s
    return call


async def run_tools(toolbox: ToolBox, requests: Sequence[ToolRequest], calls: Sequence[ToolCall] | None = None) -> list[ToolCall]:
    """Run all tool calls of one model reply concurrently, filling ``calls`` (their records,
    in request order). A dead server raises its one :class:`ServerError` after the other
    calls have finished, never an exception group."""
    import anyio

    records = list(calls) if calls is not None else [requested_call(r) for r in requests]
    failures: list[ServerError] = []

    async def one(req: ToolRequest, call: ToolCall) -> None:
        try:
            await run_tool(toolbox, req, call)
        except ServerError as exc:
            failures.append(exc)

    async with anyio.create_task_group() as group:
        for req, call in zip(requests, records):
            group.start_soon(one, req, call)
    if failures:
        raise failures[0]
    return records


# --------------------------------------------------------------------------- the loop


def assistant_message(reply: ModelReply) -> dict[str, Any]:
    """The assistant message for the history, built by hand (no provider-specific fields)."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in reply.tool_calls
        ]
    return message


async def _complete_with_retries(
    complete: Completer, request: dict[str, Any], settings: TurnSettings, deadline: float
) -> tuple[ModelReply, int]:
    import anyio

    attempt = 0
    while True:
        attempt += 1
        try:
            # A constant timeout: litellm keeps one HTTP client per distinct timeout value, so
            # a per-call remaining time would leak a client (and its sockets) per call. The
            # turn's own deadline is enforced by fail_after in run_turn.
            return await complete(request, timeout_s=settings.timeout_s), attempt
        except TurnFailure:
            raise  # e.g. a cassette miss: never retried, and not the model's fault
        except Exception as exc:
            if not is_retryable(exc) or attempt > settings.retries:
                tries = f" after {attempt} attempts" if attempt > 1 else ""
                raise ModelError(f"{type(exc).__name__}{tries}: {exc}") from exc
            wait = retry_after(exc)
            if wait is None:
                wait = settings.retry_backoff_s * (2 ** (attempt - 1))
            await anyio.sleep(min(wait, max(deadline - time.monotonic(), 0)))


async def run_turn(
    complete: Completer,
    toolbox: ToolBox,
    *,
    system_prompt: str | None,
    history: list[dict[str, Any]],
    user_text: str,
    settings: TurnSettings,
    index: int,
) -> Turn:
    """Take ``user_text`` through the loop; append the turn's messages to ``history``.

    Never raises for agent or model trouble: the returned turn carries ``error`` and
    the caller decides how the step fails. ``history`` excludes the system prompt,
    which is sent fresh each call so a changed prompt in a session takes effect.
    """
    import anyio

    turn = Turn(index=index, user_text=user_text, model=settings.model, history_before=len(history), started_at=time.time())
    started = time.monotonic()
    deadline = started + settings.timeout_s
    user = {"role": "user", "content": user_text}
    history.append(user)
    turn.messages.append(user)
    tools = toolbox.schemas()
    try:
        with anyio.fail_after(settings.timeout_s):
            await _loop(complete, toolbox, tools, system_prompt, history, settings, turn, deadline)
    except Exception as exc:  # also exception groups (from the SDK's task groups): never out of here
        turn.error = turn_error(first_leaf(exc), turn, settings)
    turn.duration_s = time.monotonic() - started
    return turn


def turn_error(exc: BaseException, turn: Turn, settings: TurnSettings) -> str:
    """``kind: message`` for a turn that failed with ``exc`` (kinds: see :class:`TurnFailure`)."""
    if isinstance(exc, TimeoutError):
        cut = [c.qualified_name or c.provider_name for c in turn.tool_calls if c.result == CUT_OFF]
        during = f" It was cut off during the tool call {', '.join(repr(c) for c in cut)}." if cut else ""
        return f"timeout: the turn did not finish within {settings.timeout_s:g} s (timeout_s).{during}"
    if isinstance(exc, TurnFailure):
        return f"{exc.kind}: {exc}"
    if isinstance(exc, ModelError):
        return f"model: {exc}"
    if isinstance(exc, ServerError):
        return f"server: {exc}"
    return f"unexpected: {type(exc).__name__}: {exc}"


async def _loop(
    complete: Completer,
    toolbox: ToolBox,
    tools: list[dict[str, Any]],
    system_prompt: str | None,
    history: list[dict[str, Any]],
    settings: TurnSettings,
    turn: Turn,
    deadline: float,
) -> None:
    for _ in range(settings.max_turns):
        messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + history
        request = {**settings.request, "messages": messages}
        if tools:
            request["tools"] = tools
        reply, attempts = await _complete_with_retries(complete, request, settings, deadline)
        turn.model_calls.append(
            ModelCall(
                model=settings.model,
                input_tokens=reply.input_tokens,
                output_tokens=reply.output_tokens,
                cost_usd=reply.cost_usd,
                latency_s=reply.latency_s,
                finish_reason=reply.finish_reason,
                tool_call_count=len(reply.tool_calls),
                attempts=attempts,
                replayed=reply.replayed,
                recorded_cost_usd=reply.recorded_cost_usd,
            )
        )
        message = assistant_message(reply)
        if not reply.tool_calls:  # loop on tool_calls, never on finish_reason
            history.append(message)
            turn.messages.append(message)
            turn.response = reply.content or ""
            return
        calls = [requested_call(r) for r in reply.tool_calls]
        turn.tool_calls.extend(calls)  # before they run: a timeout during one still shows it
        await run_tools(toolbox, reply.tool_calls, calls)
        group = [message] + [{"role": "tool", "tool_call_id": c.id, "content": c.result} for c in calls]
        history.extend(group)
        turn.messages.extend(group)
        if reply.content:
            turn.response = reply.content
    raise TurnFailure(
        "max_turns",
        f"the agent was still calling tools after {plural(settings.max_turns, 'model call')} (max_turns = {settings.max_turns}).",
    )
