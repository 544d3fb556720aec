"""An MCP server that misbehaves on purpose, for the fault tests.

Tools: ``echo`` (works), ``crash`` (the process dies mid-call, after a line on stderr),
``hang`` (sleeps longer than any sensible tool timeout), ``fail`` (an MCP error result),
``slow`` (answers after ``seconds``, without blocking the server: several calls overlap;
the benchmarks use it to show that one turn's tool calls run concurrently).
``big`` answers with ``megabytes`` of text (the report must keep it in JSON and cut it
in HTML).
``crash_after`` dies after ``seconds`` (while other calls of the same turn succeed),
printing the server's ``FAULTY_TOKEN`` on stderr first (a secret in a stderr tail);
``rpc_error`` answers with a JSON-RPC error whose text the client must not mistake for a
dead connection; ``pid`` tells the server's process id (to see whether it was restarted);
``spawn_helper`` starts a helper child process that outlives the server unless its
process group is stopped.
With ``FAULTY_EXIT_AT_START=1`` in its environment the process prints a reason on stderr
and exits before the MCP handshake; with ``FAULTY_BAD_SCHEMA=1`` it also lists a tool
``broken`` whose input schema is not valid JSON Schema.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from behave_aitest.testing._serve import run, text_tool


def create_server() -> MCPServer:
    server = MCPServer("faulty", instructions="A server that fails in chosen ways.")
    tool = text_tool(server)

    @tool
    def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    @tool
    def getenv(name: str) -> str:
        """The value of an environment variable of the server process, or "(unset)"."""
        return os.environ.get(name, "(unset)")

    @tool
    def crash() -> str:
        """Kill the server process in the middle of the call."""
        print("faulty server: crashing on purpose (tool 'crash')", file=sys.stderr, flush=True)
        os._exit(3)

    @tool
    def hang(seconds: float = 3600) -> str:
        """Sleep for a long time before answering (saying so on stderr first)."""
        print("faulty server: hanging in tool 'hang'", file=sys.stderr, flush=True)
        time.sleep(seconds)
        return "woke up"

    @tool
    async def slow(seconds: float = 0.2) -> str:
        """Wait ``seconds`` (an async sleep: concurrent calls overlap), then answer."""
        import anyio

        await anyio.sleep(seconds)
        return f"slept {seconds:g} s"

    @tool
    async def crash_after(seconds: float = 0.5) -> str:
        """Die ``seconds`` after the call, saying the server's FAULTY_TOKEN on stderr first."""
        import anyio

        await anyio.sleep(seconds)
        print(f"faulty server: crashing, token {os.environ.get('FAULTY_TOKEN', '')}", file=sys.stderr, flush=True)
        os._exit(3)

    @tool
    def rpc_error(message: str = "Connection closed by the upstream database") -> str:
        """Answer with a JSON-RPC error (not an error result) carrying ``message``."""
        from mcp.shared.exceptions import MCPError

        raise MCPError(code=-32000, message=message)

    @tool
    def pid() -> str:
        """The server's process id."""
        return str(os.getpid())

    @tool
    def spawn_helper() -> str:
        """Start a helper process (it sleeps for 10 minutes) in the server's process group."""
        import subprocess

        helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        return f"helper {helper.pid} started"

    @tool
    def fail(message: str = "it went wrong") -> str:
        """Answer with an MCP error result."""
        raise ToolError(message)

    @tool
    def big(megabytes: float = 5) -> str:
        """Answer with about ``megabytes`` MB of text: numbered lines, ending with "END"."""
        lines, size, n = [], int(megabytes * 1_000_000), 0
        while size > 0:
            line = f"line {n:07d} " + "x" * 50
            lines.append(line)
            size -= len(line) + 1
            n += 1
        return "\n".join(lines) + "\nEND"

    if os.environ.get("FAULTY_BAD_SCHEMA"):

        @tool
        def broken(n: int = 0) -> str:
            """A tool whose published input schema is invalid (see below)."""
            return str(n)

        # "minimum" must be a number: a provider would reject the whole request with a 400.
        server._tool_manager.get_tool("broken").parameters = {  # noqa: SLF001 (a test server)
            "type": "object",
            "properties": {"n": {"type": "integer", "minimum": "zero"}},
        }

    return server


def main(argv: Sequence[str] | None = None) -> int:
    if os.environ.get("FAULTY_EXIT_AT_START"):
        print("faulty server: refusing to start (FAULTY_EXIT_AT_START is set)", file=sys.stderr, flush=True)
        return 4
    return run(create_server(), argv, prog="python -m behave_aitest.testing.faulty_server")


if __name__ == "__main__":
    sys.exit(main())
