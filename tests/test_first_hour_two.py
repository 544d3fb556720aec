"""Issue 24, part C (the first hour, round two): what ``report diff`` says (item 19) and no
emoji in the diff's HTML (item 20). Pure: two report documents compared by ``report.diff``."""

from __future__ import annotations

import re

from behave_aitest.report import diff

EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\u23e9-\u23fa\u231a-\u231b\ufe0f]")


def _scn(name: str, status: str = "passed", calls: list | None = None, failure: dict | None = None) -> dict:
    turns = [{"tool_calls": [{"name": n, "arguments": a} for n, a in (calls or [])]}]
    stats = {"cost_usd": 0.01, "unknown_cost_calls": 0, "input_tokens": 100, "output_tokens": 10, "latency_s": 1.0}
    return {"name": name, "status": status, "turns": turns, "stats": stats, "first_failure": failure}


def _doc(*scenarios: dict) -> dict:
    return {"title": "t", "features": [{"name": "F", "title": "F", "scenarios": list(scenarios)}], "totals": {}}


BASE = _doc(_scn("pay", calls=[("transfer", {"to_account": "savings", "amount": 500})]), _scn("greet"))
NEW = _doc(
    _scn("pay", calls=[("transfer", {"to_account": "savings", "amount": 5000, "memo": "x"})]),
    _scn("greet", "failed", failure={"step": 'Then the response mentions "hello"', "message": "Expected the response to mention 'hello'."}),
)


def test_report_diff_says_which_argument_changed_and_why_a_regression_failed() -> None:
    """Item 19: ``arguments changed: transfer`` named no argument; now each changed argument
    with its old and new value; a regression names its failing step and message."""
    result = diff.compare(BASE, NEW)
    text = diff.markdown(result)
    assert "`transfer`: amount 500 → 5000, memo (none) → \"x\"" in text, text
    assert 'Then the response mentions "hello"' in text and "Expected the response to mention 'hello'." in text, text
    page = diff.html(result)
    assert "transfer: amount 500 → 5000" in page and "Expected the response to mention" in page


def test_the_diff_html_and_the_baseline_panel_have_no_emoji() -> None:
    """Item 20: the diff page's headline and the "Compared with the baseline" panel drew ❌/✅
    (empty boxes without an emoji font)."""
    result = diff.compare(BASE, NEW, {"cost_usd": 0.0})
    page = diff.html(result)
    assert not EMOJI.search(page), EMOJI.findall(page)
    assert "1 regression" in page
    doc = dict(NEW)
    doc["baseline"] = None
    assert not EMOJI.search(diff.headline(result, icons=False))
