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


async def reader_agent(given: Any) -> str:
    """Reads through its first MCP endpoint what the user names, with no model: ``prompt NAME
    ARG`` gets a prompt (``prompts/get``, its one argument ``design``), anything else is a URI
    to read (``resources/read``), said with what ``resources/list`` and the templates offer. A
    refusal is answered with the server's words."""
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    url, headers = next(iter(_servers(given).values()))
    async with create_mcp_http_client(headers={**headers, "X-Aitest-Thread": given.thread_id}) as client:
        async with streamable_http_client(url, http_client=client) as streams, ClientSession(streams[0], streams[1]) as session:
            await session.initialize()
            try:
                if given.text.startswith("prompt "):
                    _, name, design = given.text.split(" ", 2)
                    got = await session.get_prompt(name, {"design": design})
                    return " ".join(str(getattr(m.content, "text", "")) for m in got.messages)
                listed = [str(r.uri) for r in (await session.list_resources()).resources]
                templates = [t.uri_template for t in (await session.list_resource_templates()).resource_templates]
                read = await session.read_resource(given.text)
                text = " ".join(str(getattr(c, "text", "")) for c in read.contents)
                return f"{text} (listed: {', '.join(listed)}; templates: {', '.join(templates)})"
            except Exception as exc:  # the server's refusal, as the agent would relay it
                return f"refused: {exc}"
