"""The loaded configuration: the frozen records a run reads (Config, ServerConfig,
AgentConfig, Price, RateLimit), the constants their fields take and ConfigError.

Nothing here reads a file: ``load`` builds these records. Imports the standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

TRANSPORTS = ("stdio", "streamable-http", "sse")
SCOPES = ("conversation", "feature", "run")
SCRIPTED_MODEL = "scripted"
CASSETTE_MODES = ("off", "record", "replay", "auto")
CASSETTE_TOOL_MODES = ("off", "record")
DEFAULT_CASSETTE_DIR = "features/cassettes"
USERDATA_PREFIX = "aitest."


def is_scripted(model: str | None) -> bool:
    """The built-in scripted model: ``scripted``, or one of its named models ``scripted/<name>``
    (docs/scripted-model.md)."""
    return model == SCRIPTED_MODEL or str(model or "").startswith(SCRIPTED_MODEL + "/")


class ConfigError(Exception):
    """A configuration mistake, worded for the person who has to fix it."""


@dataclass(frozen=True)
class ServerConfig:
    """How to reach one MCP server, and how long one process of it lives."""

    name: str
    transport: str = "stdio"
    command: tuple[str, ...] = ()
    cwd: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    scope: str = "conversation"
    startup_timeout_s: float = 30.0
    tool_timeout_s: float = 60.0
    where: str = ""  # "pyproject.toml [tool.behave_aitest.servers.bank]", for messages
    # MCP client features (docs/mcp.md)
    sampling: str = "agent"  # "agent" | a model string | "off": who answers the server's sampling requests
    roots: tuple[str, ...] = ()  # absolute folders offered as roots (file:// URIs); given relative to the config file
    protocol: str = "auto"  # "auto" (probe 2026-07-28, else the handshake) | "legacy" (2025-11-25 handshake) | "2026-07-28"


@dataclass(frozen=True)
class AgentConfig:
    """A named agent: servers, system prompt, tool allow-list and model settings."""

    name: str
    servers: tuple[str, ...] = ()
    system_prompt: str | None = None
    allowed_tools: tuple[str, ...] | None = None
    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    api_base: str | None = None
    where: str = ""
    # MCP client features (docs/mcp.md)
    vision: bool | None = None  # images from tools as image parts: None = ask litellm (supports_vision)
    resources: bool = False  # a built-in read_resource tool reads resources of the agent's servers
    # an agent under test that is not the built-in loop (docs/agents.md): exactly one kind
    python: str | None = None  # "package.module:callable", imported from the config file's folder
    url: str | None = None  # an agent service's chat-completions URL
    command: tuple[str, ...] = ()  # with url: starts the service; alone: a CLI agent run per turn
    ready_url: str | None = None  # the service is ready when this answers
    stateful: bool = False  # send only the new messages and the thread id
    env: Mapping[str, str] = field(default_factory=dict)  # extra environment of a command or service agent

    @property
    def kind(self) -> str:
        """"builtin", "python", "service" or "command"."""
        if self.python:
            return "python"
        if self.url:
            return "service"
        if self.command:
            return "command"
        return "builtin"


@dataclass(frozen=True)
class Price:
    """A model's price in USD per million tokens, for models litellm has no price for."""

    input_per_million: float
    output_per_million: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_million + output_tokens * self.output_per_million) / 1_000_000


@dataclass(frozen=True)
class RateLimit:
    """One model's limits from the configuration (docs/rate-limits.md); None: not set."""

    max_concurrency: int | None = None  # calls in flight at once: the adaptive limit's ceiling
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None


@dataclass(frozen=True)
class Config:
    """The whole, validated configuration of one behave run."""

    path: Path | None = None
    model: str = SCRIPTED_MODEL
    models: tuple[str, ...] = ()  # -D aitest.models=a,b: one flow per model
    model_override: str | None = None  # -D aitest.model=...: beats tags and steps
    max_turns: int = 10
    timeout_s: float = 120.0
    retries: int = 2
    retry_backoff_s: float = 1.0
    api_base: str | None = None
    scripted_rules: Path | None = None
    judge_model: str | None = None  # None: judge with the agent's own model
    repeat: int = 1
    min_pass_rate: float = 1.0
    cassette: str = "off"  # off | record | replay | auto (see behave_aitest.cassettes)
    cassette_dir: Path | None = None  # resolved; None: <config dir>/features/cassettes
    cassette_tools: str = "off"  # off | record: also record MCP tool calls, replay them without the servers
    shard: tuple[int, int] | None = None  # -D aitest.shard=K/N: run only the K-th of N parts (docs/parallel.md)
    durations: str | None = None  # a previous run's JSON report: unit durations for scheduling and shards
    max_model_concurrency: int | None = None  # calls to one model at once, across all workers
    # provider rate limits (docs/rate-limits.md): per model, across all workers
    adaptive_concurrency: bool = True  # find each model's concurrency limit from its 429s
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    rate_limits: Mapping[str, RateLimit] = field(default_factory=dict)  # [rate_limits."model"]: beats the three above
    max_run_cost_usd: float | None = None  # no new conversation once the run's known cost passes it
    # team workflow (issue 17): tool-coverage gate, baseline report for inline deltas, OTel export
    min_tool_coverage: float | None = None  # 0-1: below it the run fails, naming the tools never called
    baseline: str | None = None  # a previous run's JSON report: deltas shown inline in the HTML report
    otel: str | None = None  # "otlp" or PATH.json: OpenTelemetry spans of the run (behave_aitest.telemetry)
    otel_content: str = "off"  # "on": tool arguments and results in the spans too (redacted)
    # what one MCP server may ask of the client (issue 25, H6/H7; docs/mcp.md "Limits")
    max_sampling_calls_per_tool_call: int = 10
    max_sampling_calls_per_turn: int = 25
    max_sampling_tokens: int = 4096  # a sampling request's maxTokens is lowered to this
    max_progress_per_call: int = 200  # progress notifications kept per tool call (first and last half)
    max_logs_per_call: int = 200  # log messages kept per tool call (first and last half)
    prices: Mapping[str, Price] = field(default_factory=dict)
    servers: Mapping[str, ServerConfig] = field(default_factory=dict)
    agents: Mapping[str, AgentConfig] = field(default_factory=dict)
    # simulated user (docs/simulated-user.md): the model playing the user; None: the judge's, else the agent's
    user_model: str | None = None
    # "the response is similar to" (docs/checks-meaning-safety.md): a litellm embedding model; None: offline wordllama
    embedding_model: str | None = None

    def rate_limit(self, model: str) -> RateLimit:
        """``model``'s limits: its ``[rate_limits."model"]`` table, else the run-wide keys."""
        table = self.rate_limits.get(model) or RateLimit()
        return RateLimit(
            max_concurrency=table.max_concurrency or self.max_model_concurrency,
            requests_per_minute=table.requests_per_minute or self.requests_per_minute,
            tokens_per_minute=table.tokens_per_minute or self.tokens_per_minute,
        )

    @property
    def base_dir(self) -> Path:
        """Directory that relative paths in the config are resolved against."""
        return self.path.parent if self.path else Path.cwd()
