"""Repeated runs: one lucky run must not pass a flaky agent.

``-D aitest.repeat=N`` (or ``@repeat:N`` on a feature or scenario) runs a scenario N
times — a ``@session`` feature N times as a whole, since its scenarios are one
conversation. The scenario passes when its pass rate reaches ``min_pass_rate`` (default
1.0: every run must pass). behave's own ``run`` of the scenario (or feature) is wrapped,
the way behave's ``scenario_autoretry`` does it, so every run goes through the normal
hooks and formatters; the statistics hang on ``scenario.aitest_repeat``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

REPEAT_TAG = "repeat:"
INJECTION_TAG = "injection"  # @injection: once per built-in prompt-injection payload (docs/checks-meaning-safety.md)


@dataclass
class RepeatStats:
    """How a repeated scenario did over its runs."""

    runs: int
    passed: int
    min_pass_rate: float
    outcomes: list[bool] = field(default_factory=list)  # per run, in order

    def add(self, ok: bool) -> None:
        """Count one run."""
        self.runs += 1
        self.passed += ok
        self.outcomes.append(ok)

    @property
    def pass_rate(self) -> float:
        return self.passed / self.runs if self.runs else 0.0

    @property
    def pass_all(self) -> bool:
        """pass^k: all k runs passed."""
        return self.runs > 0 and self.passed == self.runs

    @property
    def flaky(self) -> bool:
        """Some runs passed and some failed."""
        return 0 < self.passed < self.runs

    @property
    def ok(self) -> bool:
        return self.runs > 0 and self.pass_rate >= self.min_pass_rate - 1e-9

    def summary(self) -> str:
        flag = " FLAKY" if self.flaky else ""
        verdict = "passes" if self.ok else "fails"
        return (
            f"{self.passed}/{self.runs} runs passed (pass rate {self.pass_rate:.0%}, pass^{self.runs} "
            f"{'yes' if self.pass_all else 'no'}){flag}: {verdict} against min_pass_rate {self.min_pass_rate:g}"
        )


def repeat_count(tags: Iterable[Any], default: int) -> int:
    """The N of the first ``@repeat:N`` tag, else ``default``."""
    for tag in tags:
        text = str(tag)
        if text.startswith(REPEAT_TAG):
            value = text[len(REPEAT_TAG):]
            if not value.isdigit() or int(value) < 1:
                raise ValueError(f"@{text}: the number of runs must be a whole number of at least 1, e.g. @repeat:5")
            return int(value)
    return default


def planned_runs(feature_tags: Iterable[Any], scenario_tags: Iterable[Any], default: int) -> int:
    """How many times a scenario (or, with no scenario tags, a ``@session`` feature) runs: its
    ``@repeat:N`` (the scenario's, else the feature's, else ``default``), times the number of
    built-in prompt-injection payloads when the scenario or its feature is tagged ``@injection``
    (run N plays payload N, in turn)."""
    feature_tags, scenario_tags = [str(t) for t in feature_tags], [str(t) for t in scenario_tags]
    runs = repeat_count(scenario_tags, repeat_count(feature_tags, default))
    if INJECTION_TAG in feature_tags + scenario_tags:
        from ..agent.injection import PAYLOADS

        runs *= len(PAYLOADS)
    return runs


def _passed(scenario: Any) -> bool:
    return getattr(scenario.status, "name", str(scenario.status)) in ("passed", "skipped")


def settle(scenario: Any, stats: RepeatStats) -> None:
    """Make behave's status agree with the pass-rate verdict."""
    from behave.model_type import Status

    scenario.aitest_repeat = stats
    if stats.ok and not _passed(scenario):
        scenario.set_status(Status.passed)
    elif not stats.ok and _passed(scenario):
        scenario.set_status(Status.failed)
    print(f"behave-aitest REPEAT {scenario.name!r}: {stats.summary()}")


def repeat_scenario(scenario: Any, runs: int, min_pass_rate: float) -> None:
    """Wrap ``scenario.run`` so it runs ``runs`` times and passes by pass rate."""
    original: Callable[[Any], bool] = scenario.run

    def run(runner: Any) -> bool:
        stats = RepeatStats(0, 0, min_pass_rate)
        attempts = []
        for run_number in range(1, runs + 1):
            scenario.aitest_run = run_number  # what a parallel worker is told: the cassette, the @injection payload
            failed = original(runner)
            attempts.append(getattr(scenario, "aitest", None))
            stats.add(not failed)
            if runner.aborted:
                break
        scenario.aitest_attempts = [a for a in attempts if a is not None]
        settle(scenario, stats)
        return not stats.ok

    scenario.run = functools.wraps(original)(run)


def repeat_feature(feature: Any, runs: int, min_pass_rate: float) -> None:
    """Wrap ``feature.run`` so a ``@session`` feature runs ``runs`` times as a whole."""
    original: Callable[[Any], bool] = feature.run

    def run(runner: Any) -> bool:
        per_scenario: dict[int, RepeatStats] = {}
        attempts: dict[int, list[Any]] = {}
        for run_number in range(1, runs + 1):
            feature.aitest_run = run_number
            original(runner)
            for scenario in feature.walk_scenarios():
                per_scenario.setdefault(id(scenario), RepeatStats(0, 0, min_pass_rate)).add(_passed(scenario))
                if getattr(scenario, "aitest", None) is not None:
                    attempts.setdefault(id(scenario), []).append(scenario.aitest)
            if runner.aborted:
                break
        failed = False
        for scenario in feature.walk_scenarios():
            stats = per_scenario[id(scenario)]
            scenario.aitest_attempts = attempts.get(id(scenario), [])
            settle(scenario, stats)
            failed = failed or not stats.ok
        feature.clear_status()
        return failed

    feature.run = functools.wraps(original)(run)


def install(features: list[Any], default_runs: int, min_pass_rate: float, session_tag: str) -> None:
    """Wrap every feature or scenario that is to run more than once."""
    for feature in features:
        feature_runs = planned_runs(feature.tags, [], default_runs)
        if session_tag in [str(t) for t in feature.tags]:
            if feature_runs > 1:
                repeat_feature(feature, feature_runs, min_pass_rate)
            continue
        for scenario in feature.walk_scenarios():
            runs = planned_runs(feature.tags, scenario.tags, default_runs)
            if runs > 1:
                repeat_scenario(scenario, runs, min_pass_rate)


def model_gate(features: Iterable[Any], min_pass_rate: float) -> list[str]:
    """Models whose pass rate over all their runs is below ``min_pass_rate``, as messages."""
    totals: dict[str, list[int]] = {}
    for feature in features:
        for scenario in feature.walk_scenarios():
            record = getattr(scenario, "aitest", None)
            if record is None or not record.model:
                continue
            stats = getattr(scenario, "aitest_repeat", None)
            runs, passed = (stats.runs, stats.passed) if stats else (1, int(_passed(scenario)))
            total = totals.setdefault(record.model, [0, 0])
            total[0] += runs
            total[1] += passed
    return [
        f"model {model!r} passed {passed}/{runs} runs ({passed / runs:.0%}), below min_pass_rate {min_pass_rate:g}"
        for model, (runs, passed) in sorted(totals.items())
        if runs and passed / runs < min_pass_rate - 1e-9
    ]
