"""MCP connections: start or reach one MCP server and talk to it with the official SDK.

One :func:`connect` is one async context manager that owns the transport, the client
session and the handshake, so that entering and leaving it happen in the same task
(the run's portal enters it with ``wrap_async_context_manager``). The ``mcp`` package
is imported inside the functions: a ``behave --dry-run`` never pays for it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ConfigError, ServerConfig, expand_env
from ..errors import ServerError
from ..record.records import ToolOutcome, ToolSpec
from ..model.limits import start_slot

# What every stdio server gets from our environment; everything else must be listed in
# the server's ``env`` table, so API keys never reach a server by accident.
BASE_ENV = (
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "TMPDIR", "TZ",
    "LANG", "LC_ALL", "LC_CTYPE",
    "SYSTEMROOT", "SYSTEMDRIVE", "USERPROFILE", "APPDATA", "LOCALAPPDATA", "TEMP", "TMP", "COMSPEC", "PATHEXT",
)


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
        from .content import result_view

        view = result_view(result)
        return ToolOutcome(
            view.text,
            bool(getattr(result, "is_error", False)),
            time.perf_counter() - started,
            events,
            view,
            getattr(result, "structured_content", None),
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

    async def list_resources(self) -> list[Any]:
        if not getattr(self.capabilities(), "resources", None):
            return []
        return list((await (self.mcp or self.session).list_resources()).resources)

    def capabilities(self) -> Any:
        return getattr(self.session, "server_capabilities", None)

    @property
    def protocol_version(self) -> str | None:
        return getattr(self.session, "protocol_version", None)


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


def tool_specs(config: ServerConfig, listed: Any) -> tuple[list[ToolSpec], list[str]]:
    """The tools a server lists, as specs; tools that must run as tasks are left out
    (the client does not speak the task API) with a warning naming them."""
    tools, warnings = [], []
    for t in listed:
        execution = getattr(t, "execution", None)
        task_support = getattr(execution, "task_support", None) if execution is not None else None
        if task_support == "required":
            warnings.append(
                f"MCP server {config.name!r}: tool {t.name!r} is not offered to the model: it only runs as a task "
                "(execution.taskSupport = \"required\"), and behave-aitest does not use the MCP task API (docs/mcp.md)."
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


# Every stdio server process gets its own new, empty folder, named by ${AITEST_SERVER_DIR} in its
# command, env and cwd (and set in its environment), removed when the process has ended: a server
# that keeps state in a file starts clean in every conversation (per scope; docs/sessions.md).
SERVER_DIR_VAR = "AITEST_SERVER_DIR"
_SERVER_DIR = "${" + SERVER_DIR_VAR + "}"


def with_server_dir(text: str, folder: str | None) -> str:
    """``text`` with ``${AITEST_SERVER_DIR}`` replaced by the process's own folder."""
    return text.replace(_SERVER_DIR, folder) if folder is not None else text


def server_environment(config: ServerConfig, environ: Mapping[str, str] | None = None, server_dir: str | None = None) -> dict[str, str]:
    """The minimal base environment plus the server's own ``env`` table, ``${VAR}`` expanded
    (``${AITEST_SERVER_DIR}`` first, when the process has its folder)."""
    source = os.environ if environ is None else environ
    env = {k: source[k] for k in BASE_ENV if k in source}
    if server_dir is not None:
        env[SERVER_DIR_VAR] = server_dir
    for key, value in config.env.items():
        env[key] = expand_env(with_server_dir(value, server_dir), f"{config.where} env.{key}", source)
    return env


def server_cwd(config: ServerConfig, server_dir: str | None) -> str | None:
    """The server's working directory; one inside its own folder is created first."""
    if config.cwd is None or server_dir is None or _SERVER_DIR not in config.cwd:
        return config.cwd
    folder = with_server_dir(config.cwd, server_dir)
    Path(folder).mkdir(parents=True, exist_ok=True)
    return folder


def new_server_dir(config: ServerConfig) -> str:
    """A new, empty folder for one stdio server process (see :data:`SERVER_DIR_VAR`)."""
    import re
    import tempfile

    return tempfile.mkdtemp(prefix=f"aitest-{re.sub(r'[^A-Za-z0-9_-]', '_', config.name)[:40]}-")


def resolve_command(command: tuple[str, ...], server_dir: str | None = None) -> tuple[str, list[str]]:
    """``python``/``python3`` mean the interpreter running behave, so a venv needs no activation."""
    program, *args = (with_server_dir(part, server_dir) for part in command)
    if program in ("python", "python3"):
        program = sys.executable
    return program, args


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
            connection = ServerConnection(config, mcp.session, tools, errlog, incoming=read, client=client, mcp=mcp, warnings=warnings)
            yield connection
    except (ConfigError, ServerError):
        raise
    except Exception as exc:
        if connection is not None:  # the server was up: what failed is the caller's business
            raise
        raise start_failure(config, first_leaf(exc), errlog, statuses) from None


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
_GROUPS: dict[int, int] = {}
# A parallel run's worker also notes its servers' groups as files in this folder, so that
# the parent can stop them when the worker itself is killed (behave_aitest.parallel).
GROUPS_DIR_ENV = "BEHAVE_AITEST_SERVER_GROUPS"


def _note_group(group: int, running: bool) -> None:
    folder = os.environ.get(GROUPS_DIR_ENV)
    if not folder:
        return
    try:
        if running:
            Path(folder).mkdir(parents=True, exist_ok=True)
            (Path(folder) / str(group)).touch()
        else:
            (Path(folder) / str(group)).unlink(missing_ok=True)
    except OSError:
        pass


def _children() -> set[int]:
    """Process ids of this process's children (Linux ``/proc``; empty where there is none)."""
    me, found = os.getpid(), set()
    try:
        for task in Path(f"/proc/{me}/task").iterdir():
            found.update(int(pid) for pid in (task / "children").read_text().split())
        return found
    except OSError:
        pass
    try:
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                try:
                    stat = (proc / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == me:
                    found.add(int(proc.name))
    except OSError:
        pass
    return found


def _new_group(before: set[int]) -> int | None:
    """The process group of the server just started: the SDK starts each stdio server in
    its own session, so it is the new child that leads its own group."""
    for pid in sorted(_children() - before):
        try:
            if os.getpgid(pid) == pid:
                _GROUPS[pid] = os.getpid()
                _note_group(pid, True)
                return pid
        except OSError:
            continue
    return None


def _signal_group(group: int, sig: int) -> bool:
    """Send ``sig`` to the group; False when no process of it is left."""
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # EPERM: something is left that we may not signal
    return True


async def stop_group(group: int | None) -> None:
    """Stop what is left of a server's process group (helpers it started) once the server
    has ended: SIGTERM, up to a second's grace, then SIGKILL."""
    import anyio
    import signal

    if group is None:
        return
    _GROUPS.pop(group, None)
    if not _signal_group(group, signal.SIGTERM):
        _note_group(group, False)
        return
    with anyio.CancelScope(shield=True):  # also when the run is being interrupted
        with anyio.move_on_after(1.0):
            while _signal_group(group, 0):
                await anyio.sleep(0.05)
            _note_group(group, False)
            return
        _signal_group(group, signal.SIGKILL)
        _note_group(group, False)


def stop_all_groups() -> None:
    """SIGKILL every server process group not stopped the ordinary way (an interrupted
    cleanup): no server or helper outlives the run."""
    import signal

    me = os.getpid()
    for group, owner in list(_GROUPS.items()):
        if owner == me:
            del _GROUPS[group]
            _signal_group(group, signal.SIGKILL)
            _note_group(group, False)


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
