"""Loading: find pyproject.toml (or ``-D aitest.config``), read ``[tool.behave_aitest]``,
apply the ``-D aitest.*`` overrides and check every table, so that every mistake is one
ConfigError before the first scenario; ``check_servers_can_start`` checks what a run needs of
its servers (variables set, folders there).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .env import expand_env
from .keys import (
    AGENT_KEYS,
    AGENT_KINDS,
    BUILTIN_ONLY,
    EXTENSION_KEYS,
    PRICE_KEYS,
    RATE_LIMIT_KEYS,
    SERVER_KEYS,
    TOP_KEYS,
    USERDATA_KEYS,
    belongs,
    check_table,
    quoted,
)
from .names import suggest_key
from .records import (
    DEFAULT_CASSETTE_DIR,
    USERDATA_PREFIX,
    AgentConfig,
    Config,
    ConfigError,
    Price,
    RateLimit,
    ServerConfig,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


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
    top = check_table(raw, TOP_KEYS, f"{label} {_table_name(root)}")
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
            home = belongs(short, USERDATA_KEYS)
            if home:
                raise ConfigError(f"-D {key}: not a command-line option (-D sets run-wide keys only).{home}")
            raise ConfigError(f"-D {key}: unknown option.{suggest_key(short, {**USERDATA_KEYS, **dict.fromkeys(EXTENSION_KEYS)})}")
        try:
            out[short] = check(value)
        except ValueError as exc:
            raise ConfigError(f"-D {key}: {exc} (got {quoted(value)}).") from None
    return out


def _rate_limit(table: Any, where: str) -> RateLimit:
    if not isinstance(table, dict) or not table:
        raise ConfigError(f"{where}: give max_concurrency, requests_per_minute or tokens_per_minute (whole numbers of at least 1).")
    return RateLimit(**check_table(table, RATE_LIMIT_KEYS, where))


def _price(table: Any, where: str) -> Price:
    if not isinstance(table, dict) or set(table) != set(PRICE_KEYS):
        raise ConfigError(f"{where}: give both input_per_million and output_per_million (USD per million tokens).")
    return Price(**check_table(table, PRICE_KEYS, where))


def _server(name: str, table: Any, where: str, base_dir: Path = Path(".")) -> ServerConfig:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table with 'command' or 'url'.")
    values = check_table(table, SERVER_KEYS, where)
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
            raise ConfigError(f"{where}: 'url' must start with http:// or https:// (got {quoted(url)}).")
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
    values = check_table(table, AGENT_KEYS, where)
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
            raise ConfigError(f"{where}: {key!r} must start with http:// or https:// (got {quoted(values[key])}).")
    if kind == "python" and not re.match(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$", values["python"]):
        raise ConfigError(f"{where}: 'python' must be \"package.module:callable\" (got {quoted(values['python'])}).")
