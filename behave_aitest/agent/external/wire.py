"""Both wires of an external agent: the model endpoint and the MCP endpoints of one worker,
and which conversation in flight each request belongs to.

One :class:`AgentWires` per worker (started on first use, closed with the run): one local
HTTP server, one random key, one model endpoint, one MCP endpoint per server name. Its
URLs never change, so an agent service started once per worker keeps them. Each request
is attributed to a :class:`TurnInFlight` — by the ``X-Aitest-Thread`` header when the agent
forwards it, else the only turn in flight — which answers it the way the built-in loop
would: the model through the conversation's completer (cassette, price, limits, retries),
the tools through its :class:`~behave_aitest.engine.ToolBox` (allowed_tools, doubles,
events), both recorded on the turn.
"""

from __future__ import annotations

import itertools
import json
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .base import Endpoints, McpAccess, write_mcp_config
from ...errors import TurnFailure
from ..loop import Completer, TurnSettings, _complete_with_retries
from ..toolbox import ToolBox, requested_call, run_tool
from ...model.llm import ModelError, ModelReply, ToolRequest
from ...mcp.endpoint import McpEndpoint, ToolCallRefused
from ...model.endpoint import ChatRequest, ModelEndpoint, ModelRefused
from ...model.localhttp import LocalHTTPServer, Request
from ...record.records import ModelCall, Turn


@dataclass
class TurnInFlight:
    """One external agent's turn while it runs: where its model and tool calls go and are recorded."""

    thread: str
    turn: Turn
    complete: Completer
    settings: TurnSettings
    toolbox: ToolBox
    deadline: float
    failure: str | None = None  # "model: ..." / a cassette miss: the turn's error, whatever the agent says after
    asked_models: list[str] = field(default_factory=list)

    async def model(self, chat: ChatRequest) -> ModelReply:
        request = {**self.settings.request, **chat.request}
        if chat.asked_model and chat.asked_model not in self.asked_models:
            self.asked_models.append(chat.asked_model)
        try:
            reply, attempts = await _complete_with_retries(self.complete, request, self.settings, self.deadline)
        except TurnFailure as exc:  # a cassette miss: never the agent's fault
            self.failure = self.failure or f"{exc.kind}: {exc}"
            raise ModelRefused(502, f"behave-aitest: {exc}") from None
        except ModelError as exc:
            self.failure = self.failure or f"model: {exc}"
            raise ModelRefused(502, f"behave-aitest: the model call failed: {exc}") from None
        self.turn.model_calls.append(
            ModelCall(
                model=self.settings.model, input_tokens=reply.input_tokens, output_tokens=reply.output_tokens,
                cost_usd=reply.cost_usd, latency_s=reply.latency_s, finish_reason=reply.finish_reason,
                tool_call_count=len(reply.tool_calls), attempts=attempts, replayed=reply.replayed,
                recorded_cost_usd=reply.recorded_cost_usd,
            )
        )
        return reply

    def _provider_name(self, server: str, tool: str) -> str | None:
        return next((pname for pname, spec in self.toolbox.on_server(server) if spec.name == tool), None)

    async def list_tools(self, server: str) -> list[dict[str, Any]]:
        if self.toolbox.changed():  # notifications/tools/list_changed: list again, as the built-in loop does
            self.turn.tool_list_changes += await self.toolbox.refresh()
        tools = []
        for _, spec in self.toolbox.on_server(server):
            tool: dict[str, Any] = {"name": spec.name, "description": spec.description, "inputSchema": dict(spec.input_schema)}
            if spec.title:
                tool["title"] = spec.title
            if spec.annotations:
                tool["annotations"] = dict(spec.annotations)
            tools.append(tool)
        return tools

    async def forward(self, server: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """A resources or prompts request (``mcp.endpoint.FORWARDED``), asked of the conversation's
        own connection to ``server``: the same process, scope and state its tools run in."""
        conn = next((c for c in self.toolbox.connections if c.name == server), None)
        live = getattr(conn, "connection", conn)  # a connection whose tool calls go to a cassette
        if live is None or not hasattr(live, "read_resource"):
            why = "its tools are replayed from a cassette (no process)" if conn is not None else "the agent has no such server"
            raise ToolCallRefused(f"behave-aitest: {method} cannot reach MCP server {server!r}: {why}")
        try:
            if method == "resources/list":
                return {"resources": [_wire(r) for r in await live.list_resources()]}
            if method == "resources/templates/list":
                return {"resourceTemplates": [_wire(t) for t in await live.list_resource_templates()]}
            if method == "prompts/list":
                return {"prompts": [_wire(p) for p in await live.list_prompts()]}
            if method == "resources/read":
                uri = params.get("uri")
                if not isinstance(uri, str):
                    raise ToolCallRefused("behave-aitest: resources/read needs a 'uri' string")
                return _wire(await live.read_resource(uri))
            name, arguments = params.get("name"), params.get("arguments") or {}
            if not isinstance(name, str) or not isinstance(arguments, dict):
                raise ToolCallRefused("behave-aitest: prompts/get needs a 'name' string and an 'arguments' object")
            return _wire(await live.get_prompt(name, {str(k): str(v) for k, v in arguments.items()}))
        except ToolCallRefused:
            raise
        except Exception as exc:  # the server's own refusal (an unknown URI, a missing argument): its words
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ToolCallRefused(f"MCP server {server!r}: {method} failed: {text}") from None

    async def call_tool(self, server: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        pname = self._provider_name(server, name)
        request = ToolRequest(f"mcp_{len(self.turn.tool_calls) + 1}", pname or name, json.dumps(arguments, ensure_ascii=False))
        call = requested_call(request)
        self.turn.tool_calls.append(call)
        if pname is None:  # not offered on this server (unknown, or left out by allowed_tools)
            refused = self.toolbox.known_elsewhere(name)
            call.name, call.arguments = name, arguments
            call.result = f"Tool {name!r} is not allowed for this agent." if refused else f"Unknown tool {name!r} on server {server!r}."
            return {"content": [{"type": "text", "text": call.result}], "isError": True}
        try:
            await run_tool(self.toolbox, request, call)
        except Exception as exc:  # a dead server: the turn errors, the agent gets an error
            self.failure = self.failure or f"server: {exc}"
            raise ToolCallRefused(f"behave-aitest: the MCP server {server!r} failed: {str(exc).splitlines()[0]}") from None
        content: list[dict[str, Any]] = [{"type": "text", "text": call.result}]
        for image in call.__dict__.pop("_images", []):  # the server's images reach the agent as images
            content.append({"type": "image", "data": image.get("data", ""), "mimeType": image.get("mime_type", "image/png")})
        result: dict[str, Any] = {"content": content, "isError": call.is_error}
        if call.structured_content is not None and not call.doubled:
            result["structuredContent"] = call.structured_content
        return result



def _wire(item: Any) -> dict[str, Any]:
    """An MCP SDK result or item as it goes on the wire (camelCase, no empty fields)."""
    return dict(item.model_dump(by_alias=True, exclude_none=True, mode="json"))

class AgentWires:
    """The worker's endpoints; :meth:`begin`/:meth:`end` bracket each external turn."""

    def __init__(self, servers: list[str], model_name: str, folder: Path) -> None:
        # an "sk-" key: the secret rule (text/redact.py) knows the shape, so it is redacted wherever it shows up
        self.key = "sk-aitest-" + secrets.token_urlsafe(24)
        self.http = LocalHTTPServer(self.key, on_refused=self._refused)
        self.model_endpoint = ModelEndpoint(self.http, self._model, model_name)
        self.mcp_endpoint = McpEndpoint(self.http, sorted(set(servers)), self._list_tools, self._call_tool, self._forward)
        self.folder = folder
        self.in_flight: dict[str, TurnInFlight] = {}
        self.refusals: list[str] = []  # requests without the key: warned about on the turn in flight
        self._threads = itertools.count(1)
        self.endpoints: Endpoints | None = None

    async def start(self) -> Endpoints:
        await self.http.start()
        return self._publish()

    def _publish(self) -> Endpoints:
        headers = {"Authorization": f"Bearer {self.key}"}
        mcp = {name: McpAccess(self.mcp_endpoint.url(name), headers) for name in self.mcp_endpoint.servers}
        self.endpoints = write_mcp_config(Endpoints(self.model_endpoint.url, self.key, mcp), self.folder)
        return self.endpoints

    def serve(self, servers: list[str]) -> Endpoints:
        """Also serve these server names (a scenario gave the agent another server with a
        step); the MCP config file is rewritten in place, the URLs of the others stay."""
        new = [name for name in servers if name not in self.mcp_endpoint.servers]
        if new and self.endpoints is not None:
            self.mcp_endpoint.servers.extend(new)
            return self._publish()
        assert self.endpoints is not None, "the wires are not started"
        return self.endpoints

    async def close(self) -> None:
        await self.http.close()

    def begin(self, flight: TurnInFlight) -> None:
        self.in_flight[flight.thread] = flight

    def end(self, flight: TurnInFlight) -> None:
        self.in_flight.pop(flight.thread, None)

    def _flight(self, thread: str | None) -> TurnInFlight | None:
        if thread is not None and thread in self.in_flight:
            return self.in_flight[thread]
        if len(self.in_flight) == 1:
            return next(iter(self.in_flight.values()))
        return None

    def _nobody(self, thread: str | None) -> str:
        if thread is not None:
            return f"behave-aitest: no turn of thread {thread!r} is in flight (X-Aitest-Thread)"
        if self.in_flight:
            return "behave-aitest: several conversations are in flight; send the X-Aitest-Thread header the agent received"
        return "behave-aitest: no agent turn is in flight (a request outside a 'When the user says' step)"

    async def _model(self, chat: ChatRequest) -> ModelReply:
        flight = self._flight(chat.thread)
        if flight is None:
            raise ModelRefused(409, self._nobody(chat.thread), "invalid_request_error")
        return await flight.model(chat)

    async def _list_tools(self, server: str, thread: str | None) -> list[dict[str, Any]]:
        flight = self._flight(thread)
        if flight is None:
            raise ToolCallRefused(self._nobody(thread))
        return await flight.list_tools(server)

    async def _call_tool(self, server: str, name: str, arguments: dict[str, Any], thread: str | None) -> dict[str, Any]:
        flight = self._flight(thread)
        if flight is None:
            raise ToolCallRefused(self._nobody(thread))
        return await flight.call_tool(server, name, arguments)

    async def _forward(self, server: str, method: str, params: dict[str, Any], thread: str | None) -> dict[str, Any]:
        flight = self._flight(thread)
        if flight is None:
            raise ToolCallRefused(self._nobody(thread))
        return await flight.forward(server, method, params)

    def _refused(self, request: Request) -> None:
        line = f"a request to {request.method} {request.path} came without the per-run key and was refused (401)"
        self.refusals.append(line)
        for flight in self.in_flight.values():
            if line not in flight.turn.warnings:
                flight.turn.warnings.append(line)
        print(f"behave-aitest WARNING: {line}", file=sys.stderr)

