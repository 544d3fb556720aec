"""Python agents for the tests (``python = "behave_aitest.testing.agents.python_agent:agent"``).

Each reads the one argument behave-aitest passes (docs/agents.md, "What the agent gets") and
runs :func:`~behave_aitest.testing.agents.react.react` against the endpoints it names.
"""

from __future__ import annotations

import asyncio
from typing import Any

from behave_aitest.testing.agents.react import react


def _servers(given: Any) -> dict[str, tuple[str, Any]]:
    return {name: (access.url, access.headers) for name, access in given.mcp.items()}


async def agent(given: Any) -> list[dict[str, Any]]:
    """Async; returns the turn's messages (its tool calls crossed the MCP endpoints)."""
    return await react(given.messages, model_url=given.model_url, key=given.model_key, model=given.model,
                       mcp=_servers(given), thread=given.thread_id)


def sync_agent(given: Any) -> str:
    """Sync (runs its own event loop, like ``Runner.run_sync``); returns the answer's text only."""
    new = asyncio.run(react(given.messages, model_url=given.model_url, key=given.model_key, model=given.model,
                            mcp=_servers(given), thread=given.thread_id))
    return str(new[-1].get("content") or "")


async def streaming_agent(given: Any) -> dict[str, Any]:
    """Asks for streamed answers; returns the final assistant message only."""
    new = await react(given.messages, model_url=given.model_url, key=given.model_key, model=given.model,
                      mcp=_servers(given), thread=given.thread_id, stream=True)
    return new[-1]


async def local_tool_agent(given: Any) -> list[dict[str, Any]]:
    """Also has an in-process tool (local_clock) that never crosses an MCP endpoint."""
    return await react(given.messages, model_url=given.model_url, key=given.model_key, model=given.model,
                       mcp=_servers(given), thread=given.thread_id, local_tool=True)


def stateful_agent(given: Any) -> str:
    """Says what it was given (for ``stateful = true``: only the new messages and the thread)."""
    return f"I got {len(given.messages)} message(s) of thread {given.thread_id}: {given.text}"


def no_model_agent(given: Any) -> str:
    """Answers without asking any model (a warning on the turn: no cost, no cassette)."""
    return f"You said: {given.text}"


def number_agent(given: Any) -> int:
    """Returns a shape that is not allowed."""
    return 42


def crashing_agent(given: Any) -> str:
    raise RuntimeError("the agent fell over")


not_callable = "I am a string"
