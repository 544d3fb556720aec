"""Servers in their scopes: an MCP server lives for the run, a feature or one conversation
(``scope`` in its config), started on first use inside its scope's ``ExitStack`` so that no
server process outlives it; crashed servers are forgotten so the next conversation starts
them again. A mixin of :class:`~behave_aitest.run.runtime.Runtime`.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from ..agent.loop import TurnSettings
from ..agent.toolbox import AgentSetupError, ToolBox
from ..config import (
    Config,
    ConfigError,
    unknown_name,
)
from ..mcp.connection import ServerConnection, first_leaf

if TYPE_CHECKING:
    from .conversation import LiveConversation



class Scope:
    """Resources that live exactly as long as a run, a feature or a conversation."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.stack = ExitStack()
        self.servers: dict[str, ServerConnection] = {}
        self.closed = False

    def close(self) -> None:
        """Stop the scope's servers (each stop is bounded by the SDK's kill escalation); idempotent."""
        self.closed = True
        self.servers.clear()
        self.stack.close()


class ServerScopes:
    """The runtime's servers, per scope."""

    config: Config
    current: Any
    current_scenario: Any
    _allowed_said: dict[tuple[str, tuple[str, ...]], str]
    _printed: set[str]
    in_worker: bool

    def _scope(self, name: str) -> Scope:
        """A new feature or conversation scope, remembered until closed (see :meth:`close`)."""
        self._scopes = [s for s in self._scopes if not s.closed]
        scope = Scope(name)
        self._scopes.append(scope)
        return scope

    def _scope_for(self, live: LiveConversation, scope: str) -> Scope:
        if scope == "run":
            return self.run_scope
        if scope == "feature" and self.feature_scope is not None:
            return self.feature_scope
        return live.scope

    def connections(self, live: LiveConversation) -> list[ServerConnection]:
        """Live connections to the agent's servers, started on first use in their scope."""
        from ..mcp.connection import connect

        found = []
        for name in live.agent.servers:
            server = self.config.servers.get(name)
            if server is None:
                raise unknown_name("MCP server", name, self.config.servers, "servers", self._config_name())
            scope = self._scope_for(live, server.scope)
            conn = scope.servers.get(name)
            if conn is None or not conn.alive:
                errlog = self.log_dir / f"{name}-{next(self._ids)}.stderr.log"
                try:
                    conn = scope.stack.enter_context(self.portal.wrap_async_context_manager(connect(server, errlog)))
                except BaseException as exc:  # anyio wraps start-up failures in exception groups
                    raise first_leaf(exc) from None
                scope.servers[name] = conn
            found.append(conn)
        return found

    def toolbox(self, live: LiveConversation, connections: list[Any] | None = None) -> ToolBox:
        """The tools the agent may use now, its servers started on first use."""
        if connections is None:
            connections = self._tool_connections(live)
        self._check_allowed_tools(live, connections)
        try:
            return ToolBox(connections, live.agent.allowed_tools, resources=live.agent.resources)
        except AgentSetupError as exc:
            raise ConfigError(f"Agent {live.agent.name or '(unnamed)'}: {exc}") from None

    def _check_allowed_tools(self, live: LiveConversation, connections: list[Any]) -> None:
        """``allowed_tools`` entries no server of the agent offers: said in full once per run
        (a did-you-mean each, the tools the servers offer: agent/names.py, as doctor says it);
        a later conversation of the same agent points at the scenario that said it."""
        from ..agent.names import KnownTools, allowed_tools_problem

        allowed = live.agent.allowed_tools
        if allowed is None:
            return
        name = live.agent.name or "(unnamed)"
        said: dict[tuple[str, tuple[str, ...]], str] = self._allowed_said
        key = (name, tuple(allowed))
        if key in said:
            raise ConfigError(f"Agent {name}: its allowed_tools name tools its servers do not offer: see {said[key]}.")
        listed = tuple((c.name, t.name) for c in connections for t in c.tools)
        agent = self.config.agents.get(live.agent.name or "")
        where = agent.where if agent is not None and list(agent.allowed_tools or []) == list(allowed) else "Given the agent may only use the tools"
        task_only = tuple((c.name, t) for c in connections for t in getattr(c, "task_only", None) or ())
        problem = allowed_tools_problem(allowed, KnownTools(name, listed, (), task_only=task_only), where)
        if problem:
            scenario = self.current_scenario
            said[key] = f"the first scenario that used it ({getattr(scenario, 'location', 'earlier in this run')})"
            raise ConfigError(problem)

    def _tool_connections(self, live: LiveConversation) -> list[Any]:
        """The agent's servers; with cassette_tools = "record", recorded or replayed by the cassette."""
        if live.cassette is None:
            return self.connections(live)
        return live.cassette.tool_connections(lambda: self.connections(live), live.agent.servers)

    def _client_sides(self, live: LiveConversation, connections: list[Any], settings: TurnSettings, complete: Any) -> None:
        """Tell each server's client side how this turn, or this direct call, answers questions
        and sampling: the scenario's own answers and model, the limits of the config, one
        sampling count shared by the servers of the turn (issue 25, H1/H2/H7)."""
        from ..mcp.clientside import ClientLimits
        from ..mcp.elicitation import ElicitationPlan
        from ..mcp.sampling import Sampler

        limits = ClientLimits.from_config(self.config)
        turn_sampling = [0]
        for side in _sides(connections):
            side.plan = live.elicitation or ElicitationPlan()
            side.limits, side.turn_sampling = limits, turn_sampling
            if side.sampling in ("agent", "off"):
                side.sampler = Sampler(complete, settings)
            else:
                request = self.model_request(side.sampling, live.agent)
                sampling_settings = TurnSettings(model=side.sampling, request=request, timeout_s=self.config.timeout_s)
                side.sampler = Sampler(self._completer(sampling_settings), sampling_settings)

    def _forget_client_sides(self, live: LiveConversation) -> None:
        """The scenario ended: no server (one of a longer scope lives on) keeps its answers or
        its model; until the next turn or direct call, questions are declined and sampling refused."""
        from ..mcp.elicitation import ElicitationPlan

        scopes = [self.run_scope, self.feature_scope, live.scope]
        sides = _sides([c for scope in scopes if scope is not None for c in scope.servers.values()])
        last = live.scenario.turns[-1] if live.scenario is not None and live.scenario.turns else None
        for event in server_events(sides):  # late ones: on the scenario's last turn, else not kept
            if last is not None:
                last.server_events.append(event)
        for side in sides:
            side.plan, side.sampler, side.turn_sampling = ElicitationPlan(), None, None

    def _warn_once(self, live: LiveConversation, warnings: list[str], *, run_wide: bool = False) -> None:
        """Warnings printed once per run. ``run_wide`` ones (tools a server lists but that are
        not offered: true of the server, not of a scenario) go on the scenario's record apart,
        and the report shows them once, at the run; others on the conversation's record."""
        for warning in warnings:
            if run_wide:
                if live.scenario is not None and warning not in live.scenario.run_warnings:
                    live.scenario.run_warnings.append(warning)
            elif warning not in live.record.warnings:
                live.record.warnings.append(warning)
                if live.scenario is not None:
                    live.scenario.warnings.append(warning)
            if run_wide and self.in_worker:
                continue  # the parallel parent prints it, once for the run
            if warning not in self._printed:
                self._printed.add(warning)
                print(f"behave-aitest WARNING: {warning}", file=sys.stderr)

    def drop_dead_servers(self) -> None:
        """Forget crashed servers so the next conversation starts them again."""
        for scope in (self.run_scope, self.feature_scope, self.current.scope if self.current else None):
            if scope is not None:
                for name in [n for n, c in scope.servers.items() if not c.alive]:
                    del scope.servers[name]


def _sides(connections: list[Any]) -> list[Any]:
    """The client sides (``mcp.clientside.ClientSide``) of connections, also of cassette-wrapped ones."""
    found = []
    for conn in connections:
        side = getattr(conn, "client", None) or getattr(getattr(conn, "connection", None), "client", None)
        if side is not None:
            found.append(side)
    return found


def server_events(sides: list[Any]) -> list[Any]:
    """What arrived on each server's timeline (owned by no one tool call), as records."""
    from ..record.records import ServerEvents

    found = []
    for side in sides:
        events = side.take_timeline()
        if events is not None:
            found.append(ServerEvents(side.server, events.elicitations, events.sampling_calls, events.logs))
    return found
