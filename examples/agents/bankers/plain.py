"""An agent loop with the standard library only: the model over HTTP, MCP servers over HTTP.

What the HTTP service (http_banker.py) and the CLI agent (cli_banker.py) share. No framework
and no SDK, on purpose: it shows the two wires any agent, in any language, speaks to
behave-aitest — the OpenAI chat-completions API at a base URL, and MCP's streamable HTTP
transport (JSON-RPC in a POST, the answer as JSON or as a server-sent event) at one URL per
server, each with a bearer key. It starts in milliseconds, which matters for a CLI agent run
once per turn.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bankers.common import INSTRUCTIONS, text_of, text_turns

MAX_ROUNDS = 8  # model calls per turn before the agent gives up
TIMEOUT_S = 120


class AgentError(RuntimeError):
    """The turn cannot be answered (the model or an MCP server is unreachable or refuses)."""


def post_json(url: str, body: Mapping[str, Any], headers: Mapping[str, str]) -> tuple[dict[str, str], bytes]:
    """POST ``body`` as JSON; the response headers (lower-case names) and body."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as exc:
        raise AgentError(f"{url} answered HTTP {exc.code}: {exc.read()[:300]!r}") from None
    except OSError as exc:
        raise AgentError(f"{url} could not be reached: {exc}") from None


class McpClient:
    """The client half of MCP's streamable HTTP transport, for one server."""

    def __init__(self, url: str, headers: Mapping[str, str]) -> None:
        self.url = url
        self.headers = {"Accept": "application/json, text/event-stream", **headers}
        self.next_id = 0

    def request(self, method: str, params: Mapping[str, Any] | None = None, notify: bool = False) -> Any:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": dict(params or {})}
        if not notify:
            self.next_id += 1
            message["id"] = self.next_id
        headers, body = post_json(self.url, message, self.headers)
        if "mcp-session-id" in headers:
            self.headers["Mcp-Session-Id"] = headers["mcp-session-id"]
        if notify:
            return None
        reply = self._find_reply(headers.get("content-type", ""), body, message["id"])
        if "error" in reply:
            raise AgentError(f"MCP {method} failed: {reply['error'].get('message')}")
        return reply.get("result")

    @staticmethod
    def _find_reply(content_type: str, body: bytes, wanted: int) -> dict[str, Any]:
        if content_type.startswith("text/event-stream"):
            for line in body.decode().splitlines():
                if line.startswith("data:"):
                    event = json.loads(line[5:])
                    if isinstance(event, dict) and event.get("id") == wanted:
                        return event
            raise AgentError("the MCP server's event stream held no answer")
        return dict(json.loads(body))

    def open(self) -> list[dict[str, Any]]:
        """Initialize the session; the server's tools as OpenAI function tools."""
        init = self.request("initialize", {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "plain-banker", "version": "1.0"},
        })
        self.headers["MCP-Protocol-Version"] = str(init.get("protocolVersion", "2025-06-18"))
        self.request("notifications/initialized", notify=True)
        return [
            {"type": "function", "function": {
                "name": tool["name"],
                "description": tool.get("description", ""),
                "parameters": tool.get("inputSchema") or {"type": "object", "properties": {}},
            }}
            for tool in self.request("tools/list")["tools"]
        ]

    def call(self, name: str, arguments: Mapping[str, Any]) -> str:
        result = self.request("tools/call", {"name": name, "arguments": dict(arguments)})
        text = "\n".join(str(block.get("text", "")) for block in result.get("content", []) if block.get("type") == "text")
        return f"Error: {text}" if result.get("isError") else text


@dataclass(frozen=True)
class Model:
    """Where the model is: an OpenAI-compatible base URL (ending in ``/v1``), its key, a model name."""

    base_url: str
    key: str
    name: str
    headers: Mapping[str, str] | None = None  # extra headers (X-Aitest-Thread)

    def complete(self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.name, "messages": list(messages)}
        if tools:
            body["tools"] = list(tools)
        _, raw = post_json(self.base_url.rstrip("/") + "/chat/completions", body,
                           {"Authorization": f"Bearer {self.key}", **(self.headers or {})})
        try:
            return dict(json.loads(raw)["choices"][0]["message"])
        except (ValueError, KeyError, IndexError, TypeError):
            raise AgentError(f"the model answered something that is not a chat completion: {raw[:300]!r}") from None


def answer(conversation: Sequence[Mapping[str, Any]], model: Model, servers: Sequence[McpClient]) -> str:
    """One turn: the model, the servers' tools, the model again, until it answers in text."""
    tools: list[dict[str, Any]] = []
    owner: dict[str, McpClient] = {}
    for server in servers:
        for tool in server.open():
            owner[tool["function"]["name"]] = server
            tools.append(tool)
    messages: list[dict[str, Any]] = [{"role": "system", "content": INSTRUCTIONS}, *text_turns(conversation)]
    for _ in range(MAX_ROUNDS):
        message = model.complete(messages, tools)
        calls = message.get("tool_calls") or []
        if not calls:
            return text_of(message.get("content"))
        messages.append({"role": "assistant", "content": message.get("content"), "tool_calls": calls})
        for call in calls:
            name = call["function"]["name"]
            try:
                arguments = json.loads(call["function"]["arguments"] or "{}")
                result = owner[name].call(name, arguments) if name in owner else f"Error: there is no tool {name!r}"
            except (ValueError, AgentError) as exc:
                result = f"Error: {exc}"
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": result})
    raise AgentError(f"no answer after {MAX_ROUNDS} model calls")
