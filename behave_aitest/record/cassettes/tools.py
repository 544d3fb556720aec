"""Recorded tools (``cassette_tools = "record"``): a server's tool calls recorded with the
model calls, and a replay that answers them from the cassette without starting the server
(for servers that cannot run in CI).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..records import ToolOutcome, ToolSpec
from .matching import _sorted

if TYPE_CHECKING:  # the cassette hands itself to these servers
    from .cassette import Cassette


class RecordingServer:
    """A live MCP connection whose tool calls are also written to the cassette."""

    def __init__(self, connection: Any, cassette: Cassette) -> None:
        self.connection = connection
        self.cassette = cassette
        self.name = connection.name
        self.tools = connection.tools
        cassette.servers.setdefault(
            self.name,
            [{"name": t.name, "description": t.description, "input_schema": _sorted(dict(t.input_schema))} for t in self.tools],
        )

    @property
    def alive(self) -> bool:
        return bool(self.connection.alive)

    async def call(self, tool: str, arguments: Mapping[str, Any]) -> ToolOutcome:
        try:
            outcome = await self.connection.call(tool, arguments)
        except BaseException as exc:
            self.cassette.failure = ("tool", f"tool call {self.name}.{tool} failed ({type(exc).__name__})")
            raise
        self.cassette.record_tool_call(self.name, tool, arguments, outcome)
        return outcome


class ReplayedServer:
    """An MCP server answered from the cassette: no process, no connection."""

    alive = True

    def __init__(self, name: str, cassette: Cassette) -> None:
        self.name = name
        self.cassette = cassette
        self.tools = [
            ToolSpec(name, str(t.get("name")), str(t.get("description") or ""), dict(t.get("input_schema") or {}))
            for t in cassette.servers.get(name, [])
        ]

    async def call(self, tool: str, arguments: Mapping[str, Any]) -> ToolOutcome:
        return self.cassette.replay_tool_call(self.name, tool, arguments)
