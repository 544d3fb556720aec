"""One turn of an external agent: call it, record what crossed the wires, read its answer.

The counterpart of :func:`behave_aitest.engine.run_turn` for an agent that is not our loop.
Like it, it never raises for the agent's, the model's or a server's trouble: the returned
:class:`~behave_aitest.records.Turn` carries ``error`` (``agent: ...``, ``model: ...``,
``server: ...``, ``timeout: ...``) and everything the agent did before.
"""

from __future__ import annotations

import time
from typing import Any

from .base import AgentError, AgentInput, AgentKind, McpAccess
from .messages import final_text, normalize, reported_calls
from .wire import AgentWires, TurnInFlight
from ...mcp.connection import first_leaf
from ..loop import Completer, TurnSettings
from ..toolbox import ToolBox
from ...record.records import Turn

NO_MODEL_CALL = (
    "the agent answered without any model call through behave-aitest's model endpoint: no cost, no tokens and "
    "nothing in the cassette for this turn (point its model client at OPENAI_BASE_URL / model_url)"
)


def _no_tool_reached(mcp: dict[str, McpAccess]) -> str:
    urls = ", ".join(f"{name}: {access.url}" for name, access in mcp.items())
    return f"no tool call reached behave-aitest's MCP endpoints in this turn (the agent's MCP URLs: {urls})"


async def run_external_turn(
    agent: AgentKind,
    wires: AgentWires,
    *,
    thread: str,
    complete: Completer,
    toolbox: ToolBox,
    history: list[dict[str, Any]],
    user_text: str,
    settings: TurnSettings,
    index: int,
    user_messages: list[dict[str, Any]] | None = None,
    model_name: str | None = None,
) -> Turn:
    """Take one user message to ``agent``; append the turn's messages to ``history``."""
    import anyio

    turn = Turn(index=index, user_text=user_text, model=settings.model, history_before=len(history), started_at=time.time())
    turn.agent_kind = agent.kind
    started = time.monotonic()
    new = list(user_messages or [{"role": "user", "content": user_text}])
    endpoints = wires.serve([conn.name for conn in toolbox.connections])
    given = AgentInput(
        messages=[dict(m) for m in (new if agent.stateful else history + new)],
        new_messages=[dict(m) for m in new],
        thread_id=thread,
        model_url=endpoints.model_url,
        model_key=endpoints.key,
        model=model_name or settings.model,
        mcp=dict((name, access) for name, access in endpoints.mcp.items() if name in {c.name for c in toolbox.connections}),
    )
    history.extend(new)
    turn.messages.extend(new)
    flight = TurnInFlight(thread, turn, complete, settings, toolbox, started + settings.timeout_s)
    wires.begin(flight)
    try:
        with anyio.fail_after(settings.timeout_s):
            answer = await agent.call(given)
        messages = normalize(answer, _who(agent))
    except Exception as exc:  # also exception groups: never out of here
        leaf = first_leaf(exc)
        if flight.failure:
            turn.error = flight.failure
        elif isinstance(leaf, TimeoutError):
            turn.error = f"timeout: the agent did not answer within {settings.timeout_s:g} s (timeout_s)."
        elif isinstance(leaf, AgentError):
            turn.error = f"agent: {leaf}"
        else:
            turn.error = f"agent: {_who(agent)} raised {type(leaf).__name__}: {leaf}"
        messages = []
    finally:
        wires.end(flight)
    if turn.error is None and flight.failure:
        turn.error = flight.failure  # the agent went on after a model or server failure: the failure is the reason
    turn.tool_calls.extend(reported_calls(messages, list(turn.tool_calls)))
    if not messages and turn.error is None:
        turn.error = f"agent: {_who(agent)} returned no answer."
    history.extend(messages)
    turn.messages.extend(messages)
    turn.response = final_text(messages)
    if turn.error is None and not turn.model_calls:
        turn.warnings.append(NO_MODEL_CALL)
    if given.mcp and not any(not c.reported for c in turn.tool_calls):
        turn.tools_unreached = _no_tool_reached(given.mcp)  # a failing tool step names the URLs
    turn.duration_s = time.monotonic() - started
    return turn


def _who(agent: AgentKind) -> str:
    return str(getattr(agent, "describe", None) or f"the {agent.kind} agent")
