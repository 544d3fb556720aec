"""behave hooks, as plain functions a project calls from its own features/environment.py.

A new project needs only ``from behave_aitest.environment import *``. A project with
hooks of its own calls these from them, in the same-named hook::

    from behave_aitest import hooks as aitest

    def before_all(context):
        aitest.before_all(context)
        ...  # your set-up

Every function is cheap when no AI step runs: servers start on the first
"When the user says", litellm is imported on the first model call.
"""

from __future__ import annotations

import functools
import os
import re
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from ..config import Config, ConfigError, is_scripted, load_config, unknown_name
from ..text.safetext import quiet_http_logs
from . import reasons, repeats
from .runtime import Runtime, runtime_of
from .tags import JUDGE_TAG, SESSION_TAG, model_tags, own_tags, scenario_model


def _noted(hook: Callable[[Any], None]) -> Callable[[Any], None]:
    """Keep a failing run-level hook's message on behave's config for the report formatters
    (behave only prints it), so a report can say why the run stopped."""

    @functools.wraps(hook)
    def run(context: Any) -> None:
        try:
            hook(context)
        except BaseException as exc:
            errors = list(getattr(context.config, "aitest_hook_errors", []))
            context.config.aitest_hook_errors = [*errors, f"HOOK-ERROR in {hook.__name__}: {type(exc).__name__}: {exc}"]
            raise

    return run


class Interrupts:
    """SIGINT and SIGTERM during a run: the first stops the run like Ctrl-C, later ones
    cannot break the cleanup.

    behave stops the run on a ``KeyboardInterrupt`` and still runs the after-hooks, which
    stop the servers; a second Ctrl-C, or the SIGTERM a cancelled CI job sends 7.5 s after
    its SIGINT (GitHub Actions), would otherwise interrupt that cleanup and leave servers
    busy in a tool running. A SIGTERM is also turned into that clean stop; once everything
    is stopped, :meth:`finish` hands it on (to the report formatters' handler, or the
    default: the process ends as killed by SIGTERM, as CI expects).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.previous: dict[int, Any] = {}
        self.received: list[int] = []
        self.stopping = False  # set once the run is being cleaned up: no more interrupts

    def install(self) -> None:
        """Handle both signals, except one that is ignored on purpose (``nohup``, a parallel
        run's worker, whose parent owns the terminal and sends it one SIGTERM)."""
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may handle signals
        for sig in self.SIGNALS:
            previous = signal.getsignal(sig)
            if previous is not signal.SIG_IGN:
                self.previous[sig] = previous
                signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.received.append(signum)
        if len(self.received) == 1 and not self.stopping:
            raise KeyboardInterrupt  # behave stops the run, and the after-hooks stop the servers
        print(
            f"behave-aitest: {signal.Signals(signum).name} received again: still stopping the MCP servers "
            "and writing the reports, this takes a few seconds.",
            file=sys.stderr,
            flush=True,
        )

    def finish(self) -> None:
        """Put the previous handlers back; then deliver a SIGTERM received during the run."""
        self.stopping = True
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous.clear()
        if signal.SIGTERM in self.received:
            self.received.clear()
            os.kill(os.getpid(), signal.SIGTERM)


def _close(context: Any, runtime: Runtime) -> None:
    """Stop everything the run started; no signal interrupts this (see :class:`Interrupts`)."""
    interrupts = getattr(context, "aitest_interrupts", None)
    if interrupts is not None:
        interrupts.stopping = True
    try:
        runtime.close()
    finally:
        if interrupts is not None:
            interrupts.finish()


@_noted
def before_all(context: Any) -> None:
    """Load and check the configuration, start the event loop, expand per-model flows."""
    context.config.setup_logging()  # what behave's default before_all does
    reasons.install(getattr(context, "_runner", None))  # a step error's reason first, a traceback only for a bug
    quiet_http_logs()  # their request lines quote URLs with passwords and tokens
    config = load_config(context.config.userdata, for_run=True)  # servers checked once, before any scenario
    if config.shard is not None and not getattr(context.config, "aitest_worker", False):
        raise ConfigError(
            "-D aitest.shard needs behave-aitest's runner, or every shard would run everything: add "
            'runner = "behave_aitest.parallel:ParallelRunner" under [tool.behave], or pass '
            "--runner behave_aitest.parallel:ParallelRunner (docs/parallel.md)."
        )
    runtime = Runtime(config)
    runtime.in_worker = bool(getattr(context.config, "aitest_worker", False))
    context.aitest = runtime
    context.config.aitest_runtime = runtime  # formatters get behave's config, not the context
    interrupts = Interrupts()
    if not getattr(context.config, "aitest_worker", False):  # a parallel run's worker has its own handlers
        interrupts.install()
    context.aitest_interrupts = interrupts
    runtime.start()
    context.add_cleanup(_close, context, runtime)  # also runs when after_all is missing or fails
    features = getattr(getattr(context, "_runner", None), "features", None)
    if features is not None:
        expand_model_flows(features, config.models)
        name_model_flows(getattr(context.config, "reporters", []) or [])
    check_features(features or [], runtime)
    if features is not None:
        repeats.install(features, config.repeat, config.min_pass_rate, SESSION_TAG)
    if not getattr(context.config, "aitest_worker", False):  # a parallel run's parent said it once
        for line in banners(config, runtime.cassettes):
            print(line)


def banners(config: Config, cassettes: Any) -> list[str]:
    """What the start of a run says: the cassette mode, and that the scripted model is no LLM."""
    lines = [cassettes.describe()] if cassettes is not None else []
    if is_scripted(config.model) and not config.model_override and not config.models:
        rules = f"rules in {config.scripted_rules}" if config.scripted_rules else "but no scripted_rules file is configured: set one, or choose a model"
        lines.append(
            f"behave-aitest: the default model is the built-in SCRIPTED MODEL ({rules}), "
            "not an LLM: no key, no network, no cost. Run live with -D aitest.model=<provider/model>."
        )
    return lines


_MODEL_STEP = re.compile(r'the model "(.+)"')

# Steps that name configured things, checked before the first scenario runs.
_NAMED = (
    (re.compile(r'the agent "(.+)"'), "agents", "agent", "agents"),
    (re.compile(r'the MCP server "(.+)"'), "servers", "MCP server", "servers"),
)


def check_features(features: list[Any], runtime: Runtime) -> None:
    """Fail before the first scenario on mistakes visible in the feature files (the first of
    :func:`run_problems`; doctor lists them all)."""
    problems = run_problems(features, runtime.config)
    if problems:
        raise ConfigError(problems[0])


# Steps that call a model (a turn, a judge): a scripted model then needs its rules file.
_CALLS_A_MODEL = re.compile(
    r"the user says\b|the user runs the prompt\b|a simulated user talks to the agent\b|the (response|conversation) satisfies\b"
    r"|the response scores\b|the agent (did not )?asked? for clarification"
)


def run_problems(features: list[Any], config: Config, tools: Callable[[Any, Any], str | None] | None = None) -> list[str]:
    """Every mistake in the feature files and the config that the run refuses before its
    first scenario, one message each: agents and servers named by steps (with a did-you-mean),
    models no provider serves, scripted models the rules file does not define (``@model:``,
    ``@judge:``, ``Given the model``, the config), the scripted model without a rules file,
    missing keys. ``before_all`` raises the first; ``behave-aitest doctor`` shows them all,
    so doctor can never pass what the run refuses. ``tools(scenario, step)``, when given
    (doctor, which has started the servers), checks the tools steps name as well."""
    problems: list[str] = []
    where = str(config.path or "pyproject.toml")

    def keep(check: Callable[[], Any]) -> None:
        try:
            check()
        except ConfigError as exc:
            if str(exc) not in problems:
                problems.append(str(exc))

    for feature in features:
        for scenario in feature.walk_scenarios():
            for step in scenario.all_steps:
                for pattern, names, kind, table in _NAMED:
                    found = pattern.fullmatch(step.name)
                    if found and found.group(1) not in getattr(config, names):
                        error = str(unknown_name(kind, found.group(1), getattr(config, names), table, where, str(step.location)))
                        if error not in problems:
                            problems.append(error)
                if tools is not None:
                    problem = tools(scenario, step)
                    if problem and problem not in problems:
                        problems.append(problem)
    try:
        models = models_named(features, config)
    except ConfigError as exc:
        return [*problems, str(exc)]
    if config.cassette != "replay":  # a replay never calls a provider; a model without a cassette is a miss
        keep(lambda: check_models(models))
        judge = {config.judge_model: f"{where} [tool.behave_aitest] judge_model"} if config.judge_model else {}
        for model, named_at in {**judge, **models}.items():
            keep(lambda model=model, named_at=named_at: check_scripted_models({model: named_at}, config))
        calls_a_model = any(_CALLS_A_MODEL.match(s.name) for f in features for sc in f.walk_scenarios() for s in sc.all_steps)
        if config.scripted_rules is None and calls_a_model:
            used = {**judge, **models}
            if not _config_model_used(features, config):  # every scenario names its own model: the default is never asked
                used = {m: w for m, w in used.items() if not (m == config.model and w == f"{where} [tool.behave_aitest]")}
            scripted = [(m, w) for m, w in used.items() if is_scripted(m) and "<" not in m]
            if scripted:
                model, named_at = scripted[0]
                problems.append(
                    f"{named_at}: the model {model!r} is the built-in scripted model but no rules file is configured: "
                    f'set scripted_rules = "features/scripted_model.toml" in {where}, '
                    "or choose a real model with -D aitest.model=<provider/model> (docs/scripted-model.md)."
                )
        from ..model.preflight import check_keys

        keep(lambda: check_keys({**judge, **models}, config))  # a missing key: once, before the first scenario
        if config.embedding_model:  # a chat model named as the embedding model: one line, now (docs/checks-meaning-safety.md)
            from ..model.embeddings import embedding_model_problem

            problem = embedding_model_problem(config.embedding_model, f"{where} [tool.behave_aitest] embedding_model")
            if problem:
                problems.append(problem)
        keep(lambda: check_spend_cap([*judge, *models], config))
    return problems


def check_spend_cap(models: list[str], config: Config) -> None:
    """``max_run_cost_usd`` needs every model's price: without one the cap cannot count its calls."""
    if config.max_run_cost_usd is None:
        return
    from ..model.spend import unpriced

    unknown = unpriced(models, config.prices, is_scripted)
    if unknown:
        names = ", ".join(repr(m) for m in unknown)
        raise ConfigError(
            f"{config.path or 'pyproject.toml'}: max_run_cost_usd = {config.max_run_cost_usd:g} cannot be enforced: "
            f"no known price for {names} (litellm has none). Add [tool.behave_aitest.prices.\"{unknown[0]}\"] with "
            "input_per_million and output_per_million, or remove max_run_cost_usd."
        )


def _config_model_used(features: list[Any], config: Config) -> bool:
    """Does some scenario fall back on the config's ``model`` (no ``-D aitest.model``, no model
    tag on it or its feature, no agent model, no ``Given the model`` step)? When none does, the
    default (``scripted``) is never asked, and a missing rules file is no problem."""
    if config.model_override:
        return config.model_override == config.model
    if config.models:  # -D aitest.models: every scenario runs once per model of the list
        return config.model in config.models
    if any(a.model for a in config.agents.values()):
        return True
    for feature in features:
        if getattr(feature, "aitest_model", None) or model_tags(feature.tags):
            continue
        for scenario in feature.walk_scenarios():
            if scenario_model(scenario) is None and not any(_MODEL_STEP.fullmatch(s.name) for s in scenario.all_steps):
                return True
    return False


def models_named(features: list[Any], config: Config) -> dict[str, str]:
    """Every model the run may call (model -> where it is named): feature and scenario tags,
    ``Given the model`` steps, the config (``-D aitest.model`` replaces them all), and the
    simulated users' models (which ``-D aitest.model`` does not replace)."""
    models: dict[str, str] = {}
    user_models: dict[str, str] = {}
    judges: dict[str, str] = {}  # @judge: tags: the judge's model, which -D aitest.model does not replace
    for feature in features:
        for model in [getattr(feature, "aitest_model", None), *model_tags(feature.tags)]:
            if model:
                models.setdefault(model, str(feature.location))
        for scenario in feature.walk_scenarios():
            model = scenario_model(scenario)
            if model:
                models.setdefault(model, str(scenario.location))
            for judge in judge_tags(scenario):
                judges.setdefault(judge, f"{scenario.location} @{JUDGE_TAG}{judge}")
            for step in scenario.all_steps:
                simulated_user_model(scenario, step, config, user_models)
                named = _MODEL_STEP.fullmatch(step.name)
                if named:
                    models.setdefault(named.group(1), str(step.location))
    where = str(config.path or "pyproject.toml")
    for model in (config.model, *config.models, *(a.model for a in config.agents.values() if a.model)):
        models.setdefault(model, f"{where} [tool.behave_aitest]")
    if config.model_override:
        models = {config.model_override: "-D aitest.model"}  # it replaces every other choice
    for model, named_at in {**user_models, **judges}.items():
        models.setdefault(model, named_at)
    return models


def judge_tags(scenario: Any) -> list[str]:
    """The models ``@judge:`` tags name on a scenario (its own tags first) and its feature."""
    tags = [*own_tags(scenario), *(str(t) for t in scenario.feature.tags)]
    return list(dict.fromkeys(t[len(JUDGE_TAG):].strip() for t in tags if t.startswith(JUDGE_TAG) and t[len(JUDGE_TAG):].strip()))


def simulated_user_model(scenario: Any, step: Any, config: Config, models: dict[str, str]) -> None:
    """A simulated-user step's limits and doc string, and the model that will play the user
    (added to ``models`` to be checked like the others): mistakes stop the run before the
    first scenario (docs/simulated-user.md)."""
    from ..agent.simulator import LimitsError, step_limits
    from .tags import JUDGE_TAG, USER_MODEL_TAG, own_tags

    try:
        if step_limits(step.name) is None:
            return
    except LimitsError as exc:
        raise ConfigError(f"{step.location}: {exc}") from None
    if not (getattr(step, "text", None) or "").strip():
        raise ConfigError(f"{step.location}: a simulated user needs its persona and goal in a doc string (\"\"\"...\"\"\") below the step.")
    feature_tags = [str(t) for t in scenario.feature.tags]
    tags = [*own_tags(scenario), *feature_tags]
    chosen = [t[len(USER_MODEL_TAG):].strip() for t in tags if t.startswith(USER_MODEL_TAG)]
    if chosen and not chosen[0]:
        raise ConfigError(f"{scenario.location}: the @user_model: tag names no model; write e.g. @user_model:openai/gpt-4.1-mini.")
    judges = [t[len(JUDGE_TAG):] for t in tags if t.startswith(JUDGE_TAG)]
    agent = config.model_override or scenario_model(scenario) or getattr(scenario.feature, "aitest_model", None) or config.model
    model = (chosen or [None])[0] or config.user_model or (judges or [None])[0] or config.judge_model or agent
    if is_scripted(model) and config.scripted_rules is None and config.cassette != "replay":
        raise ConfigError(
            f"{step.location}: no model can play the simulated user: it would be the scripted model {model!r}, "
            f"but no scripted_rules file is configured. Set user_model (or -D aitest.user_model=<provider/model>, "
            f"or a @user_model:... tag), or scripted_rules in {config.path or 'pyproject.toml'}."
        )
    models.setdefault(model, str(step.location))


def check_models(models: dict[str, str]) -> None:
    """Every model litellm cannot route is reported before any call (litellm is imported
    only when some model is not the scripted one)."""
    real = {m: w for m, w in models.items() if not is_scripted(m) and "<" not in m}
    if not real:
        return
    from ..model.llm import litellm_module

    litellm = litellm_module()
    for model, where in real.items():
        try:
            litellm.get_llm_provider(model)
        except Exception:
            raise ConfigError(
                f"{where}: litellm does not know which provider serves model {model!r}. "
                "Write it as provider/model, e.g. openai/gpt-4.1-mini, anthropic/claude-sonnet-4-5, "
                "azure/<deployment>, ollama/llama3 (see https://docs.litellm.ai/docs/providers)."
            ) from None


def check_scripted_models(models: dict[str, str], config: Config) -> None:
    """Named scripted models (``scripted/<name>``) the rules file does not define, reported
    before the first scenario (plain ``scripted`` is checked when first used, as before)."""
    named = {m: w for m, w in models.items() if is_scripted(m) and "/" in m and "<" not in m}
    if not named:
        return
    model, where = next(iter(named.items()))
    if config.scripted_rules is None:
        raise ConfigError(
            f"{where}: {model!r} is a named scripted model but no rules file is configured: "
            f"set scripted_rules in {config.path or 'pyproject.toml'} (docs/scripted-model.md)."
        )
    from ..model.scripted import RulesError, read_models, undefined_model

    try:
        defined = read_models(config.scripted_rules)
    except RulesError as exc:
        raise ConfigError(str(exc)) from None
    for model, where in named.items():
        if model not in defined:
            raise ConfigError(f"{where}: {undefined_model(model, defined, config.scripted_rules)}")


def expand_model_flows(features: list[Any], run_models: tuple[str, ...] = ()) -> None:
    """Replace each feature that names several models by one copy per model.

    A ``@session`` feature with ``@model:a @model:b`` (or any feature in a run with
    ``-D aitest.models=a,b``) becomes the features ``Title [a]`` and ``Title [b]``: each
    its own conversation, history and servers, run one after the other.
    """
    index = 0
    while index < len(features):
        feature = features[index]
        models = list(run_models) or model_tags(feature.tags)
        if getattr(feature, "aitest_flow", False):  # already one model's copy (expanded once per run)
            index += 1
            continue
        if len(models) <= 1:
            if models:
                feature.aitest_model = models[0]
            index += 1
            continue
        from behave.parser import parse_file

        copies = []
        for model in models:
            # A fresh parse, not a deepcopy: behave's model objects do not support copying.
            flow = parse_file(feature.filename, language=getattr(feature, "language", None))
            flow.name = f"{feature.name} [{model}]"
            flow.aitest_model = model
            flow.aitest_flow = True
            keep_selection(feature, flow)
            copies.append(flow)
        features[index:index + 1] = copies
        index += len(copies)


def flow_model(feature: Any) -> str | None:
    """The model of a per-model copy of a feature (``None`` for a feature run once)."""
    return getattr(feature, "aitest_model", None) if getattr(feature, "aitest_flow", False) else None


def name_model_flows(reporters: list[Any]) -> None:
    """Tell behave's reporters apart the copies of a feature run once per model.

    ``--junit`` names its file after the feature file, so the copies would overwrite each
    other: each model's copy gets ``TESTS-<file>.<model>.xml``. The summary's "Failing
    scenarios" list shows a location and a name, the same for every copy: each line gets its
    model, ``features/x.feature:4  Move [scripted/hasty]`` (issue 24, item 5)."""
    for reporter in reporters:
        name_of = getattr(reporter, "make_feature_filename", None)
        if name_of is not None and not getattr(name_of, "aitest_flows", False):

            def named(feature: Any, _name_of: Any = name_of) -> str:
                model = flow_model(feature)
                return _name_of(feature) + (f".{re.sub(r'[^A-Za-z0-9_-]+', '-', model).strip('-')}" if model else "")

            named.aitest_flows = True  # type: ignore[attr-defined]
            reporter.make_feature_filename = named
        listing = getattr(reporter, "_do_print_problematic_scenarios", None)
        if listing is not None and not getattr(listing, "aitest_flows", False):

            def listed(kind: str, scenarios: list[Any], stream: Any = None, _listing: Any = listing) -> None:
                _listing(kind, [_FlowScenario(scenario) for scenario in scenarios], stream=stream)

            listed.aitest_flows = True  # type: ignore[attr-defined]
            reporter._do_print_problematic_scenarios = listed


class _FlowScenario:
    """A scenario as the summary lists it: its location, its name with its model flow."""

    def __init__(self, scenario: Any) -> None:
        model = flow_model(getattr(scenario, "feature", None))
        self.location = scenario.location
        self.name = f"{scenario.name} [{model}]" if model and not scenario.name.endswith(f"[{model}]") else scenario.name


def keep_selection(original: Any, copy: Any) -> None:
    """Carry behave's selection (``file.feature:LINE``, which marks the other scenarios as
    skipped) over to a freshly parsed per-model copy: "run this scenario" must not run them all."""
    if getattr(original, "should_skip", False):
        copy.should_skip = True
    for mine, theirs in zip(original.walk_scenarios(), copy.walk_scenarios()):
        if getattr(mine, "should_skip", False):
            theirs.should_skip = True


def before_feature(context: Any, feature: Any) -> None:
    """Open the feature's scope; a ``@session`` feature opens its one conversation here."""
    runtime_of(context).begin_feature(feature)


def after_feature(context: Any, feature: Any) -> None:
    """Stop the servers of the feature's session and of ``scope = "feature"``."""
    runtime_of(context).end_feature(feature)


def before_scenario(context: Any, scenario: Any) -> None:
    """Start a new conversation (or continue the feature's session) and hang its record on the scenario."""
    runtime_of(context).begin_scenario(scenario)


def after_scenario(context: Any, scenario: Any) -> None:
    """End the scenario's conversation and stop its servers (unless it is part of a session)."""
    runtime_of(context).end_scenario(scenario)


def before_step(context: Any, step: Any) -> None:
    """Remember the running step, so a turn can be recorded on it (behave has no context.step)."""
    runtime_of(context).current_step = step


class ModelGateFailed(Exception):
    """A model's pass rate over the run is below min_pass_rate."""


@_noted
def after_all(context: Any) -> None:
    """Stop everything still running; fail the run when a model's pass rate is too low."""
    runtime = getattr(context, "aitest", None)
    if isinstance(runtime, Runtime):
        _close(context, runtime)
        features = getattr(getattr(context, "_runner", None), "features", None) or []
        if not getattr(context.config, "aitest_worker", False):  # the parallel parent exports the whole run
            export_telemetry(features, runtime.config)
        below = repeats.model_gate(features, runtime.config.min_pass_rate)
        runtime.models_below_gate = below
        short = coverage_gate(context, runtime.config, features)
        if runtime.spend_stopped:
            raise SpendCapReached(runtime.spend_stopped)
        if below and runtime.config.min_pass_rate < 1:
            raise ModelGateFailed("; ".join([*below, *([short] if short else [])]))
        if short:
            raise CoverageGateFailed(short)


class SpendCapReached(Exception):
    """The run's known cost passed max_run_cost_usd: conversations were skipped (docs/rate-limits.md)."""


class CoverageGateFailed(Exception):
    """The run's tool coverage is below min_tool_coverage."""


def coverage_gate(context: Any, config: Config, features: list[Any]) -> str | None:
    """The tool-coverage gate's message, or None. A shard or a parallel run's worker sees
    only part of the run: ``report merge`` applies the gate to the merged report instead."""
    if config.min_tool_coverage is None or config.shard is not None or getattr(context.config, "aitest_worker", False):
        return None
    from ..record.coverage import run_gate

    return run_gate(features, config.min_tool_coverage)


def export_telemetry(features: list[Any], config: Config) -> None:
    """``-D aitest.otel``: the run's spans (behave_aitest.telemetry). A failed export is said in
    one line and does not fail the run: the tests ran, only their telemetry is missing."""
    if not config.otel:
        return
    from ..record.telemetry import export_run

    try:
        said = export_run(features, config)
    except Exception as exc:
        said = f"behave-aitest: the OpenTelemetry export to {config.otel} failed: {type(exc).__name__}: {exc}"
    if said:
        print(said, file=sys.stderr)
