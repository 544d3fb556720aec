"""The tools the agent has, and how one call runs.

:class:`ToolBox` offers the tools of the agent's servers (``allowed_tools`` applied) to the model
under names providers accept, and maps them back; :func:`run_tools` runs a model's tool calls
concurrently, each answered by a tool double when one matches, by the server otherwise; errors
become tool results the model can read. Also the test's own direct calls (:func:`call_directly`).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ServerError
from ..mcp.connection import ServerConnection
from ..model.llm import ToolRequest
from ..record.records import ToolCall, ToolSpec
from .doubles import DELAY, Doubles, answer, delayed

_SAFE = re.compile(r"[^a-zA-Z0-9_-]")
_VALID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class AgentSetupError(Exception):
    """The agent's tools cannot be offered as configured (clash, unknown allowed tool)."""

# --------------------------------------------------------------------------- tools


def provider_name(name: str, taken: set[str]) -> str:
    """A name providers accept (``^[a-zA-Z0-9_-]{1,64}$``), unique among ``taken``."""
    safe = _SAFE.sub("_", name)[:64] or "tool"
    if safe in taken:
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        safe = f"{safe[:55]}_{digest}"
    return safe


def _properties(schema: Any) -> Any:
    props = schema.get("properties") if isinstance(schema, Mapping) else None
    return props if isinstance(props, Mapping) else {}


class ToolBox:
    """The tools one agent may use, with provider-safe names mapped back to MCP names."""

    def __init__(
        self, connections: Sequence[ServerConnection], allowed: Sequence[str] | None = None, *, resources: bool = False
    ) -> None:
        self.connections = list(connections)
        self.allowed = allowed
        self.resources = resources  # the agent's built-in read_resource tool (docs/mcp.md)
        self.warnings: list[str] = []  # tools not offered, and why: the runtime shows them
        self.doubles: Doubles | None = None  # the conversation's tool doubles, consulted before every call
        self._build()

    def _build(self) -> None:
        self._by_provider: dict[str, tuple[ServerConnection, ToolSpec]] = {}
        self._all: dict[str, list[tuple[ServerConnection, ToolSpec]]] = {}
        self.warnings = []
        for conn in self.connections:
            self.warnings += list(getattr(conn, "warnings", None) or [])
            for spec in conn.tools:
                offers = self._all.setdefault(spec.name, [])
                if any(c is conn for c, _ in offers):  # a server listing one name twice: keep the first
                    self.warnings.append(
                        f"MCP server {conn.name!r} lists the tool {spec.name!r} more than once; "
                        "the first listing is used (tool names must be unique within a server: fix the server)."
                    )
                    continue
                offers.append((conn, spec))
        chosen = self._choose(self.allowed)
        for conn, spec in chosen:
            if spec.schema_problem:
                raise AgentSetupError(
                    f"MCP server {conn.name!r}: tool {spec.name!r} has an invalid input schema: {spec.schema_problem}. "
                    "Fix the tool's parameters in the server, or leave the tool out with the agent's allowed_tools."
                )
        self._name(chosen)

    def _name(self, chosen: list[tuple[ServerConnection, ToolSpec]]) -> None:
        """Provider-safe names: names that are already valid are reserved first, so a
        sanitised name (``ask.model`` -> ``ask_model``) can never take a real tool's name."""
        valid = {spec.name for _, spec in chosen if _VALID.match(spec.name)}
        taken: set[str] = set()
        for conn, spec in chosen:
            if spec.name in valid and spec.name not in taken:
                name = spec.name
            else:
                name = provider_name(spec.name, taken | valid)
            taken.add(name)
            self._by_provider[name] = (conn, spec)
        self.read_resource_name = provider_name(READ_RESOURCE, taken) if self.resources else None

    async def refresh(self) -> list[str]:
        """List the tools again of every server that said its list changed (notifications/
        tools/list_changed); rebuild the offer. Returns what changed, per server."""
        changes = []
        for conn in self.connections:
            if getattr(conn, "tools_changed", False):
                added, removed = await conn.refresh_tools()
                if added or removed:
                    changes.append(f"{conn.name}: " + " ".join([f"+{n}" for n in added] + [f"-{n}" for n in removed]))
        if changes:
            self._build()
        return changes

    def changed(self) -> bool:
        return any(getattr(conn, "tools_changed", False) for conn in self.connections)

    def _choose(self, allowed: Sequence[str] | None) -> list[tuple[ServerConnection, ToolSpec]]:
        if allowed is None:
            for name, offers in self._all.items():
                if len(offers) > 1 and len({c.name for c, _ in offers}) == 1:
                    continue  # one server listing a tool twice: the first listing is kept (see __init__)
                if len(offers) > 1:
                    servers = " and ".join(repr(c.name) for c, _ in offers)
                    raise AgentSetupError(
                        f"Tool {name!r} is offered by servers {servers}. Pick one with allowed_tools "
                        f'(e.g. allowed_tools = ["{offers[0][0].name}.{name}"]) or give the agent one of the servers.'
                    )
            return [offer for offers in self._all.values() for offer in offers]
        chosen: list[tuple[ServerConnection, ToolSpec]] = []
        for entry in allowed:
            offers = self._offers(entry)
            if not offers:
                raise AgentSetupError(
                    f"Allowed tool {entry!r} is not offered by the agent's servers. "
                    f"Available: {', '.join(self.available()) or 'no tools'}."
                )
            if len(offers) > 1:
                raise AgentSetupError(
                    f"Allowed tool {entry!r} is offered by several servers "
                    f"({', '.join(c.name for c, _ in offers)}); write it as server.tool."
                )
            chosen.append(offers[0])
        return chosen

    def _offers(self, entry: str) -> list[tuple[ServerConnection, ToolSpec]]:
        """What an ``allowed_tools`` entry names: ``server.tool`` split at any dot (a server
        ``probe`` with a tool ``ask.model`` is ``probe.ask.model``), else a bare tool name."""
        offers: list[tuple[ServerConnection, ToolSpec]] = []
        for at in [i for i, ch in enumerate(entry) if ch == "."]:
            server, tool = entry[:at], entry[at + 1:]
            offers += [o for o in self._all.get(tool, []) if o[0].name == server]
        if not offers:
            offers = list(self._all.get(entry, []))
        return offers

    def coverage_offer(self) -> list[tuple[str, str, list[str]]]:
        """(server, tool, schema parameter names) of every tool the agent may use: the
        tool-coverage denominator."""
        return [
            (conn.name, spec.name, sorted(str(p) for p in _properties(spec.input_schema)))
            for conn, spec in self._by_provider.values()
        ]

    def available(self) -> list[str]:
        """Every tool of every server, as ``server.tool``."""
        return sorted(f"{c.name}.{name}" for name, offers in self._all.items() for c, _ in offers)

    def schemas(self) -> list[dict[str, Any]]:
        """The tools in the OpenAI function-calling format litellm expects."""
        found = [
            {
                "type": "function",
                "function": {"name": pname, "description": spec.description, "parameters": dict(spec.input_schema)},
            }
            for pname, (_, spec) in self._by_provider.items()
        ]
        if self.read_resource_name:
            found.append({"type": "function", "function": {"name": self.read_resource_name, **READ_RESOURCE_TOOL}})
        return found

    def find(self, name: str) -> tuple[ServerConnection, ToolSpec] | None:
        """A tool this agent may use, by its MCP name or as ``server.tool`` (steps' spelling)."""
        for conn, spec in self._by_provider.values():
            if name in (spec.name, f"{conn.name}.{spec.name}"):
                return conn, spec
        return None

    def offered(self) -> list[str]:
        """The tools this agent may use, by MCP name (``server.tool`` when two servers share one)."""
        names = [spec.name for _, spec in self._by_provider.values()]
        return [f"{conn.name}.{spec.name}" if names.count(spec.name) > 1 else spec.name for conn, spec in self._by_provider.values()]

    def resolve(self, pname: str) -> tuple[ServerConnection, ToolSpec] | None:
        return self._by_provider.get(pname)

    def on_server(self, server: str) -> list[tuple[str, ToolSpec]]:
        """``(provider name, spec)`` of the tools this agent may use on ``server``: what an
        external agent's MCP endpoint for that server lists and accepts (docs/agents.md)."""
        return [(pname, spec) for pname, (conn, spec) in self._by_provider.items() if conn.name == server]

    def known_elsewhere(self, pname: str) -> str | None:
        """The MCP name of a tool the servers offer but this agent may not use."""
        return pname if pname in self._all else None


READ_RESOURCE = "read_resource"
READ_RESOURCE_TOOL: dict[str, Any] = {
    "description": "Read a resource of the MCP servers by its URI (e.g. one a tool result linked to); returns its content.",
    "parameters": {"type": "object", "properties": {"uri": {"type": "string", "description": "The resource URI"}}, "required": ["uri"]},
}


async def read_resource(toolbox: ToolBox, call: ToolCall, arguments: dict[str, Any]) -> ToolCall:
    """The built-in ``read_resource`` tool: the server that lists the URI reads it (else the
    first server that can); errors go back to the model like any tool error."""
    from ..mcp.content import resource_contents_text

    call.name = READ_RESOURCE
    uri = arguments.get("uri")
    if not isinstance(uri, str) or not uri:
        call.is_error, call.result = True, "read_resource needs a 'uri' string."
        return call
    started = time.perf_counter()
    owners = []
    for conn in toolbox.connections:
        try:
            if any(str(r.uri) == uri for r in await conn.list_resources()):
                owners.insert(0, conn)
                continue
        except Exception:
            pass
        owners.append(conn)
    problems = []
    for conn in owners:
        try:
            result = await conn.read_resource(uri)
        except ServerError:
            raise
        except Exception as exc:
            problems.append(f"{conn.name}: {type(exc).__name__}: {exc}")
            continue
        call.server, call.result, call.is_error = conn.name, resource_contents_text(result.contents), False
        call.duration_s = time.perf_counter() - started
        return call
    call.is_error = True
    call.result = f"No server could read {uri!r}" + (f" ({'; '.join(problems)})" if problems else "") + "."
    return call


# The result of a call the turn's timeout cut off: calls are recorded before they run, so a
# timeout during one still shows it (and the message names it).
CUT_OFF = "(no answer: the call was cut off by the turn timeout, timeout_s)"


def requested_call(request: ToolRequest) -> ToolCall:
    """The record of a requested call before it runs: an error until an answer replaces it."""
    return ToolCall(request.id, "", None, request.name, None, request.arguments, result=CUT_OFF, is_error=True)


async def run_tool(toolbox: ToolBox, request: ToolRequest, call: ToolCall | None = None) -> ToolCall:
    """Run one requested tool call, filling ``call`` (its record); every failure becomes an
    error result for the model, except a dead server (:class:`ServerError`, re-raised)."""
    call = call or requested_call(request)
    target = toolbox.resolve(request.name)
    if target is None and toolbox.read_resource_name and request.name == toolbox.read_resource_name:
        arguments = _arguments(request, call)
        return call if arguments is None else await read_resource(toolbox, call, arguments)
    if target is None:
        refused = toolbox.known_elsewhere(request.name)
        call.name = refused or request.name
        call.is_error = True
        call.result = (
            f"Tool {request.name!r} is not allowed for this agent."
            if refused
            else f"Unknown tool {request.name!r}. Use one of the tools you were given."
        )
        return call
    conn, spec = target
    call.name, call.server = spec.name, conn.name
    call.title, call.annotations = getattr(spec, "title", None), _plain_dict(getattr(spec, "annotations", None))
    arguments = _arguments(request, call)
    if arguments is None:
        return call
    double = toolbox.doubles.find(conn.name, spec.name, arguments) if toolbox.doubles else None
    try:
        if double is None:
            outcome = await conn.call(spec.name, arguments)
        elif double.kind == DELAY:  # the real call, later
            outcome = await delayed(double, spec.name, lambda: conn.call(spec.name, arguments))
        else:  # never reaches the server
            outcome = answer(double)
        call.doubled = double.kind if double is not None else None
    except ServerError as exc:
        call.result = f"(no answer: {str(exc).splitlines()[0]})"
        raise
    call.result, call.is_error, call.duration_s = outcome.text, outcome.is_error, outcome.duration_s
    _take_events(call, outcome)
    return call


async def call_directly(conn: ServerConnection, spec: ToolSpec, arguments: dict[str, Any], call_id: str) -> ToolCall:
    """The test's own call of a tool (no model, no doubles): recorded as ``by_test``. A dead
    server raises :class:`ServerError`, as in a turn."""
    call = ToolCall(call_id, spec.name, conn.name, spec.name, arguments, json.dumps(arguments, ensure_ascii=False), by_test=True)
    outcome = await conn.call(spec.name, arguments)
    call.result, call.is_error, call.duration_s = outcome.text, outcome.is_error, outcome.duration_s
    _take_events(call, outcome)
    return call


def _arguments(request: ToolRequest, call: ToolCall) -> dict[str, Any] | None:
    """The request's arguments as a JSON object, or None (and an error result on ``call``)."""
    try:
        arguments = json.loads(request.arguments) if request.arguments.strip() else {}
    except json.JSONDecodeError as exc:
        call.is_error = True
        call.result = f"Arguments are not valid JSON ({exc.msg} at position {exc.pos}); send a JSON object."
        return None
    if not isinstance(arguments, dict):
        call.is_error = True
        call.result = "Arguments must be a JSON object."
        return None
    call.arguments = arguments
    return arguments


def _plain_dict(value: Any) -> dict[str, Any] | None:
    return dict(value) if value else None


def _take_events(call: ToolCall, outcome: Any) -> None:
    """Copy what happened during the call (MCP client features) onto its record."""
    events = getattr(outcome, "events", None)
    if events is not None:
        # the same lists: a log message read just after the result still lands on the record
        call.elicitations, call.sampling_calls = events.elicitations, events.sampling_calls
        call.progress, call.logs = events.progress, events.logs
    view = getattr(outcome, "view", None)
    if view is not None:
        call.content_items = list(view.items)
        call._images = list(view.images)  # type: ignore[attr-defined]  # for the model only: never serialised
    call.structured_content = getattr(outcome, "structured_content", None)


async def run_tools(toolbox: ToolBox, requests: Sequence[ToolRequest], calls: Sequence[ToolCall] | None = None) -> list[ToolCall]:
    """Run all tool calls of one model reply concurrently, filling ``calls`` (their records,
    in request order). A dead server raises its one :class:`ServerError` after the other
    calls have finished, never an exception group."""
    import anyio

    records = list(calls) if calls is not None else [requested_call(r) for r in requests]
    failures: list[ServerError] = []

    async def one(req: ToolRequest, call: ToolCall) -> None:
        try:
            await run_tool(toolbox, req, call)
        except ServerError as exc:
            failures.append(exc)

    async with anyio.create_task_group() as group:
        for req, call in zip(requests, records):
            group.start_soon(one, req, call)
    if failures:
        raise failures[0]
    return records
