"""A small ReAct agent for the tests of external agents: the way a real agent uses behave-aitest's
two wires, with nothing of behave-aitest inside.

It lists the tools of its MCP servers with the MCP SDK's client over streamable HTTP, offers
them to the model (an OpenAI chat-completions URL, reached with httpx), runs the tool calls
the model asks for, and loops until the model answers in text. It returns the turn's new
messages (assistant messages with tool calls, tool results, the final answer). Only the
standard library, httpx and the MCP client: it runs in any environment that has them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import Any

MAX_STEPS = 8
LOCAL_TOOL = {
    "type": "function",
    "function": {"name": "local_clock", "description": "The time of day (an in-process tool of the agent).",
                 "parameters": {"type": "object", "properties": {}}},
}


def servers_from_environment(environ: Mapping[str, str] | None = None) -> dict[str, tuple[str, dict[str, str]]]:
    """``{name: (url, headers)}`` from ``AITEST_MCP_CONFIG`` (the file CLI agents read)."""
    env = os.environ if environ is None else environ
    path = env.get("AITEST_MCP_CONFIG")
    if not path:
        return {}
    with open(path, encoding="utf-8") as file:
        config = json.load(file)
    return {name: (entry["url"], dict(entry.get("headers") or {})) for name, entry in config.get("mcpServers", {}).items()}


async def _chat(client: Any, url: str, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    """One chat completion; a streamed one is put back together from its chunks."""
    if not body.get("stream"):
        response = await client.post(url, json=body, headers=headers)
        response.raise_for_status()
        return response.json()["choices"][0]["message"]
    message: dict[str, Any] = {"role": "assistant", "content": ""}
    calls: dict[int, dict[str, Any]] = {}
    async with client.stream("POST", url, json=body, headers=headers) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                message["content"] += delta.get("content") or ""
                for part in delta.get("tool_calls") or []:
                    call = calls.setdefault(part["index"], {"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
                    call["id"] = part.get("id") or call["id"]
                    function = part.get("function") or {}
                    call["function"]["name"] += function.get("name") or ""
                    call["function"]["arguments"] += function.get("arguments") or ""
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    return message


async def react(
    messages: list[dict[str, Any]],
    *,
    model_url: str,
    key: str,
    model: str,
    mcp: Mapping[str, tuple[str, Mapping[str, str]]],
    thread: str | None = None,
    stream: bool = False,
    local_tool: bool = False,
) -> list[dict[str, Any]]:
    """Run the conversation ``messages`` to the agent's next answer; return the new messages."""
    import httpx
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    extra = {"X-Aitest-Thread": thread} if thread else {}
    headers = {"Authorization": f"Bearer {key}", **extra}
    new: list[dict[str, Any]] = []
    async with AsyncExitStack() as stack:
        sessions: dict[str, Any] = {}
        tools: list[dict[str, Any]] = [LOCAL_TOOL] if local_tool else []
        for name, (url, mcp_headers) in mcp.items():
            http = await stack.enter_async_context(create_mcp_http_client(headers={**dict(mcp_headers), **extra}))
            streams = await stack.enter_async_context(streamable_http_client(url, http_client=http))
            session = await stack.enter_async_context(ClientSession(streams[0], streams[1]))
            await session.initialize()
            for tool in (await session.list_tools()).tools:
                sessions[tool.name] = session
                tools.append({"type": "function", "function": {"name": tool.name, "description": tool.description or "",
                                                               "parameters": tool.input_schema}})
        client = await stack.enter_async_context(httpx.AsyncClient(timeout=120))
        for _ in range(MAX_STEPS):
            body: dict[str, Any] = {"model": model, "messages": messages + new}
            if tools:
                body["tools"] = tools
            if stream:
                body.update(stream=True, stream_options={"include_usage": True})
            message = await _chat(client, model_url.rstrip("/") + "/chat/completions", headers, body)
            message = {"role": "assistant", "content": message.get("content"), **({"tool_calls": message["tool_calls"]} if message.get("tool_calls") else {})}
            new.append(message)
            if not message.get("tool_calls"):
                return new
            for call in message["tool_calls"]:
                name = call["function"]["name"]
                arguments = json.loads(call["function"]["arguments"] or "{}")
                if name == "local_clock" and local_tool:
                    text = "12:00"
                elif name in sessions:
                    result = await sessions[name].call_tool(name, arguments)
                    text = "".join(getattr(block, "text", "") for block in result.content)
                else:
                    text = f"Unknown tool {name!r}"
                new.append({"role": "tool", "tool_call_id": call["id"], "content": text})
    new.append({"role": "assistant", "content": "I stopped: too many steps."})
    return new
