"""Command line and transport handling shared by the example servers.

Usage (the same for every server module)::

    python -m behave_aitest.testing.bank_server                      # stdio (default)
    python -m behave_aitest.testing.bank_server --transport streamable-http --port 8000
    python -m behave_aitest.testing.bank_server --transport sse --port 0   # any free port

For the HTTP transports the socket is bound here before the server starts, so
``--port 0`` works: the port the OS picked is announced on stderr, once the server
accepts connections, as a single line::

    listening on http://127.0.0.1:54321/mcp      (streamable-http)
    listening on http://127.0.0.1:54321/sse      (sse)

``--era 2025`` makes the server speak only the 2025 handshake, as a server built on the mcp
1.x SDK does (it refuses a 2026-07-28 request: a JSON-RPC error on stdio, HTTP 400 on
streamable HTTP); ``--era 2026`` only the 2026-07-28 revision (it refuses ``initialize``).
Over streamable HTTP the URL may choose instead, per request: ``/mcp?era=2025``.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import socket
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

F = TypeVar("F", bound=Callable[..., Any])

TRANSPORTS: tuple[str, ...] = ("stdio", "streamable-http", "sse")
LOG_LEVELS: tuple[str, ...] = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
ERAS: tuple[str, ...] = ("both", "2025", "2026")
DEFAULT_PORT = 8000
STREAMABLE_HTTP_PATH = "/mcp"
SSE_PATH = "/sse"


def text_tool(server: MCPServer) -> Callable[[F], F]:
    """Register a function as a tool returning plain text, like ``@server.tool()``, but with
    its docstring dedented (the SDK sends ``__doc__`` verbatim, indentation included) and
    without a structured-output schema (the model reads the text only)."""

    def register(fn: F) -> F:
        description = inspect.cleandoc(fn.__doc__ or "")
        server.tool(description=description or None, structured_output=False)(fn)
        return fn

    return register


def build_parser(prog: str, description: str | None = None) -> argparse.ArgumentParser:
    """The argument parser shared by all example servers."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "--transport",
        choices=TRANSPORTS,
        default="stdio",
        help="how clients connect (default: stdio)",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on for the HTTP transports (default: 127.0.0.1)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port for the HTTP transports; 0 picks a free port (default: {DEFAULT_PORT})",
    )
    parser.add_argument(
        "--era",
        choices=ERAS,
        default="both",
        help="protocol eras served: both (default), 2025 (the initialize handshake only), 2026 (2026-07-28 only)",
    )
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default="WARNING",
        help="server log level, logs go to stderr (default: WARNING)",
    )
    return parser


def refusal(era: str, method: str, params: Any, header: str | None = None) -> dict[str, Any] | None:
    """The JSON-RPC error a server of one era answers a request of the other era with, or
    None when it serves the request. A 2025-only server refuses ``server/discover`` and any
    request carrying the 2026-07-28 envelope (``_meta`` with the protocol version, or that
    version in the ``MCP-Protocol-Version`` header), as mcp 1.x does: "Invalid request
    parameters". A 2026-only server refuses ``initialize`` (UNSUPPORTED_PROTOCOL_VERSION,
    naming the revision it serves)."""
    meta = params.get("_meta") if isinstance(params, dict) else None
    modern = method == "server/discover" or (isinstance(meta, dict) and "io.modelcontextprotocol/protocolVersion" in meta)
    modern = modern or (header is not None and not header.startswith(("2024-", "2025-")))
    if era == "2025" and modern:
        return {"code": -32602, "message": "Invalid request parameters"}
    if era == "2026" and method == "initialize":
        requested = params.get("protocolVersion") if isinstance(params, dict) else None
        return {"code": -32022, "message": "Unsupported protocol version", "data": {"supported": ["2026-07-28"], "requested": requested}}
    return None


async def serve_stdio(server: MCPServer, era: str) -> None:
    """Serve ``server`` on stdio; requests of an era it does not serve get :func:`refusal`."""
    import anyio
    from mcp.server.stdio import stdio_server
    from mcp.shared.message import SessionMessage
    from mcp_types.jsonrpc import ErrorData, JSONRPCError, JSONRPCRequest

    lowlevel = server._lowlevel_server  # the SDK's own run_stdio_async does the same
    async with stdio_server() as (read, write):
        send, receive = anyio.create_memory_object_stream[Any](16)

        async def sift() -> None:
            async with send:
                async for item in read:
                    message = getattr(item, "message", None)
                    refused = refusal(era, message.method, message.params) if isinstance(message, JSONRPCRequest) else None
                    if refused is None:
                        await send.send(item)
                    else:
                        await write.send(SessionMessage(JSONRPCError(jsonrpc="2.0", id=message.id, error=ErrorData(**refused))))

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(sift)
            await lowlevel.run(receive, write, lowlevel.create_initialization_options())
            tasks.cancel_scope.cancel()


def era_filter(app: Any, era: str) -> Any:
    """An ASGI wrapper: a POST of an era the server does not serve gets HTTP 400 with the
    :func:`refusal` error (the era comes from ``--era``, or the URL's ``?era=``)."""
    import json
    from urllib.parse import parse_qs

    async def filtered(scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") != "http" or scope.get("method") != "POST":
            await app(scope, receive, send)
            return
        chosen = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("era", [era])[0]
        if chosen == "both":
            await app(scope, receive, send)
            return
        chunks, more = [], True
        while more:
            event = await receive()
            chunks.append(event.get("body", b""))
            more = event.get("more_body", False)
        body = b"".join(chunks)
        try:
            request = json.loads(body)
        except ValueError:
            request = None
        header = dict(scope.get("headers") or []).get(b"mcp-protocol-version")
        refused = None
        if isinstance(request, dict) and "id" in request and isinstance(request.get("method"), str):
            refused = refusal(chosen, request["method"], request.get("params"), header.decode("latin-1") if header else None)
        if refused is not None:
            answer = json.dumps({"jsonrpc": "2.0", "id": request["id"], "error": refused}).encode()
            await send({"type": "http.response.start", "status": 400, "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]})
            await send({"type": "http.response.body", "body": answer})
            return
        sent = False

        async def replay() -> Any:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await app(scope, replay, send)

    return filtered


def url_for(transport: str, host: str, port: int) -> str:
    """The URL a client connects to for an HTTP transport."""
    shown = f"[{host}]" if ":" in host else host
    path = STREAMABLE_HTTP_PATH if transport == "streamable-http" else SSE_PATH
    return f"http://{shown}:{port}{path}"


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (port 0: any free port), not yet listening."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        if sys.platform != "win32":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


async def serve_http(server: MCPServer, transport: str, sock: socket.socket, log_level: str = "WARNING", era: str = "both") -> None:
    """Serve ``server`` over streamable HTTP or SSE on the bound ``sock`` until signalled.

    Prints ``listening on <url>`` to stderr once the server accepts connections. The
    socket is closed on return.
    """
    import anyio
    import uvicorn

    host, actual_port = sock.getsockname()[:2]
    if transport == "streamable-http":
        app = server.streamable_http_app(streamable_http_path=STREAMABLE_HTTP_PATH, host=host)
    elif transport == "sse":
        app = server.sse_app(sse_path=SSE_PATH, host=host)
    else:
        raise ValueError(f"Not an HTTP transport: {transport!r}")

    config = uvicorn.Config(era_filter(app, era) if transport == "streamable-http" else app, host=host, port=actual_port, log_level=log_level.lower())
    web = uvicorn.Server(config)

    async def announce() -> None:
        while not web.started:
            await anyio.sleep(0.01)
        print(f"listening on {url_for(transport, host, actual_port)}", file=sys.stderr, flush=True)

    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(announce)
            await web.serve(sockets=[sock])
            tasks.cancel_scope.cancel()
    finally:
        sock.close()


def run(server: MCPServer, argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Parse the command line and run ``server`` on the chosen transport; returns an exit code."""
    parser = build_parser(prog or server.name or "server", description=server.instructions)
    args = parser.parse_args(argv)
    logging.getLogger().setLevel(args.log_level)
    try:
        if args.transport == "stdio" and args.era == "both":
            server.run("stdio")
        elif args.transport == "stdio":
            import anyio

            anyio.run(serve_stdio, server, args.era)
        else:
            import anyio

            try:
                sock = bind_socket(args.host, args.port)
            except OSError as exc:
                print(f"{parser.prog}: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
                return 1
            anyio.run(serve_http, server, args.transport, sock, args.log_level, args.era)
    except KeyboardInterrupt:
        pass
    return 0
