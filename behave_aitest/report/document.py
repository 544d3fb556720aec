"""The report document: what a run did, as plain JSON-ready dicts with a versioned schema.

Every report format is drawn from this one document (docs/report.md describes it field by
field), so the HTML, the Markdown summary and the JSON file always agree, and a saved
JSON file can be merged with others or rendered again later without behave:

    behave features + records (scenario.aitest, step.aitest_turn, ...) --build_document-->
    document --render.html()/render.markdown()/json.dumps--> files

Building reads only what the steps and the engine already recorded; it never calls a
model or a server. The document keeps every text in full (a 5 MB tool result stays 5 MB
in the JSON file); the HTML and Markdown renderings cut long texts with a note
(:func:`clip_texts`). Every string is passed through :class:`~behave_aitest.redact.Redactor`
before anything is written.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

from ..record import coverage
from ..text import safetext
from ..text.redact import Redactor

SCHEMA = "behave-aitest-report"
SCHEMA_VERSION = 1
DEFAULT_MAX_TEXT = 20_000

Doc = dict[str, Any]

OUTCOMES = ("passed", "failed", "error", "skipped", "untested")
TOP_LEVEL = ("schema", "schema_version", "title", "generated_at", "partial", "partial_reasons", "totals", "models", "runs", "features")
_FAILED = ("failed", "error")


class ReportError(Exception):
    """A report file that cannot be read or merged, worded for the person running the CLI."""


# --------------------------------------------------------------------------- small helpers


def outcome(status: Any) -> str:
    """behave's status as one of :data:`OUTCOMES` (hook_error, undefined, pending... are errors)."""
    name = getattr(status, "name", None) or str(status or "untested")
    if name in ("passed", "failed", "skipped", "untested"):
        return name
    return "error"


def iso(epoch: float | None) -> str | None:
    if not epoch:
        return None
    return _dt.datetime.fromtimestamp(epoch, _dt.timezone.utc).isoformat(timespec="seconds")


def _epoch(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return _dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


# Keys whose values hold model, tool or user text (or errors quoting it), which can be huge.
CLIPPED_KEYS = frozenset({"turns", "error", "message", "text", "hook_error", "hook_errors", "warnings", "direct_calls"})


def clip_texts(doc: Any, limit: int) -> Any:
    """A copy of ``doc`` with every text under :data:`CLIPPED_KEYS` longer than ``limit``
    characters cut, with a note saying how much was cut; ``limit`` 0 keeps everything.

    For what people read (HTML, Markdown): a tool result can be megabytes, which a browser
    should not have to hold. Names, locations and versions are never cut. The JSON report
    keeps the full text.
    """
    if limit <= 0:
        return doc

    def walk(value: Any, inside: bool) -> Any:
        if isinstance(value, str):
            if not inside or len(value) <= limit:
                return value
            return value[:limit] + f"\n… [{len(value) - limit} more characters not shown; the JSON report has the full text]"
        if isinstance(value, dict):
            return {key: walk(item, inside or key in CLIPPED_KEYS) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item, inside) for item in value]
        return value

    return walk(doc, False)


def _plain(value: Any) -> Any:
    """JSON-ready copy of record data (dataclasses, tuples, odd objects as strings)."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def versions() -> dict[str, str | None]:
    """Versions of the packages that shaped the run (read from metadata: litellm is not imported)."""
    from importlib import metadata

    found: dict[str, str | None] = {}
    for name in ("behave-aitest", "behave", "litellm", "mcp"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    found["python"] = platform.python_version()
    return found


# --------------------------------------------------------------------------- stats


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
    for sampled in (s for c in turn.get("tool_calls", []) for s in c.get("sampling_calls") or []):
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


def _round(stats: dict[str, Any]) -> dict[str, Any]:
    for key in ("cost_usd", "judge_cost_usd", "recorded_cost_usd", "simulator_cost_usd"):
        stats[key] = round(stats[key], 8)
    for key in ("latency_s", "turn_time_s", "duration_s"):
        if key in stats:
            stats[key] = round(stats[key], 3)
    return stats


# --------------------------------------------------------------------------- from behave


def _table(table: Any) -> dict[str, Any] | None:
    if table is None:
        return None
    return {"headings": [str(h) for h in table.headings], "rows": [[str(c) for c in row.cells] for row in table.rows]}


def _timeline(turn: Any) -> list[dict[str, Any]]:
    """The turn in chat order: user, assistant text, the tool calls it asked for, ...

    Built from the messages the turn added; tool results are not repeated here, they live
    on the tool call the item points to.
    """
    items: list[dict[str, Any]] = []
    calls = list(getattr(turn, "tool_calls", []))
    used: set[int] = set()
    assistant = 0

    def take(call_id: Any) -> int | None:
        for i, call in enumerate(calls):
            if i not in used and call.id == call_id:
                used.add(i)
                return i
        for i in range(len(calls)):  # ids renamed on the way: fall back to order
            if i not in used:
                used.add(i)
                return i
        return None

    for message in getattr(turn, "messages", []):
        role = message.get("role")
        if role == "user":
            items.append({"kind": "user", "text": _content(message.get("content"))})
        elif role == "assistant":
            text = _content(message.get("content"))
            if text:
                items.append({"kind": "assistant", "text": text, "model_call": assistant})
            for requested in message.get("tool_calls") or []:
                index = take(requested.get("id"))
                if index is not None:
                    items.append({"kind": "tool", "tool_call": index, "model_call": assistant})
            assistant += 1
    items.extend({"kind": "tool", "tool_call": i, "model_call": None} for i in range(len(calls)) if i not in used)
    return items


def _content(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "\n".join(str(p.get("text", "")) if isinstance(p, dict) else str(p) for p in content)
    return str(content)


def tool_call_dict(call: Any) -> dict[str, Any]:
    return {
        "id": call.id,
        "name": call.name or call.provider_name,
        "server": call.server,
        "arguments": _plain(call.arguments),
        "raw_arguments": call.raw_arguments if call.arguments is None else None,
        "result": call.result,
        "is_error": bool(call.is_error),
        "duration_s": round(call.duration_s or 0.0, 4),
        # tool doubles (docs/tool-doubles.md): "returns" / "fails" / "delay", or null; true when
        # the test called the tool itself ("When the tool ... is called"), not the model
        "doubled": getattr(call, "doubled", None),
        "by_test": bool(getattr(call, "by_test", False)),
        **mcp_extras(call),
    }


def turn_dict(turn: Any) -> dict[str, Any]:
    tool_calls = [tool_call_dict(call) for call in turn.tool_calls]
    timeline = _timeline(turn)
    data = {
        "index": turn.index,
        "user_text": turn.user_text,
        "model": turn.model,
        "history_before": turn.history_before,
        "messages_added": len(turn.messages),
        "started_at": iso(getattr(turn, "started_at", 0.0)),
        "duration_s": round(turn.duration_s or 0.0, 4),
        "error": _bounded(turn.error),
        "response": turn.response,
        "timeline": timeline,
        "tool_calls": tool_calls,
        "model_calls": [{**_plain(c), "latency_s": round(c.latency_s or 0.0, 4)} for c in turn.model_calls],
        "judge_calls": [_plain(j) for j in getattr(turn, "judge_calls", [])],
        "simulated": bool(getattr(turn, "simulated", False)),
    }
    if getattr(turn, "tool_list_changes", None):  # MCP client features (docs/mcp.md)
        data["tool_list_changes"] = list(turn.tool_list_changes)
    data["stats"] = _round(turn_stats(data))
    return data


# What a tool call's MCP client features recorded (docs/mcp.md); only the keys that are set.
MCP_CALL_KEYS = ("elicitations", "sampling_calls", "progress", "logs", "title", "annotations", "structured_content", "content_items")


def mcp_extras(call: Any) -> dict[str, Any]:
    return {key: _plain(getattr(call, key)) for key in MCP_CALL_KEYS if getattr(call, key, None) not in (None, [], {})}


def simulation_dict(simulation: Any) -> dict[str, Any]:
    """A simulated user: persona, limits, how it ended, and its own model calls and their cost."""
    from ..agent.simulator import outcome_text

    data = _plain(simulation)
    data["outcome"] = outcome_text(simulation)
    stats = empty_stats()
    for call in data.get("calls", []):
        stats["simulator_calls"] += 1
        if call.get("cost_usd") is None:
            stats["simulator_unknown_cost_calls"] += 1
        stats["simulator_cost_usd"] += call.get("cost_usd") or 0.0
        stats["recorded_cost_usd"] += (call.get("recorded_cost_usd") or 0.0) if call.get("replayed") else 0.0
    data["stats"] = _round(stats)
    return data


def _bounded(text: str | None) -> str | None:
    """An error text cut to :data:`safetext.MESSAGE_LIMIT` characters (start and end kept): a
    server's 5 MB stderr tail is not worth 5 MB of every report. Tool arguments and results,
    which a reader may need whole, are never cut in the JSON."""
    return None if text is None else safetext.clip(str(text), safetext.MESSAGE_LIMIT)


def _message(step: Any) -> str:
    text = getattr(step, "error_message", None)
    if not text and getattr(step, "exception", None) is not None:
        text = f"{type(step.exception).__name__}: {step.exception}"
    return _bounded(str(text or "")) or ""


def _scenario_tags(scenario: Any) -> list[str]:
    try:
        from ..run.tags import own_tags  # renders Outline rows' @model:<model> without behave's sanitising

        return [str(t) for t in own_tags(scenario)]
    except Exception:  # a model the runtime does not understand: behave's own tags
        return [str(t) for t in getattr(scenario, "tags", [])]


def _outline(scenario: Any) -> dict[str, Any] | None:
    """The Outline an Examples row comes from, and the row: what the matrix groups it by (its
    rendered name may differ per model, e.g. with ``<model>`` in the title)."""
    row = getattr(scenario, "_row", None)
    outline = getattr(scenario, "parent", None)
    if row is None or outline is None or not hasattr(outline, "examples"):
        return None
    return {
        "name": str(outline.name),
        "location": str(outline.location),
        "row": {str(h): str(c) for h, c in zip(row.headings, row.cells)},
    }


def scenario_dict(scenario: Any, feature_model: str | None, conversations: Mapping[str, Any]) -> dict[str, Any]:
    record = getattr(scenario, "aitest", None)
    record_turns = list(getattr(record, "turns", []) or [])
    turns = [turn_dict(t) for t in record_turns]
    by_id = {id(t): i for i, t in enumerate(record_turns)}
    # a simulated user's step ran several turns: found by the step's location, from the record
    # (so also in a parallel run, whose workers send back each step's last turn only)
    by_index = {t.index: i for i, t in enumerate(record_turns)}
    simulated = {s.step: [by_index[n] for n in s.turns if n in by_index] for s in getattr(record, "simulations", []) or []}
    background = set(map(id, getattr(scenario, "background_steps", []) or []))
    direct_calls = list(getattr(record, "direct_calls", []) or [])  # the test's own tool calls
    direct_ids = {id(c): i for i, c in enumerate(direct_calls)}
    steps: list[dict[str, Any]] = []
    first_failure: dict[str, Any] | None = None
    for step in scenario.all_steps:
        status = outcome(step.status)
        turn = getattr(step, "aitest_turn", None)
        item = {
            "keyword": step.keyword,
            "name": step.name,
            "location": str(step.location),
            "status": status,
            "duration_s": round(getattr(step, "duration", 0.0) or 0.0, 4),
            "background": id(step) in background,
            "error": _message(step) if status in _FAILED else None,
            "text": str(step.text) if getattr(step, "text", None) else None,
            "table": _table(getattr(step, "table", None)),
            "turn": by_id.get(id(turn)) if turn is not None else None,
            "direct_call": direct_ids.get(id(getattr(step, "aitest_direct_call", None))),
            "turns": simulated.get(str(step.location)) or None,
        }
        steps.append(item)
        if first_failure is None and status in _FAILED:
            first_failure = {"step": f"{step.keyword} {step.name}", "location": item["location"], "status": status, "message": item["error"] or ""}
    status = outcome(scenario.status)
    hook_error = _bounded(getattr(scenario, "error_message", None)) if getattr(scenario, "hook_failed", False) else None
    if first_failure is None and status in _FAILED:
        repeat = getattr(scenario, "aitest_repeat", None)
        message = hook_error or (repeat.summary() if repeat is not None else "") or "The scenario did not finish (the run was interrupted)."
        first_failure = {"step": None, "location": str(scenario.location), "status": status, "message": message}
    stats = empty_stats()
    for turn in turns:
        add_stats(stats, turn["stats"])
    simulations = [simulation_dict(s) for s in getattr(record, "simulations", []) or []]
    for simulation in simulations:
        add_stats(stats, simulation["stats"])
    history_at_start = getattr(record, "history_at_start", 0) if record is not None else 0
    conversation_id = getattr(record, "conversation_id", None)
    conversation = conversations.get(conversation_id) if conversation_id else None
    repeat = getattr(scenario, "aitest_repeat", None)
    parent = getattr(scenario, "parent", None)
    rule = getattr(parent, "name", None) if type(parent).__name__ == "Rule" else None
    return {
        "name": scenario.name,
        "keyword": scenario.keyword,
        "location": str(scenario.location),
        "rule": rule,
        "outline": _outline(scenario),
        "description": [str(line) for line in getattr(scenario, "description", []) or []],
        "tags": _scenario_tags(scenario),
        "status": status,
        "behave_status": getattr(scenario.status, "name", str(scenario.status)),
        "duration_s": round(getattr(scenario, "duration", 0.0) or 0.0, 4),
        "model": getattr(record, "model", None) or _tag_model(_scenario_tags(scenario)) or feature_model,
        "agent": getattr(record, "agent", None),
        "conversation_id": conversation_id,
        "history_at_start": history_at_start,
        "history_at_end": history_at_start + sum(t["messages_added"] for t in turns),
        "hook_error": hook_error,
        "first_failure": first_failure,
        "warnings": list(getattr(record, "warnings", []) or []),
        "cassette": _cassette(conversation) if conversation is not None and not getattr(conversation, "session", False) else None,
        "repeat": _repeat(repeat),
        "steps": steps,
        "turns": turns,
        "stats": _round(stats),
        "direct_calls": [tool_call_dict(c) for c in direct_calls],
        "simulations": simulations,  # its simulated users (docs/simulated-user.md)
        "skip_reason": getattr(record, "skip_reason", None),  # a @session broken by an earlier turn's error
    }


def _tag_model(tags: Iterable[str]) -> str | None:
    for tag in tags:
        if tag.startswith("model:") and tag[6:] and "<" not in tag:
            return tag[6:]
    return None


def _cassette(conversation: Any) -> dict[str, Any] | None:
    file = getattr(conversation, "cassette", None)
    mode = getattr(conversation, "cassette_mode", None)
    if not (file or mode):
        return None
    recorded = getattr(conversation, "cassette_recorded", None) or {}
    return {
        "file": file,
        "mode": mode,
        # where a replayed cassette came from (its "recorded" header): when, which models, scripted or not
        "recorded_at": recorded.get("at"),
        "recorded_models": list(recorded.get("models") or []),
        "recorded_scripted": bool(recorded.get("scripted")),
    }


def _repeat(stats: Any) -> dict[str, Any] | None:
    if stats is None:
        return None
    return {
        "runs": stats.runs,
        "passed": stats.passed,
        "pass_rate": round(stats.pass_rate, 4),
        "pass_all": stats.pass_all,
        "flaky": stats.flaky,
        "min_pass_rate": stats.min_pass_rate,
        "outcomes": list(stats.outcomes),
    }


def feature_dict(feature: Any, conversations: Mapping[str, Any]) -> dict[str, Any]:
    flow_model = getattr(feature, "aitest_model", None)
    tags = [str(t) for t in feature.tags]
    title = feature.name
    if flow_model and title.endswith(f" [{flow_model}]"):
        title = title[: -len(f" [{flow_model}]")]
    conversation = getattr(feature, "aitest_conversation", None)
    scenarios = [scenario_dict(s, flow_model, conversations) for s in feature.walk_scenarios()]
    stats = empty_stats()
    counts = dict.fromkeys(OUTCOMES, 0)
    warnings: list[str] = []
    for scenario in scenarios:
        add_stats(stats, scenario["stats"])
        counts[scenario["status"]] += 1
        warnings.extend(w for w in scenario["warnings"] if w not in warnings)
    if conversation is not None:
        warnings.extend(w for w in conversation.warnings if w not in warnings)
    hook_error = getattr(feature, "error_message", None) if getattr(feature, "hook_failed", False) else None
    return {
        "name": feature.name,
        "title": title,
        "flow_model": flow_model,
        "location": str(feature.location),
        "description": [str(line) for line in feature.description or []],
        "tags": tags,
        "session": conversation is not None or "session" in tags,
        "conversation_id": getattr(conversation, "id", None),
        "messages": len(conversation.messages) if conversation is not None else None,
        "cassette": _cassette(conversation) if conversation is not None else None,
        "status": outcome(feature.status),
        "duration_s": round(getattr(feature, "duration", 0.0) or 0.0, 4),
        "hook_error": hook_error,
        "warnings": warnings,
        "counts": counts,
        "stats": _round(stats),
        "scenarios": scenarios,
    }


def build_document(
    features: Iterable[Any],
    *,
    runtime: Any = None,
    dry_run: bool = False,
    started_at: float,
    finished_at: float,
    title: str | None = None,
    partial_reasons: Iterable[str] = (),
    hook_errors: Iterable[str] = (),
    redactor: Redactor | None = None,
) -> Doc:
    """The report document of one behave run (see docs/report.md for every field).

    ``features`` are behave's Feature objects as the formatter saw them; ``runtime`` the
    hooks' :class:`~behave_aitest.runtime.Runtime`, or None (dry run, hooks missing).
    """
    config = getattr(runtime, "config", None)
    features = list(features)
    conversations = {c.id: c for c in getattr(runtime, "conversations", []) or []}
    reasons = list(dict.fromkeys(partial_reasons))
    config_path = getattr(config, "path", None)
    run = {
        "id": "r1",
        "started_at": iso(started_at),
        "finished_at": iso(finished_at),
        "wall_time_s": round(max(finished_at - started_at, 0.0), 3),
        "dry_run": bool(dry_run),
        "partial": bool(reasons),
        "partial_reasons": reasons,
        "command": [os.path.basename(sys.argv[0]) if sys.argv else "behave", *sys.argv[1:]],
        "cwd": str(Path.cwd()),
        "config_file": _relative(config_path) if config_path else None,
        "versions": versions(),
        "hook_errors": list(hook_errors),
        # only when the gate is on (min_pass_rate < 1); at 1.0 the scenario outcomes already say it
        "models_below_gate": list(getattr(runtime, "models_below_gate", []) or []) if getattr(config, "min_pass_rate", 1.0) < 1 else [],
    }
    doc: Doc = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "title": title or "behave-aitest report",
        "generated_at": iso(finished_at),
        "partial": bool(reasons),
        "partial_reasons": reasons,
        "runs": [run],
        "features": [{**feature_dict(f, conversations), "run": "r1"} for f in features],
        "coverage": coverage.section(coverage.scenario_records(features), getattr(config, "min_tool_coverage", None)),
    }
    summarize(doc)
    redacted: Doc = (redactor or Redactor.from_environment(config))(doc)
    # one lone surrogate from a tool or a NaN cost must not cost the report
    clean: Doc = safetext.json_safe(redacted)
    return clean


def _relative(path: Any) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


# --------------------------------------------------------------------------- derived parts


def summarize(doc: Doc) -> Doc:
    """(Re)compute the derived parts: ``totals``, the ``models`` leaderboard, ``partial``."""
    totals: dict[str, Any] = {"features": len(doc["features"]), "scenarios": 0, **dict.fromkeys(OUTCOMES, 0), **empty_stats()}
    per_model: dict[str, dict[str, Any]] = {}
    for feature in doc["features"]:
        add_stats(totals, feature["stats"])
        for scenario in feature["scenarios"]:
            totals["scenarios"] += 1
            totals[scenario["status"]] += 1
            model = scenario.get("model")
            if not model:
                continue
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
    rows.sort(key=lambda r: (-(r["pass_rate"] or 0.0), r["unknown_cost_calls"] > 0, r["cost_usd"], r["duration_s"], r["model"]))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    doc["models"] = rows
    reasons = [reason for run in runs for reason in run.get("partial_reasons", [])]
    doc["partial_reasons"] = list(dict.fromkeys(reasons))
    doc["partial"] = bool(doc["partial_reasons"])
    ordered = {k: doc[k] for k in TOP_LEVEL if k in doc} | {k: v for k, v in doc.items() if k not in TOP_LEVEL}
    doc.clear()
    doc.update(ordered)  # the summary first: what a person opening the file wants to see
    return doc


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
    worst = next((o for o in ("error", "failed", "passed", "untested", "skipped") if counts.get(o)), "skipped")
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
