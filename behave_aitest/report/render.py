"""Render a report document (see :mod:`behave_aitest.report`) as HTML or Markdown.

HTML: one self-contained file. The page shell (header, leaderboard, matrix, one light row
per scenario with its first failure) is rendered by Jinja2 with autoescape; the heavy
part (steps and conversations) is drawn by the inlined script from the document, which is
embedded as ``<script type="application/json">`` with ``<``, ``>`` and ``&`` escaped, only
when a scenario is opened, so 1,000 scenarios stay light. The script builds DOM nodes
with ``textContent``, never ``innerHTML``, and a Content-Security-Policy allows only that
script (by hash) and no network at all.

Markdown: a short summary for a CI job summary or a PR comment, every piece of text
escaped (and fenced code blocks fenced longer than any backtick run inside).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from typing import Any

from ..config import is_scripted as config_is_scripted
from ..text import safetext
from ..text.safetext import plural
from .document import clip_texts
from .schema import DEFAULT_MAX_TEXT, Doc
from .stats import base_title, matrix

SPEND_SKIP = "Skipped: the run's known cost"  # the start of run.runtime's max_run_cost_usd skip reason
MD_ICON = {"passed": "✅", "failed": "❌", "error": "⚠️", "throttled": "🚦", "skipped": "⏭️", "untested": "⚪"}


# --------------------------------------------------------------------------- numbers


def money(value: float) -> str:
    if value == 0:
        return "$0"
    if value < 0.01:
        return f"${value:.6f}".rstrip("0")
    return f"${value:,.4f}"


def cost(stats: Mapping[str, Any], key: str = "cost_usd", unknown_key: str = "unknown_cost_calls") -> str:
    """A cost that never shows an unknown part as $0: "$0.0123", "≥ $0.01 + 2 unknown", "unknown (3 calls)"."""
    known = float(stats.get(key) or 0.0)
    unknown = int(stats.get(unknown_key) or 0)
    calls_key = {"cost_usd": "model_calls", "simulator_cost_usd": "simulator_calls"}.get(key, "judge_calls")
    calls = int(stats.get(calls_key) or 0)
    if unknown == 0:
        return money(known) if calls or known else "–"
    if unknown >= calls:
        return f"unknown ({unknown} call{'s' * (unknown != 1)})"
    return f"≥ {money(known)} + {unknown} unknown"


def tokens(n: Any) -> str:
    n = int(n or 0)
    return f"{n / 1000:.1f}k" if n >= 10_000 else f"{n:,}"


def seconds(value: Any) -> str:
    s = float(value or 0.0)
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 120:
        return f"{s:.1f} s"
    return f"{int(s // 60)} min {s % 60:.0f} s"


def percent(rate: Any) -> str:
    return "–" if rate is None else f"{rate * 100:.0f}%"


def is_scripted(model: Any) -> bool:
    """The built-in scripted model, or one of its named variants (``scripted/<name>``), as a
    report names it (config's rule, plus the ``openai/scripted`` litellm may have recorded)."""
    return config_is_scripted(str(model or "")) or model == "openai/scripted"


def scripted_answers(doc: Doc) -> str | None:
    """"live" when the answers of the run came from the scripted model itself ("some" when
    other models answered too), "replayed" when they were replayed from cassettes recorded
    against it (and no LLM answered), else None: the report's banner says they are no LLM's."""
    calls = [c for f in doc["features"] for s in f["scenarios"] for t in s["turns"] for c in t.get("model_calls", [])]
    live = [c for c in calls if not c.get("replayed")]
    if any(is_scripted(c.get("model")) for c in live):
        return "live" if all(is_scripted(c.get("model")) for c in live) else "some"
    cassettes = [x for f in doc["features"] for x in [f.get("cassette"), *(s.get("cassette") for s in f["scenarios"])] if x]
    replayed = [x for x in cassettes if x.get("mode") == "replay" and x.get("recorded_at")]
    if replayed and all(x.get("recorded_scripted") for x in replayed) and not any(not c.get("replayed") for c in calls):
        return "replayed"
    return None


# --------------------------------------------------------------------------- HTML


def safe_json(data: Any) -> str:
    """JSON that cannot end or open anything inside a ``<script>`` element."""
    text = safetext.dumps(data)  # no NaN: one would stop the page's script
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _resource(name: str) -> str:
    return resources.files("behave_aitest.report").joinpath("templates", name).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
@lru_cache(maxsize=1)
def _environment() -> Any:
    """The compiled page template (compiled once per process: about 0.1 s)."""
    from jinja2 import Environment, StrictUndefined

    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(cost=cost, tokens=tokens, seconds=seconds, percent=percent, money=money, plural=plural)
    return env.from_string(_resource("report.html.j2"))


def groups(doc: Doc) -> list[dict[str, Any]]:
    """Features in file order; per-model flows of one feature together, to be shown side by side."""
    out: list[dict[str, Any]] = []
    index: dict[tuple[str, str], dict[str, Any]] = {}
    for i, feature in enumerate(doc["features"]):
        key = (feature["location"], base_title(feature))
        if feature.get("flow_model") and key in index:
            index[key]["flows"].append((i, feature))
            continue
        group = {"title": base_title(feature), "flows": [(i, feature)]}
        index[key] = group
        out.append(group)
    return out


def html(doc: Doc, max_text: int = DEFAULT_MAX_TEXT) -> str:
    """The whole report page; texts longer than ``max_text`` are cut with a note."""
    from markupsafe import Markup

    doc = clip_texts(doc, max_text)
    script = _resource("report.js")
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    csp = f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{digest}'; img-src data:; base-uri 'none'; form-action 'none'"
    models = [row["model"] for row in doc.get("models", [])]
    tags = sorted({t for f in doc["features"] for s in f["scenarios"] for t in [*f["tags"], *s["tags"]]})
    page: str = _environment().render(
        doc=doc,
        t=doc["totals"],
        groups=groups(doc),
        models=models,
        matrix=matrix(doc) if len(models) > 1 else None,
        tags=tags,
        css=Markup(_resource("report.css")),
        script=Markup(script),
        data=Markup(safe_json(doc)),
        csp=csp,
        status=overall(doc),
        scripted=scripted_answers(doc),
    )
    return page


def overall(doc: Doc) -> dict[str, Any]:
    """The verdict shown first: a badge text and its tone (the HTML puts an icon before it,
    the Markdown an emoji)."""
    t = doc["totals"]
    throttled = int(t.get("throttled") or 0)  # the provider's rate limit, not the agent (docs/rate-limits.md)
    bad = t["failed"] + t["error"] + throttled
    if doc["runs"] and all(r.get("dry_run") for r in doc["runs"]):
        return {"tone": "neutral", "text": f"Dry run: {plural(t['scenarios'], 'scenario')}, none executed"}
    if bad:
        parts = [
            f"{t['failed']} failed" if t["failed"] else "",
            plural(t["error"], "error") if t["error"] else "",
            f"{throttled} throttled by the provider" if throttled else "",
        ]
        return {"tone": "bad", "text": f"{' · '.join(p for p in parts if p)} of {plural(t['scenarios'], 'scenario')}"}
    if t["passed"] == 0:
        return {"tone": "neutral", "text": "No scenario passed or failed"}
    if not t["skipped"]:
        return {"tone": "good", "text": "Passed" if t["passed"] == 1 else f"All {t['passed']} passed"}
    return {"tone": "good", "text": f"{t['passed']} passed, {t['skipped']} skipped"}


# --------------------------------------------------------------------------- Markdown

_MD_SPECIAL = re.compile(r"([\\`*_\[\]{}|~#!])")


def md(text: Any) -> str:
    """Inline Markdown text that renders as the same text: HTML and Markdown syntax escaped."""
    value = str(text if text is not None else "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", " ".join(value.split()))


def code(text: Any) -> str:
    """An inline code span (no escapes are read inside one, so none are added)."""
    value = " ".join(str(text if text is not None else "").split())
    longest = max((len(run) for run in re.findall(r"`+", value)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{ticks}{pad}{value}{pad}{ticks}"


def fenced(text: str, info: str = "text") -> str:
    """A fenced code block no content can close early."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text.rstrip()}\n{fence}"


def source_link(location: str) -> str:
    """A link to a ``path:line`` location: to the repository on GitHub Actions, else relative."""
    path, _, line = location.rpartition(":")
    if not path or not line.isdigit():
        path, line = location, ""
    anchor = f"#L{line}" if line else ""
    env = os.environ
    base = env.get("AITEST_SOURCE_URL")
    if not base and env.get("GITHUB_SERVER_URL") and env.get("GITHUB_REPOSITORY") and env.get("GITHUB_SHA"):
        base = f"{env['GITHUB_SERVER_URL']}/{env['GITHUB_REPOSITORY']}/blob/{env['GITHUB_SHA']}/"
    url = f"{base.rstrip('/')}/{path}{anchor}" if base else f"{path}{anchor}"
    return f"[{code(location)}](<{url.replace('<', '%3C').replace('>', '%3E').replace(' ', '%20')}>)"


MAX_MD_FAILURES = 30
MAX_MD_MESSAGE_LINES = 25


def markdown(doc: Doc, max_text: int = DEFAULT_MAX_TEXT) -> str:
    """The Markdown summary; texts longer than ``max_text`` are cut with a note."""
    doc = clip_texts(doc, max_text)
    t = doc["totals"]
    verdict = overall(doc)
    head = {"good": "✅", "bad": "❌"}.get(verdict["tone"], "⚪")
    lines = [f"# {head} {md(doc['title'])}", ""]
    summary = f"**{md(verdict['text'])}**"
    if doc.get("partial"):
        summary += " · ⚠️ **partial report**: " + md("; ".join(doc["partial_reasons"]))
    lines += [summary, ""]
    scripted = scripted_answers(doc)
    if scripted:
        what = {"replayed": "The answers are replayed from cassettes recorded against", "some": "Some answers come from"}.get(scripted, "The answers come from")
        lines += [f"ℹ️ {what} behave-aitest's built-in **scripted model**, not an LLM.", ""]
    lines += [
        "| Scenarios | ✅ Passed | ❌ Failed | ⚠️ Errors | ⏭️ Skipped | LLM calls | Tokens in / out | Cost | Tool calls (errors) | Wall time |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {t['scenarios']} | {t['passed']} | {t['failed']} | {t['error']} | {t['skipped'] + t['untested']} | {t['model_calls']} "
        f"| {tokens(t['input_tokens'])} / {tokens(t['output_tokens'])} | {md(cost(t))}{' ⚠️' if t['unknown_cost_calls'] else ''} "
        f"| {t['tool_calls']} ({t['tool_errors']}) | {seconds(t['wall_time_s'])} |",
        "",
    ]
    if t["unknown_cost_calls"]:
        lines += [f"⚠️ {plural(t['unknown_cost_calls'], 'model call')} {'has' if t['unknown_cost_calls'] == 1 else 'have'} no known price: the cost is a lower bound (add `[tool.behave_aitest.prices]`).", ""]
    if t.get("replayed_calls"):
        lines += [
            f"⏯️ {plural(t['replayed_calls'], 'model call')} replayed from cassettes: no model was called "
            f"({'it' if t['replayed_calls'] == 1 else 'they'} cost {money(t.get('recorded_cost_usd') or 0.0)} when recorded).",
            "",
        ]
    if t.get("simulator_calls"):
        lines += [
            f"🧑 {t['simulator_calls']} simulated-user model calls cost "
            f"{md(cost(t, 'simulator_cost_usd', 'simulator_unknown_cost_calls'))}, apart from the agent's.",
            "",
        ]
    meta = []
    if t["models"]:
        meta.append("Models: " + ", ".join(code(m) for m in t["models"]))
    run = doc["runs"][0] if doc["runs"] else {}
    if run.get("config_file"):
        meta.append(f"config {code(run['config_file'])}")
    if len(doc["runs"]) > 1:
        meta.append(f"{plural(len(doc['runs']), 'run')} merged")
    if meta:
        lines += [" · ".join(meta), ""]
    for error in [e for r in doc["runs"] for e in r.get("hook_errors", []) + r.get("models_below_gate", [])]:
        lines += [f"> ⚠️ {md(error)}", ""]
    if len(doc.get("models", [])) > 1:
        lines += ["## Model leaderboard", "", "| # | Model | Passed | Pass rate | Cost | Time | Tokens | Tool errors |", "|---:|---|---:|---:|---:|---:|---:|---:|"]
        for row in doc["models"]:
            ran = row["passed"] + row["failed"] + row["error"]
            medal = {1: "🥇", 2: "🥈", 3: "🥉"}.get(row["rank"], str(row["rank"])) if row.get("rank") else "–"
            apart = f" ({md(row['apart'])})" if row.get("apart") else ""
            lines.append(
                f"| {medal} | {code(row['model']).replace('|', chr(92) + '|')}{' ⛔ below min_pass_rate' if row.get('below_gate') else ''}{apart} | {row['passed']}/{ran} | {percent(row['pass_rate'])} | {md(cost(row))} "
                f"| {seconds(row['duration_s'])} | {tokens(row['input_tokens'] + row['output_tokens'])} | {row['tool_errors']} |"
            )
        lines.append("")
    lines += rate_limits_markdown(doc)
    failures = [(f, s) for f in doc["features"] for s in f["scenarios"] if s["status"] in ("failed", "error", "throttled")]
    if failures:
        lines += [f"## Failures ({len(failures)})", ""]
        for feature, scenario in failures[:MAX_MD_FAILURES]:
            lines += [f"### {MD_ICON[scenario['status']]} {md(feature['name'])} › {md(scenario['name'])}", ""]
            failure = scenario.get("first_failure") or {}
            where = source_link(failure.get("location") or scenario["location"])
            step = f" — **{md(failure['step'])}**" if failure.get("step") else ""
            lines += [f"{where}{step}", ""]
            message = str(failure.get("message") or "").strip()
            if message:
                cut = message.splitlines()
                if len(cut) > MAX_MD_MESSAGE_LINES:
                    cut = cut[:MAX_MD_MESSAGE_LINES] + [f"… ({plural(len(message.splitlines()) - MAX_MD_MESSAGE_LINES, 'more line')} in the HTML report)"]
                lines += [fenced("\n".join(cut)), ""]
        if len(failures) > MAX_MD_FAILURES:
            lines += [f"… and {plural(len(failures) - MAX_MD_FAILURES, 'more failure')}: see the HTML report.", ""]
    lines += checks_markdown(doc)
    lines += coverage_markdown(doc.get("coverage"))
    baseline = doc.get("baseline")  # -D aitest.baseline (behave_aitest.diff)
    if isinstance(baseline, Mapping):
        said = baseline.get("error") or baseline.get("headline")
        lines += [f"Compared with the baseline {code(baseline.get('file'))}: {md(said)}", ""]
    skipped = [(f, s) for f in doc["features"] for s in f["scenarios"] if s.get("skip_reason")]
    spent = [(f, s) for f, s in skipped if str(s["skip_reason"]).startswith(SPEND_SKIP)]
    broken = [(f, s) for f, s in skipped if not str(s["skip_reason"]).startswith(SPEND_SKIP)]
    for title, items in (("Skipped after a session broke", broken), ("Skipped: the spend cap was reached", spent)):
        if items:  # a @session skipped after an earlier turn's error; max_run_cost_usd (docs/rate-limits.md)
            lines += [f"## {title} ({len(items)})", ""]
            lines += [f"- {md(f['name'])} › {md(s['name'])}: {md(s['skip_reason'])}" for f, s in items] + [""]
    warnings = [f"- {md(f['name'])}: {md(w)}" for f in doc["features"] for w in f.get("warnings", [])]
    run_wide = list(dict.fromkeys(w for r in doc["runs"] for w in r.get("warnings", [])))  # said once for the run
    if warnings or run_wide:
        lines += ["## Warnings", ""] + [f"- {md(w)}" for w in run_wide] + warnings + [""]
    version = (run.get("versions") or {}).get("behave-aitest") or ""
    lines.append(f"<sub>behave-aitest {md(version)} · generated {md(doc.get('generated_at'))}</sub>")
    return "\n".join(lines) + "\n"


def rate_limits_markdown(doc: Doc) -> list[str]:
    """The Markdown "Rate limits" section: per model, the provider's 429s, the concurrency limit
    the run settled on and the time spent waiting (docs/rate-limits.md); nothing when no model
    was limited or refused."""
    t = doc["totals"]
    rows = t.get("rate_limits") or {}
    throttled = int(t.get("throttled") or 0)
    if not any(r.get("throttled") or r.get("wait_s") for r in rows.values()) and not throttled:
        return []
    lines = ["## 🚦 Rate limits", ""]
    if throttled:
        lines += [f"{plural(throttled, 'scenario')} could not finish: the provider kept refusing (throttled), not a failure of the agent.", ""]
    lines += ["| Model | Throttled (429s) | Limit settled on | Time waiting |", "|---|---:|---:|---:|"]
    for model in sorted(rows):
        r = rows[model]
        limit = r.get("limit")
        lines.append(f"| {code(model).replace('|', chr(92) + '|')} | {int(r.get('throttled') or 0)} | {limit if limit is not None else '–'} | {seconds(r.get('wait_s'))} |")
    return [*lines, ""]


CHECK_NAMES = {  # CheckResult.kind -> what a reader of the summary calls it
    "similar": "similar to the expected answer",
    "not similar": "not similar to a wrong answer",
    "numbers": "numbers grounded in tool results",
    "injection": "prompt-injection drills resisted",
}


def checks_markdown(doc: Doc) -> list[str]:
    """The Markdown "Checks of meaning and safety" section: per kind of offline check
    (docs/checks-meaning-safety.md), how many held; nothing when the run made none."""
    counts: dict[str, list[int]] = {}
    for feature in doc["features"]:
        for scenario in feature["scenarios"]:
            for turn in scenario.get("turns", []):
                for check in turn.get("checks") or []:
                    held = counts.setdefault(str(check.get("kind") or "other"), [0, 0])
                    held[0 if check.get("passed") else 1] += 1
    if not counts:
        return []
    lines = ["## Checks of meaning and safety", "", "| Check | Held | Did not hold |", "|---|---:|---:|"]
    for kind in sorted(counts, key=lambda k: list(CHECK_NAMES).index(k) if k in CHECK_NAMES else len(CHECK_NAMES)):
        passed, missed = counts[kind]
        lines.append(f"| {md(CHECK_NAMES.get(kind, kind))} | {passed} | {'❌ ' if missed else ''}{missed} |")
    return [*lines, ""]


def coverage_markdown(cov: Mapping[str, Any] | None) -> list[str]:
    """The Markdown "Tool coverage" section (behave_aitest.coverage); nothing without servers."""
    if not cov or not cov.get("servers"):
        return []
    gate = f" · ⛔ below min_tool_coverage {percent(cov['min_tool_coverage'])}" if cov.get("below_gate") else ""
    lines = [f"## Tool coverage: {percent(cov['ratio'])} ({cov['called']} of {cov['offered']} tools){gate}", ""]
    lines += ["| Server | Called | Never called | Failed calls | Doubled calls | Parameters never used |", "|---|---:|---|---:|---:|---|"]
    for row in cov["servers"]:
        unused = [f"{md(t['name'])}: {', '.join(md(p) for p in t['unused_params'])}" for t in row["tools"] if t["ok"] and t["unused_params"]]
        lines.append(
            f"| {md(row['server'])} | {row['called']}/{row['offered']} ({percent(row['ratio'])}) | {', '.join(md(n) for n in row['never_called']) or '–'} "
            f"| {sum(t['failed'] for t in row['tools'])} | {sum(t['doubled'] for t in row['tools'])} | {'; '.join(unused) or '–'} |"
        )
    return [*lines, ""]
