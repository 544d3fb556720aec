"""Item 5, reports (behave_aitest/formatter.py, report.py, render.py): JSON and HTML for 100 and
1,000 scenarios x 4 turns.

* Generation time: each suite runs once through behave (fake model, bank server with
  ``scope = "run"``) with the HTML and the JSON formatter, wrapped by
  :mod:`bench.timed_formatter`: at the end of the run each formatter generates its report
  (document from behave's features and the plugin's records, render, write) ``repeat``
  times on the same data. File sizes are those of the written reports.
* In headless Chromium (Debian's ``chromium``, driven over the DevTools pipe by
  tests/chromium.py): the page's own navigation timing (start to the end of the load
  event, the report's script included), and the time one filter takes to apply: the
  "Failed" status button, and a search typed into the search box (until the count
  changes, the search's 150 ms debounce subtracted), each including the layout it causes.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from .common import BEHAVE, ROOT, Bench, BenchError, Figure, Row, bank_pyproject, banking_features, check, not_measured, run_timed, split, write_project

ITEM = 5
TITLE = "Reports"
RESPONSIVE_S = 0.1  # a filter that answers within 100 ms feels instant (the usual input-response budget)
SEARCH_DEBOUNCE_S = 0.15  # report.js waits this long after the last keystroke


def run(bench: Bench) -> list[Row]:
    needed = ("behave_aitest/formatter.py", "behave_aitest/report.py", "behave_aitest/render.py")
    if not all((ROOT / p).exists() for p in needed):
        what = "JSON and HTML report, 100 and 1,000 scenarios × 4 turns"
        return [not_measured(ITEM, what, "the HTML/JSON report formatter (behave_aitest/formatter.py, report.py, render.py)")]
    size = bench.size
    small, large = (100, 1000) if size.name == "full" else (size.replay_small, size.replay_large)
    reports = {n: generate(bench, n) for n in (small, large)}
    rows = []
    for kind, suffix in (("JSON", "json"), ("HTML", "html")):
        rows.append(
            Row(
                ITEM,
                f"{kind} report generation, {large:,} vs {small:,} scenarios × 4 turns (linear would be {large / small:g}×)",
                Figure(reports[large][suffix]["times"]),
                Figure(reports[small][suffix]["times"]),
                limit=12.0,
                note=(
                    "Time of the formatter's `close()`: build the report document from behave's features and the "
                    "plugin's records, render it, write the file; repeated on the same data at the end of one run per size."
                ),
            )
        )
        rows.append(
            Row(
                ITEM,
                f"{kind} report size, {large:,} vs {small:,} scenarios × 4 turns",
                Figure([reports[large][suffix]["bytes"]] * bench.repeat, "bytes"),
                Figure([reports[small][suffix]["bytes"]] * bench.repeat, "bytes"),
                note="Bytes on disk (identical in every repetition).",
            )
        )
    rows += browser(bench, reports[small]["html"]["path"], reports[large]["html"]["path"], small, large)
    return rows


def generate(bench: Bench, scenarios: int) -> dict:
    features, per_feature = split(scenarios)
    project = write_project(bench.folder(f"report-{scenarios}"), bank_pyproject(bench.llm(), scope="run"), banking_features(features, per_feature, 4))
    html, js = project / "report.html", project / "report.json"
    cmd = BEHAVE[:3] + ["--no-color", "-f", "bench.timed_formatter:TimedHTML", "-o", str(html),
                        "-f", "bench.timed_formatter:TimedJSON", "-o", str(js), "-D", "behave.formatter.aitest.json=false"]
    env = bench.env(BENCH_REPORT_REPEAT=str(bench.repeat), PYTHONPATH=str(ROOT))
    bench.log(f"  item 5: running {scenarios} scenarios × 4 turns with the report formatters")
    done = check(run_timed(cmd, project, env, timeout=3600), f"behave with the report formatters ({scenarios} scenarios)")
    out = {}
    for suffix, path in (("html", html), ("json", js)):
        times_file = Path(str(path) + ".times")
        if not times_file.exists():
            raise BenchError(f"the {suffix} formatter did not report its times:\n{done.tail()}")
        out[suffix] = {"times": json.loads(times_file.read_text()), "bytes": float(path.stat().st_size), "path": path}
    document = json.loads(js.read_text(encoding="utf-8"))
    totals = document.get("totals", {})
    if totals.get("scenarios") != scenarios or totals.get("passed") != scenarios:
        raise BenchError(f"the JSON report does not show {scenarios} passed scenarios: {totals}")
    return out


def _chromium_helper():
    path = ROOT / "tests" / "chromium.py"
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location("bench_chromium", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


LOAD_TIME = "(() => { const n = performance.getEntriesByType('navigation')[0]; return (n.loadEventEnd - n.startTime) / 1000; })()"
STATUS_FILTER = """(() => {
  const t = performance.now();
  document.querySelector('[data-filter="failed"]').click();
  document.body.getBoundingClientRect();
  const failed = (performance.now() - t) / 1000;
  document.querySelector('[data-filter="all"]').click();
  document.body.getBoundingClientRect();
  return failed;
})()"""
SEARCH = """new Promise((resolve) => {
  const box = document.getElementById('f-search'), count = document.getElementById('count');
  const before = count.textContent;
  const observer = new MutationObserver(() => {
    document.body.getBoundingClientRect();
    observer.disconnect();
    resolve((performance.now() - t) / 1000);
  });
  observer.observe(count, {childList: true, characterData: true, subtree: true});
  box.value = 'balance check 99';
  const t = performance.now();
  box.dispatchEvent(new Event('input'));
})"""
RESET = "document.getElementById('f-search').value = ''; document.getElementById('f-search').dispatchEvent(new Event('input')); true"


def browser(bench: Bench, small_html: Path, large_html: Path, small: int, large: int) -> list[Row]:
    what_load = f"HTML report in headless Chromium: load, {large:,} vs {small:,} scenarios"
    what_filter = f"HTML report of {large:,} scenarios in headless Chromium: time for a filter to apply (status; search)"
    helper = _chromium_helper()
    executable = helper.find_chromium() if helper else None
    if executable is None:
        needs = "headless Chromium (/usr/bin/chromium) and tests/chromium.py"
        return [not_measured(ITEM, what_load, needs), not_measured(ITEM, what_filter, needs)]
    load = {"small": [], "large": []}
    status, search = [], []
    with helper.Browser(executable) as page:
        def open_and_time(path: Path) -> float:
            page.open(path)
            if page.js("document.documentElement.getAttribute('data-ready')") != "1":
                raise BenchError(f"{path.name}: the report's script did not finish")
            return float(page.js(LOAD_TIME))

        def filters() -> None:
            status.append(float(page.js(STATUS_FILTER)))
            search.append(float(page.js(SEARCH)) - SEARCH_DEBOUNCE_S)
            page.js(RESET)

        open_and_time(large_html)  # warm-up: the browser's own first-page costs
        for rep in range(bench.repeat):
            for name, path in (("small", small_html), ("large", large_html)) if rep % 2 == 0 else (("large", large_html), ("small", small_html)):
                load[name].append(open_and_time(path))
                if name == "large":
                    filters()
            bench.log(f"  item 5, chromium {rep + 1}/{bench.repeat}: load small {load['small'][-1]:.3f} large {load['large'][-1]:.3f} s")
        errors = page.errors()
    if errors:
        raise BenchError(f"the report page logged errors: {errors[:3]}")
    responsive = max(max(status), max(search))
    return [
        Row(
            ITEM,
            what_load,
            Figure(load["large"]),
            Figure(load["small"]),
            limit=10.0,
            note="The page's navigation timing, from navigation start to the end of the load event (parsing the "
            "embedded document and drawing the scenario list included); a fresh navigation each time.",
        ),
        Row(
            ITEM,
            what_filter + f": status {Figure(status).show()}, search {Figure(search).show()}",
            Figure([max(a, b) for a, b in zip(status, search)]),
            at_most=RESPONSIVE_S,
            note=(
                "Clicking the \"Failed\" button (all scenarios pass, so every row is hidden) and typing a search "
                "(\"balance check 99\"), each until the page has applied it and laid itself out; the figure is the "
                "slower of the two. Target: within 100 ms, the usual budget for a response to input to feel "
                "instant (our reading of \"stays responsive\")."
                + ("" if responsive <= RESPONSIVE_S else f" Slowest: {responsive * 1000:.0f} ms.")
            ),
        ),
    ]
