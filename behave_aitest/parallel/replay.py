"""The replay of a parallel run: the workers' outcomes put on the parent's own behave model
and shown to behave's formatters and reporters in file order, so one run is seen as one.

What lives here: :class:`Replay`, the part of :class:`~behave_aitest.parallel.ParallelRunner`
that runs once every unit is back (or the run was stopped): it replays each feature (units of
another shard left out, scenarios outside the plan marked skipped), runs the run-wide gates
(``min_pass_rate``, ``min_tool_coverage``), exports telemetry, closes the formatters and gives
behave's summary the run's wall time. It imports ``outcomes`` and the run's packages below it,
never the runner (the runner's state arrives as an argument).
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from behave.model import NoMatch
from behave.model_type import Status

from ..run.repeats import RepeatStats, settle
from . import outcomes, units

if TYPE_CHECKING:
    from .runner import _Run


class Replay:
    """The replay half of the parallel runner (a mixin of :class:`ParallelRunner`)."""

    features: list[Any]
    formatters: list[Any]
    config: Any
    _started: float
    _undefined: list[Any]
    step_registry: Any

    # ----------------------------------------------------------------- the replay

    def _finish(self, run: _Run, config: Any) -> bool:
        from .. import report as _report  # noqa: F401 - the formatters need it anyway

        conversations = outcomes.renumber(list(run.results.values()))
        view = SimpleNamespace(config=config, conversations=conversations, models_below_gate=[])
        self.config.aitest_runtime = view
        self.config.aitest_hook_errors = list(run.hook_errors)
        if run.setup_failed and run.setup_failed not in self.config.aitest_hook_errors:
            self.config.aitest_hook_errors.append(run.setup_failed)
        ran: dict[int, dict[int, list[outcomes.UnitOutcome]]] = {}
        for unit in run.plan:
            result = run.results.get(unit.index)
            if result is not None:
                ran.setdefault(unit.feature, {}).setdefault(unit.index, []).append(result)
        in_plan = {u.feature for u in run.plan}
        failed_count = 0
        for fi, feature in enumerate(self.features):
            if config.shard is not None and fi not in in_plan:
                continue  # another shard's feature
            planned = {i for u in run.plan if u.feature == fi for i in u.scenarios}
            results = [r for rs in ran.get(fi, {}).values() for r in rs]
            failed = self._replay_feature(feature, results, run, planned, sharded=config.shard is not None)
            failed_count += failed
            for reporter in self.config.reporters:
                reporter.feature(feature)
        from ..run import repeats

        below = repeats.model_gate(self.features, config.min_pass_rate)
        view.models_below_gate = below
        gate_failed = bool(below and config.min_pass_rate < 1)
        if gate_failed:
            message = "HOOK-ERROR in after_all: ModelGateFailed: " + "; ".join(below)
            self.config.aitest_hook_errors.append(message)
            print(message)
        from ..run.hooks import export_telemetry

        export_telemetry(self.features, config)  # -D aitest.otel: the whole run's spans, once
        if config.shard is None:  # the tool-coverage gate over all workers (a shard leaves it to report merge)
            from ..record.coverage import run_gate

            short = run_gate(self.features, config.min_tool_coverage)
            if short:
                message = f"HOOK-ERROR in after_all: CoverageGateFailed: {short}"
                self.config.aitest_hook_errors.append(message)
                print(message)
                gate_failed = True
        if run.aborted:
            print("\nABORTED: By user.")
        for formatter in self.formatters:
            formatter.close()
        together = _wall_time_took(self.config.reporters, time.time() - self._started)
        for reporter in self.config.reporters:
            reporter.end()
        if together and (getattr(self.config, "jobs", 1) or 1) > 1:  # a shard without -j runs one worker: no sum to tell
            summed = sum(r.duration for r in run.results.values())  # repeats and hooks included
            print(f"behave-aitest -j: \"Took\" is the run's wall time; its conversations took {_minutes(summed)} together.")
        # what behave's own run_model counts as a failed run, over all workers
        return bool(
            failed_count or run.aborted or run.setup_failed or gate_failed or run.hook_failures or run.cleanup_failed or self._undefined
        )

    def _replay_feature(self, feature: Any, results: list[outcomes.UnitOutcome], run: _Run, planned: set[int], *, sharded: bool) -> bool:
        """Put a feature's outcomes on the parent's objects and show them to the formatters, in order."""
        scenarios = list(feature.walk_scenarios())
        by_scenario: dict[int, list[tuple[units.Unit, outcomes.ScenarioOutcome]]] = {}
        for result in sorted(results, key=lambda r: r.unit):
            unit = run.unit(result.unit)
            for outcome in result.scenarios:
                by_scenario.setdefault(outcome.index, []).append((unit, outcome))
            if result.session is not None:
                feature.aitest_conversation = result.session
            if result.feature_hook_failed:
                feature.hook_failed = True
                feature.error_message = result.feature_error_message
            rules = list(feature.iter_rules())
            for ri, failed_hook, message in result.rules:
                if failed_hook and ri < len(rules):
                    rules[ri].hook_failed = True
                    rules[ri].error_message = message
                    rules[ri].set_status(Status.hook_error)
            for si, pi in result.undefined:
                step = list(scenarios[si].all_steps)[pi]
                if step not in self._undefined:
                    self._undefined.append(step)
        ran: set[int] = set()
        failed = False
        for index, scenario in enumerate(scenarios):
            done = by_scenario.get(index)
            if not done:
                continue
            ran.add(id(scenario))
            outcomes.apply(scenario, done[-1][1])
            if done[-1][0].runs > 1:
                _repeat_stats(scenario, [o for _, o in done], float(getattr(run.config, "min_pass_rate", 1.0)))
            failed = failed or scenario.status.has_failed()
        if sharded:  # another shard runs the rest: this shard reports only its own
            _keep_only(feature, {id(scenarios[i]) for i in planned})
        feature.clear_status()
        if getattr(feature, "hook_failed", False):
            feature.set_status(Status.hook_error)
            failed = True
        self._show(feature, ran, {id(scenarios[i]) for i in planned})
        return failed

    def _show(self, feature: Any, ran: set[int], planned: set[int]) -> None:
        """Call the formatters as behave's own Feature/Rule/Scenario/Step.run would have."""
        show_skipped = bool(self.config.show_skipped)
        for scenario in feature.walk_scenarios():
            if id(scenario) not in planned and scenario.status == Status.untested:
                scenario.should_skip = True  # not selected (tags, name, file:LINE): skipped, as behave shows it
                for step in scenario.all_steps:
                    if step.status == Status.untested:
                        step.status = Status.skipped
        if not (feature.should_run(self.config) or ran or show_skipped) or not self.formatters:
            return
        self._call("uri", feature.filename)
        self._call("feature", feature)
        if feature.background:
            self._call("background", feature.background)
        if not feature.hook_failed:  # behave runs nothing of a feature whose before_feature failed
            self._show_items(feature.run_items, ran, show_skipped)
        self._call("eof")

    def _show_items(self, items: list[Any], ran: set[int], show_skipped: bool) -> None:
        from behave.model import Rule, ScenarioOutline

        for item in items:
            if isinstance(item, Rule):
                if not (show_skipped or any(id(s) in ran for s in item.walk_scenarios()) or item.hook_failed):
                    continue
                self._call("rule", item)
                if item.background:
                    self._call("background", item.background)
                if not item.hook_failed:
                    self._show_items(item.run_items, ran, show_skipped)
                self._call("rule_finished")
            elif isinstance(item, ScenarioOutline):
                self._show_items(item.scenarios, ran, show_skipped)
            elif id(item) in ran or show_skipped:
                self._show_scenario(item)

    def _show_scenario(self, scenario: Any) -> None:
        self._call("scenario", scenario)
        for step in scenario:
            self._call("step", step)
        for step in scenario.all_steps:
            if step.status in (Status.untested, Status.skipped):
                continue
            match = self.step_registry.find_match(step) if step.status != Status.undefined else None
            self._call("match", match if match is not None else NoMatch())
            self._call("result", step)

    def _call(self, event: str, *args: Any) -> None:
        """One formatter event, to every formatter that has it (``rule`` is newer than some)."""
        for formatter in self.formatters:
            handler = getattr(formatter, event, None)
            if handler is not None:
                handler(*args)


def _wall_time_took(reporters: list[Any], wall: float) -> bool:
    """behave's summary says "Took" the sum of every feature's duration, which under -j adds up
    the workers' overlapping times (`-j 64`: "Took 26min" for a 53 s run). Its reporters get the
    run's wall time instead; the scenarios and steps keep their own durations (JSON, JUnit).
    Whether a summary reporter was there to say it."""
    from behave.reporter.summary import AbstractSummaryReporter

    found = False
    for reporter in reporters:
        if isinstance(reporter, AbstractSummaryReporter):
            try:
                reporter.duration = wall
            except AttributeError:  # a behave whose reporter has no setter: its own sum stays
                continue
            found = found or bool(getattr(reporter, "show_duration", True))
    return found


def _minutes(seconds: float) -> str:
    """A duration as behave's "Took" line writes it."""
    return f"{int(seconds / 60)}min {seconds % 60:.3f}s"


def _repeat_stats(scenario: Any, runs: list[outcomes.ScenarioOutcome], min_pass_rate: float) -> None:
    """A scenario whose runs went to several workers: one pass rate, as a sequential repeat gives."""
    stats = RepeatStats(0, 0, min_pass_rate)
    for outcome in runs:
        stats.add(outcome.status in ("passed", "skipped"))  # what repeats counts as a passed run
    scenario.aitest_attempts = [o.record for o in runs if o.record is not None]
    settle(scenario, stats)


def _keep_only(container: Any, keep: set[int]) -> None:
    """Drop from a feature (or rule, or outline) every scenario not in ``keep`` (ids)."""
    from behave.model import Rule, ScenarioOutline

    items = []
    for item in container.run_items:
        if isinstance(item, Rule):
            _keep_only(item, keep)
            if item.walk_scenarios():
                items.append(item)
        elif isinstance(item, ScenarioOutline):
            item._scenarios = [s for s in item.scenarios if id(s) in keep]
            if item._scenarios:
                items.append(item)
        elif id(item) in keep:
            items.append(item)
    container.run_items[:] = items
    if hasattr(container, "scenarios") and isinstance(container.scenarios, list):
        container.scenarios[:] = [s for s in container.scenarios if s in items]
