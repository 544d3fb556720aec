"""Units of work for a parallel run: what may run at the same time, in which order, on which shard.

A *unit* is one conversation run once: a scenario of a plain feature, or a whole ``@session``
feature (its scenarios are one conversation and never split). Each model flow (a feature
copied once per model) and each run of a repeated scenario or session is a unit of its own.

The plan is a pure function of the parsed features and the configuration, so every shard of
a CI matrix computes the same plan and takes its own, disjoint part of it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..run.repeats import planned_runs

SESSION_TAG = "session"
_USER_TURN = re.compile(r"the user says\b|a simulated user talks\b", re.IGNORECASE)


class PlanError(Exception):
    """A feature file or option the plan cannot be made from (one line, for the user)."""


@dataclass(frozen=True)
class Unit:
    """One conversation, run once: what a worker is given."""

    index: int  # position in the plan (the order a sequential run would use)
    feature: int  # index into the run's (model-expanded) feature list
    scenarios: tuple[int, ...]  # indices into ``feature.walk_scenarios()`` that run
    run: int  # 1-based run number of a repeated scenario or session
    runs: int  # how many runs its scenario (or session) has
    session: bool
    label: str  # for the console: "Feature title [model] › Scenario name"
    location: str  # feature.feature:LINE of the scenario (or of the feature, for a session)
    turns: int  # user turns in the unit: the weight when no earlier durations are known
    keys: tuple[str, ...]  # duration keys of its scenarios (see :func:`duration_key`)


def duration_key(feature_name: str, location: str) -> str:
    """How a scenario is found in an earlier run's JSON report: feature (flow) name and location."""
    return f"{feature_name}\x00{location}"


def _turns(scenarios: Iterable[Any]) -> int:
    return sum(1 for s in scenarios for step in s.all_steps if _USER_TURN.search(step.name))


def plan(features: Sequence[Any], behave_config: Any, default_runs: int) -> list[Unit]:
    """Every unit of the run in sequential order; only what behave's selection would run.

    behave's own selection is kept: tag expressions, ``--name``, and ``file.feature:LINE``
    (behave marks the scenarios it did not select as skipped).
    """
    units: list[Unit] = []
    for fi, feature in enumerate(features):
        if not feature.should_run(behave_config):
            continue
        scenarios = list(feature.walk_scenarios())
        selected = [i for i, s in enumerate(scenarios) if s.should_run(behave_config)]
        if not selected:
            continue
        tags = [str(t) for t in feature.tags]
        try:
            feature_runs = planned_runs(tags, [], default_runs)
        except ValueError as exc:
            raise PlanError(f"{feature.location}: {exc}") from None
        if SESSION_TAG in tags:
            chosen = [scenarios[i] for i in selected]
            for run in range(1, feature_runs + 1):
                units.append(
                    Unit(
                        len(units), fi, tuple(selected), run, feature_runs, True, f"{feature.name} (session)",
                        str(feature.location), _turns(chosen), tuple(duration_key(feature.name, str(s.location)) for s in chosen),
                    )
                )
            continue
        for i in selected:
            scenario = scenarios[i]
            try:
                runs = planned_runs(tags, [str(t) for t in scenario.tags], default_runs)
            except ValueError as exc:
                raise PlanError(f"{scenario.location}: {exc}") from None
            for run in range(1, runs + 1):
                units.append(
                    Unit(
                        len(units), fi, (i,), run, runs, False, f"{feature.name} › {scenario.name}",
                        str(scenario.location), _turns([scenario]), (duration_key(feature.name, str(scenario.location)),),
                    )
                )
    return units


def load_durations(path: Path) -> dict[str, float]:
    """Scenario durations from an earlier run's JSON report (empty when it cannot be read).

    A repeated scenario's duration is per run. A missing or foreign file is not an error:
    scheduling then falls back to counting user turns.
    """
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    found: dict[str, float] = {}
    for feature in doc.get("features", []) if isinstance(doc, Mapping) else []:
        if not isinstance(feature, Mapping):
            continue
        for scenario in feature.get("scenarios", []) or []:
            if not isinstance(scenario, Mapping):
                continue
            seconds = scenario.get("duration_s")
            if isinstance(seconds, (int, float)) and seconds >= 0:
                runs = (scenario.get("repeat") or {}).get("runs") if isinstance(scenario.get("repeat"), Mapping) else None
                found[duration_key(str(feature.get("name")), str(scenario.get("location")))] = float(seconds) / max(int(runs or 1), 1)
    return found


def weight(unit: Unit, durations: Mapping[str, float]) -> float:
    """Expected cost of a unit: seconds from an earlier run when known for all its scenarios, else user turns."""
    if durations and all(k in durations for k in unit.keys):
        return sum(durations[k] for k in unit.keys)
    if durations:  # a new scenario: assume it is as long as the earlier run's average scenario
        known = [durations[k] for k in unit.keys if k in durations]
        average = sum(durations.values()) / max(len(durations), 1)
        return sum(known) + average * (len(unit.keys) - len(known))
    return float(unit.turns)


def longest_first(units: Sequence[Unit], durations: Mapping[str, float]) -> list[Unit]:
    """Dispatch order: longest expected units first (ties in plan order), so no long unit starts last."""
    return sorted(units, key=lambda u: (-weight(u, durations), u.index))


def unit_id(unit: Unit) -> str:
    """A unit's name in a shard's report: its label, location and run number."""
    return f"{unit.label} ({unit.location})" + (f" run {unit.run}/{unit.runs}" if unit.runs > 1 else "")


def shard_record(whole: Sequence[Unit], mine: Sequence[Unit], k: int, n: int) -> dict[str, Any]:
    """What a shard's report says of its plan: which plan (a digest of every unit of the
    whole run), which part, the units of the whole plan and its own (``report merge`` checks
    that the shards given cover the plan once)."""
    import hashlib

    every = [unit_id(u) for u in whole]
    return {
        "plan": hashlib.sha256("\n".join(every).encode("utf-8", "surrogatepass")).hexdigest()[:16],
        "k": k,
        "n": n,
        "plan_units": every,
        "units": [unit_id(u) for u in mine],
    }


def shard(units: Sequence[Unit], k: int, n: int, durations: Mapping[str, float] | None = None) -> list[Unit]:
    """The K-th (1-based) of N balanced, disjoint parts of the plan; together they hold every unit once.

    The runs of a repeated scenario (or session) stay together, so its pass rate is computed
    in one place. Greedy longest-processing-time: groups by weight, each to the lightest part
    so far (ties to the lower part), so every shard computes the same partition from the
    same plan.
    """
    groups: dict[tuple[int, tuple[int, ...]], list[Unit]] = {}
    for unit in units:
        groups.setdefault((unit.feature, unit.scenarios), []).append(unit)
    sizes = {key: sum(max(weight(u, durations or {}), 1e-3) for u in group) for key, group in groups.items()}
    loads = [0.0] * n
    mine: list[Unit] = []
    for key in sorted(groups, key=lambda key: (-sizes[key], groups[key][0].index)):
        part = min(range(n), key=lambda p: (loads[p], p))
        loads[part] += sizes[key]
        if part == k - 1:
            mine.extend(groups[key])
    return sorted(mine, key=lambda u: u.index)
