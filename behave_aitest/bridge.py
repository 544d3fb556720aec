"""``python -m behave_aitest.bridge NAME``: an MCP endpoint of behave-aitest, served over stdio.

Why it exists: an external agent reaches the MCP servers of its scenario through behave-aitest's
MCP endpoints, one streamable-HTTP URL per server on 127.0.0.1 with the per-run key
(docs/agents.md). Some agents only start MCP servers as commands and speak to them over stdio.
For them this module is the server to start: it connects to the endpoint ``NAME`` over
streamable HTTP and serves its tools (and its resources and prompts) over its own stdin and stdout, so every call still crosses
the endpoint (recorded on the turn, answered by a tool double where one is set, in the report).

Where the endpoint is, in this order:

1. ``AITEST_MCP_CONFIG`` (the ``{"mcpServers": {...}}`` file behave-aitest writes for the agent):
   the ``http`` entry named ``NAME``, its ``url`` and ``headers``;
2. ``AITEST_MCP_<NAME>_URL`` (``NAME`` upper case, other characters ``_``) with ``AITEST_KEY``
   sent as ``Authorization: Bearer <key>``.

``AITEST_THREAD_ID``, when set (a CLI agent gets it and its children inherit it), is sent as
``X-Aitest-Thread``. A mistake (no such endpoint, the endpoint unreachable) is one line on
stderr and exit status 2 (usage) or 1 (connection), never a traceback.

In an agent's own MCP config file (behave-aitest writes such a file for its command and service
agents, named by ``AITEST_MCP_STDIO_CONFIG``)::

    {"mcpServers": {"bank": {"command": "python", "args": ["-m", "behave_aitest.bridge", "bank"]}}}
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

THREAD_HEADER = "X-Aitest-Thread"


class BridgeError(Exception):
    """Why the bridge cannot serve: one line for stderr."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Endpoint:
    """One MCP endpoint of behave-aitest: its URL and the headers that carry the key."""

    name: str
    url: str
    headers: Mapping[str, str]


def env_name(server: str) -> str:
    """``AITEST_MCP_<NAME>_URL``: the server's name upper case, other characters ``_``."""
    return f"AITEST_MCP_{re.sub(r'[^A-Z0-9]', '_', server.upper())}_URL"


def find_endpoint(name: str, environ: Mapping[str, str]) -> Endpoint:
    """The endpoint ``name`` from the MCP config file, else from the environment variables."""
    thread = {THREAD_HEADER: environ["AITEST_THREAD_ID"]} if environ.get("AITEST_THREAD_ID") else {}
    path = environ.get("AITEST_MCP_CONFIG")
    known: list[str] = []
    if path:
        servers = _read_config(Path(path))
        entry = servers.get(name)
        if isinstance(entry, Mapping) and isinstance(entry.get("url"), str):
            headers = entry.get("headers") if isinstance(entry.get("headers"), Mapping) else {}
            return Endpoint(name, entry["url"], {**{str(k): str(v) for k, v in headers.items()}, **thread})
        known = sorted(n for n, e in servers.items() if isinstance(e, Mapping) and isinstance(e.get("url"), str))
    url = environ.get(env_name(name))
    if url:
        key = environ.get("AITEST_KEY")
        if not key:
            raise BridgeError(f"{env_name(name)} is set but AITEST_KEY is not: the endpoint needs the run's key.")
        return Endpoint(name, url, {"Authorization": f"Bearer {key}", **thread})
    where = f"AITEST_MCP_CONFIG ({path}) has {', '.join(known) or 'no HTTP server'}" if path else "AITEST_MCP_CONFIG is not set"
    raise BridgeError(
        f"no MCP endpoint named {name!r}: {where}, and {env_name(name)} is not set. "
        "Run the bridge from an agent that behave-aitest started, with the name of one of its servers."
    )


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BridgeError(f"AITEST_MCP_CONFIG ({path}) cannot be read: {exc.strerror or exc}.") from None
    except ValueError as exc:
        raise BridgeError(f"AITEST_MCP_CONFIG ({path}) is not JSON: {exc}.") from None
    servers = data.get("mcpServers") if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        raise BridgeError(f"AITEST_MCP_CONFIG ({path}) has no \"mcpServers\" object.")
    return servers


async def serve(endpoint: Endpoint) -> None:
    """Connect to ``endpoint`` over streamable HTTP, then serve its tools on stdio until stdin closes."""
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client
    from mcp.server.lowlevel import Server
    from mcp.server.stdio import stdio_server
    from mcp.shared._httpx_utils import create_mcp_http_client

    connected = False
    try:
        async with AsyncExitStack() as stack:
            http = await stack.enter_async_context(create_mcp_http_client(headers=dict(endpoint.headers)))
            read, write = await stack.enter_async_context(streamable_http_client(endpoint.url, http_client=http))
            upstream = await stack.enter_async_context(ClientSession(read, write))
            hello = await upstream.initialize()
            connected = True

            async def list_tools(ctx: Any, params: Any) -> Any:
                return await upstream.list_tools(params=params)

            async def call_tool(ctx: Any, params: Any) -> Any:
                return await upstream.call_tool(params.name, dict(params.arguments or {}))

            # resources and prompts too, where the endpoint offers them (docs/agents.md)
            passed: dict[str, Any] = {}
            if getattr(hello.capabilities, "resources", None) is not None:

                async def list_resources(ctx: Any, params: Any) -> Any:
                    return await upstream.list_resources()

                async def list_resource_templates(ctx: Any, params: Any) -> Any:
                    return await upstream.list_resource_templates()

                async def read_resource(ctx: Any, params: Any) -> Any:
                    return await upstream.read_resource(params.uri)

                passed.update(on_list_resources=list_resources, on_list_resource_templates=list_resource_templates,
                              on_read_resource=read_resource)
            if getattr(hello.capabilities, "prompts", None) is not None:

                async def list_prompts(ctx: Any, params: Any) -> Any:
                    return await upstream.list_prompts()

                async def get_prompt(ctx: Any, params: Any) -> Any:
                    return await upstream.get_prompt(params.name, dict(params.arguments or {}))

                passed.update(on_list_prompts=list_prompts, on_get_prompt=get_prompt)
            server = Server(
                f"behave-aitest bridge: {endpoint.name}",
                instructions=hello.instructions,
                on_list_tools=list_tools,
                on_call_tool=call_tool,
                **passed,
            )
            async with stdio_server() as (stdin, stdout):
                await server.run(stdin, stdout, server.create_initialization_options())
    except Exception as exc:  # unreachable, refused (401), not MCP, or gone while serving: one line
        what = "was lost" if connected else "cannot be reached"
        raise BridgeError(f"the MCP endpoint {endpoint.name!r} at {endpoint.url} {what}: {_reason(exc)}", 1) from None


def _reason(exc: BaseException) -> str:
    """The innermost message of ``exc`` (task groups wrap the transport's own error)."""
    while getattr(exc, "exceptions", None):  # an exception group (Python 3.10 has no builtin name for it)
        exc = exc.exceptions[0]  # type: ignore[attr-defined]
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m behave_aitest.bridge",
        description="Serve one of behave-aitest's MCP endpoints over stdio, for agents that only start stdio servers.",
    )
    parser.add_argument("name", help="the server's name, as in the agent's servers = [...]")
    args = parser.parse_args(argv)
    import anyio

    try:
        endpoint = find_endpoint(args.name, os.environ)
        anyio.run(serve, endpoint)
    except BridgeError as exc:
        print(f"behave_aitest.bridge: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
