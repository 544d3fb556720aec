"""What the example bankers share: their instructions and the conversation as plain text turns.

Kept free of any framework import, so that every agent (and the LangGraph one, which runs in a
virtualenv of its own) can use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

INSTRUCTIONS = "You are a careful banking assistant. Use the tools to look up balances and make transfers."


def text_of(content: Any) -> str:
    """The text of an OpenAI message ``content``: a string, or a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return ""


def text_turns(messages: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The user's messages and the assistant's text answers, in order, as ``{"role", "content"}``.

    behave-aitest owns the history and sends it in the OpenAI chat format; an agent that keeps
    no memory of its own replays it to its framework. Frameworks take user and assistant text
    in their own input format without conversion, but each has its own format for earlier
    tool calls, so those are left out (the answers that quote their results stay): the
    system prompt is the agent's own, and an assistant message that only asked for tools
    carries no text.
    """
    turns: list[dict[str, str]] = []
    for message in messages:
        role = message.get("role")
        text = text_of(message.get("content"))
        if role in ("user", "assistant") and text:
            turns.append({"role": str(role), "content": text})
    return turns
