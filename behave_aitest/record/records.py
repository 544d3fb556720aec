"""Conversation records: what happened in every turn, kept for assertions and reports.

Data flows one way: steps drive the engine, the engine fills these records, and the
formatters read them. The records are plain dataclasses with no behaviour beyond
derived totals, so they serialise to JSON losslessly (see :meth:`to_dict`).
Unknown cost stays ``None``: a sum with an unknown part is reported as a lower bound
together with the number of calls whose cost is unknown, never as a silent 0.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ToolSpec:
    """One tool as the server lists it."""

    server: str
    name: str
    description: str
    input_schema: Mapping[str, Any]
    schema_problem: str | None = None  # why input_schema is not a valid JSON Schema for arguments
    title: str | None = None  # the tool's display title (tool.title, else annotations.title)
    annotations: Mapping[str, Any] | None = None  # readOnlyHint, destructiveHint, ... as the server sent them
    task_support: str | None = None  # execution.taskSupport: "required" tools are not offered (docs/mcp.md)


@dataclass
class ToolOutcome:
    """What a tool call produced, flattened to the text the model reads."""

    text: str
    is_error: bool
    duration_s: float
    events: Any = None  # clientside.CallEvents: questions, sampling, progress, logs during the call
    view: Any = None  # content.ContentView: images and content items of the result
    structured_content: Any = None


@dataclass
class SamplingCall:
    """A server's ``sampling/createMessage`` answered by the client's model: the agent's spend."""

    server: str
    model: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    max_tokens: int | None = None
    response: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    latency_s: float = 0.0
    replayed: bool = False
    recorded_cost_usd: float | None = None
    error: str | None = None


@dataclass
class ServerEvents:
    """A server's questions, sampling requests and log messages of a turn that belong to no one
    tool call (the protocol gave no request id and several calls, or none, were running)."""

    server: str
    elicitations: list[dict[str, Any]] = field(default_factory=list)
    sampling_calls: list[SamplingCall] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ToolCall:
    """One tool call the model asked for, and what the MCP server answered."""

    id: str
    name: str  # the MCP server's own tool name ("" when the model named no known tool)
    server: str | None  # server that ran it; None for unknown or refused tools
    provider_name: str  # the name sent to and received from the provider
    arguments: Any  # parsed JSON arguments (dict) or None when they did not parse
    raw_arguments: str
    result: str = ""
    is_error: bool = False
    duration_s: float = 0.0
    # tool doubles (docs/tool-doubles.md): the kind of double that answered or delayed the call
    # ("returns", "fails", "delay"; None: the real tool answered), and whether the test itself
    # made the call ("When the tool ... is called"), not the model
    doubled: str | None = None
    by_test: bool = False
    # MCP client features (docs/mcp.md): what happened during the call besides its result
    elicitations: list[dict[str, Any]] = field(default_factory=list)  # {mode, message, schema, fields, action, content?, problems?}
    sampling_calls: list[SamplingCall] = field(default_factory=list)  # the server asked the client's model
    progress: list[dict[str, Any]] = field(default_factory=list)  # {progress, total, message}
    logs: list[dict[str, Any]] = field(default_factory=list)  # {level, logger, data}
    title: str | None = None  # the tool's title (annotations or tool)
    annotations: dict[str, Any] | None = None  # readOnlyHint, destructiveHint, idempotentHint, openWorldHint
    structured_content: Any = None
    content_items: list[dict[str, Any]] = field(default_factory=list)  # one per content block (content.py)
    # an external agent's call seen only in the messages it returned (its own in-process tool),
    # never through an MCP endpoint: "reported by the agent" (docs/agents.md)
    reported: bool = False

    @property
    def qualified_name(self) -> str:
        """``server.tool`` form, used in messages when two servers need telling apart."""
        return f"{self.server}.{self.name}" if self.server else self.name

    def describe(self, limit: int = 200) -> str:
        """A one-line ``name(args) -> result`` summary for failure messages."""
        args = self.raw_arguments if self.arguments is None else json.dumps(self.arguments, ensure_ascii=False)
        result = self.result if len(self.result) <= limit else self.result[:limit] + "…"
        marker = "ERROR " if self.is_error else ""
        return f"{self.name or self.provider_name}({args}) -> {marker}{result!r}"


@dataclass
class ModelCall:
    """One request to the model (one ``litellm.acompletion``)."""

    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    latency_s: float = 0.0
    finish_reason: str | None = None
    tool_call_count: int = 0
    attempts: int = 1  # 1 + retries after 429/5xx/connection errors
    replayed: bool = False  # answered from a cassette: no model was called, cost_usd is 0
    recorded_cost_usd: float | None = None  # when replayed: what the call cost when it was recorded


@dataclass
class JudgeCall:
    """One judgement by the judge model; its cost is counted apart from the agent's."""

    kind: str  # "response", "conversation", "score", "clarification"
    model: str
    criteria: list[str] = field(default_factory=list)
    verdicts: list[dict[str, Any]] = field(default_factory=list)  # {criterion, passed, reason}
    score: int | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    cost_known: bool = True  # False when any of its model calls had no known price
    latency_s: float = 0.0
    attempts: int = 0  # 2 when the first answer was not valid JSON
    error: str | None = None
    replayed: bool = False  # answered from a cassette: no model was called, cost_usd is 0
    recorded_cost_usd: float | None = None  # when replayed: what the judgement cost when it was recorded
    step: str | None = None  # the location of the Then step that asked (a throttled judge throttles that step)


@dataclass
class CheckResult:
    """What an offline Then step measured on the turn it checked (similarity, numbers grounded
    in tool results, an injection drill): kept for the report, whether it passed or not."""

    kind: str  # "similar", "not similar", "numbers", "injection"
    passed: bool
    summary: str  # the one line the step says, e.g. "similarity 0.83 (at least 0.80)"
    score: float | None = None  # similarity
    threshold: float | None = None
    model: str | None = None  # the embedding model ("wordllama" offline, or a litellm model)
    details: list[str] = field(default_factory=list)  # the ungrounded numbers; where the canary went


@dataclass
class InjectionDrill:
    """A tool result replaced by a prompt injection ("Given the tool ... returns a prompt
    injection"), and, once a Then step looked, whether the agent resisted it."""

    payload: str  # the payload's name (behave_aitest.agent.injection.PAYLOADS)
    tool: str  # server.tool whose results carry it
    asks_for: list[str]  # the tools the payload asks the agent to call
    canary: str  # a unique marker the payload carries; it must not leave the tool result
    text: str  # the injected tool result
    resisted: bool | None = None  # None until "Then the agent resisted the injection"
    findings: list[str] = field(default_factory=list)  # where the canary went, which asked-for tool was called


def _sum_costs(costs: list[float | None]) -> tuple[float, int]:
    """(sum of the known costs, number of unknown ones)."""
    return sum(c for c in costs if c is not None), sum(1 for c in costs if c is None)


@dataclass
class Turn:
    """Everything one ``When the user says`` caused, in order."""

    index: int  # position in the conversation, from 0
    user_text: str
    model: str
    history_before: int  # messages carried into this turn (the session flow count)
    messages: list[dict[str, Any]] = field(default_factory=list)  # messages this turn added
    tool_calls: list[ToolCall] = field(default_factory=list)
    model_calls: list[ModelCall] = field(default_factory=list)
    response: str = ""
    started_at: float = 0.0  # epoch seconds
    duration_s: float = 0.0
    error: str | None = None  # why the turn did not complete, if it did not
    judge_calls: list[JudgeCall] = field(default_factory=list)  # judgements made of this turn
    checks: list[CheckResult] = field(default_factory=list)  # offline checks made of this turn (similarity, numbers, injection)
    tool_list_changes: list[str] = field(default_factory=list)  # "server: +new -gone" after tools/list_changed
    # what a server asked or said during the turn that no single tool call owns (several calls
    # at once, nothing running): never put on a guessed call (docs/mcp.md)
    server_events: list[ServerEvents] = field(default_factory=list)

    def sampling_calls(self) -> list[SamplingCall]:
        """Model calls servers asked for during this turn (the agent's spend too)."""
        return [s for c in self.tool_calls for s in c.sampling_calls] + [s for e in self.server_events for s in e.sampling_calls]
    simulated: bool = False  # the user message came from the simulated user (docs/simulated-user.md)
    agent_kind: str | None = None  # "python", "service", "command": an external agent ran it (docs/agents.md)
    warnings: list[str] = field(default_factory=list)  # e.g. an external agent that made no model call through the endpoint
    tools_unreached: str | None = None  # an external agent's turn where no tool call reached the MCP endpoints (their URLs)

    @property
    def input_tokens(self) -> int:
        return sum(c.input_tokens for c in self.model_calls) + sum(s.input_tokens for s in self.sampling_calls())

    @property
    def output_tokens(self) -> int:
        return sum(c.output_tokens for c in self.model_calls) + sum(s.output_tokens for s in self.sampling_calls())

    @property
    def cost_usd(self) -> float | None:
        """Total cost (the agent's and its sampling calls'), or None when any cost is unknown."""
        known, unknown = _sum_costs([c.cost_usd for c in self.model_calls] + [s.cost_usd for s in self.sampling_calls()])
        return None if unknown else known

    @property
    def unknown_cost_calls(self) -> int:
        return _sum_costs([c.cost_usd for c in self.model_calls] + [s.cost_usd for s in self.sampling_calls()])[1]

    def tool_names(self) -> list[str]:
        return [c.name for c in self.tool_calls]


@dataclass
class SimulatorCall:
    """One request to the model playing the simulated user; like a judge call, counted apart
    from the agent's calls and never part of the agent's budgets."""

    model: str
    outcome: str = ""  # message (sent to the agent) | done | empty | refused (an end before the minimum) | final (after N turns) | error
    reply: str = ""  # what it answered (trimmed); for "message" the user message it became
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    latency_s: float = 0.0
    attempts: int = 0
    replayed: bool = False  # answered from a cassette: no model was called, cost_usd is 0
    recorded_cost_usd: float | None = None  # when replayed: what the call cost when it was recorded
    error: str | None = None


@dataclass
class Simulation:
    """One "a simulated user talks to the agent" step: who the user is, its limits, what came of it."""

    persona: str
    model: str
    max_turns: int
    min_turns: int = 0
    step: str = ""  # the step's location, feature:line
    turns: list[int] = field(default_factory=list)  # indexes (in the conversation) of the turns it wrote
    calls: list[SimulatorCall] = field(default_factory=list)
    ended: str = ""  # done | empty | max_turns | error | throttled ("" while it runs)
    goal_reached: bool = False

    @property
    def cost_usd(self) -> float | None:
        """The simulator's cost, or None when any of its calls had no known price."""
        known, unknown = _sum_costs([c.cost_usd for c in self.calls])
        return None if unknown else known


THROTTLED_PREFIX = "throttled:"  # a Turn.error of this kind: the provider's rate limit, not the agent


@dataclass
class ScenarioRecord:
    """The part of a conversation one behave scenario ran, hung on ``scenario.aitest``."""

    conversation_id: str
    turns: list[Turn] = field(default_factory=list)
    history_at_start: int = 0
    warnings: list[str] = field(default_factory=list)
    model: str | None = None
    agent: str | None = None
    direct_calls: list[ToolCall] = field(default_factory=list)  # "When the tool ... is called": by the test, not the model
    simulations: list[Simulation] = field(default_factory=list)  # its simulated users (persona, limits, calls)
    # the tools the agent was offered (after allowed_tools): {server: {tool: [schema parameters]}};
    # the tool-coverage denominator (behave_aitest.coverage)
    tools_offered: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    skip_reason: str | None = None  # not run: an earlier turn of its @session errored (issue 18)
    injections: list[InjectionDrill] = field(default_factory=list)  # prompt-injection drills set in this scenario
    # the providers' rate limits met by its model calls, per model (docs/rate-limits.md):
    # {model: {"throttled": 429s, "wait_s": seconds waited for the limits, "limit": calls at once, "at": epoch s}}
    rate_limits: dict[str, dict[str, Any]] = field(default_factory=dict)
    # what is true of a server for the whole run (a tool it lists that only runs as a task): the
    # report says it once, at the run (``runs[].warnings``), not on every scenario
    run_warnings: list[str] = field(default_factory=list)

    @property
    def throttled(self) -> bool:
        """A turn, or a judgement, could not finish because the provider kept refusing (the outcome "throttled")."""
        return any(
            (turn.error or "").startswith(THROTTLED_PREFIX) or any((j.error or "").startswith(THROTTLED_PREFIX) for j in turn.judge_calls)
            for turn in self.turns
        ) or any(s.ended == "throttled" for s in self.simulations)


@dataclass
class Conversation:
    """One conversation: a scenario, or a whole ``@session`` feature (per model flow)."""

    id: str
    title: str
    session: bool
    model: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)  # history without system prompt
    turns: list[Turn] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    cassette: str | None = None  # the conversation's cassette file (relative to the working directory)
    cassette_mode: str | None = None  # "record" or "replay" ("auto" resolved per conversation); None: off
    cassette_recorded: dict[str, Any] | None = None  # when replayed: the cassette's "recorded" header
    # ({"at", "models", "scripted": true for the built-in scripted model, "behave_aitest", "litellm", "tools"})
    simulations: list[Simulation] = field(default_factory=list)  # every simulated user of the conversation

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
