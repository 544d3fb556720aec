"""``behave-aitest doctor``: everything a run needs, checked without running a scenario.

One line per check, ``[ok]``, ``[warn]`` (the run works, but read this) or ``[FAIL]``; exit
0 when nothing failed, 1 otherwise. It reads the config and the features as ``behave``
would (the same ``[tool.behave]`` settings, ``-D`` options and paths), routes every model
through litellm and its environment check, starts every server once (within its
``startup_timeout_s``: doctor never hangs on a server) and lists its tools, and in replay
mode names the conversations that have no cassette.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Config, ConfigError, ServerConfig, is_scripted, load_config
from ..text.safetext import plural

OK, WARN, FAIL = "ok", "warn", "FAIL"


@dataclass
class Check:
    """One line of the doctor's report."""

    status: str  # OK, WARN or FAIL
    text: str

    def line(self) -> str:
        return f"[{self.status}]{' ' * (5 - len(self.status))}{self.text}"


def run(behave_args: Sequence[str], out: Any) -> int:
    """Run every check, printing each line as it is known; 1 when any failed. Every line goes
    through the run's one secret rule (``redact.Redactor``, built from the same config and
    environment as a run's): a URL's password, a server's ``env`` or ``headers`` value, a
    provider key in a server's stderr tail never reach the console (issue 25, H4)."""
    from ..text.redact import Redactor
    from ..text.safetext import message

    checks: list[Check] = []
    redactor = Redactor.from_environment(None)

    def say(check: Check) -> None:
        checks.append(check)
        print(message(redactor.text(check.line())), file=out, flush=True)

    parsed: list[Check] = []
    features, userdata, registry = features_and_steps(behave_args, parsed.append)
    try:
        config = load_config(userdata, for_run=True)
    except ConfigError as exc:
        say(Check(FAIL, f"config: {exc}"))
        config = None
    else:
        redactor = Redactor.from_environment(config)
        say(Check(OK, f"config: {config.path or 'no [tool.behave_aitest] table: defaults'} is valid"))
    for check in parsed:  # the config first, then what behave parsed
        say(check)
    if config is not None:
        if features is not None:
            from ..run.hooks import expand_model_flows

            expand_model_flows(features, config.models)
        for check in model_checks(config, features or []):
            say(check)
        listed = Listed()
        for check in server_checks(config, listed):
            say(check)
        for check in run_checks(config, features or [], listed, registry):
            say(check)
        for check in agent_checks(config):
            say(check)
        if config.cassette == "replay" and features is not None:
            for check in cassette_checks(config, features):
                say(check)
    failed = sum(1 for c in checks if c.status == FAIL)
    warned = sum(1 for c in checks if c.status == WARN)
    verdict = "all is well" if not failed else f"{failed} problem{'s' * (failed != 1)}"
    warnings = f", {plural(warned, 'warning')}" if warned else ""
    print(f"doctor: {plural(len(checks), 'check')}, {verdict}{warnings}.", file=out, flush=True)
    return 1 if failed else 0


def agent_checks(config: Config) -> list[Check]:
    """Agents that are not the built-in loop (docs/agents.md): a python agent imports and is
    callable; a service or CLI agent is named with what will start or reach it."""
    from ..agent.external.base import AgentError
    from ..agent.external.python import load_callable

    checks = []
    for agent in config.agents.values():
        if agent.kind == "python":
            try:
                load_callable(str(agent.python), config.base_dir, agent.where)
            except AgentError as exc:
                checks.append(Check(FAIL, f"agent {agent.name!r}: {exc}"))
                continue
            checks.append(Check(OK, f"agent {agent.name!r}: python agent {agent.python} imports"))
        elif agent.kind == "service":
            started = f", started with {' '.join(agent.command)}" if agent.command else " (not started by behave-aitest: it must be running)"
            checks.append(Check(OK, f"agent {agent.name!r}: agent service at {agent.url}{started}"))
        elif agent.kind == "command":
            checks.append(Check(OK, f"agent {agent.name!r}: CLI agent {' '.join(agent.command)}, run once per turn"))
    return checks


# --------------------------------------------------------------------------- features


def features_and_steps(behave_args: Sequence[str], say: Any) -> tuple[list[Any] | None, dict[str, Any], Any]:
    """Parse the features and load the step modules as behave does (a dry run, in this
    process, no hooks): parse errors and undefined steps, with their locations."""
    from behave.configuration import Configuration
    from behave.runner import Runner

    try:
        config = Configuration(["--dry-run", "--format", "null", "--no-summary", "--no-snippets", *behave_args])
    except BaseException as exc:  # behave's own argparse exits on a bad option
        say(Check(FAIL, f"behave options {' '.join(behave_args)!r}: {exc}"))
        return None, {}, None
    # A check writes nothing: [tool.behave]'s formatters (a report that would overwrite the
    # last real one), their output files and the JUnit reporter are dropped.
    config.format = ["null"]
    config.outputs = []
    config.reporters = []
    config.junit = False
    runner = Runner(config)
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            runner.run()
    except Exception as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        say(Check(FAIL, f"features: {detail}"))
        return None, dict(config.userdata), None
    features = list(runner.features)
    scenarios = sum(1 for f in features for _ in f.walk_scenarios())
    if not features:
        say(Check(FAIL, f"features: none found in {', '.join(config.paths) or 'features/'}"))
    else:

        say(Check(OK, f"features: {plural(len(features), 'file')}, {plural(scenarios, 'scenario')} parse"))
    undefined = list(dict.fromkeys((str(s.location), f"{s.keyword} {s.name}") for s in runner.undefined_steps))
    if undefined:
        listed = "; ".join(f"{where}: {step}" for where, step in undefined)
        say(Check(FAIL, f"steps: {len(undefined)} undefined: {listed}"))
    elif features:
        say(Check(OK, "steps: every step has a definition"))
    return features, dict(config.userdata), runner.step_registry


# --------------------------------------------------------------------------- models


def model_checks(config: Config, features: list[Any]) -> list[Check]:
    """Each model the run may call: its provider, key and price (what the run refuses about
    models, :func:`run_checks` says, through the run's own functions)."""
    from ..run.hooks import models_named

    try:
        models = models_named(features, config)
    except ConfigError:
        return []  # run_checks shows it
    if config.judge_model:
        models.setdefault(config.judge_model, "judge_model")
    checks = []
    for model, where in models.items():
        if "<" in model:
            continue  # an Outline placeholder: the rows name the real models
        if is_scripted(model):
            from ..run.hooks import check_scripted_models

            try:
                check_scripted_models({model: where}, config)
            except ConfigError:
                continue  # the run refuses it: a FAIL line of run_checks
            rules = f"rules in {config.scripted_rules}" if config.scripted_rules else "no scripted_rules file configured"
            checks.append(Check(OK, f"model {model!r} ({where}): the built-in scripted model, no key needed ({rules})"))
            continue
        check = model_check(model, where, config)
        if check is not None:
            checks.append(check)
    return checks


def model_check(model: str, where: str, config: Config) -> Check | None:
    """A model's provider, key and price; None when litellm cannot route it (the run's
    ``check_models`` says so among :func:`run_checks`)."""
    from ..model.llm import litellm_module, missing_keys
    from ..model.preflight import _has_api_base

    litellm = litellm_module()
    try:
        provider = litellm.get_llm_provider(model)[1]
    except Exception:
        return None
    price = "price known" if model in config.prices or _price_known(litellm, model) else "price unknown (costs will show as unknown; add [tool.behave_aitest.prices])"
    missing = missing_keys(model, has_api_base=_has_api_base(config, model))
    if missing and config.cassette not in ("replay", "auto"):
        return Check(WARN, f"model {model!r} ({where}): provider {provider}, {' / '.join(missing)} not set in the environment; {price}")
    key = f"key not needed in {config.cassette} mode" if missing else "key set"
    status = OK if "unknown" not in price else WARN
    return Check(status, f"model {model!r} ({where}): provider {provider}, {key}, {price}")


def _price_known(litellm: Any, model: str) -> bool:
    try:
        info = litellm.get_model_info(model)
    except Exception:
        return False
    return info.get("input_cost_per_token") is not None


# --------------------------------------------------------------------------- servers


class Listed(dict):  # type: ignore[type-arg]
    """The tools each server that started lists (``{server: [tool]}``), and apart, in
    ``task_only``, those it lists as task-only (not offered; a step naming one says so)."""

    def __init__(self) -> None:
        super().__init__()
        self.task_only: dict[str, list[str]] = {}


def server_checks(config: Config, listed: dict[str, list[str]]) -> list[Check]:
    """Start (or reach) every server once, list its tools (into ``listed``), stop it; never
    longer than its ``startup_timeout_s`` (plus a little for stopping it). Then each agent's
    allowed_tools."""
    import anyio

    checks = []
    with tempfile.TemporaryDirectory(prefix="aitest-doctor-") as folder:
        for server in config.servers.values():
            check, tools, task_only = anyio.run(_server_check, server, Path(folder) / f"{server.name}.log")
            checks.append(check)
            if tools is not None:
                listed[server.name] = tools
                if isinstance(listed, Listed):
                    listed.task_only[server.name] = task_only
    return checks + allowed_tool_checks(config, listed)


async def _server_check(server: ServerConfig, errlog: Path) -> tuple[Check, list[str] | None, list[str]]:
    import anyio

    from ..errors import ServerError
    from ..mcp.connection import connect

    started = time.monotonic()
    what = "server" if server.transport == "stdio" else f"server ({server.transport} {server.url})"
    try:
        with anyio.fail_after(server.startup_timeout_s + 5):  # connect has its own timeout; this is the backstop
            async with connect(server, errlog) as connection:
                tools = [t.name for t in connection.tools]
                task_only = list(connection.task_only)
                era = connection.protocol_version
                bad = [f"{t.name}: {t.schema_problem}" for t in connection.tools if t.schema_problem]
    except TimeoutError:
        return Check(FAIL, f"{what} {server.name!r}: did not start within {server.startup_timeout_s:g} s (startup_timeout_s)"), None, []
    except (ServerError, ConfigError) as exc:
        return Check(FAIL, f"{what} {server.name!r}: {' '.join(str(exc).split())}"), None, []
    except Exception as exc:
        return Check(FAIL, f"{what} {server.name!r}: {type(exc).__name__}: {' '.join(str(exc).split())}"), None, []
    seconds = time.monotonic() - started
    if bad:
        return Check(FAIL, f"{what} {server.name!r}: started in {seconds:.1f} s, invalid tool schemas: {'; '.join(bad)}"), tools, task_only
    spoken = f" (MCP {era})" if era else ""
    tasks = f" (not offered: {', '.join(task_only)}, which only run as tasks)" if task_only else ""
    return Check(OK, f"{what} {server.name!r}: started in {seconds:.1f} s{spoken}, {plural(len(tools), 'tool')}: {', '.join(tools) or 'none'}{tasks}"), tools, task_only


def allowed_tool_checks(config: Config, listed: dict[str, list[str]]) -> list[Check]:
    """Every agent's ``allowed_tools`` entry is offered by one of its servers (that started),
    by the rule and message of the run (behave_aitest/agent/names.py)."""
    from ..agent.names import allowed_tools_problem

    checks = []
    for agent in config.agents.values():
        if agent.allowed_tools is None or not all(s in listed for s in agent.servers):
            continue
        problem = allowed_tools_problem(agent.allowed_tools, _known(agent.name, list(agent.servers), agent.allowed_tools, listed), agent.where)
        if problem:
            checks.append(Check(FAIL, f"agent {agent.name!r}: {problem}"))
    return checks


def _known(agent: str, servers: list[str], allowed: Sequence[str] | None, listed: dict[str, list[str]]) -> Any:
    from ..agent.names import KnownTools

    pairs = tuple((s, t) for s in servers for t in listed.get(s, []))
    offered = tuple(allowed) if allowed is not None else tuple(t for _, t in pairs)
    tasks = getattr(listed, "task_only", {})
    return KnownTools(agent or "(unnamed)", pairs, offered, task_only=tuple((s, t) for s in servers for t in tasks.get(s, [])))


# --------------------------------------------------------------------------- the run's own checks


def run_checks(config: Config, features: list[Any], listed: dict[str, list[str]], registry: Any) -> list[Check]:
    """What the run refuses before its first scenario (``hooks.run_problems``, the same
    function ``before_all`` calls), plus the tools each step names for its scenario's agent
    (the check those steps make when they run): doctor never passes what the run refuses."""
    from ..run.hooks import _NAMED, run_problems

    agent_step, server_step = _NAMED[0][0], _NAMED[1][0]  # the run's own patterns

    def tools(scenario: Any, step: Any) -> str | None:
        from ..agent.names import step_problem

        match = registry.find_match(step) if registry is not None else None
        if match is None:
            return None
        agent = next(iter(config.agents.values())) if len(config.agents) == 1 else None
        servers = list(agent.servers) if agent is not None else []
        for earlier in scenario.all_steps:
            if earlier is step:
                break
            named = agent_step.fullmatch(earlier.name)
            if named and named.group(1) in config.agents:
                agent = config.agents[named.group(1)]
                servers = list(agent.servers)
            server = server_step.fullmatch(earlier.name)
            if server and server.group(1) not in servers:
                servers.append(server.group(1))
        if not all(s in listed for s in servers):
            return None  # a server that did not start: its own line says so
        return step_problem(step, match, _known(agent.name if agent else "", servers, agent.allowed_tools if agent else None, listed))

    problems = run_problems(features, config, tools)
    return [Check(FAIL, " ".join(p.split())) for p in problems]


# --------------------------------------------------------------------------- cassettes


def cassette_checks(config: Config, features: list[Any]) -> list[Check]:
    """In replay mode: the conversations (scenarios, ``@session`` features) with no cassette."""
    from ..record.cassettes import (
        SESSION_NAME,
        CassetteLibrary,
        cassette_relpath,
        feature_key,
        flow_model,
        scenario_stem,
    )

    library = CassetteLibrary(config)
    missing, total = [], 0
    for feature in features:
        folder, _ = feature_key(feature.filename, library.directory, config.base_dir, library.cwd)
        model = flow_model(feature)
        if "session" in [str(t) for t in feature.tags]:
            conversations = [(None, str(feature.location))]
        else:
            conversations = [(s, str(s.location)) for s in feature.walk_scenarios()]
        for scenario, where in conversations:
            total += 1
            stem = SESSION_NAME if scenario is None else scenario_stem(feature, scenario)
            if not (library.directory / cassette_relpath(folder, stem, model, 1)).is_file():
                missing.append(where)
    if missing:
        return [Check(FAIL, f"cassettes: {len(missing)} of {total} conversations have none in {library.display(library.directory)}/: {', '.join(missing)}")]
    return [Check(OK, f"cassettes: all {total} conversations have one in {library.display(library.directory)}/")]


def add_doctor_command(subparsers: Any) -> None:
    """``behave-aitest doctor [-D aitest.key=value] [--tags EXPR] [PATHS]``."""
    parser = subparsers.add_parser(
        "doctor", help="check config, models, keys, servers, features and steps without running a scenario",
        description="Check everything a run needs without running a scenario, one line per check. "
        "Exit 0 when all is well, 1 otherwise.",
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="feature files or folders, as for behave (default: behave's)")
    parser.add_argument("-D", "--define", action="append", default=[], metavar="NAME=VALUE", help="as behave's -D, e.g. -D aitest.cassette=replay")
    parser.add_argument("-t", "--tags", action="append", default=[], metavar="EXPR", help="as behave's --tags")
    parser.set_defaults(func=_main)


def _main(args: Any) -> int:
    import sys

    behave_args = [*(a for d in args.define for a in ("-D", d)), *(a for t in args.tags for a in ("--tags", t)), *args.paths]
    return run(behave_args, sys.stdout)
