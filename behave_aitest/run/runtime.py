"""Run-wide state: the event-loop portal, server processes per scope, live conversations.

The hooks create one :class:`Runtime` per behave run and keep it on ``context.aitest``.
It owns every resource the run opens, in three nested scopes (run, feature,
conversation), each an ``ExitStack`` closed by the matching ``after_*`` hook, so no
server process outlives its scope, whatever failed in between.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import shutil
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import (
    SCRIPTED_MODEL,
    AgentConfig,
    Config,
    ConfigError,
    is_scripted,
    unknown_name,
)
from ..agent.doubles import Double, Doubles, tool_list
from ..agent.loop import AgentSetupError, ToolBox, TurnSettings, call_directly, run_turn
from ..errors import StepUsageError
from ..model.limits import ModelLimiter
from ..record.records import Conversation, ScenarioRecord, ToolCall, Turn
from ..text.redact import Redactor
from ..mcp.connection import ServerConnection, first_leaf

from .tags import JUDGE_TAG, MODEL_TAG, SESSION_TAG, USER_MODEL_TAG, model_tags, own_tags, scenario_model  # noqa: F401 - the run's names


class Scope:
    """Resources that live exactly as long as a run, a feature or a conversation."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.stack = ExitStack()
        self.servers: dict[str, ServerConnection] = {}
        self.closed = False

    def close(self) -> None:
        """Stop the scope's servers (each stop is bounded by the SDK's kill escalation); idempotent."""
        self.closed = True
        self.servers.clear()
        self.stack.close()


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


class Runtime:
    """Everything behave-aitest holds for one behave run."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.run_scope = Scope("run")
        self.feature_scope: Scope | None = None
        self.session: LiveConversation | None = None  # the @session feature's conversation
        self.current: LiveConversation | None = None
        self.current_step: Any = None
        self.current_scenario: Any = None
        self.conversations: list[Conversation] = []
        self.models_below_gate: list[str] = []  # filled by after_all for the reports
        self.portal: Any = None
        self._loop = ExitStack()  # the portal's event loop: stopped after every scope
        self._scopes: list[Scope] = []  # feature and conversation scopes not yet closed
        self.log_dir = Path(tempfile.mkdtemp(prefix="behave-aitest-"))
        self._ids = itertools.count(1)  # server log files
        self._conversation_ids = itertools.count(1)  # c1, c2, ... in the order conversations start
        self._scripted: Any = None
        self._printed: set[str] = set()  # warnings about servers' tools, printed once per run
        self.cassettes: Any = None  # a cassettes.CassetteLibrary, unless cassette = "off"
        if config.cassette != "off":  # imported only when used: a dry run or a plain run must not pay for it
            from ..record.cassettes import CassetteLibrary

            self.cassettes = CassetteLibrary(config)

    # ----------------------------------------------------------------- lifecycle

    @functools.cached_property
    def redactor(self) -> Redactor:
        """The run's secret rule (docs/report.md), for step messages; reports and cassettes use the same."""
        return Redactor.from_environment(self.config)

    def start(self) -> None:
        from anyio.from_thread import start_blocking_portal

        self.portal = self._loop.enter_context(start_blocking_portal(backend="asyncio"))

    def close(self) -> None:
        """Stop every server and the event loop; safe to call twice.

        Every scope still open is closed, also one a failed hook left behind (it would
        otherwise keep the portal waiting for ever), and one failure does not stop the
        rest. Then the loop is stopped cancelling whatever is left, the process group of
        any server not stopped the ordinary way is killed, and the log folder removed.
        """
        from ..mcp.connection import stop_all_groups

        live = [self.current.scope if self.current else None, self.session.scope if self.session else None, self.feature_scope]
        self.current = self.session = None
        self.feature_scope = None
        for scope in [*live, *self._scopes, self.run_scope]:
            if scope is not None and not scope.closed:
                try:
                    scope.close()
                except Exception as exc:  # keep closing the others
                    print(f"behave-aitest WARNING: stopping the servers of {scope.name}: {type(exc).__name__}: {exc}", file=sys.stderr)
        self._scopes.clear()
        if self.portal is not None:
            with contextlib.suppress(Exception):  # not running any more
                self.portal.call(self.portal.stop, True)  # cancel what is left, do not wait for it
        self._loop.close()
        self.portal = None
        stop_all_groups()
        if self._scripted is not None:
            self._scripted.stop()
            self._scripted = None
        shutil.rmtree(self.log_dir, ignore_errors=True)

    def _scope(self, name: str) -> Scope:
        """A new feature or conversation scope, remembered until closed (see :meth:`close`)."""
        self._scopes = [s for s in self._scopes if not s.closed]
        scope = Scope(name)
        self._scopes.append(scope)
        return scope

    def begin_feature(self, feature: Any) -> None:
        self.feature_scope = self._scope(f"feature {feature.name}")
        tags = [str(t) for t in feature.tags]
        flow_model = getattr(feature, "aitest_model", None)
        models = model_tags(tags)
        feature_model = flow_model or (models[0] if len(models) == 1 else None)
        if SESSION_TAG in tags:
            self.session = self._new_conversation(feature.name, session=True, feature_model=feature_model)
            self._open_cassette(self.session, feature, None)
            feature.aitest_conversation = self.session.record
        feature.aitest_model = feature_model

    def end_feature(self, feature: Any) -> None:
        """End the feature's session and scope, whatever fails: the next feature must start
        afresh. A session cassette that cannot be written raises :class:`CassetteNotWritten`
        after the servers are stopped."""
        session, self.session = self.session, None
        scope, self.feature_scope = self.feature_scope, None
        try:
            if session is not None:
                try:
                    self._close_cassette(session)
                finally:
                    session.scope.close()
        finally:
            if scope is not None:
                scope.close()

    def begin_scenario(self, scenario: Any) -> None:
        feature_model = getattr(scenario.feature, "aitest_model", None)
        if self.session is not None and self.session.broken:
            self._skip_broken_session(scenario, self.session)
            return
        if self.session is not None:
            live = self.session
            warnings = self._session_gaps(scenario)
        else:
            live = self._new_conversation(scenario.name, session=False, feature_model=feature_model)
            self._open_cassette(live, scenario.feature, scenario)
            warnings = []
        live.scenario_model = scenario_model(scenario)
        live.last_turns = []
        live.doubles.clear()
        record = ScenarioRecord(
            conversation_id=live.record.id,
            history_at_start=len(live.record.messages),
            warnings=warnings,
            agent=live.agent.name,
        )
        live.scenario = record
        live.record.warnings.extend(warnings)
        scenario.aitest = record
        self.current = live
        self.current_scenario = scenario
        for warning in warnings:
            print(f"behave-aitest WARNING: {warning}", file=sys.stderr)

    # ----------------------------------------------------------------- a broken @session (issue 18)

    def break_session(self, why: str) -> None:
        """A turn of the running @session errored (timeout, model or server error, cassette
        miss): its later scenarios would each fail for that one reason, so they are skipped,
        each saying where the session broke. A failed assertion does not break it."""
        session, scenario, step = self.session, self.current_scenario, self.current_step
        if session is None or session.broken or self.current is not session:
            return
        where = f"scenario {scenario.name!r} ({scenario.location})" if scenario is not None else "an earlier scenario"
        at = f", step '{step.keyword} {step.name}'" if step is not None else ""
        session.broken = f"the @session broke in {where}{at}: {why}."

    def _skip_broken_session(self, scenario: Any, session: LiveConversation) -> None:
        """Skip a scenario of a broken session (behave's own skip: its steps show as skipped),
        keep why on its record, and say it where the console shows it."""
        reason = f"Skipped: {session.broken} The rest of the session needs that conversation; fix that scenario first."
        record = ScenarioRecord(conversation_id=session.record.id, history_at_start=len(session.record.messages),
                                agent=session.agent.name, skip_reason=reason)
        scenario.aitest = record
        self.current, self.current_scenario = None, scenario
        scenario.skip(reason=None)  # behave logs a given reason only as a (captured) warning
        scenario.skip_reason = reason
        line = f"behave-aitest: {scenario.name!r} ({scenario.location}) {reason[0].lower()}{reason[1:]}"
        print(line, flush=True)  # captured (the default): JUnit's system-out of the scenario shows it
        if sys.stdout is not sys.__stdout__ and sys.__stderr__ is not None:  # captured: the console still says it
            print(line, file=sys.__stderr__, flush=True)

    def end_scenario(self, scenario: Any) -> None:
        """End the scenario's conversation and stop its servers, also when its cassette cannot
        be written (then :class:`CassetteNotWritten`, an error of the scenario, after the stop)."""
        live = self.current
        self.current = None
        if live is not None:
            live.doubles.clear()  # a double lasts one scenario: in a @session the next one has the real tool
        if live is not None and not live.record.session:
            try:
                self._close_cassette(live)
            finally:
                live.scope.close()

    def _new_conversation(self, title: str, *, session: bool, feature_model: str | None) -> LiveConversation:
        record = Conversation(id=f"c{next(self._conversation_ids)}", title=title, session=session)
        self.conversations.append(record)
        return LiveConversation(record, self._scope(f"conversation {title}"), self.default_agent(), feature_model=feature_model)

    @staticmethod
    def _session_gaps(scenario: Any) -> list[str]:
        """Warnings for earlier scenarios of the session that did not run (filtered, skipped)."""
        gaps = []
        for earlier in scenario.feature.walk_scenarios():
            if earlier is scenario:
                break
            status = getattr(earlier.status, "name", str(earlier.status))
            if status in ("skipped", "untested"):
                gaps.append(
                    f"@session {scenario.feature.name!r}: scenario {earlier.name!r} ({earlier.location}) did not run, "
                    f"so {scenario.name!r} continues the conversation without its messages."
                )
        return gaps

    # ----------------------------------------------------------------- agents and models

    def default_agent(self) -> AgentState:
        """The only configured agent, or an agent with no tools when there are several."""
        if len(self.config.agents) == 1:
            return AgentState.from_config(next(iter(self.config.agents.values())))
        return AgentState()

    def use_agent(self, name: str) -> AgentState:
        agent = self.config.agents.get(name)
        if agent is None:
            raise unknown_name("agent", name, self.config.agents, "agents", self._config_name())
        live = self.live()
        live.agent = AgentState.from_config(agent)
        if live.scenario is not None:
            live.scenario.agent = name
        return live.agent

    def _config_name(self) -> str:
        return str(self.config.path) if self.config.path else "pyproject.toml"

    def live(self) -> LiveConversation:
        if self.current is None:
            raise RuntimeError(
                "behave-aitest has no conversation for this scenario: the before_scenario hook did not run. "
                "Call behave_aitest.hooks.before_scenario(context, scenario) from before_scenario in "
                "features/environment.py (or use `from behave_aitest.environment import *`)."
            )
        return self.current

    def model_for(self, live: LiveConversation) -> str:
        """-D aitest.model > Given the model > scenario @model > feature @model > agent > config."""
        return (
            self.config.model_override
            or live.agent.model
            or live.scenario_model
            or live.feature_model
            or live.agent.config_model
            or self.config.model
        )

    def model_request(self, model: str, agent: AgentState) -> dict[str, Any]:
        """litellm keyword arguments that pick and reach ``model`` (no sampling parameters)."""
        if is_scripted(model):
            return {"model": f"openai/{model}", "api_base": self.scripted_base_url(model), "api_key": "scripted-needs-no-key"}
        request: dict[str, Any] = {"model": model}
        api_base = agent.api_base or self.config.api_base
        if api_base:
            request["api_base"] = api_base
        return request

    def turn_settings(self, live: LiveConversation) -> TurnSettings:
        model = self.model_for(live)
        request = self.model_request(model, live.agent)
        if live.agent.temperature is not None:
            request["temperature"] = live.agent.temperature
        if live.agent.max_tokens is not None:
            request["max_tokens"] = live.agent.max_tokens
        return TurnSettings(
            model=model,
            request=request,
            max_turns=self.config.max_turns,
            timeout_s=self.config.timeout_s,
            retries=self.config.retries,
            retry_backoff_s=self.config.retry_backoff_s,
            vision=self._vision(model, live.agent),
        )

    @staticmethod
    def _vision(model: str, agent: AgentState) -> bool:
        """The agent's ``vision`` setting, else whether litellm says the model sees images."""
        if agent.vision is not None:
            return agent.vision
        if is_scripted(model):
            return False
        try:
            from ..model.llm import litellm_module

            return bool(litellm_module().supports_vision(model=model))
        except Exception:  # a model litellm does not know: keep the text placeholder
            return False

    def judge_model_for(self, live: LiveConversation, scenario: Any = None) -> str:
        """@judge:... on the scenario > on the feature > judge_model (config, -D) > the agent's model."""
        for tags in (own_tags(scenario) if scenario is not None else [], [str(t) for t in getattr(getattr(scenario, "feature", None), "tags", [])]):
            judges = [t[len(JUDGE_TAG):] for t in tags if t.startswith(JUDGE_TAG)]
            if judges:
                return judges[0]
        return self.config.judge_model or self.model_for(live)

    def judge_settings(self, live: LiveConversation, scenario: Any = None) -> TurnSettings:
        """How judge calls are made: the judge model, through the same completer as the agent."""
        model = self.judge_model_for(live, scenario)
        return TurnSettings(model=model, request=self.model_request(model, live.agent), timeout_s=self.config.timeout_s)

    # ----------------------------------------------------------------- the simulated user

    def user_model_for(self, live: LiveConversation, scenario: Any = None) -> str:
        """@user_model:... on the scenario > on the feature > user_model (config, -D) > the judge's model
        (which falls back to the agent's)."""
        for tags in (own_tags(scenario) if scenario is not None else [], [str(t) for t in getattr(getattr(scenario, "feature", None), "tags", [])]):
            models = [t[len(USER_MODEL_TAG):] for t in tags if t.startswith(USER_MODEL_TAG)]
            if models:
                return models[0]
        return self.config.user_model or self.judge_model_for(live, scenario)

    def simulate(self, persona: str, min_turns: int, max_turns: int, say: Any, where: str = "") -> Any:
        """Let a simulated user talk to the agent (docs/simulated-user.md); ``say(text)`` runs one
        agent turn as the step wants it run. Returns the :class:`~behave_aitest.records.Simulation`,
        recorded on the scenario and the conversation; the turns it wrote become the latest turns."""
        from ..agent import simulator
        from ..record.records import Simulation

        live = self.live()
        model = self.user_model_for(live, self.current_scenario)
        simulation = Simulation(persona=persona, model=model, max_turns=max_turns, min_turns=min_turns, step=where)
        live.record.simulations.append(simulation)
        if live.scenario is not None:
            live.scenario.simulations.append(simulation)
        settings = TurnSettings(
            model=model,
            request={},
            timeout_s=self.config.timeout_s,
            retries=self.config.retries,
            retry_backoff_s=self.config.retry_backoff_s,
        )

        def ask(messages: list[dict[str, Any]]) -> Any:
            try:
                if not settings.request:  # here, so a scripted model that cannot start is the simulator's error
                    settings.request = self.model_request(model, live.agent)
                return self.call(simulator.ask, self._completer(settings), settings, messages)
            except Exception as exc:
                raise simulator.SimulatorError(simulator.failure_text(first_leaf(exc), settings)) from None

        turns_before = len(live.record.turns)
        try:
            return simulator.run(simulation, ask, say, lambda: live.record.turns)
        finally:
            live.last_turns = list(live.record.turns[turns_before:])

    def run_judge(self, settings: TurnSettings, run: Any) -> Any:
        """Run ``await run(complete, request)`` on the run's event loop, through the same
        completer the agent uses (so prices and recording apply to judge calls too)."""
        return self.call(run, self._completer(settings), settings.request)

    def call(self, fn: Any, *args: Any) -> Any:
        """Run ``await fn(*args)`` on the run's event loop and wait for it.

        Unlike ``portal.call``, an interruption (Ctrl-C) while waiting cancels the task,
        so the run stops at once instead of waiting for a slow model or tool.
        """
        future = self.portal.start_task_soon(fn, *args)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def scripted_base_url(self, model: str = SCRIPTED_MODEL) -> str:
        """Start the built-in scripted model (a local OpenAI-compatible server) on first use;
        one server plays every named scripted model (``scripted/<name>``) of the rules file."""
        if self._scripted is None:
            from ..model.fakellm import FakeOpenAI
            from ..model.scripted import ScriptedModels

            if self.config.scripted_rules is None:
                raise ConfigError(
                    f"The model is {model!r} (the built-in scripted model) but no rules file is configured: "
                    f'set scripted_rules = "features/scripted_model.toml" in {self._config_name()}, '
                    "or choose a real model with -D aitest.model=<provider/model>."
                )
            self._scripted = FakeOpenAI(brain=ScriptedModels.from_file(self.config.scripted_rules))
            self._scripted.start()
        if model not in self._scripted.brain.brains:
            from ..model.scripted import undefined_model

            raise ConfigError(undefined_model(model, self._scripted.brain.brains, self.config.scripted_rules))
        return str(self._scripted.base_url)

    # ----------------------------------------------------------------- servers and turns

    def _scope_for(self, live: LiveConversation, scope: str) -> Scope:
        if scope == "run":
            return self.run_scope
        if scope == "feature" and self.feature_scope is not None:
            return self.feature_scope
        return live.scope

    def connections(self, live: LiveConversation) -> list[ServerConnection]:
        """Live connections to the agent's servers, started on first use in their scope."""
        from ..mcp.connection import connect

        found = []
        for name in live.agent.servers:
            server = self.config.servers.get(name)
            if server is None:
                raise unknown_name("MCP server", name, self.config.servers, "servers", self._config_name())
            scope = self._scope_for(live, server.scope)
            conn = scope.servers.get(name)
            if conn is None or not conn.alive:
                errlog = self.log_dir / f"{name}-{next(self._ids)}.stderr.log"
                try:
                    conn = scope.stack.enter_context(self.portal.wrap_async_context_manager(connect(server, errlog)))
                except BaseException as exc:  # anyio wraps start-up failures in exception groups
                    raise first_leaf(exc) from None
                scope.servers[name] = conn
            found.append(conn)
        return found

    def say(self, text: str, user_messages: list[dict[str, Any]] | None = None, simulated: bool = False) -> Turn:
        """Run one user message (or a prompt's messages) through the agent and record the
        turn everywhere it belongs (``simulated``: the message came from the simulated user)."""
        live = self.live()
        settings = self.turn_settings(live)
        connections = self._tool_connections(live)
        toolbox = self.toolbox(live, connections)
        toolbox.doubles = live.doubles
        self._warn_once(live, toolbox.warnings)
        if live.scenario is not None:  # the tool-coverage denominator (behave_aitest.coverage)
            for server, tool, params in toolbox.coverage_offer():
                live.scenario.tools_offered.setdefault(server, {})[tool] = params
        complete = self._completer(settings)
        self._client_sides(live, connections, settings, complete)
        user_messages = self._with_attachments(live, text, user_messages)
        turn = self.call(
            lambda: run_turn(
                complete,
                toolbox,
                system_prompt=live.agent.system_prompt,
                history=live.record.messages,
                user_text=text,
                settings=settings,
                index=len(live.record.turns),
                user_messages=user_messages,
            )
        )
        if turn.error is None:
            turn.error = elicitation_error(turn)
        turn.simulated = simulated
        live.record.turns.append(turn)
        live.record.model = live.record.model or settings.model
        live.last_turns = [turn]
        if live.scenario is not None:
            live.scenario.turns.append(turn)
            live.scenario.model = live.scenario.model or settings.model
        if self.current_step is not None:
            self.current_step.aitest_turn = turn
        if live.cassette is not None and any(c.doubled for c in turn.tool_calls):
            live.cassette.note_doubled(turn)
        return turn

    def toolbox(self, live: LiveConversation, connections: list[Any] | None = None) -> ToolBox:
        """The tools the agent may use now, its servers started on first use."""
        if connections is None:
            connections = self._tool_connections(live)
        try:
            return ToolBox(connections, live.agent.allowed_tools, resources=live.agent.resources)
        except AgentSetupError as exc:
            raise ConfigError(f"Agent {live.agent.name or '(unnamed)'}: {exc}") from None

    def _agent_tool(self, live: LiveConversation, name: str, step: str) -> Any:
        """``(connection, spec)`` of the agent's tool ``name``; a ValueError listing its tools."""
        toolbox = self.toolbox(live)
        found = toolbox.find(name)
        if found is None:
            import difflib

            offered = toolbox.offered()
            close = difflib.get_close_matches(name, offered, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            if toolbox.known_elsewhere(name.rpartition(".")[2]):
                hint = " Its servers offer it, but its allowed_tools leave it out."
            raise StepUsageError(
                f"{step}: the agent {live.agent.name or '(unnamed)'!r} has no tool {name!r}.{hint} "
                f"Its tools: {tool_list(offered)}."
            )
        return found

    def add_double(self, name: str, step: str, **rule: Any) -> Double:
        """Set a double of the agent's tool ``name`` until the end of the scenario (see doubles.py)."""
        live = self.live()
        conn, spec = self._agent_tool(live, name, step)
        server = self.config.servers.get(conn.name)
        timeout_s = server.tool_timeout_s if server is not None else 60.0
        double = Double(conn.name, spec.name, timeout_s=timeout_s, **rule)
        live.doubles.add(double)
        return double

    def call_tool(self, name: str, arguments: dict[str, Any], step: str) -> ToolCall:
        """The test calls the agent's tool itself, in the conversation's own server process
        (never doubled, never in the model's history); recorded on the scenario as "by the test"."""
        live = self.live()
        conn, spec = self._agent_tool(live, name, step)
        record = live.scenario
        number = len(record.direct_calls) + 1 if record is not None else 1
        try:
            call = self.call(call_directly, conn, spec, arguments, f"test_{number}")
        except BaseException as exc:
            raise first_leaf(exc) from None
        if record is not None:
            record.direct_calls.append(call)
        if self.current_step is not None:
            self.current_step.aitest_direct_call = call
        return call
    # ----------------------------------------------------------------- MCP client features (docs/mcp.md)

    def _warn_once(self, live: LiveConversation, warnings: list[str]) -> None:
        """Tools not offered: on every conversation's record (the report), printed once per run."""
        for warning in warnings:
            if warning not in live.record.warnings:
                live.record.warnings.append(warning)
                if live.scenario is not None:
                    live.scenario.warnings.append(warning)
            if warning not in self._printed:
                self._printed.add(warning)
                print(f"behave-aitest WARNING: {warning}", file=sys.stderr)

    def _client_sides(self, live: LiveConversation, connections: list[Any], settings: TurnSettings, complete: Any) -> None:
        """Tell each server's client side how this turn answers questions and sampling."""
        from ..mcp.elicitation import ElicitationPlan
        from ..mcp.sampling import Sampler

        for conn in connections:
            side = getattr(conn, "client", None) or getattr(getattr(conn, "connection", None), "client", None)
            if side is None:
                continue
            side.plan = live.elicitation or ElicitationPlan()
            if side.sampling in ("agent", "off"):
                side.sampler = Sampler(complete, settings)
            else:
                request = self.model_request(side.sampling, live.agent)
                sampling_settings = TurnSettings(model=side.sampling, request=request, timeout_s=self.config.timeout_s)
                side.sampler = Sampler(self._completer(sampling_settings), sampling_settings)

    def _with_attachments(self, live: LiveConversation, text: str, user_messages: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        """Resources attached with ``Given the resource … is attached`` join the next user message."""
        if not live.attachments:
            return user_messages
        attached, live.attachments = "\n\n".join(live.attachments), []
        messages = [dict(m) for m in user_messages] if user_messages else [{"role": "user", "content": text}]
        last = messages[-1]
        if last.get("role") == "user" and isinstance(last.get("content"), str):
            last["content"] = f"{last['content']}\n\n{attached}"
        else:
            messages.append({"role": "user", "content": attached})
        return messages

    def attach_resource(self, uri: str) -> None:
        """Read ``uri`` from the agent's servers (the one that lists it first) for the next user message."""
        from ..mcp.content import resource_contents_text

        live = self.live()
        connections = self.connections(live)

        async def read() -> str:
            problems = []
            for conn in connections:
                try:
                    listed = [str(r.uri) for r in await conn.list_resources()]
                except Exception:
                    listed = []
                if listed and uri not in listed:
                    problems.append(f"{conn.name} does not list it")
                    continue
                try:
                    return resource_contents_text((await conn.read_resource(uri)).contents)
                except Exception as exc:
                    problems.append(f"{conn.name}: {type(exc).__name__}: {exc}")
            raise ConfigError(
                f"The resource {uri!r} cannot be read from the agent's servers "
                f"({'; '.join(problems) or 'the agent has no servers'})."
            )

        live.attachments.append(self.call(read))

    def prompt_messages(self, name: str, arguments: dict[str, str]) -> list[dict[str, Any]]:
        """The messages of the prompt ``name`` (``prompts/get``) of the agent's servers, in order."""
        from ..mcp.content import blocks_view

        live = self.live()
        connections = self.connections(live)

        async def get() -> list[dict[str, Any]]:
            known = []
            for conn in connections:
                prompts = await conn.list_prompts()
                known += [f"{conn.name}.{p.name}" for p in prompts]
                if any(p.name == name for p in prompts):
                    try:
                        result = await conn.get_prompt(name, arguments)
                    except Exception as exc:  # e.g. a missing argument: the server's own words
                        raise ConfigError(
                            f"MCP server {conn.name!r} refused the prompt {name!r} with arguments {sorted(arguments)}: "
                            f"{type(exc).__name__}: {exc}"
                        ) from None
                    return [{"role": m.role, "content": blocks_view([m.content]).text} for m in result.messages]
            raise ConfigError(
                f"Unknown prompt {name!r}: the agent's servers offer {', '.join(known) or 'no prompts'}."
            )

        return self.call(get)

    def _completer(self, settings: TurnSettings) -> Any:
        """The completer for one turn or judgement: priced, and through the conversation's cassette."""
        complete = self._priced_completer(settings)
        cassette = self.current.cassette if self.current is not None else None
        return cassette.completer(complete, settings) if cassette is not None else complete

    def _tool_connections(self, live: LiveConversation) -> list[Any]:
        """The agent's servers; with cassette_tools = "record", recorded or replayed by the cassette."""
        if live.cassette is None:
            return self.connections(live)
        return live.cassette.tool_connections(lambda: self.connections(live), live.agent.servers)

    def _open_cassette(self, live: LiveConversation, feature: Any, scenario: Any) -> None:
        """Open the cassette of a conversation that starts: a scenario, or a @session feature (scenario None)."""
        if self.cassettes is not None:
            live.cassette = self.cassettes.open(feature, scenario)
            live.record.cassette, live.record.cassette_mode = live.cassette.display, live.cassette.mode
            live.record.cassette_recorded = live.cassette.recorded

    def _close_cassette(self, live: LiveConversation) -> None:
        """Write the conversation's recording (only when complete); warn about what it did not do."""
        cassette, live.cassette = live.cassette, None
        try:
            warning = cassette.close(live.record.turns) if cassette is not None else None
        except Exception as exc:  # a read-only folder, a full disk, a path that is a folder, ...
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            # a CassetteWriteError already names the file and the reason
            message = text if text.startswith(f"cassette {cassette.display} ") else f"cassette {cassette.display} cannot be written: {text}"
            live.record.warnings.append(message)
            raise CassetteNotWritten(message) from None
        if warning:
            live.record.warnings.append(warning)
            print(f"behave-aitest WARNING: {warning}", file=sys.stderr)

    @functools.cached_property
    def model_limiter(self) -> ModelLimiter:
        """``max_model_concurrency`` slots, shared with the other workers of a parallel run."""
        return ModelLimiter.for_run(self.config.max_model_concurrency)

    def _limited(self, complete: Any, model: str) -> Any:
        """``complete`` holding one of the model's slots per call (when a limit is set)."""
        if self.config.max_model_concurrency is None:
            return complete
        limiter = self.model_limiter

        async def limited(request: dict[str, Any], *, timeout_s: float | None = None) -> Any:
            async with limiter.slot(model):
                return await complete(request, timeout_s=timeout_s)

        return limited

    def _priced_completer(self, settings: TurnSettings) -> Any:
        from ..model import llm

        complete = self._limited(llm.complete, settings.model)
        price = self.config.prices.get(settings.model)
        if not is_scripted(settings.model) and price is None:
            return complete

        async def priced(request: dict[str, Any], *, timeout_s: float | None = None) -> llm.ModelReply:
            reply = await complete(request, timeout_s=timeout_s)
            if price is not None:  # the user's price beats litellm's table
                reply.cost_usd = price.cost(reply.input_tokens, reply.output_tokens)
            elif is_scripted(settings.model):
                reply.cost_usd = 0.0  # the scripted model costs nothing, and we know it
            return reply

        return priced

    def drop_dead_servers(self) -> None:
        """Forget crashed servers so the next conversation starts them again."""
        for scope in (self.run_scope, self.feature_scope, self.current.scope if self.current else None):
            if scope is not None:
                for name in [n for n, c in scope.servers.items() if not c.alive]:
                    del scope.servers[name]


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


class HooksMissing(RuntimeError):
    """AI steps ran but ``before_all`` never created the runtime."""


HOOKS_MISSING = (
    "behave-aitest hooks are not installed. Add this line to features/environment.py:\n"
    "    from behave_aitest.environment import *\n"
    "or, if you have your own hooks, call behave_aitest.hooks.before_all(context), "
    "before_feature, before_scenario, before_step, after_scenario, after_feature and after_all from them."
)


def runtime_of(context: Any) -> Runtime:
    runtime = getattr(context, "aitest", None)
    if not isinstance(runtime, Runtime):
        raise HooksMissing(HOOKS_MISSING)
    return runtime
