"""The report as a JSON file: written, read back, and its shape checked field by field before any
command trusts it (a truncated or hand-edited file is named, with the field).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..text import safetext
from .schema import OUTCOMES, SCHEMA, SCHEMA_VERSION, Doc, ReportError
from .stats import empty_stats


def dumps(doc: Doc) -> str:
    """The document as compact JSON: with ``indent`` the standard library falls back to its
    pure-Python encoder, 4-5 times slower on a 1,000-scenario report (``python -m bench``,
    item 5). ``python -m json.tool`` pretty-prints it for reading."""
    return safetext.dumps(doc) + "\n"  # valid JSON: no NaN (unknown numbers are null)


def load(path: str | Path) -> Doc:
    """Read a report JSON file, checking that it is one and that this version can read it."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ReportError(f"{path}: cannot read it ({exc.strerror or exc}).") from None
    except ValueError as exc:
        raise ReportError(f"{path}: not JSON ({exc}).") from None
    except RecursionError:
        raise ReportError(f"{path}: not a report: JSON nested deeper than Python can read.") from None
    depth = _depth(data, MAX_DEPTH)
    if depth > MAX_DEPTH:
        raise ReportError(f"{path}: not a report: JSON nested more than {MAX_DEPTH} levels deep (a report is about 10).")
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ReportError(f"{path}: not a behave-aitest report (no \"schema\": \"{SCHEMA}\"). Write one with -f behave_aitest.formatter:JSONFormatter.")
    version = data.get("schema_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        raise ReportError(f"{path}: report schema version {version!r} is newer than this behave-aitest reads ({SCHEMA_VERSION}): upgrade behave-aitest.")
    problem = shape_problem(data)
    if problem:
        raise ReportError(f"{path}: {problem}.")
    safe: Doc = safetext.json_safe(data)  # json.loads accepts NaN and "\ud800": neither may be written again
    return safe


# A report is about 10 levels deep; tool arguments and structured content add a few. Deeper
# data would break the summary, the merge and the renderers with a RecursionError (issue 25, H11).
MAX_DEPTH = 200


def _depth(data: Any, limit: int) -> int:
    """How deep ``data`` is nested (lists and objects), counted without recursion; stops past ``limit``."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, (dict, list)):
            deepest = max(deepest, level)
            if deepest > limit:
                return deepest
            stack.extend((v, level + 1) for v in (value.values() if isinstance(value, dict) else value))
    return deepest


def _shown(value: Any) -> str:
    return safetext.clip(repr(value), 60)


def _field_problem(value: Any, where: str, kind: type, what: str) -> str | None:
    if not isinstance(value, kind) or isinstance(value, bool):
        return f"{where} must be {what} (got {_shown(value)})"
    return None


def shape_problem(doc: Mapping[str, Any]) -> str | None:
    """What makes ``doc`` unusable as a report, naming the field ("features[0].scenarios[2].status:
    unknown status 'weird'"), or None. Checks what summarising, merging and rendering rely on;
    optional parts may be missing. A hand-edited or truncated file gives this one line, never a
    traceback from deep inside the renderer."""
    version = doc.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        return f"'schema_version' {_shown(version)} is not a version (a whole number from 1 to {SCHEMA_VERSION})"
    problem = _field_problem(doc.get("features"), "'features'", list, "a list")
    if problem or "runs" in doc and (problem := _field_problem(doc["runs"], "'runs'", list, "a list")):
        return problem
    for r, run in enumerate(doc.get("runs", [])):
        if problem := _field_problem(run, f"runs[{r}]", dict, "an object"):
            return problem
    for f, feature in enumerate(doc["features"]):
        where = f"features[{f}]"
        if problem := _field_problem(feature, where, dict, "an object"):
            return problem
        for key in ("scenarios", "stats", "location", "name"):
            if key not in feature:
                return f"{where}: {key!r} is missing"
        if problem := _stats_problem(feature["stats"], f"{where}.stats") or _field_problem(feature["scenarios"], f"{where}.scenarios", list, "a list"):
            return problem
        for s, scenario in enumerate(feature["scenarios"]):
            if problem := _scenario_problem(scenario, f"{where}.scenarios[{s}]"):
                return problem
    return None


def _stats_problem(stats: Any, where: str) -> str | None:
    if not isinstance(stats, dict):
        return f"{where}: must be an object"
    for key, value in stats.items():
        if key in empty_stats() and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            return f"{where}.{key}: must be a number (got {_shown(value)})"
    return None


def _scenario_problem(scenario: Any, where: str) -> str | None:
    if not isinstance(scenario, dict):
        return f"{where}: must be an object"
    for key in ("name", "status", "stats"):
        if key not in scenario:
            return f"{where}: {key!r} is missing"
    if scenario["status"] not in OUTCOMES:
        return f"{where}.status: unknown status {_shown(scenario['status'])} (one of {', '.join(OUTCOMES)})"
    if problem := _stats_problem(scenario["stats"], f"{where}.stats"):
        return problem
    failure = scenario.get("first_failure")
    if failure is not None and not isinstance(failure, dict):
        return f"{where}.first_failure: must be an object or null (got {_shown(failure)})"
    for key in ("steps", "turns"):
        items = scenario.get(key, [])
        if not isinstance(items, list):
            return f"{where}.{key}: must be a list"
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                return f"{where}.{key}[{i}]: must be an object"
            if key == "steps" and (item.get("status") not in OUTCOMES or not isinstance(item.get("name"), str)):
                return f"{where}.steps[{i}]: needs a 'name' and a 'status' (one of {', '.join(OUTCOMES)})"
    return None
