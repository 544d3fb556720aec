"""Which keys each table accepts (``[tool.behave_aitest]``, servers, agents, prices, rate
limits, ``-D aitest.*``) and the checker of each; ``check_table`` applies them to one table,
naming the file, the table and the key of any mistake.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .names import suggest_key
from .records import (
    CASSETTE_MODES,
    CASSETTE_TOOL_MODES,
    SCOPES,
    TRANSPORTS,
    ConfigError,
)
from .values import (
    boolean,
    choice,
    model_list,
    non_negative_number,
    non_negative_int,
    otel_target,
    positive_number,
    positive_int,
    rate,
    shard,
    text,
    text_list,
    text_table,
    switch,
    temperature,
)

RUN_KEYS: dict[str, Callable[[Any], Any]] = {
    "model": text,
    "models": model_list,
    "max_turns": positive_int,
    "timeout_s": positive_number,
    "retries": non_negative_int,
    "retry_backoff_s": non_negative_number,
    "api_base": text,
    "scripted_rules": text,
    "judge_model": text,
    "repeat": positive_int,
    "min_pass_rate": rate,
    "cassette": choice(*CASSETTE_MODES),
    "cassette_dir": text,
    "cassette_tools": choice(*CASSETTE_TOOL_MODES),
    "durations": text,
    "max_model_concurrency": positive_int,
    # provider rate limits (docs/rate-limits.md)
    "adaptive_concurrency": switch,
    "requests_per_minute": positive_int,
    "tokens_per_minute": positive_int,
    "max_run_cost_usd": positive_number,
    # simulated user (docs/simulated-user.md)
    "user_model": text,
    "embedding_model": text,  # docs/checks-meaning-safety.md
    # team workflow (issue 17)
    "min_tool_coverage": rate,
    "baseline": text,
    "otel": lambda value: otel_target(text(value)),
    "otel_content": choice("off", "on"),
    # what one MCP server may ask of the client (issue 25)
    "max_sampling_calls_per_tool_call": positive_int,
    "max_sampling_calls_per_turn": positive_int,
    "max_sampling_tokens": positive_int,
    "max_progress_per_call": positive_int,
    "max_logs_per_call": positive_int,
}
TOP_KEYS: dict[str, Callable[[Any], Any]] = {**RUN_KEYS, "prices": dict, "servers": dict, "agents": dict, "rate_limits": dict}
RATE_LIMIT_KEYS: dict[str, Callable[[Any], Any]] = {
    "max_concurrency": positive_int,
    "requests_per_minute": positive_int,
    "tokens_per_minute": positive_int,
}
SERVER_KEYS: dict[str, Callable[[Any], Any]] = {
    "command": text_list,
    "cwd": text,
    "env": text_table,
    "url": text,
    "transport": choice(*TRANSPORTS),
    "headers": text_table,
    "scope": choice(*SCOPES),
    "startup_timeout_s": positive_number,
    "tool_timeout_s": positive_number,
    # MCP client features (docs/mcp.md)
    "sampling": text,
    "roots": text_list,
    "protocol": choice("auto", "legacy", "2026-07-28"),
}
AGENT_KEYS: dict[str, Callable[[Any], Any]] = {
    "servers": text_list,
    "system_prompt": str,
    "system_prompt_file": text,
    "allowed_tools": text_list,
    "model": text,
    "temperature": temperature,
    "max_tokens": positive_int,
    "api_base": text,
    # MCP client features (docs/mcp.md)
    "vision": boolean,
    "resources": boolean,
    # agents that are not the built-in loop (docs/agents.md)
    "python": text,
    "url": text,
    "command": text_list,
    "ready_url": text,
    "stateful": boolean,
    "env": text_table,
}
AGENT_KINDS = ("python", "url", "command")
# Settings of the built-in loop only: an external agent has its own prompt, sampling and client.
BUILTIN_ONLY = ("system_prompt", "system_prompt_file", "temperature", "max_tokens", "vision", "resources")
# -D aitest.<key>=value: the run-level knobs, and which config file to read.
# shard is a property of one CI job, never of the project: -D only.
USERDATA_KEYS: dict[str, Callable[[Any], Any]] = {"config": text, **RUN_KEYS, "shard": shard}
# Options read by the report formatters (behave_aitest.formatter), not by this module:
# -D aitest.report_<option>, next to behave's convention behave.formatter.aitest.<option>.
# Listed here so that they are accepted (and suggested) whether or not a report formatter
# is loaded in this run.
REPORT_OPTIONS = ("title", "json", "max_text")
EXTENSION_KEYS: set[str] = {f"report_{name}" for name in REPORT_OPTIONS}
# Issue 18 (the report's title): -D aitest.title=... names the report, like -D aitest.report_title.
EXTENSION_KEYS.add("title")


PRICE_KEYS: dict[str, Callable[[Any], Any]] = {
    "input_per_million": non_negative_number,
    "output_per_million": non_negative_number,
}


# Where each kind of table lives, for a key written under the wrong one (issue 24, item 22):
# "'allowed_tools' belongs under [tool.behave_aitest.agents.<name>]", not a did-you-mean to
# whatever key of this table looks closest.
TABLES: tuple[tuple[str, Mapping[str, Callable[[Any], Any]]], ...] = (
    ("[tool.behave_aitest]", TOP_KEYS),
    ("[tool.behave_aitest.agents.<name>]", AGENT_KEYS),
    ("[tool.behave_aitest.servers.<name>]", SERVER_KEYS),
    ("[tool.behave_aitest.rate_limits.<model>]", RATE_LIMIT_KEYS),
    ("[tool.behave_aitest.prices.<model>]", PRICE_KEYS),
)


def belongs(key: str, schema: Mapping[str, Any]) -> str:
    """`` It belongs under [...]`` for a key another table takes (not ``schema``), or nothing."""
    homes = [name for name, keys in TABLES if keys is not schema and key in keys and keys[key] is not dict]
    return f" It belongs under {' or '.join(homes)}." if homes else ""


def unknown_key(key: str, schema: Mapping[str, Any]) -> str:
    """What follows "unknown key 'x'.": the table it belongs under, else a did-you-mean."""
    return belongs(key, schema) or suggest_key(key, schema)


def quoted(value: Any) -> str:
    """``repr(value)`` for a message, redacted: a mistyped URL can hold a password, a header a token."""
    from ..text.redact import Redactor

    return str(Redactor.from_environment().text(repr(value)))


def check_table(
    table: Mapping[str, Any],
    schema: Mapping[str, Callable[[Any], Any]],
    where: str,
) -> dict[str, Any]:
    """Validate every key of ``table`` against ``schema``; return the converted values."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        check = schema.get(key)
        if check is None:
            raise ConfigError(f"{where}: unknown key {key!r}.{unknown_key(key, schema)}")
        if check is dict:
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: {key!r} must be a table ([...{key}.<name>] sections).")
            out[key] = value
            continue
        try:
            out[key] = check(value)
        except ValueError as exc:
            raise ConfigError(f"{where}: {key!r} {exc} (got {quoted(value)}).") from None
    return out
