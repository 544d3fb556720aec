"""The MCP endpoints: each MCP server of an external agent, served to it over streamable HTTP.

An external agent does not reach the MCP servers behave-aitest starts; it reaches
``<base>/mcp/<server>`` instead, one URL per server, on the run's local HTTP server (127.0.0.1,
the per-run key). Each request is handed to injected async functions that the runtime
binds to the conversation in flight: ``list_tools`` (the server's tools after the agent's
``allowed_tools``) and ``call_tool`` (recorded on the turn like the built-in loop's calls,
answered by a tool double where one is set, proxied to the real server otherwise). So the
server keeps its scope, ``${AITEST_SERVER_DIR}`` and environment, and its own requests
(elicitation, sampling, roots) are answered by the scenario on behave-aitest's side of the
connection, as for the built-in loop.

The protocol spoken is the streamable HTTP transport in its JSON-response form (a POST is
answered with ``application/json``; there is no server-initiated stream, GET is 405), with
the initialize handshake (2024-11-05 up to 2025-11-25). A client that probes
``server/discover`` (the 2026-07-28 era) gets "method not found" and falls back to the
handshake, as the specification tells it to. No session id is needed: the endpoint keeps
no per-client state, so a client may reconnect at will.

Resources and prompts pass through (``forward``): ``resources/list``,
``resources/templates/list``, ``resources/read``, ``prompts/list`` and ``prompts/get`` are
asked of the conversation's own server connection and answered with what it says, every page
in one answer. They are not tool calls: ``allowed_tools`` does not apply to them and they are
not recorded on the turn.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, unquote

from ..model.localhttp import LocalHTTPServer, Request, Response, json_response

THREAD_HEADER = "x-aitest-thread"
PROTOCOL_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
LATEST = PROTOCOL_VERSIONS[-1]
METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL = -32601, -32602, -32603

ListTools = Callable[[str, "str | None"], Awaitable[list[dict[str, Any]]]]
CallTool = Callable[[str, str, dict[str, Any], "str | None"], Awaitable[dict[str, Any]]]
Forward = Callable[[str, str, dict[str, Any], "str | None"], Awaitable[dict[str, Any]]]
# Requests answered by the conversation's own connection to the server (docs/agents.md).
FORWARDED = ("resources/list", "resources/templates/list", "resources/read", "prompts/list", "prompts/get")


class ToolCallRefused(Exception):
    """``call_tool`` cannot run the call at all (not a tool error): a JSON-RPC error to the agent."""


class McpEndpoint:
    """``/mcp/<server>`` for every server name in ``servers``, on ``http``."""

    def __init__(
        self, http: LocalHTTPServer, servers: list[str], list_tools: ListTools, call_tool: CallTool, forward: Forward | None = None
    ) -> None:
        self.http = http
        self.servers = list(servers)
        self.list_tools = list_tools
        self.call_tool = call_tool
        self.forward = forward
        self.calls = 0  # tools/call requests that reached the endpoint (any server)
        http.route("/mcp", self._handle)

    def url(self, server: str) -> str:
        return f"{self.http.base}/mcp/{quote(server, safe='')}"

    def urls(self) -> dict[str, str]:
        return {name: self.url(name) for name in self.servers}

    async def _handle(self, request: Request) -> Response:
        server = unquote(request.path[len("/mcp/"):].strip("/")) if request.path.startswith("/mcp/") else ""
        if server not in self.servers:
            known = ", ".join(self.urls().values()) or "none (the agent has no servers)"
            return json_response(404, {"error": f"behave-aitest: no MCP server {server!r} here; the agent's MCP URLs: {known}"})
        if request.method == "DELETE":
            return Response(200)
        if request.method != "POST":  # no server-initiated stream: the client goes on without one
            return Response(405, headers={"Allow": "POST, DELETE"})
        try:
            message = request.json()
        except ValueError as exc:
            return json_response(400, _error(None, -32700, f"Parse error: {exc}"))
        thread = request.headers.get(THREAD_HEADER) or None
        if isinstance(message, list):  # a JSON-RPC batch (2025-03-26)
            answers = [a for a in [await self._one(server, m, thread) for m in message] if a is not None]
            return json_response(200, answers) if answers else Response(202)
        answer = await self._one(server, message, thread)
        return json_response(200, answer) if answer is not None else Response(202)

    async def _one(self, server: str, message: Any, thread: str | None) -> dict[str, Any] | None:
        if not isinstance(message, dict) or "method" not in message:
            return None  # a response or notification from the client: nothing to answer
        method, ident = message.get("method"), message.get("id")
        if ident is None:
            return None  # notifications/initialized, cancelled, ...
        params = message.get("params") or {}
        try:
            if method == "initialize":
                asked = params.get("protocolVersion")
                result: dict[str, Any] = {
                    "protocolVersion": asked if asked in PROTOCOL_VERSIONS else LATEST,
                    "capabilities": {
                        "tools": {"listChanged": False},
                        **({"resources": {}, "prompts": {}} if self.forward is not None else {}),
                    },
                    "serverInfo": {"name": f"behave-aitest {server}", "version": "1"},
                }
            elif method == "ping":
                result = {}
            elif method == "tools/list":
                result = {"tools": await self.list_tools(server, thread)}
            elif method == "tools/call":
                name, arguments = params.get("name"), params.get("arguments") or {}
                if not isinstance(name, str) or not isinstance(arguments, dict):
                    return _error(ident, INVALID_PARAMS, "tools/call needs a 'name' string and an 'arguments' object")
                self.calls += 1
                result = await self.call_tool(server, name, arguments, thread)
            elif method in FORWARDED and self.forward is not None:
                if not isinstance(params, dict):
                    return _error(ident, INVALID_PARAMS, f"{method} needs its params as an object")
                result = await self.forward(server, str(method), params, thread)
            else:
                served = "the tools, resources and prompts" if self.forward is not None else "the tools"
                return _error(ident, METHOD_NOT_FOUND, f"Method not found: {method} (behave-aitest serves {served} of {server!r})")
        except ToolCallRefused as exc:
            return _error(ident, INTERNAL, str(exc))
        return {"jsonrpc": "2.0", "id": ident, "result": result}


def _error(ident: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": ident, "error": {"code": code, "message": message}}
