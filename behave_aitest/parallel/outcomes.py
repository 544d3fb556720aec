"""What a worker sends back for one unit, and how the parent puts it on its own behave model.

A worker runs a unit on its copy of behave's model objects; the parent, which never runs a
step, copies the outcome (statuses, durations, messages, captured output, the behave-aitest
records) onto *its* objects. Then behave's formatters and reporters see one ordinary run,
as if it had been sequential. Everything here is plain, picklable data.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..record.records import Conversation, ScenarioRecord, ToolCall, Turn


@dataclass
class StepOutcome:
    status: str  # behave's Status name
    duration: float = 0.0
    error_message: str | None = None
    exception: tuple[str, str] | None = None  # (type name, text): exceptions need not pickle
    captured: Any = None
    turn: Turn | None = None  # step.aitest_turn (the same object as in the scenario's record)
    direct_call: ToolCall | None = None  # step.aitest_direct_call: the test's own tool call (tool doubles)


@dataclass
class ScenarioOutcome:
    index: int  # in ``feature.walk_scenarios()``
    status: str
    hook_failed: bool = False
    error_message: str | None = None
    exception: tuple[str, str] | None = None
    captured: Any = None
    record: ScenarioRecord | None = None  # scenario.aitest
    steps: list[StepOutcome] = field(default_factory=list)
    finished: bool = True  # False: a snapshot sent while it runs (its steps so far; the rest untested)


@dataclass
class UnitOutcome:
    """One unit's result. ``conversations`` are those the unit created, in creation order."""

    unit: int
    worker: int
    duration: float = 0.0
    scenarios: list[ScenarioOutcome] = field(default_factory=list)
    feature_hook_failed: bool = False
    feature_error_message: str | None = None
    conversations: list[Conversation] = field(default_factory=list)
    session: Conversation | None = None  # feature.aitest_conversation of a @session unit
    undefined: list[tuple[int, int]] = field(default_factory=list)  # (scenario index, step index)
    hook_errors: list[str] = field(default_factory=list)
    hook_failures: int = 0  # hooks that failed during the unit (behave counts them as a failed run)
    rules: list[tuple[int, bool, str | None]] = field(default_factory=list)  # (rule index, hook failed, message)
    aborted: bool = False

    @property
    def status(self) -> str:
        """The unit's worst scenario status, for the console line."""
        names = [s.status for s in self.scenarios]
        for worst in ("error", "hook_error", "cleanup_error", "failed", "undefined", "pending", "untested"):
            if worst in names:
                return worst
        if "passed" in names:
            return "passed"
        return names[0] if names else "skipped"

    @property
    def label(self) -> str:
        """The console line's word: :attr:`status`, or "throttled" when every scenario that
        errored could not finish for the provider's rate limit (docs/rate-limits.md)."""
        status = self.status
        errored = [s for s in self.scenarios if s.status == "error"]
        if status == "error" and errored and all(s.record is not None and s.record.throttled for s in errored):
            return "throttled"
        return status


def _exception(exc: BaseException | None) -> tuple[str, str] | None:
    return (type(exc).__name__, str(exc)) if exc is not None else None


def capture(unit: int, worker: int, feature: Any, indices: Sequence[int], duration: float, conversations: list[Conversation], undefined_steps: Iterable[Any]) -> UnitOutcome:
    """Read a unit's outcome off the worker's behave objects right after ``feature.run``."""
    scenarios = list(feature.walk_scenarios())
    outcome = UnitOutcome(unit, worker, duration, conversations=conversations)
    positions = {id(step): (si, pi) for si in indices for pi, step in enumerate(scenarios[si].all_steps)}
    outcome.undefined = [positions[id(s)] for s in undefined_steps if id(s) in positions]
    for si in indices:
        outcome.scenarios.append(scenario_outcome(si, scenarios[si]))
    outcome.rules = [(i, bool(rule.hook_failed), rule.error_message) for i, rule in enumerate(feature.iter_rules())]
    outcome.feature_hook_failed = bool(feature.hook_failed)
    outcome.feature_error_message = feature.error_message if feature.hook_failed else None
    outcome.session = getattr(feature, "aitest_conversation", None)
    return outcome


def _step_outcome(step: Any) -> StepOutcome:
    return StepOutcome(
        status=step.status.name,
        duration=float(getattr(step, "duration", 0.0) or 0.0),
        error_message=step.error_message,
        exception=_exception(getattr(step, "exception", None)),
        captured=getattr(step, "captured", None),
        turn=getattr(step, "aitest_turn", None),
        direct_call=getattr(step, "aitest_direct_call", None),
    )


def scenario_outcome(index: int, scenario: Any, done: int | None = None) -> ScenarioOutcome:
    """A scenario's outcome off the worker's behave objects; with ``done``, a snapshot while it
    runs: its first ``done`` steps as they ended, the others untested (whatever an earlier run
    of the same scenario object left on them)."""
    steps = list(scenario.all_steps)
    finished = done is None
    kept = [_step_outcome(step) if finished or i < done else StepOutcome(status="untested") for i, step in enumerate(steps)]
    return ScenarioOutcome(
        index=index,
        status=scenario.status.name if finished else "untested",
        hook_failed=bool(scenario.hook_failed) if finished else False,
        error_message=scenario.error_message if finished else None,
        exception=_exception(getattr(scenario, "exception", None)) if finished else None,
        captured=getattr(scenario, "captured", None) if finished else None,
        record=getattr(scenario, "aitest", None),
        steps=kept,
        finished=finished,
    )


def cut_short(
    unit: Any,
    worker: int,
    duration: float,
    snapshots: dict[int, ScenarioOutcome],
    message: str,
    not_started: str,
    conversations: Sequence[Conversation] = (),
    session: Conversation | None = None,
) -> UnitOutcome:
    """The outcome of a unit whose worker ended before sending it (died, or killed after the stop
    grace): what the worker had finished keeps the outcome it sent as it went (issue 25, H15);
    the step it was running is the error ``message`` (the scenario's, if its steps were done); the
    scenarios it never began are ``not_started`` ("error" with the message, or "untested")."""
    outcome = UnitOutcome(unit.index, worker, duration, conversations=list(conversations), session=session)
    for si in unit.scenarios:
        snapshot = snapshots.get(si)
        if snapshot is None:
            failed = not_started != "untested"
            outcome.scenarios.append(ScenarioOutcome(index=si, status=not_started, hook_failed=failed, error_message=message if failed else None))
            continue
        if not snapshot.finished:
            snapshot.status = "error"
            running = next((step for step in snapshot.steps if step.status == "untested"), None)
            if running is None:  # in its after-scenario hooks or clean-up
                snapshot.hook_failed, snapshot.error_message = True, message
            else:
                running.status, running.error_message = "error", message
                running.exception = ("WorkerKilled", message.splitlines()[0])  # JUnit's type and message
        outcome.scenarios.append(snapshot)
    return outcome


_EXCEPTION_TYPES: dict[str, type[BaseException]] = {"AssertionError": AssertionError}


def rebuild_exception(found: tuple[str, str] | None) -> BaseException | None:
    """An exception of the same type name and text (what behave's formatters and JUnit read)."""
    if found is None:
        return None
    name, text = found
    kind = _EXCEPTION_TYPES.get(name)
    if kind is None:
        kind = _EXCEPTION_TYPES[name] = type(name, (Exception,), {"__module__": "behave_aitest.worker"})
    return kind(text)


def apply(scenario: Any, outcome: ScenarioOutcome) -> None:
    """Put one scenario's outcome on the parent's behave objects."""
    from behave.model_type import Status

    for step, done in zip(scenario.all_steps, outcome.steps):
        step.status = Status[done.status]
        step.duration = done.duration
        step.error_message = done.error_message
        step.exception = rebuild_exception(done.exception)
        step.exc_traceback = None
        if done.captured is not None:
            step._captured = done.captured
        if done.turn is not None:
            step.aitest_turn = done.turn
        elif hasattr(step, "aitest_turn"):
            del step.aitest_turn
        if done.direct_call is not None:
            step.aitest_direct_call = done.direct_call
        elif hasattr(step, "aitest_direct_call"):
            del step.aitest_direct_call
    scenario.hook_failed = outcome.hook_failed
    scenario.error_message = outcome.error_message
    scenario.exception = rebuild_exception(outcome.exception)
    if outcome.captured is not None:
        scenario._captured = outcome.captured
    if outcome.record is not None:
        scenario.aitest = outcome.record
    scenario.set_status(Status[outcome.status])


def renumber(outcomes: Sequence[UnitOutcome]) -> list[Conversation]:
    """Give the conversations of all units the ids a sequential run gives them (``c1``, ``c2``… in
    plan order) and return them in that order; every worker counted from ``c1`` on its own."""
    ids = itertools.count(1)
    ordered: list[Conversation] = []
    for outcome in sorted(outcomes, key=lambda o: o.unit):
        mapping: dict[str, str] = {}
        for conversation in outcome.conversations:
            new_id = f"c{next(ids)}"
            mapping[conversation.id] = new_id
            conversation.id = new_id
            ordered.append(conversation)
        for scenario in outcome.scenarios:
            if scenario.record is not None and scenario.record.conversation_id in mapping:
                scenario.record.conversation_id = mapping[scenario.record.conversation_id]
    return ordered
