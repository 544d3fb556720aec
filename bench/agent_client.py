"""The external agent of bench item 11 (bench/agents.py), copied into each benchmark project.

A ``python =`` agent that times its own requests (``time.perf_counter`` around each one) and
appends them to the file named by ``BENCH_SAMPLES``: ``model_calls`` and ``tool_calls`` make
``BENCH_CALLS`` requests, to behave-aitest's endpoints or, when ``BENCH_DIRECT_MODEL_URL`` /
``BENCH_DIRECT_MCP_URL`` is set, straight to the model or MCP server; ``banker`` is one ordinary
agent turn (MCP initialize and tools/list, model, tool, model) through the endpoints. One
``httpx`` client per turn, kept open: the requests measure the endpoints, not connection set-up.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import httpx

ACCEPT = "application/json, text/event-stream"


def _record(times: list[float]) -> None:
    with open(os.environ["BENCH_SAMPLES"], "a", encoding="utf-8") as out:
        out.write("".join(f"{t:.9f}\n" for t in times))


class Mcp:
    """JSON-RPC over streamable HTTP: the answer as JSON or as server-sent events; the session id kept."""

    def __init__(self, client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> None:
        self.client, self.url, self.headers, self.next_id = client, url, {"Accept": ACCEPT, **headers}, 0

    async def request(self, method: str, params: dict[str, Any] | None = None, notify: bool = False) -> Any:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params or {}}
        if not notify:
            self.next_id += 1
            message["id"] = self.next_id
        response = await self.client.post(self.url, json=message, headers=self.headers)
        response.raise_for_status()
        if "mcp-session-id" in response.headers:
            self.headers["Mcp-Session-Id"] = response.headers["mcp-session-id"]
        if notify:
            return None
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            for line in response.text.splitlines():
                if line.startswith("data:"):
                    event = json.loads(line[5:])
                    if event.get("id") == message["id"]:
                        return event["result"]
            raise RuntimeError(f"no answer to {method} in the event stream")
        return response.json()["result"]

    async def open(self) -> list[dict[str, Any]]:
        hello = await self.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}})
        self.headers["MCP-Protocol-Version"] = hello.get("protocolVersion", "2025-06-18")
        await self.request("notifications/initialized", notify=True)
        return (await self.request("tools/list"))["tools"]


async def model_calls(turn: Any) -> str:
    direct = os.environ.get("BENCH_DIRECT_MODEL_URL")
    base, key = (direct, "sk-fake") if direct else (turn.model_url, turn.model_key)
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "Hello"}]}
    headers = {"Authorization": f"Bearer {key}"}
    times = []
    async with httpx.AsyncClient(timeout=60) as client:
        for _ in range(int(os.environ["BENCH_CALLS"])):
            started = time.perf_counter()
            response = await client.post(base.rstrip("/") + "/chat/completions", json=body, headers=headers)
            response.raise_for_status()
            response.json()
            times.append(time.perf_counter() - started)
    _record(times)
    return f"{len(times)} model calls done"


async def tool_calls(turn: Any) -> str:
    direct = os.environ.get("BENCH_DIRECT_MCP_URL")
    url, headers = (direct, {}) if direct else (turn.mcp["bank"].url, dict(turn.mcp["bank"].headers))
    times = []
    async with httpx.AsyncClient(timeout=60) as client:
        bank = Mcp(client, url, headers)
        await bank.open()
        for _ in range(int(os.environ["BENCH_CALLS"])):
            started = time.perf_counter()
            result = await bank.request("tools/call", {"name": "get_balance", "arguments": {"account": "checking"}})
            times.append(time.perf_counter() - started)
            if result.get("isError"):
                raise RuntimeError(f"get_balance failed: {result}")
    _record(times)
    return f"{len(times)} tool calls done"


async def banker(turn: Any) -> str:
    """One agent turn: the tools from the MCP endpoint, then model, tools, model until text."""
    async with httpx.AsyncClient(timeout=60) as client:
        bank = Mcp(client, turn.mcp["bank"].url, dict(turn.mcp["bank"].headers))
        tools = [{"type": "function", "function": {"name": t["name"], "description": t.get("description", ""), "parameters": t["inputSchema"]}}
                 for t in await bank.open()]
        messages = [{"role": "system", "content": "You are a careful banking assistant."}, *turn.messages]
        for _ in range(6):
            response = await client.post(turn.model_url.rstrip("/") + "/chat/completions",
                                         json={"model": turn.model, "messages": messages, "tools": tools},
                                         headers={"Authorization": f"Bearer {turn.model_key}"})
            response.raise_for_status()
            message = response.json()["choices"][0]["message"]
            if not message.get("tool_calls"):
                return message.get("content") or ""
            messages.append({"role": "assistant", "content": message.get("content"), "tool_calls": message["tool_calls"]})
            for call in message["tool_calls"]:
                result = await bank.request("tools/call", {"name": call["function"]["name"], "arguments": json.loads(call["function"]["arguments"] or "{}")})
                text = "\n".join(block.get("text", "") for block in result.get("content", []))
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": text})
        raise RuntimeError("no answer after 6 model calls")
