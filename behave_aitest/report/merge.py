"""``report merge``: shards' and workers' documents joined into one run (scenarios matched by
location, totals summed again).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import Any

from ..record import coverage
from .schema import OUTCOMES, SCHEMA, SCHEMA_VERSION, Doc, ReportError
from .stats import _round, add_stats, empty_stats, summarize


def _scenario_key(scenario: Mapping[str, Any]) -> tuple[str, str]:
    return str(scenario.get("location")), str(scenario.get("name"))


def _disjoint(copies: list[dict[str, Any]]) -> bool:
    """Copies of one feature whose scenarios do not overlap: parts of one run, not repeated runs."""
    keys = [_scenario_key(s) for copy in copies for s in copy["scenarios"]]
    return len(keys) == len(set(keys)) and not any(c.get("session") for c in copies)


def _line(location: str) -> int:
    tail = location.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _joined(copies: list[dict[str, Any]]) -> dict[str, Any]:
    """One feature from the shards that each ran some of its scenarios, in file order."""
    scenarios = sorted((s for c in copies for s in c["scenarios"]), key=lambda s: _line(str(s.get("location"))))
    counts = dict.fromkeys(OUTCOMES, 0)
    stats = empty_stats()
    warnings: list[str] = []
    for scenario in scenarios:
        counts[scenario["status"]] += 1
        add_stats(stats, scenario["stats"])
    for copy in copies:
        warnings.extend(w for w in copy.get("warnings", []) if w not in warnings)
    worst = next((o for o in ("error", "failed", "throttled", "passed", "untested", "skipped") if counts.get(o)), "skipped")
    return {
        **copies[0],
        "scenarios": scenarios,
        "counts": counts,
        "stats": _round(stats),
        "warnings": warnings,
        "status": "error" if any(c.get("hook_error") for c in copies) else worst,
        "duration_s": round(sum(float(c.get("duration_s") or 0.0) for c in copies), 4),
    }


def merge(docs: list[Doc], title: str | None = None) -> Doc:
    """One document from the shards of a parallel or multi-job run.

    A ``@session`` feature is one conversation and never split; the parts of a feature whose
    scenarios ran on different shards (``-D aitest.shard=K/N``) are joined again in file order;
    a feature present in several shards keeps the copies that ran something, and is
    flagged when more than one did.
    """
    if not docs:
        raise ReportError("nothing to merge: give at least one report JSON file.")
    runs: list[dict[str, Any]] = []
    features: list[dict[str, Any]] = []
    for n, doc in enumerate(docs, 1):
        rename = {}
        for run in doc.get("runs", []):
            new_id = f"r{len(runs) + 1}"
            rename[run.get("id")] = new_id
            runs.append({**run, "id": new_id})
        for feature in doc.get("features", []):
            features.append({**feature, "run": rename.get(feature.get("run"), f"r{n}")})
    kept: list[dict[str, Any]] = []
    seen: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for feature in features:
        seen.setdefault((feature["location"], feature["name"]), []).append(feature)
    for feature in features:
        copies = seen[(feature["location"], feature["name"])]
        ran = [c for c in copies if any(s["status"] not in ("skipped", "untested") for s in c["scenarios"])]
        if len(copies) > 1 and ran and feature not in ran:
            continue  # a shard that only listed this feature as skipped
        if len(ran) > 1 and _disjoint(ran):
            if feature is ran[0]:  # the shards of `-D aitest.shard=K/N` split a feature's scenarios
                kept.append(_joined(ran))
            continue
        if len(ran) > 1 and feature is ran[0]:
            feature["warnings"] = [*feature.get("warnings", []), f"This feature ran in {len(ran)} shards; each run is shown."]
        kept.append(feature)
    merged: Doc = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "title": title or docs[0].get("title") or "behave-aitest report",
        "generated_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "runs": runs,
        "features": kept,
    }
    merged_coverage = coverage.merge(doc.get("coverage") for doc in docs)
    if merged_coverage is not None:  # shards' tool coverage added up (behave_aitest.coverage)
        merged["coverage"] = merged_coverage
    return summarize(merged)
