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


def test_a_missing_key_message_names_that_key_in_its_example(tmp_path, monkeypatch) -> None:
    """Item 22: a missing ANTHROPIC_API_KEY said "e.g. export OPENAI_API_KEY=..."."""
    import pytest

    from behave_aitest.config import ConfigError, load_config
    from behave_aitest.model.preflight import check_keys

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    (tmp_path / "pyproject.toml").write_text('[tool.behave_aitest]\nmodel = "anthropic/claude-sonnet-4-5"\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    config = load_config({})
    with pytest.raises(ConfigError) as caught:
        check_keys({"anthropic/claude-sonnet-4-5": "pyproject.toml"}, config)
    assert "export ANTHROPIC_API_KEY=..." in str(caught.value) and "OPENAI_API_KEY" not in str(caught.value), caught.value


def test_a_judge_step_without_a_judge_model_says_how_to_set_one(project) -> None:
    """Item 22: with the scripted model as the agent and no judge model, the judge step's error
    says how to set one (@judge:, judge_model, judge rules)."""
    (project.root / "rules.toml").write_text("[[rule]]\nwhen = 'hello'\nreply = 'Hello.'\n", encoding="utf-8")
    project.config('[tool.behave_aitest]\nmodel = "scripted"\nscripted_rules = "rules.toml"\n')
    project.feature(
        "judged.feature",
        """
        Feature: Judged
          Scenario: Polite
            When the user says "hello"
            Then the response satisfies "is polite"
        """,
    )
    result = project.run("-f", "plain")
    assert result.returncode == 1, result.output
    assert "The judge could not give a verdict" in result.output, result.output
    assert "no judge model is set" in result.output and "@judge:" in result.output and "judge_model" in result.output, result.output
    assert "docs/scripted-model.md#a-judge" in result.output, result.output
