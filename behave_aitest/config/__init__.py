"""Configuration: ``[tool.behave_aitest]`` in pyproject.toml, plus ``-D aitest.*`` overrides.

Every mistake is reported before the first scenario runs, as a :class:`ConfigError`
whose message names the file, the table and the key, and says what to do. The
loaded configuration is immutable: steps copy what they change into the
conversation's own agent settings.

What lives here (imports point down this list; the package imports only ``errors`` and
``text`` of behave-aitest, below it):

- ``records``: the frozen records a run reads (:class:`Config`, :class:`ServerConfig`,
  :class:`AgentConfig`, :class:`Price`, :class:`RateLimit`), their constants, :class:`ConfigError`;
- ``values``: one checker per kind of value (a positive int, a rate, a choice ...);
- ``names``: did-you-mean, one rule for every unknown name;
- ``keys``: which keys each table accepts and the checker of each; ``check_table``;
- ``env``: ``${VAR}`` expansion;
- ``load``: finding and reading the file, the overrides, building the records.

``from behave_aitest.config import load_config, Config, ConfigError`` is the face users and
the other packages use; the names below are that face.
"""

from __future__ import annotations

from .env import expand_env
from .keys import (
    AGENT_KEYS,
    AGENT_KINDS,
    BUILTIN_ONLY,
    EXTENSION_KEYS,
    PRICE_KEYS,
    RATE_LIMIT_KEYS,
    REPORT_OPTIONS,
    RUN_KEYS,
    SERVER_KEYS,
    TOP_KEYS,
    USERDATA_KEYS,
    check_table,
)
from .load import check_servers_can_start, find_config_file, load_config, tomllib
from .names import did_you_mean, suggest_key, unknown_name
from .records import (
    CASSETTE_MODES,
    CASSETTE_TOOL_MODES,
    DEFAULT_CASSETTE_DIR,
    SCOPES,
    SCRIPTED_MODEL,
    TRANSPORTS,
    USERDATA_PREFIX,
    AgentConfig,
    Config,
    ConfigError,
    Price,
    RateLimit,
    ServerConfig,
    is_scripted,
)
from .values import OTEL_EXPORT, otel_problem

__all__ = [
    "AGENT_KEYS", "AGENT_KINDS", "BUILTIN_ONLY", "CASSETTE_MODES", "CASSETTE_TOOL_MODES", "DEFAULT_CASSETTE_DIR",
    "EXTENSION_KEYS", "OTEL_EXPORT", "PRICE_KEYS", "RATE_LIMIT_KEYS", "REPORT_OPTIONS", "RUN_KEYS", "SCOPES",
    "SCRIPTED_MODEL", "SERVER_KEYS", "TOP_KEYS", "TRANSPORTS", "USERDATA_KEYS", "USERDATA_PREFIX",
    "AgentConfig", "Config", "ConfigError", "Price", "RateLimit", "ServerConfig",
    "check_servers_can_start", "check_table", "did_you_mean", "expand_env", "find_config_file", "is_scripted",
    "load_config", "otel_problem", "suggest_key", "tomllib", "unknown_name",
]
