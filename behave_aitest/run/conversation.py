"""A live conversation (a scenario, or a whole ``@session`` feature) and the agent it talks to:
its record, its scope, its cassette, its doubles and the answers it gives servers' questions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..agent.doubles import Doubles
from ..config import (
    AgentConfig,
)
from ..record.records import Conversation, ScenarioRecord, Turn
from .scopes import Scope


class CassetteNotWritten(Exception):
    """A finished recording could not be written: an error of its scenario (or session feature)."""


@dataclass
class AgentState:
    """The agent as the scenario has set it up so far (a copy: steps may change it)."""

    name: str | None = None
    servers: list[str] = field(default_factory=list)
    system_prompt: str | None = None
    allowed_tools: list[str] | None = None
    model: str | None = None  # set by "Given the model"
    config_model: str | None = None  # the agent's own model in the config
    temperature: float | None = None
    max_tokens: int | None = None
    api_base: str | None = None
    vision: bool | None = None  # MCP client features (docs/mcp.md)
    resources: bool = False

    @classmethod
    def from_config(cls, agent: AgentConfig) -> AgentState:
        return cls(
            name=agent.name,
            servers=list(agent.servers),
            system_prompt=agent.system_prompt,
            allowed_tools=list(agent.allowed_tools) if agent.allowed_tools is not None else None,
            config_model=agent.model,
            temperature=agent.temperature,
            max_tokens=agent.max_tokens,
            api_base=agent.api_base,
            vision=agent.vision,
            resources=agent.resources,
        )


@dataclass
class LiveConversation:
    """A conversation in progress: its record plus what it needs while it runs."""

    record: Conversation
    scope: Scope
    agent: AgentState
    feature_model: str | None = None
    scenario_model: str | None = None
    scenario: ScenarioRecord | None = None
    last_turns: list[Turn] = field(default_factory=list)  # since the last "When the user says"
    cassette: Any = None  # its cassettes.Cassette, unless cassette = "off"
    doubles: Doubles = field(default_factory=Doubles)  # tool doubles of the current scenario only
    elicitation: Any = None  # elicitation.ElicitationPlan: how the user answers servers' questions
    attachments: list[str] = field(default_factory=list)  # resources for the next user message (texts)
    broken: str | None = None  # a @session whose turn errored: why its later scenarios are skipped


def elicitation_error(turn: Turn) -> str | None:
    """``elicitation: …`` when the scenario's answers did not fit a server's question."""
    for call in turn.tool_calls:
        for question in call.elicitations:
            if question.get("problems"):
                return (
                    f"elicitation: the answers given with \"Given the user will answer the server's questions with\" "
                    f"do not fit the question of {call.qualified_name} ({question.get('message')!r}): "
                    + "; ".join(question["problems"])
                )
    return None
