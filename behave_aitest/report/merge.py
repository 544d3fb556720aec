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


def shard_problem(docs: list[Doc], names: list[str]) -> str | None:
    """Why these reports are not the shards of one plan, each given once (issue 25, H10), or
    None. Only reports that say they are a shard (their run's ``shard``: plan digest, K/N,
    the plan's units and their own) are checked: a gap (a shard or unit that ran nowhere) or a
    double (a shard, or a unit, given twice) is refused, naming them."""
    shards = [(name, run["shard"]) for name, doc in zip(names, docs) for run in doc.get("runs", []) if isinstance(run, dict) and isinstance(run.get("shard"), dict)]
    if not shards:
        return None
    if len(shards) != len(docs):
        plain = [name for name, doc in zip(names, docs) if not any(isinstance(r, dict) and isinstance(r.get("shard"), dict) for r in doc.get("runs", []))]
        return f"{', '.join(plain)}: not the report of a shard (-D aitest.shard=K/N), merged with shards: merge the shards of one run only"
    plans = {(s.get("plan"), s.get("n")) for _, s in shards}
    if len(plans) > 1:
        return "the shards are of different runs (their plans differ): " + ", ".join(f"{name} (shard {s.get('k')}/{s.get('n')}, plan {s.get('plan')})" for name, s in shards)
    n = shards[0][1].get("n")
    given: dict[Any, list[str]] = {}
    for name, s in shards:
        given.setdefault(s.get("k"), []).append(name)
    twice = {k: files for k, files in given.items() if len(files) > 1}
    if twice:
        return "; ".join(f"shard {k}/{n} given more than once ({', '.join(files)})" for k, files in sorted(twice.items(), key=str))
    ran: dict[str, str] = {}
    doubles = []
    for name, s in shards:
        for unit in s.get("units") or []:
            if unit in ran:
                doubles.append(f"{unit} ({ran[unit]} and {name})")
            ran.setdefault(unit, name)
    if doubles:
        return f"{len(doubles)} conversation{'s' * (len(doubles) != 1)} in two shards: {'; '.join(doubles[:10])}"
    missing_shards = [k for k in range(1, int(n or 0) + 1) if k not in given]
    missing = [u for u in shards[0][1].get("plan_units") or [] if u not in ran]
    if missing_shards or missing:
        which = f"shard{'s' * (len(missing_shards) != 1)} {', '.join(f'{k}/{n}' for k in missing_shards)} not given; " if missing_shards else ""
        return f"{which}{len(missing)} planned conversation{'s' * (len(missing) != 1)} ran in no shard given: {'; '.join(missing[:10])}" + (" ..." if len(missing) > 10 else "")
    return None


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
