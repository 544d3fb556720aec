"""What every external agent kind shares: what it is given, what it may return, how it fails.

The names here are the interface documented in docs/agents.md ("What the agent gets"):
a python agent reads them as attributes of its one argument; command and service agents
read the environment variables built by :func:`agent_environment`.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

# What every command or service agent gets from our environment (the servers' rule, see
# behave_aitest.servers.BASE_ENV): the provider's real key never reaches the agent.
BASE_ENV = (
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "TMPDIR", "TZ",
    "LANG", "LC_ALL", "LC_CTYPE",
    "SYSTEMROOT", "SYSTEMDRIVE", "USERPROFILE", "APPDATA", "LOCALAPPDATA", "TEMP", "TMP", "COMSPEC", "PATHEXT",
)


class AgentError(Exception):
    """The agent under test failed (import, crash, bad answer, down, timeout): the turn's
    error is ``agent: <message>``, never called a model error."""


@dataclass(frozen=True)
class McpAccess:
    """How the agent reaches one of its MCP servers: ``mcp[name].url``, ``mcp[name].headers``."""

    url: str
    headers: Mapping[str, str]


@dataclass(frozen=True)
class Endpoints:
    """The model and MCP endpoints of one worker, as the agent sees them."""

    model_url: str  # base URL ending in /v1 (OPENAI_BASE_URL)
    key: str  # the per-run key (OPENAI_API_KEY, AITEST_KEY)
    mcp: Mapping[str, McpAccess] = field(default_factory=dict)  # server name -> URL and headers
    mcp_config: str | None = None  # path of the {"mcpServers": ...} file (AITEST_MCP_CONFIG)
    mcp_stdio_config: str | None = None  # the same servers as stdio commands of the bridge (AITEST_MCP_STDIO_CONFIG)


@dataclass
class AgentInput:
    """The one argument of a python agent (and what command/service agents get otherwise)."""

    messages: list[dict[str, Any]]  # the conversation so far, OpenAI format, the new user message last
    new_messages: list[dict[str, Any]]  # what this turn added (the new user message, or a prompt's messages)
    thread_id: str  # one per conversation; a stateful agent keys its memory on it
    model_url: str  # base URL of the model endpoint, ending in /v1
    model_key: str  # the per-run key for both endpoints
    model: str  # the model name to ask for (mapped to the scenario's model whatever is asked)
    mcp: dict[str, McpAccess] = field(default_factory=dict)  # the agent's MCP servers through their endpoints

    @property
    def text(self) -> str:
        """The new user message's text (the last user message's content)."""
        for message in reversed(self.new_messages):
            if message.get("role") == "user":
                content = message.get("content")
                return content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
        return ""


class AgentKind(Protocol):
    """One kind of external agent: started once per worker (maybe), called once per turn."""

    kind: str  # "python", "service", "command"
    stateful: bool

    async def start(self, endpoints: Endpoints) -> None: ...

    async def call(self, given: AgentInput) -> Any: ...  # returns what messages.normalize reads

    async def close(self) -> None: ...


def env_name(server: str) -> str:
    """``AITEST_MCP_<NAME>_URL``: upper case, other characters ``_``."""
    return f"AITEST_MCP_{re.sub(r'[^A-Z0-9]', '_', server.upper())}_URL"


def mcp_config(endpoints: Endpoints) -> dict[str, Any]:
    """The ``{"mcpServers": ...}`` document CLI agents read (Claude Code, Cursor, ...)."""
    return {
        "mcpServers": {
            name: {"type": "http", "url": access.url, "headers": dict(access.headers)} for name, access in endpoints.mcp.items()
        }
    }


def stdio_mcp_config(endpoints: Endpoints, config_path: str) -> dict[str, Any]:
    """The alternative for agents that only start MCP servers as commands: each server as
    ``python -m behave_aitest.bridge NAME`` (stdio), which reaches the endpoint named in the
    file at ``config_path``. A file of its own, not more entries in the first one: duplicate
    entries would give such an agent every tool twice, and a strict reader could refuse a
    top-level key it does not know."""
    return {
        "mcpServers": {
            name: {
                "type": "stdio",
                "command": sys.executable,
                "args": ["-m", "behave_aitest.bridge", name],
                "env": {"AITEST_MCP_CONFIG": config_path},
            }
            for name in endpoints.mcp
        }
    }


def _write_private(path: Path, document: dict[str, Any]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        json.dump(document, file, indent=2)


def write_mcp_config(endpoints: Endpoints, folder: Path) -> Endpoints:
    """Write the MCP config files into ``folder`` (readable by their owner only: they hold or name the key)."""
    path, stdio_path = folder / "aitest-mcp.json", folder / "aitest-mcp-stdio.json"
    _write_private(path, mcp_config(endpoints))
    _write_private(stdio_path, stdio_mcp_config(endpoints, str(path)))
    return Endpoints(endpoints.model_url, endpoints.key, endpoints.mcp, str(path), str(stdio_path))


def agent_environment(
    endpoints: Endpoints,
    model: str,
    extra: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a command or service agent: minimal (like servers'), the agent's
    own ``env`` table, and the interface variables. Never the provider's keys."""
    source = os.environ if environ is None else environ
    env = {k: source[k] for k in BASE_ENV if k in source}
    env.update(extra or {})
    env.update({
        "OPENAI_BASE_URL": endpoints.model_url,
        "OPENAI_API_KEY": endpoints.key,
        "AITEST_KEY": endpoints.key,
        "AITEST_MODEL": model,
    })
    for name, access in endpoints.mcp.items():
        env[env_name(name)] = access.url
    if endpoints.mcp_config:
        env["AITEST_MCP_CONFIG"] = endpoints.mcp_config
    if endpoints.mcp_stdio_config:
        env["AITEST_MCP_STDIO_CONFIG"] = endpoints.mcp_stdio_config
    return env
