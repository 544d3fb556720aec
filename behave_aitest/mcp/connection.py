"""MCP connections: start or reach one MCP server and talk to it with the official SDK.

One :func:`connect` is one async context manager that owns the transport, the client
session and the handshake, so that entering and leaving it happen in the same task
(the run's portal enters it with ``wrap_async_context_manager``). The ``mcp`` package
is imported inside the functions: a ``behave --dry-run`` never pays for it.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ConfigError, ServerConfig, expand_env
from ..errors import ServerError
from ..model.limits import start_slot
from ..record.records import ToolOutcome, ToolSpec
from .launch import new_server_dir, resolve_command, server_cwd, server_environment
from .processes import _children, _new_group, stop_group


def schema_problem(schema: Any) -> str | None:
    """Why ``schema`` cannot describe a tool's arguments, or None when it can.

    Checked once per connection: a provider rejects an invalid schema with an HTTP 400 that
    names neither the server nor the tool, so we say it first, where it is.
    """
    if not isinstance(schema, Mapping):
        return f"expected a JSON object, got {type(schema).__name__}"
    if schema.get("type", "object") != "object":
        return f'the top level must be "type": "object", not {schema.get("type")!r}'
    key = json.dumps(schema, sort_keys=True, default=str)
    if key not in _SCHEMA_PROBLEMS:  # servers restart per conversation: check each schema once
        _SCHEMA_PROBLEMS[key] = _check_schema(schema)
    return _SCHEMA_PROBLEMS[key]


_SCHEMA_PROBLEMS: dict[str, str | None] = {}


def _check_schema(schema: Mapping[str, Any]) -> str | None:
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import validator_for

    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "the top level"
        return f"{exc.message} (at {where})"
    return None


@dataclass
class ServerConnection:
    """A live, initialised MCP client session and the tools it offers."""

    config: ServerConfig
    session: Any  # mcp.ClientSession
    tools: list[ToolSpec] = field(default_factory=list)
    errlog: Path | None = None
    alive: bool = True
    incoming: Any = None  # the transport's read stream: its closing is how a dead server shows
    client: Any = None  # clientside.ClientSide: answers the server's questions, collects its events
    mcp: Any = None  # the SDK's mcp.Client over this session (input_required rounds, relisting)
    warnings: list[str] = field(default_factory=list)  # tools not offered, and why
    listening: bool = False  # a 2026-07-28 subscriptions/listen stream carries its tool-list changes
    task_only: list[str] = field(default_factory=list)  # tools listed with execution.taskSupport = "required": not offered

    def transport_closed(self) -> bool:
        """The transport has ended (the server's stdout closed, the HTTP stream ended):
        decided on its state, never on the words of an error."""
        try:
            return bool(self.incoming is not None and self.incoming.statistics().open_send_streams == 0)
        except Exception:  # a stream of another kind: only its exceptions say it is gone
            return False

    @property
    def name(self) -> str:
        return self.config.name

    def stderr_tail(self, lines: int = 20) -> str:
        return stderr_tail(self.errlog, lines)

    async def call(self, tool: str, arguments: Mapping[str, Any]) -> ToolOutcome:
        """Call ``tool``; MCP errors and timeouts come back as error outcomes for the model.

        A broken connection (the server process died) raises :class:`ServerError`,
        because no answer the model could read would make the conversation valid.
        """
        import anyio

        started = time.perf_counter()
        events = self.client.begin_call() if self.client is not None else None
        try:
            with anyio.fail_after(self.config.tool_timeout_s):
                result = await self._call_tool(tool, dict(arguments), events)
        except TimeoutError:
            return ToolOutcome(
                f"Tool {tool!r} did not answer within {self.config.tool_timeout_s:g} s (tool_timeout_s).",
                True,
                time.perf_counter() - started,
                events,
            )
        except Exception as exc:
            exc = first_leaf(exc)
            if _transport_failure(exc) or self.transport_closed():  # the server is gone
                self.alive = False
                raise ServerError(
                    f"MCP server {self.name!r} stopped answering during a call to {tool!r}: "
                    f"{type(exc).__name__}: {exc}{_tail_text(self.errlog)}"
                ) from exc
            return ToolOutcome(f"{type(exc).__name__}: {exc}", True, time.perf_counter() - started, events)
        finally:
            if events is not None:
                self.client.end_call(events)
        if self.listening:
            # A change the server published during the call came on the listen stream before
            # the call's answer; let the stream's task mark it before the next model call.
            for _ in range(3):
                await anyio.sleep(0)
        from .content import result_view, structured_for_record

        view = result_view(result)
        return ToolOutcome(
            view.text,
            bool(getattr(result, "is_error", False)),
            time.perf_counter() - started,
            events,
            view,
            structured_for_record(getattr(result, "structured_content", None)),
        )

    async def _call_tool(self, tool: str, arguments: dict[str, Any], events: Any) -> Any:
        """``tools/call`` with a progress token; a 2026-07-28 ``input_required`` answer is
        answered through the same callbacks and retried by the SDK's client."""
        progress = self.client.progress_callback(events) if events is not None else None
        if self.mcp is not None:
            return await self.mcp.call_tool(tool, arguments, read_timeout_seconds=self.config.tool_timeout_s + 5, progress_callback=progress)
        return await self.session.call_tool(tool, arguments, progress_callback=progress)

    # ----------------------------------------------------------------- lists, resources, prompts

    async def refresh_tools(self) -> tuple[list[str], list[str]]:
        """List the tools again (after ``tools/list_changed``): (added, removed) names."""
        if self.client is not None:
            self.client.tools_changed = False
        before = {t.name for t in self.tools}
        listed = await all_tools(self.mcp) if self.mcp is not None else (await self.session.list_tools()).tools
        self.tools, self.warnings = tool_specs(self.config, listed)
        self.task_only = task_only_tools(listed)
        after = {t.name for t in self.tools}
        return sorted(after - before), sorted(before - after)

    @property
    def tools_changed(self) -> bool:
        return bool(self.client is not None and self.client.tools_changed)

    async def read_resource(self, uri: str) -> Any:
        """``resources/read``: the SDK's result (``contents``)."""
        return await (self.mcp or self.session).read_resource(uri)

    async def list_prompts(self) -> list[Any]:
        if not getattr(self.capabilities(), "prompts", None):
            return []
        return list((await (self.mcp or self.session).list_prompts()).prompts)

    async def get_prompt(self, name: str, arguments: Mapping[str, str]) -> Any:
        return await (self.mcp or self.session).get_prompt(name, dict(arguments))

    async def list_resources(self, pages: int = 100) -> list[Any]:
        """Every resource the server lists, page after page (``nextCursor``)."""
        return await self._all_pages("list_resources", "resources", pages)

    async def list_resource_templates(self, pages: int = 100) -> list[Any]:
        """Every resource template (``resources/templates/list``), page after page."""
        return await self._all_pages("list_resource_templates", "resource_templates", pages)

    async def _all_pages(self, method: str, field: str, pages: int) -> list[Any]:
        caps = self.capabilities()
        if caps is not None and not getattr(caps, "resources", None):
            return []  # a 2025 server that declared no resources (a 2026 one declares nothing here)
        found: list[Any] = []
        cursor: str | None = None
        for _ in range(pages):
            page = await getattr(self.mcp or self.session, method)(cursor=cursor)
            found += list(getattr(page, field, None) or [])
            cursor = getattr(page, "next_cursor", None)
            if not cursor:
                break
        return found

    def capabilities(self) -> Any:
        return getattr(self.session, "server_capabilities", None)

    @property
    def protocol_version(self) -> str | None:
        return getattr(self.session, "protocol_version", None)


def template_matches(template: str, uri: str) -> bool:
    """Whether ``uri`` is one of a resource template's URIs (RFC 6570 simple and reserved
    expansion: ``{name}`` is one path segment, ``{+path}`` anything)."""
    import re

    pattern, at = "", 0
    for found in re.finditer(r"\{(\+?)[^}]*\}", template):
        pattern += re.escape(template[at:found.start()]) + (".+" if found.group(1) else "[^/?#]+")
        at = found.end()
    pattern += re.escape(template[at:])
    return re.fullmatch(pattern, uri) is not None


async def all_tools(mcp: Any, pages: int = 100) -> list[Any]:
    """Every tool the server lists, page after page (``nextCursor``), always fresh."""
    tools: list[Any] = []
    cursor: str | None = None
    for _ in range(pages):
        page = await mcp.list_tools(cursor=cursor, cache_mode="refresh")
        tools += page.tools
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


def task_only_tools(listed: Any) -> list[str]:
    """The names of the listed tools that only run as tasks (``execution.taskSupport =
    "required"``): never offered, and a step naming one says why (agent/names.py)."""
    return [t.name for t in listed if getattr(getattr(t, "execution", None), "task_support", None) == "required"]


TASK_ONLY = (
    'only runs as a task (execution.taskSupport = "required"), and behave-aitest does not use the MCP task API'
)


def tool_specs(config: ServerConfig, listed: Any) -> tuple[list[ToolSpec], list[str]]:
    """The tools a server lists, as specs; tools that must run as tasks are left out
    (the client does not speak the task API) with a warning naming them."""
    tools, warnings = [], []
    for t in listed:
        execution = getattr(t, "execution", None)
        task_support = getattr(execution, "task_support", None) if execution is not None else None
        if task_support == "required":
            warnings.append(
                f"MCP server {config.name!r}: tool {t.name!r} is not offered to the model: it {TASK_ONLY} (docs/mcp.md)."
            )
            continue
        schema = dict(t.input_schema or {"type": "object", "properties": {}})
        annotations = t.annotations.model_dump(by_alias=True, exclude_none=True, mode="json") if t.annotations else None
        title = getattr(t, "title", None) or (annotations or {}).get("title")
        tools.append(ToolSpec(config.name, t.name, t.description or "", schema, schema_problem(schema), title, annotations, task_support))
    return tools, warnings


def _transport_failure(exc: BaseException) -> bool:
    """An exception the transport itself raises when the connection is gone. A JSON-RPC
    error (``MCPError``) is the server's answer, whatever its text says ("connection
    closed" included): it goes back to the model as an error result."""
    import anyio

    return isinstance(exc, (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream, BrokenPipeError, ConnectionError))


def stderr_tail(path: Path | None, lines: int = 20) -> str:
    """The last ``lines`` lines a server wrote to stderr ("" when none)."""
    if path is None or not path.exists():
        return ""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _tail_text(path: Path | None) -> str:
    tail = stderr_tail(path)
    return f"\n--- server stderr (last lines) ---\n{tail}" if tail else " (the server wrote nothing to stderr)"


@asynccontextmanager
async def connect(config: ServerConfig, errlog: Path) -> AsyncIterator[ServerConnection]:
    """Start (stdio) or reach (HTTP) the server, initialise, list tools; stop it on exit.

    Any failure before the connection is handed out becomes one :class:`ServerError` that
    names the server and says what to check, including failures that the SDK's transports
    raise from their background tasks (an HTTP server that is down surfaces as an exception
    group when the transport closes, not from ``initialize()``).
    """
    import anyio

    from .clientside import ClientSide

    errlog.parent.mkdir(parents=True, exist_ok=True)
    connection: ServerConnection | None = None
    statuses: list[int] = []  # HTTP error statuses the server answered with
    before = _children() if config.transport == "stdio" else set()
    group: int | None = None
    try:
        async with AsyncExitStack() as stack:
            server_dir = new_server_dir(config) if config.transport == "stdio" else None
            if server_dir is not None:  # removed last: after the server and its helpers have stopped
                stack.callback(shutil.rmtree, server_dir, ignore_errors=True)
            stack.push_async_callback(lambda: stop_group(group))  # after the transport has stopped the server
            # issue 12: in a parallel run, local servers start one per core at a time (limits.start_slot)
            async with start_slot() if config.transport == "stdio" else nullcontext():
                read, write = await _open_transport(config, errlog, stack, statuses, server_dir)
                if config.transport == "stdio":
                    group = _new_group(before)
                client = ClientSide(config.name, config.sampling, config.roots)
                # The handshake is bounded by the client's read timeout: the client opens a task
                # group, which must not be entered inside a cancel scope it outlives.
                mcp = await stack.enter_async_context(_client(read, write, client, config))
                with anyio.fail_after(config.startup_timeout_s):
                    listed = await all_tools(mcp)
            tools, warnings = tool_specs(config, listed)
            connection = ServerConnection(
                config, mcp.session, tools, errlog, incoming=read, client=client, mcp=mcp, warnings=warnings, task_only=task_only_tools(listed)
            )
            connection.listening = await listen_for_tool_changes(mcp, client, stack)
            yield connection
    except (ConfigError, ServerError):
        raise
    except Exception as exc:
        if connection is not None:  # the server was up: what failed is the caller's business
            raise
        leaf = first_leaf(exc)
        mismatch = await era_mismatch(config, errlog, leaf, statuses)
        raise (mismatch or start_failure(config, leaf, errlog, statuses)) from None


async def era_mismatch(config: ServerConfig, errlog: Path, exc: BaseException, statuses: list[int]) -> ServerError | None:
    """A server that refused the protocol era its ``protocol`` key pins: the message saying
    so, or None. A refusal (a JSON-RPC error, an answer the SDK could not read, HTTP 400) of
    a pinned era is checked by connecting once more with ``protocol = "auto"``: only when the
    server then answers in the other era is it said to not speak the pinned one."""
    if config.protocol == "auto" or not _refused(exc, statuses):
        return None
    from dataclasses import replace

    try:
        async with connect(replace(config, protocol="auto"), errlog) as probe:
            spoken = probe.protocol_version
    except Exception:  # not an era matter: the first failure's own message says what it is
        return None
    pinned_modern = config.protocol != "legacy"
    if not spoken or (spoken >= "2026") == pinned_modern:
        return None
    asked = f"protocol revision {config.protocol}" if pinned_modern else 'the 2025 handshake (protocol = "legacy")'
    return ServerError(
        f"MCP server {config.name!r} does not speak {asked}: it answers in revision {spoken}. "
        f'Set protocol = "auto" (protocol in {config.where}) to let behave-aitest negotiate the revision.'
    )


def _refused(exc: BaseException, statuses: list[int]) -> bool:
    """The server answered the first request with a refusal: a JSON-RPC error (not the SDK's
    own timeout), an answer that does not parse as the pinned era's, or HTTP 400."""
    from mcp.shared.exceptions import MCPError
    from pydantic import ValidationError

    if isinstance(exc, TimeoutError) or _timed_out(exc):
        return False
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return isinstance(exc, (MCPError, ValidationError)) or 400 in [status, *statuses]


async def listen_for_tool_changes(mcp: Any, client: Any, stack: AsyncExitStack) -> bool:
    """At 2026-07-28, open a ``subscriptions/listen`` stream for tool-list changes and mark
    them on the client side (``client.tools_changed``) as a 2025 ``notifications/tools/
    list_changed`` would: that era sends no unsolicited notification, so without the stream a
    tool the server adds during a call stays unknown to the next model call. The stream is
    acknowledged before the connection is handed out (no change is missed after it), read by a
    task of ``stack`` and cancelled when the connection closes. An older era, or a server that
    refuses the stream, keeps the connection as it is; False then."""
    import anyio
    from mcp.client.subscriptions import ListenNotSupportedError

    async def listen(*, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        try:
            async with mcp.listen(tools_list_changed=True) as subscription:
                task_status.started(True)
                async for event in subscription:
                    if type(event).__name__ == "ToolsListChanged":
                        client.tools_changed = True
        except ListenNotSupportedError:
            task_status.started(False)
        except Exception:  # refused, or the stream dropped: the connection itself decides what is dead
            try:
                task_status.started(False)
            except RuntimeError:  # already started: the stream ended after its acknowledgement
                pass

    group = await stack.enter_async_context(anyio.create_task_group())
    stack.callback(group.cancel_scope.cancel)  # runs before the group's exit: the stream's task stops
    return bool(await group.start(listen))


def _client(read: Any, write: Any, client: Any, config: ServerConfig) -> Any:
    """The SDK's ``mcp.Client`` over already opened streams: it negotiates the protocol era
    (a ``server/discover`` probe for 2026-07-28 servers, the ``initialize`` handshake for
    older ones) and answers ``input_required`` results by retrying with the answers."""
    from mcp import Client
    from mcp_types import Implementation

    from .. import __version__

    @asynccontextmanager
    async def opened() -> AsyncIterator[tuple[Any, Any]]:
        yield read, write

    return Client(
        opened(),
        mode=config.protocol,  # "auto", "legacy" or a 2026 version (the SDK's own modes)
        read_timeout_seconds=config.startup_timeout_s,  # start-up and lists; tool calls give their own
        cache=None,  # every list is fresh: a changed tool list must show
        client_info=Implementation(name="behave-aitest", version=__version__),
        log_level="debug",  # 2026-07-28 servers send log messages only to requests that opt in
        **client.callbacks(),
    )


# Process groups of the stdio servers still running (their leader's pid) -> the process that
# started them, for a last-resort stop when the run ends abnormally (see stop_all_groups);
# a forked worker of a parallel run must never stop its parent's servers.


def start_failure(config: ServerConfig, exc: BaseException, errlog: Path, statuses: list[int] | None = None) -> ServerError:
    """The message for a server that did not come up, saying what to check."""
    if isinstance(exc, TimeoutError) or _timed_out(exc):
        return ServerError(
            f"MCP server {config.name!r} did not finish start-up within {config.startup_timeout_s:g} s "
            f"(startup_timeout_s in {config.where}).{_tail_text(errlog)}"
        )
    if isinstance(exc, FileNotFoundError) and config.transport == "stdio":
        return ServerError(
            f"MCP server {config.name!r}: command not found: {exc.filename or config.command[0]!r} "
            f"(command in {config.where}). Check the program name and that it is on PATH."
        )
    seen = [s for s in [getattr(getattr(exc, "response", None), "status_code", None), *(statuses or [])] if isinstance(s, int)]
    auth = [s for s in seen if s in (401, 403)]
    status = auth[0] if auth else next(iter(seen), None)
    hint = _sse_hint(config)
    if config.transport != "stdio" and status in (401, 403):
        return ServerError(
            f"MCP server {config.name!r}: authentication failed (HTTP {status}) at {config.url}. "
            f"Check the credentials the server expects in its headers table, e.g. "
            f'headers = {{ Authorization = "Bearer ${{MY_TOKEN}}" }} (headers in {config.where}).'
        )
    if config.transport != "stdio" and isinstance(status, int) and status >= 400:
        kind = "server error" if status >= 500 else "the server refused the connection"
        return ServerError(
            f"MCP server {config.name!r}: {kind} (HTTP {status}) at {config.url}. "
            f"{hint or 'The server is running but failed; see its own log'} (url in {config.where})."
        )
    if config.transport != "stdio":
        return ServerError(
            f"MCP server {config.name!r} failed to start: cannot reach {config.url} ({config.transport}): "
            f"{type(exc).__name__}: {exc}. {hint or 'Is the server running? behave-aitest connects to HTTP servers; it does not start them'} "
            f"(url in {config.where})."
        )
    return ServerError(f"MCP server {config.name!r} failed to start: {type(exc).__name__}: {exc}{_tail_text(errlog)}")


def _sse_hint(config: ServerConfig) -> str:
    """A URL ending in ``/sse`` is an SSE endpoint: without ``transport = "sse"`` it is
    spoken to as streamable HTTP, which such a server does not understand."""
    from urllib.parse import urlparse

    path = urlparse(config.url or "").path.rstrip("/")
    if config.transport == "streamable-http" and path.endswith("/sse"):
        return (
            'The url ends in /sse, the usual address of an SSE server, but the transport is "streamable-http": '
            'add transport = "sse" to the server\'s table'
        )
    return ""


def _timed_out(exc: BaseException) -> bool:
    """The SDK's own request timeout (an ``MCPError`` with code ``REQUEST_TIMEOUT``)."""
    from mcp_types import REQUEST_TIMEOUT

    return getattr(getattr(exc, "error", None), "code", None) == REQUEST_TIMEOUT


def first_leaf(exc: BaseException) -> BaseException:
    """The first real exception inside (possibly nested) exception groups.

    Duck-typed: on Python 3.10 the groups are the ``exceptiongroup`` backport's (via anyio).
    """
    while isinstance(getattr(exc, "exceptions", None), (list, tuple)) and exc.exceptions:  # type: ignore[attr-defined]
        exc = exc.exceptions[0]  # type: ignore[attr-defined]
    return exc


async def _open_transport(
    config: ServerConfig, errlog: Path, stack: AsyncExitStack, statuses: list[int], server_dir: str | None = None
) -> tuple[Any, Any]:
    """Enter the transport for ``config`` on ``stack`` and return its read/write streams;
    HTTP error statuses are noted in ``statuses`` (the SDK's error does not carry them)."""
    if config.transport == "stdio":
        from mcp import StdioServerParameters
        from mcp.client.stdio import stdio_client

        program, args = resolve_command(config.command, server_dir)
        params = StdioServerParameters(
            command=program,
            args=args,
            env=server_environment(config, server_dir=server_dir),
            cwd=server_cwd(config, server_dir),
        )
        log = stack.enter_context(open(errlog, "a", encoding="utf-8"))
        read, write = await stack.enter_async_context(stdio_client(params, errlog=log))
        return read, write
    url = expand_env(config.url or "", f"{config.where} url")
    headers = {k: expand_env(v, f"{config.where} headers.{k}") for k, v in config.headers.items()}
    async def note(response: Any) -> None:
        if response.status_code >= 400:
            statuses.append(response.status_code)

    if config.transport == "sse":
        from mcp.client.sse import sse_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        def noting_client(headers: Any = None, timeout: Any = None, auth: Any = None) -> Any:
            client = create_mcp_http_client(headers=headers, timeout=timeout, auth=auth)
            client.event_hooks["response"].append(note)  # HTTP statuses for the start-up message
            return client

        streams = await stack.enter_async_context(
            sse_client(
                url, headers=headers or None, timeout=config.startup_timeout_s, sse_read_timeout=config.tool_timeout_s + 30,
                httpx_client_factory=noting_client,
            )
        )
        return streams[0], streams[1]
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    client = await stack.enter_async_context(
        httpx2.AsyncClient(
            headers=headers,
            timeout=httpx2.Timeout(config.startup_timeout_s, read=config.tool_timeout_s + 30),
            event_hooks={"response": [note]},
        )
    )
    streams = await stack.enter_async_context(streamable_http_client(url, http_client=client))
    return streams[0], streams[1]
