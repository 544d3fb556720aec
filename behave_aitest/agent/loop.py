"""The agent loop: model -> tool calls (concurrently) -> model, until it answers in text.

:func:`run_turn` takes one user message through the loop and returns a complete
:class:`~behave_aitest.records.Turn`, also when the turn fails: the record of what the
agent did before a timeout or a turn limit is exactly what a failing test must show.
Messages are added to the history in whole groups (an assistant message with all its
tool results), so an interrupted turn never leaves a history a provider would reject.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ServerError, TurnFailure
from ..mcp.connection import first_leaf
from ..model.adaptive import Throttled, Waits, jittered, turn_scope
from ..model.llm import (
    ModelError,
    ModelReply,
    auth_message,
    is_auth_error,
    is_retryable,
    missing_keys,
    retry_after,
)
from ..record.records import ModelCall, Turn
from ..text.safetext import plural
from .toolbox import CUT_OFF, ToolBox, requested_call, run_tools

Completer = Callable[..., Awaitable[ModelReply]]



@dataclass
class TurnSettings:
    """How one turn is run: the model request parameters and the loop's limits."""

    model: str  # as shown in records and reports ("scripted", "openai/gpt-4.1-mini")
    request: dict[str, Any] = field(default_factory=dict)  # extra litellm kwargs: temperature, api_base, ...
    max_turns: int = 10
    timeout_s: float = 120.0
    retries: int = 2
    retry_backoff_s: float = 1.0
    vision: bool = False  # tool images reach the model as image parts (else a text placeholder)



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
            reply = await complete(request, timeout_s=settings.timeout_s)
            return reply, attempt + int(getattr(reply, "throttled", 0) or 0)  # the 429s the limiter waited out count too
        except (TurnFailure, Throttled):
            raise  # a cassette miss; the provider's limit until the deadline: never retried here
        except Exception as exc:
            if is_auth_error(exc):  # no retry, and never called a server error
                raise ModelError(auth_failure(exc, request)) from exc
            if not is_retryable(exc) or attempt > settings.retries:
                tries = f" after {attempt} attempts" if attempt > 1 else ""
                raise ModelError(f"{type(exc).__name__}{tries}: {exc}") from exc
            wait = retry_after(exc)
            if wait is None:
                wait = settings.retry_backoff_s * (2 ** (attempt - 1))
            await anyio.sleep(min(jittered(wait), max(deadline - time.monotonic(), 0)))  # jitter: workers do not retry at once


def auth_failure(exc: BaseException, request: dict[str, Any]) -> str:
    """The message of a refused key, naming the variable litellm reads for this model."""
    model = str(request.get("model") or "")
    missing = [] if request.get("api_key") else missing_keys(model, has_api_base=bool(request.get("api_base")))
    return auth_message(exc, model, missing)


async def run_turn(
    complete: Completer,
    toolbox: ToolBox,
    *,
    system_prompt: str | None,
    history: list[dict[str, Any]],
    user_text: str,
    settings: TurnSettings,
    index: int,
    user_messages: list[dict[str, Any]] | None = None,
) -> Turn:
    """Take ``user_text`` through the loop; append the turn's messages to ``history``.

    Never raises for agent or model trouble: the returned turn carries ``error`` and
    the caller decides how the step fails. ``history`` excludes the system prompt,
    which is sent fresh each call so a changed prompt in a session takes effect.
    ``user_messages`` (a prompt's messages, attached resources) replace the one user
    message made of ``user_text``.
    """
    import anyio

    turn = Turn(index=index, user_text=user_text, model=settings.model, history_before=len(history), started_at=time.time())
    started = time.monotonic()
    deadline = started + settings.timeout_s
    for user in user_messages or [{"role": "user", "content": user_text}]:
        history.append(user)
        turn.messages.append(user)
    waits = Waits()
    try:
        # the turn's deadline and what its model calls waited for (behave_aitest.model.adaptive):
        # a provider's 429 is waited out until the deadline, and a turn cut off while it
        # waited for the provider's limit is "throttled", not a timeout of the agent
        with turn_scope(deadline) as waits, anyio.fail_after(settings.timeout_s):
            await _loop(complete, toolbox, system_prompt, history, settings, turn, deadline)
    except Exception as exc:  # also exception groups (from the SDK's task groups): never out of here
        turn.error = turn_error(first_leaf(exc), turn, settings, waits)
    turn.duration_s = time.monotonic() - started
    return turn


def turn_error(exc: BaseException, turn: Turn, settings: TurnSettings, waits: Waits | None = None) -> str:
    """``kind: message`` for a turn that failed with ``exc`` (kinds: see :class:`TurnFailure`)."""
    if isinstance(exc, TimeoutError) and waits is not None and waits.waiting:
        refused = f" after {plural(waits.throttled, '429 answer')} of the provider" if waits.throttled else ""
        return (
            f"throttled: the turn did not finish within {settings.timeout_s:g} s (timeout_s): it was still waiting for "
            f"{waits.waiting}{refused} ({waits.wait_s:.1f} s spent waiting for the model's rate limits)."
        )
    if isinstance(exc, Throttled):
        return f"throttled: {exc}"
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
    system_prompt: str | None,
    history: list[dict[str, Any]],
    settings: TurnSettings,
    turn: Turn,
    deadline: float,
) -> None:
    for _ in range(settings.max_turns):
        if toolbox.changed():  # notifications/tools/list_changed: list again before the model sees them
            turn.tool_list_changes += await toolbox.refresh()
        tools = toolbox.schemas()
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
        images = [(c.name or c.provider_name, image) for c in calls for image in c.__dict__.pop("_images", [])]
        if images and settings.vision:  # after all tool results: providers want them together
            from ..mcp.content import image_message

            group.append(image_message(images))
        history.extend(group)
        turn.messages.extend(group)
        if reply.content:
            turn.response = reply.content
    raise TurnFailure(
        "max_turns",
        f"the agent was still calling tools after {plural(settings.max_turns, 'model call')} (max_turns = {settings.max_turns}).",
    )
