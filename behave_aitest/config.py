"""Configuration: ``[tool.behave_aitest]`` in pyproject.toml, plus ``-D aitest.*`` overrides.

Every mistake is reported before the first scenario runs, as a :class:`ConfigError`
whose message names the file, the table and the key, and says what to do. The
loaded configuration is immutable: steps copy what they change into the
conversation's own agent settings.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

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


# --------------------------------------------------------------------------- value checks


def _str(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value


def _positive_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("must be a whole number")
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if not isinstance(value, int) or value < 1:
        raise ValueError("must be a whole number of at least 1")
    return value


def _non_negative_int(value: Any) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("must be a whole number of at least 0")
    return value


def _float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("must be a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError("must be a number") from None
    if not math.isfinite(number):  # inf/nan pass every comparison check below and break the run
        raise ValueError("must be a finite number")
    return number


def _positive_float(value: Any) -> float:
    number = _float(value)
    if not number > 0:
        raise ValueError("must be greater than 0")
    return number


def _non_negative_float(value: Any) -> float:
    number = _float(value)
    if number < 0:
        raise ValueError("must be 0 or greater")
    return number


def _switch(value: Any) -> bool:
    """true/false in the config file, or the same words (also on/off, 1/0, yes/no) from -D."""
    if isinstance(value, bool):
        return value
    words = {"true": True, "on": True, "1": True, "yes": True, "false": False, "off": False, "0": False, "no": False}
    if isinstance(value, str) and value.strip().lower() in words:
        return words[value.strip().lower()]
    raise ValueError("must be true or false")


def _temperature(value: Any) -> float:
    number = _non_negative_float(value)
    if number > 2:
        raise ValueError("must be between 0 and 2")
    return number


def _rate(value: Any) -> float:
    number = _non_negative_float(value)
    if number > 1:
        raise ValueError("must be between 0 and 1 (e.g. 0.8 for 80%)")
    return number


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _str_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        raise ValueError('must be a list of strings, e.g. ["a", "b"]')
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError('must be a list of strings, e.g. ["a", "b"]')
    return tuple(value)


def _str_table(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValueError('must be a table of strings, e.g. { NAME = "value" }')
    for key, item in value.items():
        if not isinstance(item, str):
            raise ValueError(f"{key!r} must be a string (quote numbers and booleans)")
    return dict(value)


def _choice(*allowed: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(repr(a) for a in allowed)}")
        return value

    return check


def _shard(value: Any) -> tuple[int, int]:
    """``K/N``: the K-th (1-based) of N parts."""
    parts = str(value).strip().split("/")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError("must be K/N, e.g. 1/4 for the first of four parts")
    k, n = (int(p) for p in parts)
    if n < 1 or not 1 <= k <= n:
        raise ValueError("must be K/N with 1 <= K <= N, e.g. 1/4 for the first of four parts")
    return k, n


def _model_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    models = _str_list(value)
    if not models:
        raise ValueError("must name at least one model")
    return models


OTEL_EXPORT = "otlp"  # -D aitest.otel=otlp: spans to an OTLP/HTTP collector (docs/telemetry.md)


def otel_problem(value: str) -> str | None:
    """Why ``value`` is not a target (None when it is): ``otlp`` needs the SDK installed."""
    if value == OTEL_EXPORT:
        try:
            import opentelemetry.exporter.otlp.proto.http.trace_exporter  # noqa: F401
            import opentelemetry.sdk.trace  # noqa: F401
        except ImportError:
            return "'otlp' needs the OpenTelemetry SDK and OTLP exporter: pip install 'behave-aitest[otel]'"
        return None
    if not value.endswith(".json"):
        return f"must be 'otlp' or a file name ending in .json (got {value!r})"
    return None


def _otel(value: str) -> str:
    problem = otel_problem(value)
    if problem:
        raise ValueError(problem)
    return value


# Run-level knobs: settable in [tool.behave_aitest] and with -D aitest.<key>=value (the
# latter is what a CI job or a developer overrides).
RUN_KEYS: dict[str, Callable[[Any], Any]] = {
    "model": _str,
    "models": _model_list,
    "max_turns": _positive_int,
    "timeout_s": _positive_float,
    "retries": _non_negative_int,
    "retry_backoff_s": _non_negative_float,
    "api_base": _str,
    "scripted_rules": _str,
    "judge_model": _str,
    "repeat": _positive_int,
    "min_pass_rate": _rate,
    "cassette": _choice(*CASSETTE_MODES),
    "cassette_dir": _str,
    "cassette_tools": _choice(*CASSETTE_TOOL_MODES),
    "durations": _str,
    "max_model_concurrency": _positive_int,
    # provider rate limits (docs/rate-limits.md)
    "adaptive_concurrency": _switch,
    "requests_per_minute": _positive_int,
    "tokens_per_minute": _positive_int,
    "max_run_cost_usd": _positive_float,
    # simulated user (docs/simulated-user.md)
    "user_model": _str,
    "embedding_model": _str,  # docs/checks-meaning-safety.md
    # team workflow (issue 17)
    "min_tool_coverage": _rate,
    "baseline": _str,
    "otel": lambda value: _otel(_str(value)),
    "otel_content": _choice("off", "on"),
    # what one MCP server may ask of the client (issue 25)
    "max_sampling_calls_per_tool_call": _positive_int,
    "max_sampling_calls_per_turn": _positive_int,
    "max_sampling_tokens": _positive_int,
    "max_progress_per_call": _positive_int,
    "max_logs_per_call": _positive_int,
}
TOP_KEYS: dict[str, Callable[[Any], Any]] = {**RUN_KEYS, "prices": dict, "servers": dict, "agents": dict, "rate_limits": dict}
RATE_LIMIT_KEYS: dict[str, Callable[[Any], Any]] = {
    "max_concurrency": _positive_int,
    "requests_per_minute": _positive_int,
    "tokens_per_minute": _positive_int,
}
SERVER_KEYS: dict[str, Callable[[Any], Any]] = {
    "command": _str_list,
    "cwd": _str,
    "env": _str_table,
    "url": _str,
    "transport": _choice(*TRANSPORTS),
    "headers": _str_table,
    "scope": _choice(*SCOPES),
    "startup_timeout_s": _positive_float,
    "tool_timeout_s": _positive_float,
    # MCP client features (docs/mcp.md)
    "sampling": _str,
    "roots": _str_list,
    "protocol": _choice("auto", "legacy", "2026-07-28"),
}
AGENT_KEYS: dict[str, Callable[[Any], Any]] = {
    "servers": _str_list,
    "system_prompt": str,
    "system_prompt_file": _str,
    "allowed_tools": _str_list,
    "model": _str,
    "temperature": _temperature,
    "max_tokens": _positive_int,
    "api_base": _str,
    # MCP client features (docs/mcp.md)
    "vision": _bool,
    "resources": _bool,
    # agents that are not the built-in loop (docs/agents.md)
    "python": _str,
    "url": _str,
    "command": _str_list,
    "ready_url": _str,
    "stateful": _bool,
    "env": _str_table,
}
AGENT_KINDS = ("python", "url", "command")
# Settings of the built-in loop only: an external agent has its own prompt, sampling and client.
BUILTIN_ONLY = ("system_prompt", "system_prompt_file", "temperature", "max_tokens", "vision", "resources")
# -D aitest.<key>=value: the run-level knobs, and which config file to read.
# shard is a property of one CI job, never of the project: -D only.
USERDATA_KEYS: dict[str, Callable[[Any], Any]] = {"config": _str, **RUN_KEYS, "shard": _shard}
# Options read by the report formatters (behave_aitest.formatter), not by this module:
# -D aitest.report_<option>, next to behave's convention behave.formatter.aitest.<option>.
# Listed here so that they are accepted (and suggested) whether or not a report formatter
# is loaded in this run.
REPORT_OPTIONS = ("title", "json", "max_text")
EXTENSION_KEYS: set[str] = {f"report_{name}" for name in REPORT_OPTIONS}
# Issue 18 (the report's title): -D aitest.title=... names the report, like -D aitest.report_title.
EXTENSION_KEYS.add("title")


def _suggest(key: str, known: Mapping[str, Any] | set[str]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    if close:
        return f" Did you mean {close[0]!r}?"
    return f" Known keys: {', '.join(sorted(known))}."


def _quoted(value: Any) -> str:
    """``repr(value)`` for a message, redacted: a mistyped URL can hold a password, a header a token."""
    from .text.redact import Redactor

    return str(Redactor.from_environment().text(repr(value)))


def _check_table(
    table: Mapping[str, Any],
    schema: Mapping[str, Callable[[Any], Any]],
    where: str,
) -> dict[str, Any]:
    """Validate every key of ``table`` against ``schema``; return the converted values."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        check = schema.get(key)
        if check is None:
            raise ConfigError(f"{where}: unknown key {key!r}.{_suggest(key, schema)}")
        if check is dict:
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: {key!r} must be a table ([...{key}.<name>] sections).")
            out[key] = value
            continue
        try:
            out[key] = check(value)
        except ValueError as exc:
            raise ConfigError(f"{where}: {key!r} {exc} (got {_quoted(value)}).") from None
    return out


# --------------------------------------------------------------------------- loading


def find_config_file(start: Path | None = None) -> Path | None:
    """The nearest pyproject.toml with a ``[tool.behave_aitest]`` table, from ``start`` upwards."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            try:
                data = tomllib.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, tomllib.TOMLDecodeError):
                return candidate  # let load_config report the problem with its file name
            if "behave_aitest" in data.get("tool", {}):
                return candidate
    return None


def _read_toml(path: Path) -> tuple[dict[str, Any], str]:
    """The behave-aitest table of ``path`` and its printable name."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found (given by -D aitest.config).") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}.") from None
    if "tool" in data and "behave_aitest" in data["tool"]:
        return data["tool"]["behave_aitest"], "tool.behave_aitest"
    if path.name == "pyproject.toml":
        return {}, "tool.behave_aitest"
    return data, ""


def _display(path: Path, cwd: Path) -> str:
    """``path`` relative to the working directory when it is inside it, for messages."""
    try:
        return str(path.resolve().relative_to(cwd.resolve()))
    except ValueError:
        return str(path)


def _table_name(root: str, *parts: str) -> str:
    name = ".".join(p for p in (root, *parts) if p)
    return f"[{name}]" if name else "(top level)"


def load_config(userdata: Mapping[str, Any] | None = None, cwd: Path | None = None, *, for_run: bool = False) -> Config:
    """Load, merge and validate the configuration for one run.

    ``userdata`` is behave's ``config.userdata``; its ``aitest.*`` keys override the file.
    ``for_run`` (the hooks): also check what starting the servers needs (``${VAR}`` set,
    ``cwd`` exists), so that a mistake stops the run once, before the first scenario, not
    once per scenario; tools like ``cassettes prune`` start no server and skip it.
    """
    config = _load_config(userdata, cwd)
    if for_run:
        check_servers_can_start(config, cwd or Path.cwd())
    return config


def check_servers_can_start(config: Config, cwd: Path, environ: Mapping[str, str] | None = None) -> None:
    """Every ``${VAR}`` a server's ``env``, ``headers`` or ``url`` uses is set (or has a default)
    and every ``cwd`` exists. Skipped when no server will start: a replay with recorded tools
    (``cassette_tools = "record"`` with ``cassette = "replay"`` or ``"auto"``) may run in a CI job
    without the servers' secrets."""
    if config.cassette_tools == "record" and config.cassette in ("replay", "auto"):
        return
    for server in config.servers.values():
        # tool doubles / clean state: every stdio server process gets ${AITEST_SERVER_DIR} (servers.py)
        own = {**(os.environ if environ is None else environ), "AITEST_SERVER_DIR": "."} if server.transport == "stdio" else environ
        for table in ("env", "headers"):
            for key, value in getattr(server, table).items():
                expand_env(value, f"{server.where} {table}.{key}", own)
        if server.url:
            expand_env(server.url, f"{server.where} url", environ)
        if server.cwd is not None and not (server.transport == "stdio" and "${AITEST_SERVER_DIR}" in server.cwd):
            folder = Path(server.cwd) if Path(server.cwd).is_absolute() else cwd / server.cwd
            if not folder.is_dir():
                raise ConfigError(
                    f"{server.where}: 'cwd' folder {server.cwd!r} does not exist (looked in {folder}; "
                    "a relative cwd is taken from the folder behave runs in)."
                )


def _load_config(userdata: Mapping[str, Any] | None, cwd: Path | None) -> Config:
    overrides = _userdata_overrides(userdata or {})
    if "config" in overrides:
        path: Path | None = Path(overrides["config"])
        if not path.is_absolute():
            path = (cwd or Path.cwd()) / path
    else:
        path = find_config_file(cwd)
    raw: dict[str, Any] = {}
    root = "tool.behave_aitest"
    if path is not None:
        raw, root = _read_toml(path)
    label = _display(path, cwd or Path.cwd()) if path else "(no config file)"
    top = _check_table(raw, TOP_KEYS, f"{label} {_table_name(root)}")
    base_dir = path.parent if path else (cwd or Path.cwd())

    servers = {
        name: _server(name, table, f"{label} {_table_name(root, 'servers', name)}", path.parent if path else (cwd or Path.cwd()))
        for name, table in top.get("servers", {}).items()
    }
    agents = {
        name: _agent(name, table, f"{label} {_table_name(root, 'agents', name)}", servers, base_dir)
        for name, table in top.get("agents", {}).items()
    }
    prices = {
        model: _price(table, f"{label} {_table_name(root, 'prices', repr(model))}")
        for model, table in top.get("prices", {}).items()
    }
    rate_limits = {
        model: _rate_limit(table, f"{label} {_table_name(root, 'rate_limits', repr(model))}")
        for model, table in top.get("rate_limits", {}).items()
    }
    settings = {k: v for k, v in top.items() if k not in ("servers", "agents", "prices", "rate_limits") and k in TOP_KEYS}
    settings.update({k: v for k, v in overrides.items() if k not in ("config", "model")})
    model_override = overrides.get("model")
    rules = settings.pop("scripted_rules", None)
    scripted_rules = None
    if rules:
        scripted_rules = Path(rules) if Path(rules).is_absolute() else base_dir / rules
        if not scripted_rules.is_file():
            raise ConfigError(
                f"{label} {_table_name(root)}: 'scripted_rules' file {rules!r} not found "
                f"(looked in {scripted_rules})."
            )
    if model_override and settings.get("models"):
        raise ConfigError("-D aitest.model and -D aitest.models were both given: use one of them.")
    settings["cassette_dir"] = _cassette_dir(
        settings.pop("cassette_dir", None),
        settings.get("cassette", "off"),
        base_dir,
        "-D aitest.cassette_dir:" if "cassette_dir" in overrides else f"{label} {_table_name(root)}: 'cassette_dir'",
        "-D aitest.cassette" if "cassette" in overrides else f"{label} {_table_name(root)}: 'cassette'",
    )
    return Config(
        path=path,
        servers=servers,
        agents=agents,
        model_override=model_override,
        scripted_rules=scripted_rules,
        prices=prices,
        rate_limits=rate_limits,
        **settings,
    )


def _cassette_dir(value: str | None, mode: str, base_dir: Path, where: str, mode_where: str) -> Path:
    """The cassette folder, relative to the config file's folder; replay needs it to exist."""
    given = value or DEFAULT_CASSETTE_DIR
    folder = Path(given) if Path(given).is_absolute() else base_dir / given
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{where} {given!r} is a file, not a folder (looked at {folder}).")
    if mode == "replay" and not folder.is_dir():
        raise ConfigError(
            f"{mode_where} is 'replay' but the cassette folder {given!r} does not exist (looked in {folder}). "
            "Record the cassettes first with -D aitest.cassette=record, or set cassette_dir."
        )
    return folder


def _userdata_overrides(userdata: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in userdata.items():
        if not key.startswith(USERDATA_PREFIX):
            continue
        short = key[len(USERDATA_PREFIX):]
        if short in EXTENSION_KEYS:
            continue
        check = USERDATA_KEYS.get(short)
        if check is None:
            raise ConfigError(f"-D {key}: unknown option.{_suggest(short, {**USERDATA_KEYS, **dict.fromkeys(EXTENSION_KEYS)})}")
        try:
            out[short] = check(value)
        except ValueError as exc:
            raise ConfigError(f"-D {key}: {exc} (got {_quoted(value)}).") from None
    return out


PRICE_KEYS: dict[str, Callable[[Any], Any]] = {
    "input_per_million": _non_negative_float,
    "output_per_million": _non_negative_float,
}


def _rate_limit(table: Any, where: str) -> RateLimit:
    if not isinstance(table, dict) or not table:
        raise ConfigError(f"{where}: give max_concurrency, requests_per_minute or tokens_per_minute (whole numbers of at least 1).")
    return RateLimit(**_check_table(table, RATE_LIMIT_KEYS, where))


def _price(table: Any, where: str) -> Price:
    if not isinstance(table, dict) or set(table) != set(PRICE_KEYS):
        raise ConfigError(f"{where}: give both input_per_million and output_per_million (USD per million tokens).")
    return Price(**_check_table(table, PRICE_KEYS, where))


def _server(name: str, table: Any, where: str, base_dir: Path = Path(".")) -> ServerConfig:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table with 'command' or 'url'.")
    values = _check_table(table, SERVER_KEYS, where)
    command, url = values.get("command"), values.get("url")
    transport = values.get("transport") or ("stdio" if command or not url else "streamable-http")
    if transport == "stdio":
        if not command:
            raise ConfigError(f"{where}: a stdio server needs 'command', e.g. command = [\"python\", \"-m\", \"my_server\"].")
        if url:
            raise ConfigError(f"{where}: 'url' is for transport \"streamable-http\" or \"sse\"; a stdio server has 'command' only.")
    else:
        if not url:
            raise ConfigError(f"{where}: transport {transport!r} needs 'url', e.g. url = \"http://127.0.0.1:8000/mcp\".")
        if command:
            raise ConfigError(f"{where}: 'command' is for stdio servers; start HTTP servers yourself and give 'url'.")
        if not re.match(r"^https?://", url):
            raise ConfigError(f"{where}: 'url' must start with http:// or https:// (got {_quoted(url)}).")
    values["transport"] = transport
    if "roots" in values:  # MCP client features: roots are folders, relative to the config file
        values["roots"] = tuple(_root(r, base_dir, where) for r in values["roots"])
    return ServerConfig(name=name, where=where, **values)


def _root(given: str, base_dir: Path, where: str) -> str:
    """A root folder, absolute; one that does not exist is a mistake worth stopping for."""
    folder = (Path(given) if Path(given).is_absolute() else base_dir / given).resolve()
    if not folder.is_dir():
        raise ConfigError(
            f"{where}: 'roots' folder {given!r} does not exist (looked in {folder}; "
            "a relative root is taken from the config file's folder)."
        )
    return str(folder)


def _agent(
    name: str, table: Any, where: str, servers: Mapping[str, ServerConfig], base_dir: Path
) -> AgentConfig:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table.")
    values = _check_table(table, AGENT_KEYS, where)
    for server in values.get("servers", ()):
        if server not in servers:
            known = ", ".join(sorted(servers)) or "none are defined"
            raise ConfigError(
                f"{where}: 'servers' names unknown server {server!r} "
                f"(known servers: {known}). Define it under [tool.behave_aitest.servers.{server}]."
            )
    _check_kind(values, where)
    prompt_file = values.pop("system_prompt_file", None)
    if prompt_file is not None:
        if "system_prompt" in values:
            raise ConfigError(f"{where}: give 'system_prompt' or 'system_prompt_file', not both.")
        file = Path(prompt_file) if Path(prompt_file).is_absolute() else base_dir / prompt_file
        try:
            values["system_prompt"] = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{where}: 'system_prompt_file' {prompt_file!r} cannot be read: {exc.strerror}.") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"{where}: 'system_prompt_file' {prompt_file!r} is not UTF-8 text "
                f"(byte 0x{exc.object[exc.start]:02x} at position {exc.start}). Save it as UTF-8."
            ) from None
    return AgentConfig(name=name, where=where, **values)


def _check_kind(values: dict[str, Any], where: str) -> None:
    """Exactly one kind of agent (docs/agents.md); the keys of one kind only."""
    kinds = [k for k in AGENT_KINDS if values.get(k)]
    if "python" in kinds and len(kinds) > 1:
        raise ConfigError(
            f"{where}: give one kind of agent: 'python' (a callable) or 'url' (a service, with 'command' to start it) "
            "or 'command' alone (a CLI agent), not several."
        )
    if not kinds:
        for key in ("ready_url", "stateful", "env"):
            if key in values:
                raise ConfigError(f"{where}: {key!r} is for an agent with 'url' or 'command' (docs/agents.md).")
        return
    kind = "python" if "python" in kinds else "url" if "url" in kinds else "command"
    for key in BUILTIN_ONLY:
        if key in values:
            raise ConfigError(
                f"{where}: {key!r} is a setting of behave-aitest's own agent loop; the agent given by {kind!r} "
                f"has its own (remove {key!r}, or remove {kind!r} to test the built-in loop)."
            )
    if "ready_url" in values and "url" not in values:
        raise ConfigError(f"{where}: 'ready_url' is for an agent service ('url'); a CLI agent ('command' alone) is run per turn.")
    if "${AITEST_PORT}" in values.get("url", "") and not values.get("command"):
        raise ConfigError(f"{where}: ${{AITEST_PORT}} in 'url' is the port of a service behave-aitest starts: give 'command' too.")
    if kind == "python" and "env" in values:
        raise ConfigError(f"{where}: 'env' is for a command or service agent; a python agent runs in the test process.")
    for key in ("url", "ready_url"):
        if key in values and not re.match(r"^https?://", values[key]):
            raise ConfigError(f"{where}: {key!r} must start with http:// or https:// (got {_quoted(values[key])}).")
    if kind == "python" and not re.match(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$", values["python"]):
        raise ConfigError(f"{where}: 'python' must be \"package.module:callable\" (got {_quoted(values['python'])}).")


def did_you_mean(name: str, known: Mapping[str, Any] | Sequence[str]) -> str:
    """`` Did you mean 'x'?`` for the closest known name, or nothing."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def unknown_name(kind: str, name: str, known: Mapping[str, Any], table: str, config_file: str, where: str = "") -> ConfigError:
    """The error for a step or table naming an agent or server the config does not define."""
    listed = ", ".join(sorted(known)) or "none are configured"
    prefix = f"{where}: u" if where else "U"
    return ConfigError(
        f"{prefix}nknown {kind} {name!r} (known {kind}s: {listed}).{did_you_mean(name, known)} "
        f"Define it under [tool.behave_aitest.{table}.{name}] in {config_file}, or correct the name."
    )


# --------------------------------------------------------------------------- ${VAR} expansion

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: str, where: str, environ: Mapping[str, str] | None = None) -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}``; an unset variable without default is an error."""
    env = os.environ if environ is None else environ

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(f"{where}: environment variable {name} is not set (used as ${{{name}}}).")

    return _VAR.sub(replace, value)
