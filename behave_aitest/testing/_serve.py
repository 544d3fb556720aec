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
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default="WARNING",
        help="server log level, logs go to stderr (default: WARNING)",
    )
    return parser


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


async def serve_http(server: MCPServer, transport: str, sock: socket.socket, log_level: str = "WARNING") -> None:
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

    config = uvicorn.Config(app, host=host, port=actual_port, log_level=log_level.lower())
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
        if args.transport == "stdio":
            server.run("stdio")
        else:
            import anyio

            try:
                sock = bind_socket(args.host, args.port)
            except OSError as exc:
                print(f"{parser.prog}: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
                return 1
            anyio.run(serve_http, server, args.transport, sock, args.log_level)
    except KeyboardInterrupt:
        pass
    return 0
