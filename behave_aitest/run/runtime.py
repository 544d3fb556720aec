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
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from ..agent.doubles import Double, tool_list
from ..agent.loop import TurnSettings, run_turn
from ..agent.toolbox import call_directly
from ..config import (
    Config,
    unknown_name,
)
from ..errors import StepUsageError
from ..mcp.clientside import sampling_refusal
from ..mcp.connection import first_leaf
from ..record.records import Conversation, ScenarioRecord, ToolCall, Turn
from ..text.files import owned_tempdir, remove_stale_tempdirs
from ..text.redact import Redactor
from .conversation import (
    AgentState,
    CassetteNotWritten,
    LiveConversation,
    elicitation_error,
)
from .models import ModelChoice
from .scopes import Scope, ServerScopes, _sides, server_events
from .serverfeatures import ServerFeatures
from .tags import (  # noqa: F401 - the run's names
    JUDGE_TAG,
    MODEL_TAG,
    SESSION_TAG,
    USER_MODEL_TAG,
    model_tags,
    own_tags,
    scenario_model,
)


class Runtime(ModelChoice, ServerScopes, ServerFeatures):
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
        self.spend_stopped: str | None = None  # why the spend cap skipped a scenario (the run fails)
        self.portal: Any = None
        self._loop = ExitStack()  # the portal's event loop: stopped after every scope
        self._scopes: list[Scope] = []  # feature and conversation scopes not yet closed
        remove_stale_tempdirs()  # left by runs killed with SIGKILL (H19)
        self.log_dir = Path(owned_tempdir("behave-aitest-"))
        self._ids = itertools.count(1)  # server log files
        self._conversation_ids = itertools.count(1)  # c1, c2, ... in the order conversations start
        self._scripted: Any = None
        self._printed: set[str] = set()  # warnings about servers' tools, printed once per run
        # A parallel run's worker leaves its run-wide warnings to the parent, which prints each
        # once for the whole run (from the scenarios' records), not once per worker.
        self.in_worker = False
        self._allowed_said: dict[tuple[str, tuple[str, ...]], str] = {}  # allowed_tools mistakes, said in full once
        self.cassettes: Any = None  # a cassettes.CassetteLibrary, unless cassette = "off"
        self.external: Any = None  # agent.external.session.ExternalAgents, on the first external agent's turn
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
        from ..mcp.processes import stop_all_groups

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
        if self.external is not None and self.portal is not None:
            external, self.external = self.external, None
            try:
                self.portal.call(external.close)
            except Exception as exc:
                print(f"behave-aitest WARNING: stopping the external agents: {type(exc).__name__}: {exc}", file=sys.stderr)
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
        starts = self.session is None or not self.session.record.turns  # a new conversation, not the rest of one
        cap = self.spend_cap_passed() if starts else None
        if cap is not None:
            self._skip_for_spend(scenario, cap)
            return
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

    # ----------------------------------------------------------------- the spend cap (issue 26)

    def spend_cap_passed(self) -> str | None:
        """Why no new conversation may start (``max_run_cost_usd`` passed), or None."""
        cap = self.config.max_run_cost_usd
        if cap is None:
            return None
        spent = self.spend_meter.total()
        if spent < cap:
            return None
        return f"Skipped: the run's known cost ${spent:.4f} reached max_run_cost_usd = ${cap:g}; no new conversation starts."

    def _skip_for_spend(self, scenario: Any, reason: str) -> None:
        """Skip a scenario the spend cap keeps from starting (behave's own skip), keep why on its
        record, say it, and remember it: the run fails at its end (hooks.SpendCapReached)."""
        record = ScenarioRecord(conversation_id="", skip_reason=reason)
        scenario.aitest = record
        self.current, self.current_scenario = None, scenario
        scenario.skip(reason=None)
        scenario.skip_reason = reason
        self.spend_stopped = reason
        line = f"behave-aitest: {scenario.name!r} ({scenario.location}) {reason[0].lower()}{reason[1:]}"
        print(line, flush=True)
        if sys.stdout is not sys.__stdout__ and sys.__stderr__ is not None:
            print(line, file=sys.__stderr__, flush=True)

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
            live.elicitation = None  # answers hold to the end of their own scenario (H2), in a @session too
            self._forget_client_sides(live)
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
        self._doubles_fit(live, name)
        return live.agent

    @staticmethod
    def _doubles_fit(live: LiveConversation, name: str) -> None:
        """Doubles set before this agent was chosen that its servers or allowed_tools leave out
        would never answer a call, silently: the step says so instead."""
        allowed = live.agent.allowed_tools
        stray = [
            f"{d.server}.{d.tool}" for d in live.doubles.rules
            if d.server not in live.agent.servers or (allowed is not None and d.tool not in allowed and f"{d.server}.{d.tool}" not in allowed)
        ]
        if stray:
            raise StepUsageError(
                f"the tool doubles set before this step ({', '.join(dict.fromkeys(stray))}) are of tools the agent {name!r} "
                f"cannot call (its servers: {', '.join(live.agent.servers) or 'none'}), so they would never answer: "
                "give the agent first, then its doubles."
            )

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


    # ----------------------------------------------------------------- the simulated user


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
                from ..model.adaptive import Throttled

                leaf = first_leaf(exc)
                kind = simulator.SimulatorThrottled if isinstance(leaf, Throttled) else simulator.SimulatorError
                raise kind(simulator.failure_text(leaf, settings)) from None

        turns_before = len(live.record.turns)
        try:
            return simulator.run(simulation, ask, say, lambda: live.record.turns)
        finally:
            live.last_turns = list(live.record.turns[turns_before:])

    def run_judge(self, settings: TurnSettings, run: Any) -> Any:
        """Run ``await run(complete, request)`` on the run's event loop, through the same
        completer the agent uses (so prices and recording apply to judge calls too).

        Like a turn, a judgement waits for the provider's rate limit until ``timeout_s`` (then it
        is throttled, docs/rate-limits.md); its own calls may take longer (``judge.ask``)."""

        async def judged(complete: Any, request: dict[str, Any]) -> Any:
            from ..model.adaptive import turn_scope

            with turn_scope(time.monotonic() + settings.timeout_s):
                return await run(complete, request)

        return self.call(judged, self._completer(settings), settings.request)

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


    # ----------------------------------------------------------------- servers and turns


    def say(self, text: str, user_messages: list[dict[str, Any]] | None = None, simulated: bool = False) -> Turn:
        """Run one user message (or a prompt's messages) through the agent and record the
        turn everywhere it belongs (``simulated``: the message came from the simulated user)."""
        live = self.live()
        settings = self.turn_settings(live)
        connections = self._tool_connections(live)
        toolbox = self.toolbox(live, connections)
        toolbox.doubles = live.doubles
        self._warn_once(live, toolbox.warnings, run_wide=True)
        if live.scenario is not None:  # the tool-coverage denominator (behave_aitest.coverage)
            for server, tool, params in toolbox.coverage_offer():
                live.scenario.tools_offered.setdefault(server, {})[tool] = params
        complete = self._completer(settings)
        self._client_sides(live, connections, settings, complete)
        user_messages = self._with_attachments(live, text, user_messages)
        index = len(live.record.turns)
        if self._external(live.agent.name):  # an agent that is not the built-in loop (docs/agents.md)
            external, name = self.external, live.agent.name
            turn = self.call(
                lambda: external.turn(
                    name, conversation_id=live.record.id, complete=complete, toolbox=toolbox, history=live.record.messages,
                    user_text=text, settings=settings, index=index, user_messages=user_messages,
                )
            )
            self._warn_once(live, turn.warnings)
        else:
            turn = self.call(
                lambda: run_turn(
                    complete,
                    toolbox,
                    system_prompt=live.agent.system_prompt,
                    history=live.record.messages,
                    user_text=text,
                    settings=settings,
                    index=index,
                    user_messages=user_messages,
                )
            )
        turn.server_events.extend(server_events(_sides(connections)))
        if turn.error is None:
            turn.error = elicitation_error(turn)
        if turn.error is None:
            refused = sampling_refusal([*turn.tool_calls, *turn.server_events])
            turn.error = f"server: {refused}" if refused else None
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

    def _external(self, name: str | None) -> bool:
        """Whether the agent ``name`` is not the built-in loop (docs/agents.md)."""
        agent = self.config.agents.get(name or "")
        if agent is None or agent.kind == "builtin":
            return False
        if self.external is None:
            from ..agent.external.session import ExternalAgents

            self.external = ExternalAgents(self.config, self.log_dir)
        return True

    def _agent_tool(self, live: LiveConversation, name: str, step: str) -> Any:
        """``(connection, spec)`` of the agent's tool ``name``; a ValueError listing its tools."""
        toolbox = self.toolbox(live)
        found = toolbox.find(name)
        if found is None:
            from ..agent.names import known_tools, task_only_text

            task = known_tools(toolbox, live.agent.name or "").task_only_tool(name)
            if task is not None:  # listed, never offered: not an unknown name (issue 24 item 13)
                raise StepUsageError(
                    f"{step}: {task_only_text(*task)}, so the agent {live.agent.name or '(unnamed)'!r} is not offered it "
                    "and no step can call or double it (docs/mcp.md)."
                )
            import difflib

            offered = toolbox.offered()
            close = difflib.get_close_matches(name, offered, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            server, _, tool = name.rpartition(".")
            if server and server in self.config.servers and server not in live.agent.servers:
                # another agent's server (issue 25, H17): not an allowed_tools matter
                users = sorted(a.name for a in self.config.agents.values() if server in a.servers)
                used = f" (agent {', '.join(repr(u) for u in users)} uses it)" if users else ""
                hint = f" The MCP server {server!r}{used} is not one of its servers ({', '.join(live.agent.servers) or 'none'})."
            elif live.agent.allowed_tools is not None and toolbox.known_elsewhere(tool):
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
        # what the server asks during the test's own call is the scenario's too: its answers,
        # and its agent's model for sampling (priced, through the cassette) (H1, H2)
        settings = self.turn_settings(live)
        self._client_sides(live, [conn], settings, self._completer(settings))
        try:
            call = self.call(call_directly, conn, spec, arguments, f"test_{number}")
        except BaseException as exc:
            raise first_leaf(exc) from None
        if record is not None:
            record.direct_calls.append(call)
        if self.current_step is not None:
            self.current_step.aitest_direct_call = call
        return call

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
