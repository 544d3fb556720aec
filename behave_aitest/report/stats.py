"""What the numbers say: per-turn, per-scenario and per-model totals (tokens, cost, time, tool
calls), the run's summary and the model matrix (the leaderboard) drawn from a document.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .schema import OUTCOMES, TOP_LEVEL, Doc, _epoch


def empty_stats() -> dict[str, Any]:
    return {
        "turns": 0,
        "model_calls": 0,
        "input_tokens": 0,
        "output_tokens": 0,
        "cost_usd": 0.0,  # sum of the KNOWN costs: a lower bound when unknown_cost_calls > 0
        "unknown_cost_calls": 0,
        "replayed_calls": 0,
        "recorded_cost_usd": 0.0,  # what the replayed calls cost when they were recorded (not spent now)
        "retries": 0,
        "latency_s": 0.0,
        "tool_calls": 0,
        "tool_errors": 0,
        "turn_time_s": 0.0,  # wall time inside turns (model and tool calls)
        "judge_calls": 0,
        "judge_cost_usd": 0.0,
        "judge_unknown_cost_calls": 0,
        # the simulated user's model calls (docs/simulated-user.md), counted apart like the judge's
        "simulator_calls": 0,
        "simulator_cost_usd": 0.0,
        "simulator_unknown_cost_calls": 0,
    }


def add_stats(total: dict[str, Any], part: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in part.items():
        if key in total and isinstance(value, (int, float)):
            total[key] += value
    return total


def _add_spend(stats: dict[str, Any], call: Mapping[str, Any]) -> None:
    """Add one model call's tokens and cost (an unknown price counted apart, never as $0; a
    replayed call's recorded cost apart) to ``stats``."""
    stats["input_tokens"] += call.get("input_tokens") or 0
    stats["output_tokens"] += call.get("output_tokens") or 0
    if call.get("cost_usd") is None:
        stats["unknown_cost_calls"] += 1
    else:
        stats["cost_usd"] += call["cost_usd"]
    stats["recorded_cost_usd"] += (call.get("recorded_cost_usd") or 0.0) if call.get("replayed") else 0.0


def turn_stats(turn: Mapping[str, Any]) -> dict[str, Any]:
    stats = empty_stats()
    stats["turns"] = 1
    for call in turn.get("model_calls", []):
        stats["model_calls"] += 1
        _add_spend(stats, call)
        stats["replayed_calls"] += bool(call.get("replayed"))
        stats["retries"] += max((call.get("attempts") or 1) - 1, 0)
        stats["latency_s"] += call.get("latency_s") or 0.0
    owners = [*turn.get("tool_calls", []), *(turn.get("server_events") or [])]  # a server's timeline too
    for sampled in (s for c in owners for s in c.get("sampling_calls") or []):
        _add_spend(stats, sampled)  # a server's sampling request answered by the client's model: the agent's spend (docs/mcp.md)
    stats["tool_calls"] = len(turn.get("tool_calls", []))
    stats["tool_errors"] = sum(1 for c in turn.get("tool_calls", []) if c.get("is_error"))
    stats["turn_time_s"] = turn.get("duration_s") or 0.0
    for judge in turn.get("judge_calls", []):
        stats["judge_calls"] += 1
        if judge.get("cost_usd") is None or judge.get("cost_known") is False:
            stats["judge_unknown_cost_calls"] += 1
        stats["judge_cost_usd"] += judge.get("cost_usd") or 0.0
        stats["recorded_cost_usd"] += (judge.get("recorded_cost_usd") or 0.0) if judge.get("replayed") else 0.0
    return stats


def direct_call_stats(calls: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The spend of the test's own tool calls ("When the tool ... is called"): the sampling
    requests a server made during them were answered by the scenario's model (issue 25, H1)."""
    stats = empty_stats()
    for sampled in (s for c in calls for s in c.get("sampling_calls") or []):
        _add_spend(stats, sampled)
    return stats


def _round(stats: dict[str, Any]) -> dict[str, Any]:
    for key in ("cost_usd", "judge_cost_usd", "recorded_cost_usd", "simulator_cost_usd"):
        stats[key] = round(stats[key], 8)
    for key in ("latency_s", "turn_time_s", "duration_s"):
        if key in stats:
            stats[key] = round(stats[key], 3)
    return stats


# --------------------------------------------------------------------------- from behave



def rate_limit_totals(scenarios: Any) -> dict[str, dict[str, Any]]:
    """Per model: the provider's 429s, the concurrency limit the run settled on (the latest
    one any scenario saw) and the seconds spent waiting for the limits (docs/rate-limits.md)."""
    out: dict[str, dict[str, Any]] = {}
    latest: dict[str, float] = {}
    for scenario in scenarios:
        for model, use in (scenario.get("rate_limits") or {}).items():
            row = out.setdefault(model, {"throttled": 0, "limit": None, "wait_s": 0.0})
            row["throttled"] += int(use.get("throttled") or 0)
            row["wait_s"] = round(row["wait_s"] + float(use.get("wait_s") or 0.0), 3)
            at = float(use.get("at") or 0.0)
            if use.get("limit") is not None and at >= latest.get(model, -1.0):
                row["limit"], latest[model] = int(use["limit"]), at
    return dict(sorted(out.items()))


def summarize(doc: Doc) -> Doc:
    """(Re)compute the derived parts: ``totals``, the ``models`` leaderboard, ``partial``."""
    totals: dict[str, Any] = {"features": len(doc["features"]), "scenarios": 0, **dict.fromkeys(OUTCOMES, 0), **empty_stats()}
    per_model: dict[str, dict[str, Any]] = {}
    ran_by: dict[str, set[tuple[str, ...]]] = {}  # the matrix rows each model ran
    for feature in doc["features"]:
        add_stats(totals, feature["stats"])
        for scenario in feature["scenarios"]:
            totals["scenarios"] += 1
            totals[scenario["status"]] += 1
            model = scenario.get("model")
            if not model:
                continue
            ran_by.setdefault(model, set()).add((base_title(feature), *_matrix_row(scenario, str(model))[0]))
            row = per_model.setdefault(
                model, {"model": model, "scenarios": 0, **dict.fromkeys(OUTCOMES, 0), **empty_stats(), "duration_s": 0.0}
            )
            row["scenarios"] += 1
            row[scenario["status"]] += 1
            add_stats(row, scenario["stats"])
            row["duration_s"] += scenario["duration_s"]
    runs = doc.get("runs", [])
    starts = [e for e in (_epoch(r.get("started_at")) for r in runs) if e is not None]
    ends = [e for e in (_epoch(r.get("finished_at")) for r in runs) if e is not None]
    if len(runs) == 1:
        totals["wall_time_s"] = runs[0].get("wall_time_s", 0.0)
    else:  # shards may run in parallel: first start to last end
        totals["wall_time_s"] = round(max(ends) - min(starts), 3) if starts and ends else 0.0
    totals["models"] = sorted(per_model)
    totals["rate_limits"] = rate_limit_totals(s for f in doc["features"] for s in f["scenarios"])
    _round(totals)
    doc["totals"] = totals
    gate = [message for run in runs for message in run.get("models_below_gate", [])]
    rows = []
    for row in per_model.values():
        ran = row["passed"] + row["failed"] + row["error"]
        row["pass_rate"] = round(row["passed"] / ran, 4) if ran else None
        # the messages of behave_aitest.repeats.model_gate start with "model '<name>' "
        row["below_gate"] = any(message.startswith(f"model {row['model']!r} ") for message in gate)
        rows.append(_round(row))
    compared = compared_models(ran_by)
    for row in rows:
        row["apart"] = None if row["model"] in compared else apart_reason(row["model"], compared, ran_by)
    rows.sort(key=lambda r: (r["apart"] is not None, -(r["pass_rate"] or 0.0), r["unknown_cost_calls"] > 0, r["cost_usd"], r["duration_s"], r["model"]))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank if row["apart"] is None else None
    doc["models"] = rows
    reasons = [reason for run in runs for reason in run.get("partial_reasons", [])]
    doc["partial_reasons"] = list(dict.fromkeys(reasons))
    doc["partial"] = bool(doc["partial_reasons"])
    ordered = {k: doc[k] for k in TOP_LEVEL if k in doc} | {k: v for k, v in doc.items() if k not in TOP_LEVEL}
    doc.clear()
    doc.update(ordered)  # the summary first: what a person opening the file wants to see
    return doc


def compared_models(ran_by: Mapping[str, set[tuple[str, ...]]]) -> list[str]:
    """The models the leaderboard ranks: those that ran the very same scenarios.

    Pass rates over different scenarios do not compare (plain ``scripted`` passing 12 small
    talks is not better than ``scripted/careful`` on 2 transfers). Models are grouped by the
    set of scenarios (matrix rows) they ran; the largest group is ranked (ties: the one that
    ran more scenarios, then the group of the model seen first). A run of one model ranks it.
    """
    groups: dict[frozenset[tuple[str, ...]], list[str]] = {}
    for model, ran in ran_by.items():
        groups.setdefault(frozenset(ran), []).append(model)
    if not groups:
        return []
    best = max(groups.items(), key=lambda item: (len(item[1]), len(item[0])))  # ties: the first model's group
    return sorted(best[1])


def apart_reason(model: str, compared: Sequence[str], ran_by: Mapping[str, set[tuple[str, ...]]]) -> str:
    """Why ``model`` is shown apart from the ranked models (what it ran that they did not)."""
    mine = ran_by.get(model, set())
    theirs = ran_by.get(compared[0], set()) if compared else set()
    other, missing = len(mine - theirs), len(theirs - mine)
    parts = []
    if other:
        parts.append(f"{other} other scenario{'s' * (other != 1)}")
    if missing:
        parts.append(f"not {missing} of theirs")
    return f"not ranked: it ran other scenarios than {', '.join(compared)} ({'; '.join(parts)}), so their pass rates do not compare"


def base_title(feature: Mapping[str, Any]) -> str:
    return str(feature.get("title") or feature.get("name") or "")


def _matrix_row(scenario: Mapping[str, Any], model: str) -> tuple[tuple[str, ...], str]:
    """The matrix row of a scenario: its key and its label.

    An Outline's row is keyed by the Outline and the row's values other than its model, and
    labelled by the Outline's name with those values filled in (``Say <word> with <model>``
    -> ``Say kiwi with <model>``): rows that differ only by their model meet, whatever their
    rendered names. Any other scenario (and a report written before ``outline`` existed) is
    keyed by its name, an Outline row's " -- @1.2 ..." suffix dropped.
    """
    outline = scenario.get("outline")
    if isinstance(outline, dict) and isinstance(outline.get("row"), dict):
        row = {str(k): str(v) for k, v in outline["row"].items()}
        kept = {k: v for k, v in row.items() if v != model}
        label = str(outline.get("name") or "")
        for heading, value in kept.items():
            label = label.replace(f"<{heading}>", value)
        return ("outline", str(outline.get("location")), *(f"{k}={v}" for k, v in kept.items())), label
    name = re.sub(r" -- @\d+\.\d+.*$", "", str(scenario["name"]))
    return ("scenario", name), name


def matrix(doc: Doc) -> dict[str, Any]:
    """Scenario × model, for runs with more than one model: one row per scenario of a flow.

    Rows are keyed by feature title and scenario (:func:`_matrix_row`), so the same scenario
    run by several models, in a flow per model or as Outline rows, meets in one row; a cell
    holds every scenario of that row and model, usually one.
    """
    models = [row["model"] for row in doc.get("models", [])]
    rows: dict[tuple[str, ...], dict[str, Any]] = {}
    for f_index, feature in enumerate(doc["features"]):
        for s_index, scenario in enumerate(feature["scenarios"]):
            model = scenario.get("model")
            if not model:
                continue
            scenario_key, label = _matrix_row(scenario, str(model))
            key = (base_title(feature), *scenario_key)
            row = rows.setdefault(key, {"feature": key[0], "scenario": label, "cells": {}})
            row["cells"].setdefault(model, []).append({"ref": f"{f_index}.{s_index}", "status": scenario["status"], "first_failure": scenario["first_failure"]})
    return {"models": models, "rows": list(rows.values())}


# --------------------------------------------------------------------------- files and merging
