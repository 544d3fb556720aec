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

import os
import platform
import sys
from collections.abc import Iterable, Mapping
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

from ..record import coverage
from ..record.records import THROTTLED_PREFIX
from ..text import safetext
from ..text.redact import Redactor
from .schema import _FAILED, OUTCOMES, SCHEMA, SCHEMA_VERSION, Doc, iso, outcome
from .stats import _round, add_stats, direct_call_stats, empty_stats, summarize, turn_stats

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
        # an external agent's own tool, seen only in the messages it returned (docs/agents.md)
        **({"reported": True} if getattr(call, "reported", False) else {}),
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
    if getattr(turn, "checks", None):  # similarity, numbers, injection drills (docs/checks-meaning-safety.md)
        data["checks"] = [_plain(c) for c in turn.checks]
    if getattr(turn, "agent_kind", None):  # an agent that is not the built-in loop (docs/agents.md)
        data["agent_kind"] = turn.agent_kind
    if getattr(turn, "warnings", None):
        data["warnings"] = list(turn.warnings)
    if getattr(turn, "server_events", None):  # on the server's timeline, not on a guessed call
        data["server_events"] = [_plain(e) for e in turn.server_events]
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
        from ..run.tags import (
            own_tags,  # renders Outline rows' @model:<model> without behave's sanitising
        )

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
    # judge steps whose judgement the provider throttled (found by the step's location, as above)
    judged = {j.step for t in record_turns for j in getattr(t, "judge_calls", []) if str(j.error or "").startswith(THROTTLED_PREFIX)}
    judged |= {s.step for s in getattr(record, "simulations", []) or [] if s.ended == "throttled"}  # and simulated users
    for step in scenario.all_steps:
        status = outcome(step.status)
        turn = getattr(step, "aitest_turn", None)
        if status == "error" and (str(getattr(turn, "error", None) or "").startswith(THROTTLED_PREFIX) or str(step.location) in judged):
            status = "throttled"  # the provider's rate limit, not the agent (docs/rate-limits.md)
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
    if status == "error" and first_failure is not None and first_failure["status"] == "throttled":
        status = "throttled"
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
    direct = [tool_call_dict(c) for c in direct_calls]
    add_stats(stats, direct_call_stats(direct))
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
        "direct_calls": direct,
        "rate_limits": {m: dict(v) for m, v in (getattr(record, "rate_limits", None) or {}).items()},
        "simulations": simulations,  # its simulated users (docs/simulated-user.md)
        "skip_reason": getattr(record, "skip_reason", None),  # a @session broken by an earlier turn's error
        # prompt-injection drills (docs/checks-meaning-safety.md): payload, tool, canary, where it went
        "injections": [_plain(d) for d in getattr(record, "injections", []) or []],
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
    shard: Mapping[str, Any] | None = None,
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
        # -D aitest.shard=K/N: the plan this shard is part of (parallel.units.shard_record), for report merge
        "shard": dict(shard) if shard else None,
        # only when the gate is on (min_pass_rate < 1); at 1.0 the scenario outcomes already say it
        "models_below_gate": list(getattr(runtime, "models_below_gate", []) or []) if getattr(config, "min_pass_rate", 1.0) < 1 else [],
        # what is true of a server for the whole run (a task-only tool it lists), said once
        "warnings": run_warnings(features),
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


def run_warnings(features: Iterable[Any]) -> list[str]:
    """The run-wide warnings of every scenario's record (``ScenarioRecord.run_warnings``),
    each once, in the order they were first met (under ``-j`` the records come from the workers)."""
    found: list[str] = []
    for feature in features:
        for scenario in feature.walk_scenarios():
            for warning in getattr(getattr(scenario, "aitest", None), "run_warnings", None) or []:
                if warning not in found:
                    found.append(warning)
    return found


def _relative(path: Any) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


# --------------------------------------------------------------------------- derived parts
