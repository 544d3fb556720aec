"""What an external agent returns, read as OpenAI messages, and the tool calls it reports.

An agent returns its answer as a string, one assistant message, or a list of OpenAI
messages (assistant messages with ``tool_calls``, ``tool`` results, the final assistant
text). Pydantic models and objects with ``model_dump`` are read as their dicts. Tool calls
that appear in these messages but never crossed an MCP endpoint (the agent's own
in-process function tools) are recorded as *reported by the agent* (``ToolCall.reported``).
"""

from __future__ import annotations

import json
from typing import Any

from .base import AgentError
from ...record.records import ToolCall

SHAPES = (
    "a string, one assistant message ({'role': 'assistant', 'content': '...'}), "
    "or a list of OpenAI messages (assistant messages with tool_calls, tool results, the final assistant text)"
)
ROLES = ("assistant", "tool", "user", "system", "developer", "function")


def _plain(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        try:
            return dump(exclude_none=True)
        except TypeError:
            return dump()
    return value


def _message(value: Any, where: str) -> dict[str, Any]:
    value = _plain(value)
    if not isinstance(value, dict) or value.get("role") not in ROLES:
        raise AgentError(f"{where} returned {_shape(value)}; allowed: {SHAPES}.")
    return dict(value)


def _shape(value: Any) -> str:
    if isinstance(value, dict):
        return f"a dict without a valid 'role' (keys: {', '.join(sorted(map(str, value))[:8]) or 'none'})"
    if isinstance(value, list):
        return "a list with an item that is not an OpenAI message"
    return f"a value of type {type(value).__name__}"


def normalize(value: Any, where: str, sent: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The turn's new messages (assistant and tool roles) from what the agent returned.

    A returned list that repeats the conversation it was given (some frameworks return the
    whole history) is cut after the last user message; user and system messages are dropped."""
    value = _plain(value)
    if isinstance(value, str):
        return [{"role": "assistant", "content": value}]
    if isinstance(value, dict):
        return [_message(value, where)]
    if isinstance(value, (list, tuple)):
        messages = [_message(item, where) for item in value]
        last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
        return [m for m in messages[last_user + 1:] if m.get("role") in ("assistant", "tool")]
    raise AgentError(f"{where} returned {_shape(value)}; allowed: {SHAPES}.")


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type", "text") in ("text", "output_text"))
    return ""


def final_text(messages: list[dict[str, Any]]) -> str:
    """The last assistant message's text: the agent's answer."""
    for message in reversed(messages):
        if message.get("role") == "assistant" and text_of(message.get("content")):
            return text_of(message.get("content"))
    return ""


def _arguments(raw: Any) -> tuple[Any, str]:
    if isinstance(raw, str):
        try:
            parsed = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError:
            return None, raw
        return parsed, raw
    return raw, json.dumps(raw, ensure_ascii=False)


def reported_calls(messages: list[dict[str, Any]], crossed: list[ToolCall]) -> list[ToolCall]:
    """Tool calls in the agent's messages that no MCP endpoint saw, as records marked
    ``reported``. A call that matches one that crossed an endpoint (same tool name, same
    arguments, not already matched) is that call, not another."""
    results = {m.get("tool_call_id"): text_of(m.get("content")) for m in messages if m.get("role") == "tool"}
    unmatched = list(crossed)
    found: list[ToolCall] = []
    for message in messages:
        for index, call in enumerate(message.get("tool_calls") or [] if message.get("role") == "assistant" else []):
            function = call.get("function") or {} if isinstance(call, dict) else {}
            name = str(function.get("name") or "")
            arguments, raw = _arguments(function.get("arguments", ""))
            twin = next((c for c in unmatched if name in (c.name, c.provider_name, c.qualified_name) and c.arguments == arguments), None)
            if twin is not None:
                unmatched.remove(twin)
                continue
            ident = str(call.get("id") or f"reported_{len(found) + 1}")
            found.append(
                ToolCall(ident, name, None, name, arguments if isinstance(arguments, dict) else None, raw,
                         result=results.get(call.get("id"), ""), reported=True)
            )
    return found
