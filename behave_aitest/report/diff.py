"""Run-to-run diff of two report JSON files: what got worse, what changed.

``behave-aitest report diff BASE.json NEW.json`` compares scenario by scenario (keyed by
feature title, per-model flow and scenario name, so a moved scenario is still itself):

- a **regression** is a scenario that passed in BASE and failed or errored in NEW (never one
  the provider throttled: its rate limit is not the agent's doing, see docs/rate-limits.md), a pass
  rate that dropped with repeats (3/3 -> 2/3 is flagged even when it is above
  ``min_pass_rate``), or a run total above a ``--max-*-increase`` threshold;
- a **change** is a tool sequence that differs (calls added, removed, reordered, arguments
  changed), a status that changed otherwise, a scenario added or removed.

The exit code is 1 on any regression. Output: Markdown sized for a pull-request comment
(cut with a note below GitHub's 65,536-character limit), a standalone HTML page, or JSON.
The same comparison gives the HTML report its inline deltas (``-D aitest.baseline=PATH``,
:func:`attach_baseline`). Pure: reads two documents, never a model or a server.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from ..text.safetext import dumps
from .schema import ReportError
from .stats import base_title
from .store import load, shape_problem

Doc = dict[str, Any]

DIFF_SCHEMA = "behave-aitest-diff"
DIFF_SCHEMA_VERSION = 1
# GitHub refuses a comment above 65,536 characters; the Markdown stays below with room to spare.
COMMENT_LIMIT = 65_536
MARKDOWN_BUDGET = 60_000
METRICS = ("cost_usd", "tokens", "latency_s")  # what --max-<metric>-increase can bound
_FAILED = ("failed", "error")
THROTTLED = "throttled"  # the provider kept refusing: reported, never a regression of the agent


# --------------------------------------------------------------------------- loading


def load_pair(base_path: str, new_path: str) -> tuple[Doc, Doc]:
    """Both reports, checked: each is a report, readable, and both have the same schema version."""
    docs = []
    for path in (base_path, new_path):
        doc = load(path)
        problem = shape_problem(doc)
        if problem:
            raise ReportError(f"{path}: not a valid behave-aitest report ({problem}).")
        docs.append(doc)
    base, new = docs
    if base.get("schema_version") != new.get("schema_version"):
        raise ReportError(
            f"{new_path}: report schema version {new.get('schema_version')!r} differs from {base_path}'s "
            f"({base.get('schema_version')!r}): re-run one side, or compare reports of the same behave-aitest version."
        )
    return base, new


# --------------------------------------------------------------------------- comparing


def scenario_key(feature: Mapping[str, Any], scenario: Mapping[str, Any]) -> str:
    """``Feature title [flow model] › Scenario name``: stable when lines move."""
    flow = f" [{feature['flow_model']}]" if feature.get("flow_model") else ""
    return f"{base_title(feature)}{flow} › {scenario.get('name')}"


def scenarios(doc: Mapping[str, Any]) -> dict[str, tuple[str, Mapping[str, Any]]]:
    """key -> (ref "feature index.scenario index", scenario); a repeated key gets " (2)", " (3)"..."""
    out: dict[str, tuple[str, Mapping[str, Any]]] = {}
    for fi, feature in enumerate(doc.get("features", [])):
        for si, scenario in enumerate(feature.get("scenarios", [])):
            key = scenario_key(feature, scenario)
            n = 2
            while key in out:
                key = f"{scenario_key(feature, scenario)} ({n})"
                n += 1
            out[key] = (f"{fi}.{si}", scenario)
    return out


def tool_sequence(scenario: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(tool, arguments as canonical JSON) of every call, in order."""
    calls = []
    for turn in scenario.get("turns", []) or []:
        for call in turn.get("tool_calls", []) or []:
            name = call.get("name") or call.get("provider_name") or "?"
            args = call.get("arguments")
            text = json.dumps(args, sort_keys=True, ensure_ascii=False) if args is not None else str(call.get("raw_arguments") or "")
            calls.append((str(name), text))
    return calls


def tool_changes(base: list[tuple[str, str]], new: list[tuple[str, str]]) -> dict[str, Any] | None:
    """Calls added, removed, reordered, arguments changed; None when the sequences are equal."""
    if base == new:
        return None
    base_names, new_names = [n for n, _ in base], [n for n, _ in new]
    added = list((Counter(new_names) - Counter(base_names)).elements())
    removed = list((Counter(base_names) - Counter(new_names)).elements())
    reordered = not added and not removed and base_names != new_names
    changed = []
    if base_names == new_names:
        changed = [{"tool": n, "base": a, "new": b} for (n, a), (_, b) in zip(base, new) if a != b]
    return {
        "base": base_names,
        "new": new_names,
        "added": added,
        "removed": removed,
        "reordered": reordered,
        "arguments_changed": changed,
    }


def _metrics(stats: Mapping[str, Any] | None) -> dict[str, Any]:
    stats = stats or {}
    unknown = bool(stats.get("unknown_cost_calls"))
    return {
        "cost_usd": None if unknown else float(stats.get("cost_usd") or 0.0),
        "tokens": int(stats.get("input_tokens") or 0) + int(stats.get("output_tokens") or 0),
        "latency_s": float(stats.get("latency_s") or 0.0),
    }


def delta(base: float | None, new: float | None) -> dict[str, Any]:
    """base, new, delta and the relative change (None when unknown or from 0)."""
    if base is None or new is None:
        return {"base": base, "new": new, "delta": None, "pct": None}
    pct = (new - base) / base if base else (0.0 if new == base else None)
    return {"base": round(base, 6), "new": round(new, 6), "delta": round(new - base, 6), "pct": None if pct is None else round(pct, 4)}


def _pass_rate(scenario: Mapping[str, Any]) -> tuple[int, int] | None:
    repeat = scenario.get("repeat")
    if isinstance(repeat, Mapping) and repeat.get("runs"):
        return int(repeat.get("passed") or 0), int(repeat["runs"])
    return None


def _failure(scenario: Mapping[str, Any]) -> dict[str, Any] | None:
    """The new run's first failing step and its message (report's ``first_failure``)."""
    failure = scenario.get("first_failure")
    if not isinstance(failure, Mapping):
        return None
    return {"step": failure.get("step"), "message": failure.get("message")}


def compare_scenario(base: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """One scenario present in both runs."""
    reasons: list[str] = []
    regression = False
    b_status, n_status = str(base.get("status")), str(new.get("status"))
    if b_status != n_status:
        if b_status == "passed" and n_status in _FAILED:
            regression = True
            reasons.append(f"{b_status} → {n_status}")
        elif n_status == THROTTLED:
            reasons.append(f"{b_status} → {n_status} (the provider's rate limit, not the agent)")
        else:
            reasons.append(f"{b_status} → {n_status}")
    b_rate, n_rate = _pass_rate(base), _pass_rate(new)
    rates = None
    if b_rate and n_rate:
        rates = {"base": f"{b_rate[0]}/{b_rate[1]}", "new": f"{n_rate[0]}/{n_rate[1]}"}
        if n_rate[0] / n_rate[1] < b_rate[0] / b_rate[1]:
            regression = True
            reasons.append(f"pass rate {rates['base']} → {rates['new']}")
    tools = tool_changes(tool_sequence(base), tool_sequence(new))
    b_m, n_m = _metrics(base.get("stats")), _metrics(new.get("stats"))
    return {
        "base_status": b_status,
        "new_status": n_status,
        "regression": regression,
        "improved": b_status in _FAILED and n_status == "passed",
        "reasons": reasons,
        "failure": _failure(new) if regression else None,
        "pass_rate": rates,
        "tools": tools,
        **{m: delta(b_m[m], n_m[m]) for m in METRICS},
    }


def _totals(items: Iterable[Mapping[str, Any]]) -> dict[str, float | None]:
    total: dict[str, float | None] = dict.fromkeys(METRICS, 0.0)
    for scenario in items:
        metrics = _metrics(scenario.get("stats"))
        for m in METRICS:
            value = metrics[m]
            total[m] = None if value is None or total[m] is None else total[m] + value  # type: ignore[operator]
    return total


def compare(base: Mapping[str, Any], new: Mapping[str, Any], thresholds: Mapping[str, float] | None = None, *,
            base_name: str = "BASE", new_name: str = "NEW") -> Doc:
    """The diff document (JSON-ready)."""
    old, now = scenarios(base), scenarios(new)
    rows = []
    for key, (ref, scenario) in now.items():
        if key in old:
            rows.append({"key": key, "ref": ref, "kind": "both", **compare_scenario(old[key][1], scenario)})
        else:
            status = str(scenario.get("status"))
            rows.append({"key": key, "ref": ref, "kind": "added", "new_status": status, "regression": False, "failing": status in _FAILED})
    rows += [{"key": key, "ref": None, "kind": "removed", "base_status": str(s.get("status")), "regression": False} for key, (_, s) in old.items() if key not in now]
    common = [k for k in now if k in old]
    b_tot, n_tot = _totals(old[k][1] for k in common), _totals(now[k][1] for k in common)
    totals = {m: delta(b_tot[m], n_tot[m]) for m in METRICS}
    checks = []
    for metric, limit in (thresholds or {}).items():
        d = totals[metric]
        if d["delta"] is None:
            checks.append({"metric": metric, "max_increase": limit, "increase": None, "breached": False, "note": "unknown (a model's price is not known)"})
            continue
        increase = d["pct"] if d["pct"] is not None else (float("inf") if d["delta"] > 0 else 0.0)
        breached = increase > limit
        checks.append({"metric": metric, "max_increase": limit, "increase": None if increase == float("inf") else increase, "breached": breached, "note": "from 0" if increase == float("inf") else None})
    regressions = sum(1 for r in rows if r["regression"]) + sum(1 for c in checks if c["breached"])
    return {
        "schema": DIFF_SCHEMA,
        "schema_version": DIFF_SCHEMA_VERSION,
        "base": _side(base, base_name),
        "new": _side(new, new_name),
        "regressions": regressions,
        "summary": {
            "regressed": sum(1 for r in rows if r["regression"]),
            "improved": sum(1 for r in rows if r.get("improved")),
            "tool_changes": sum(1 for r in rows if r.get("tools")),
            "added": sum(1 for r in rows if r["kind"] == "added"),
            "removed": sum(1 for r in rows if r["kind"] == "removed"),
            "throttled": sum(1 for r in rows if r.get("new_status") == THROTTLED),
            "compared": len(common),
        },
        "totals": totals,
        "thresholds": checks,
        "scenarios": rows,
        # a run that was interrupted cannot show that nothing regressed (issue 25, H9)
        "partial": [name for name, doc in ((base_name, base), (new_name, new)) if doc.get("partial")],
    }


def _side(doc: Mapping[str, Any], name: str) -> dict[str, Any]:
    totals = doc.get("totals") or {}
    return {
        "file": name,
        "title": doc.get("title"),
        "generated_at": doc.get("generated_at"),
        "scenarios": totals.get("scenarios"),
        "passed": totals.get("passed"),
        "failed": totals.get("failed"),
        "error": totals.get("error"),
    }


# --------------------------------------------------------------------------- output


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:+.0f}%"


def _num(metric: str, value: float | None) -> str:
    if value is None:
        return "unknown"
    if metric == "cost_usd":
        return f"${value:.4f}"
    if metric == "latency_s":
        return f"{value:.2f} s"
    return f"{int(value):,}"


LABELS = {"cost_usd": "Cost", "tokens": "Tokens", "latency_s": "Model latency"}


def headline(diff: Mapping[str, Any], icons: bool = True) -> str:
    """``❌ 2 regressions · 1 improved``; without the emoji (``icons=False``) for HTML, where a
    machine without an emoji font shows them as empty boxes (docs/report.md: no emoji)."""
    s = diff["summary"]
    icon = ("❌ " if diff["regressions"] else "✅ ") if icons else ""
    parts = [f"{diff['regressions']} regression{'s' * (diff['regressions'] != 1)}"]
    parts += [f"{s[k]} {label}" for k, label in (("improved", "improved"), ("added", "added"), ("removed", "removed"), ("throttled", "throttled by the provider")) if s.get(k)]
    if s.get("tool_changes"):
        parts.insert(2 if s.get("improved") else 1, f"{s['tool_changes']} tool sequence{'s' * (s['tool_changes'] != 1)} changed")
    parts += [f"PARTIAL: {name} is the report of an interrupted run" for name in diff.get("partial") or []]
    return icon + " · ".join(parts)


def markdown(diff: Mapping[str, Any], limit: int = MARKDOWN_BUDGET) -> str:
    """A pull-request comment: regressions first; cut with a note when longer than ``limit``."""
    from .render import code, md

    lines = [f"## behave-aitest: {code(diff['new']['file'])} compared with {code(diff['base']['file'])}", ""]
    lines += [f"**{headline(diff)}** ({diff['summary']['compared']} scenarios compared)", ""]
    lines += ["| | Base | New | Change |", "|---|---:|---:|---:|"]
    for metric in METRICS:
        d = diff["totals"][metric]
        check = next((c for c in diff["thresholds"] if c["metric"] == metric), None)
        flag = f" ⛔ above +{check['max_increase'] * 100:.0f}%" if check and check["breached"] else ""
        lines.append(f"| {LABELS[metric]} | {_num(metric, d['base'])} | {_num(metric, d['new'])} | {_pct(d['pct'])}{flag} |")
    lines.append("")
    rows = diff["scenarios"]
    throttled = [r for r in rows if r.get("new_status") == THROTTLED]
    sections = [
        ("Regressions", [r for r in rows if r["regression"]]),
        ("Throttled by the provider, not the agent", throttled),
        ("Improved", [r for r in rows if r.get("improved")]),
        ("Tool sequences changed", [r for r in rows if r.get("tools") and not r["regression"] and r not in throttled]),
        ("Other status changes", [r for r in rows if r["kind"] == "both" and r["reasons"] and not r["regression"] and not r.get("improved") and not r.get("tools") and r not in throttled]),
        ("Added", [r for r in rows if r["kind"] == "added"]),
        ("Removed", [r for r in rows if r["kind"] == "removed"]),
    ]
    for title, items in sections:
        if not items:
            continue
        lines += [f"### {title} ({len(items)})", ""]
        lines += [f"- {_md_row(r, md, code)}" for r in items]
        lines.append("")
    text = "\n".join(lines) + "\n"
    if len(text) <= limit:
        return text
    kept, size = [], 0
    for line in lines:
        if size + len(line) + 1 > limit:
            break
        kept.append(line)
        size += len(line) + 1
    note = f"\n… cut here: {len(lines) - len(kept)} more lines (the comment limit is {COMMENT_LIMIT:,} characters). See the full diff in the job's artifacts (diff.html / diff.json).\n"
    return "\n".join(kept) + note


def _md_row(row: Mapping[str, Any], md: Any, code: Any) -> str:
    text = f"**{md(row['key'])}**"
    if row["kind"] == "added":
        return text + f" — new, {md(row['new_status'])}" + (" ⚠️" if row.get("failing") else "")
    if row["kind"] == "removed":
        return text + f" — was {md(row['base_status'])}"
    parts = [md(r) for r in row["reasons"]]
    if failure_text(row):
        parts.append(md(failure_text(row)))
    tools = row.get("tools")
    if tools:
        parts.append(tool_text(tools, code))
    return text + (" — " + "; ".join(parts) if parts else "")


def argument_changes(change: Mapping[str, Any]) -> str:
    """``amount 500 → 5000, memo (none) → "x"``: each argument whose value changed, old → new
    (values as JSON); the whole arguments when they are not two objects."""
    try:
        old, new = json.loads(change["base"]), json.loads(change["new"])
    except (TypeError, ValueError):
        old = new = None
    if not isinstance(old, dict) or not isinstance(new, dict):
        return f"{change['base']} → {change['new']}"
    shown = lambda key, args: json.dumps(args[key], ensure_ascii=False) if key in args else "(none)"  # noqa: E731
    keys = [k for k in dict.fromkeys([*old, *new]) if old.get(k, _MISSING) != new.get(k, _MISSING)]
    return ", ".join(f"{k} {shown(k, old)} → {shown(k, new)}" for k in keys) or "same values"


_MISSING = object()


def failure_text(row: Mapping[str, Any]) -> str:
    """A regression's failing step and the first line of its message, or nothing."""
    failure = row.get("failure") or {}
    if not failure.get("step") and not failure.get("message"):
        return ""
    first = str(failure.get("message") or "").strip().splitlines()[:1]
    return f"failed at {failure.get('step') or '?'}" + (f": {first[0]}" if first else "")


def tool_text(tools: Mapping[str, Any], code: Any = str) -> str:
    """``tools: a, b → a, c (added c; removed b)`` in one line."""
    def seq(names: list[str]) -> str:
        return ", ".join(code(n) for n in names) or "none"

    notes = []
    if tools["added"]:
        notes.append("added " + seq(tools["added"]))
    if tools["removed"]:
        notes.append("removed " + seq(tools["removed"]))
    if tools["reordered"]:
        notes.append("reordered")
    if tools["arguments_changed"]:
        notes.append("arguments changed: " + "; ".join(f"{code(c['tool'])}: {argument_changes(c)}" for c in tools["arguments_changed"]))
    return f"tools {seq(tools['base'])} → {seq(tools['new'])} ({'; '.join(notes)})"


_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>{{ title }}</title>
<style>body{font:14px/1.45 system-ui,sans-serif;margin:2rem;max-width:70rem}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}
.bad{color:#b00020}.good{color:#1b7f3b}.dim{color:#666}code{background:#f3f3f3;padding:0 .2em}</style></head><body>
<h1>{{ title }}</h1>
<p><strong>{{ headline }}</strong> ({{ diff.summary.compared }} scenarios compared) <span class="dim">base: {{ diff.base.file }} ({{ diff.base.generated_at }}) · new: {{ diff.new.file }} ({{ diff.new.generated_at }})</span></p>
<table><thead><tr><th></th><th>Base</th><th>New</th><th>Change</th></tr></thead><tbody>
{% for m, d, flag in totals %}<tr><td>{{ m }}</td><td>{{ d[0] }}</td><td>{{ d[1] }}</td><td{% if flag %} class="bad"{% endif %}>{{ d[2] }}{{ flag }}</td></tr>{% endfor %}
</tbody></table>
<h2>Scenarios</h2>
<table><thead><tr><th>Scenario</th><th>Status</th><th>What changed</th><th>Cost</th><th>Tokens</th></tr></thead><tbody>
{% for r in rows %}<tr{% if r.regression %} class="bad"{% elif r.improved %} class="good"{% endif %}>
<td>{{ r.key }}</td><td>{{ r.status }}</td><td>{{ r.what }}</td><td>{{ r.cost }}</td><td>{{ r.tokens }}</td></tr>
{% else %}<tr><td colspan="5" class="dim">no scenarios</td></tr>{% endfor %}
</tbody></table></body></html>
"""


def html(diff: Mapping[str, Any]) -> str:
    """A standalone page (autoescaped: scenario names and tool names are untrusted text)."""
    from jinja2 import Environment

    totals = []
    for metric in METRICS:
        d = diff["totals"][metric]
        check = next((c for c in diff["thresholds"] if c["metric"] == metric), None)
        flag = f" (above +{check['max_increase'] * 100:.0f}%)" if check and check["breached"] else ""
        totals.append((LABELS[metric], (_num(metric, d["base"]), _num(metric, d["new"]), _pct(d["pct"])), flag))
    rows = []
    for r in diff["scenarios"]:
        if r["kind"] == "added":
            status, what = r["new_status"], "added"
        elif r["kind"] == "removed":
            status, what = r["base_status"], "removed"
        else:
            status = r["new_status"] if r["base_status"] == r["new_status"] else f"{r['base_status']} → {r['new_status']}"
            what = "; ".join([*r["reasons"], *([failure_text(r)] if failure_text(r) else []), *([tool_text(r["tools"])] if r.get("tools") else [])]) or "–"
        cost = _pct(r["cost_usd"]["pct"]) if r.get("cost_usd") else "–"
        tokens = _pct(r["tokens"]["pct"]) if r.get("tokens") else "–"
        rows.append({**r, "status": status, "what": what, "cost": cost, "tokens": tokens, "improved": r.get("improved")})
    rows.sort(key=lambda r: (not r["regression"], not r.get("tools"), r["key"]))
    env = Environment(autoescape=True)
    return env.from_string(_HTML).render(diff=diff, title="behave-aitest diff", headline=headline(diff, icons=False), totals=totals, rows=rows)


def render(diff: Mapping[str, Any], kind: str) -> str:
    if kind == "json":
        return dumps(diff) + "\n"
    if kind == "html":
        return html(diff)
    return markdown(diff)


def parse_increase(text: str) -> float:
    """``20%`` or ``0.2`` -> 0.2 (a relative increase)."""
    value = text.strip()
    try:
        number = float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        raise ValueError(f"{text!r} is not an increase; write e.g. 20% or 0.2") from None
    if number < 0:
        raise ValueError(f"{text!r} must not be negative")
    return number


# --------------------------------------------------------------------------- inline deltas


def attach_baseline(doc: Doc, path: str | None) -> Doc:
    """``doc["baseline"]``: the diff against a previous report, keyed by scenario ref
    ("feature index.scenario index"), for the HTML report's inline deltas. A baseline that
    cannot be read is said in the section, never an error: the run's own report comes first."""
    if not path:
        return doc
    try:
        base = load(path)
        problem = shape_problem(base)
        if problem:
            raise ReportError(f"{path}: not a valid behave-aitest report ({problem}).")
        diff = compare(base, doc, base_name=str(path))
    except ReportError as exc:
        doc["baseline"] = {"file": str(path), "error": str(exc), "scenarios": {}}
        return doc
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        doc["baseline"] = {"file": str(path), "error": f"{path}: malformed report ({type(exc).__name__}).", "scenarios": {}}
        return doc
    by_ref = {}
    for row in diff["scenarios"]:
        if row["kind"] == "removed" or not row.get("ref"):
            continue
        by_ref[row["ref"]] = _inline(row)
    doc["baseline"] = {
        "file": str(path),
        "error": None,
        "generated_at": diff["base"]["generated_at"],
        "headline": headline(diff, icons=False),
        "totals": diff["totals"],
        "removed": [r["key"] for r in diff["scenarios"] if r["kind"] == "removed"],
        "scenarios": by_ref,
    }
    return doc


def _inline(row: Mapping[str, Any]) -> dict[str, Any]:
    if row["kind"] == "added":
        return {"text": "new since the baseline", "regression": False}
    parts = list(row["reasons"])
    if row.get("tools"):
        parts.append(tool_text(row["tools"]))
    for metric in ("cost_usd", "tokens"):
        pct = row[metric]["pct"]
        if pct:
            parts.append(f"{LABELS[metric].lower()} {_pct(pct)}")
    return {"text": "; ".join(parts) or "unchanged", "regression": bool(row["regression"])}

