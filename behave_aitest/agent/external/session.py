"""The run's external agents: one instance per configured agent, one set of wires per worker.

The runtime keeps one :class:`ExternalAgents` (so a parallel run has one per worker, each
with its own endpoints, key and agent services). When the conversation's agent is not the
built-in loop (``AgentConfig.kind``), ``Runtime.say`` runs the turn with :meth:`turn`
instead — with the same completer (cassette, price, limits), the same toolbox (servers in
their scopes, allowed_tools, doubles) and the same records.
"""

from __future__ import annotations

import secrets
import tempfile
from pathlib import Path
from typing import Any

from .base import AgentError, AgentKind
from .command import CommandAgent
from .python import PythonAgent
from .service import ServiceAgent
from .turn import run_external_turn
from .wire import AgentWires
from ...config import AgentConfig, Config, ConfigError, expand_env
from ..loop import Completer, TurnSettings
from ..toolbox import ToolBox
from ...record.records import Turn


def build(agent: AgentConfig, base_dir: Path, log_dir: Path, model: str) -> AgentKind:
    """The kind of agent ``agent`` configures (never the built-in loop)."""
    where = agent.where or f"[tool.behave_aitest.agents.{agent.name}]"
    env = {key: expand_env(value, f"{where} env.{key}") for key, value in agent.env.items()}  # as for servers
    if agent.python:
        return PythonAgent(agent.python, base_dir, where, stateful=agent.stateful)
    if agent.url:
        return ServiceAgent(agent.url, where, command=agent.command, ready_url=agent.ready_url, env=env, cwd=base_dir,
                            stateful=agent.stateful, model=model, log=log_dir / f"agent-{agent.name}.log")
    return CommandAgent(agent.command, where, env=env, cwd=base_dir, stateful=agent.stateful)


class ExternalAgents:
    """What the runtime holds for external agents; its coroutines run on the run's event loop."""

    def __init__(self, config: Config, log_dir: Path | None = None) -> None:
        self.config = config
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="aitest-agents-"))
        self.run_token = secrets.token_hex(3)
        self.agents: dict[str, AgentKind] = {}
        self.started: set[str] = set()
        self.wires: AgentWires | None = None

    def thread(self, conversation_id: str) -> str:
        return f"{conversation_id}-{self.run_token}"

    async def _wires(self, model: str) -> AgentWires:
        if self.wires is None:
            servers = sorted({s for a in self.config.agents.values() if a.kind != "builtin" for s in a.servers})
            self.wires = AgentWires(servers, model, self.log_dir)
            await self.wires.start()
        return self.wires

    async def _agent(self, name: str, wires: AgentWires, model: str) -> AgentKind:
        agent = self.agents.get(name)
        if agent is None:
            agent = self.agents[name] = build(self.config.agents[name], self.config.base_dir, self.log_dir, model)
        if name not in self.started:
            assert wires.endpoints is not None
            try:
                await agent.start(wires.endpoints)
            except AgentError as exc:  # a mistake in the config or the agent's start: one line, the step errors
                raise ConfigError(str(exc)) from None
            self.started.add(name)
        return agent

    async def turn(
        self,
        name: str,
        *,
        conversation_id: str,
        complete: Completer,
        toolbox: ToolBox,
        history: list[dict[str, Any]],
        user_text: str,
        settings: TurnSettings,
        index: int,
        user_messages: list[dict[str, Any]] | None = None,
    ) -> Turn:
        wires = await self._wires(settings.model)
        agent = await self._agent(name, wires, settings.model)
        return await run_external_turn(
            agent, wires, thread=self.thread(conversation_id), complete=complete, toolbox=toolbox, history=history,
            user_text=user_text, settings=settings, index=index, user_messages=user_messages,
        )

    async def close(self) -> None:
        """Stop the agents (services, the python agents' loops), then the endpoints."""
        agents, self.agents = self.agents, {}
        self.started.clear()
        for agent in agents.values():
            try:
                await agent.close()
            except Exception:  # keep stopping the others
                pass
        wires, self.wires = self.wires, None
        if wires is not None:
            await wires.close()
