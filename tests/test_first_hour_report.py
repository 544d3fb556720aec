"""Issue 18, the report a new user reads first, checked in Debian's headless Chromium on a
machine without an emoji font: icons that draw (inline SVG), a tooltip on every figure and
badge, counts in the singular for one, filters that agree with the cards, a banner when the
scripted model answered, and the title from ``[project] name``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from chromium import Browser, find_chromium
from conftest import BANK, Project, llm_config

from behave_aitest.model.fakellm import FakeOpenAI
from behave_aitest.report.render import plural, scripted_answers

CHROMIUM = find_chromium()

FEATURE = """\
@session @model:openai/model-a @model:openai/model-b
Feature: Chat
  Scenario: one
    When the user says "balance please"
    Then the agent called tool "get_balance"
  Scenario: two
    When the user says "two"
    Then the response mentions "two"
  Scenario: three
    When the user says "three"
"""

SCRIPTED = """\
@model:scripted
Feature: Scripted
  Scenario: greet
    When the user says "hello"
    Then the response mentions "Hi"
"""

RULES = '[[rule]]\nwhen = "hello"\nreply = "Hi there."\n'

# Counts a sentence never gives in the plural for one (the old report wrote "1 features").
ONE_PLURAL = re.compile(r"(?<![\d.,])1 (features|scenarios|turns|tool calls|errors|msgs|messages|calls|retries|runs|LLM calls)\b")
# Emoji and pictographs a machine without an emoji font shows as empty boxes.
EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\u23e9-\u23fa\u231a-\u231b\ufe0f]")


def _brain(request: dict) -> dict:
    messages = request["messages"]
    text = str(messages[-1].get("content") or "")
    if messages[-1]["role"] == "tool":
        return {"content": f"Your balance: {text}"}
    if text == "balance please":
        return {"tool_calls": [("get_balance", {"account": "checking"})]}
    if request["model"] == "model-b" and text == "two":
        return {"status": 401, "message": "Missing credentials."}
    return {"content": f"ok {text}" if request["model"] == "model-b" else "something else"}


def test_plural_and_scripted_banner_rules() -> None:
    assert [plural(0, "turn"), plural(1, "turn"), plural(2, "retry", "retries"), plural(1, "retry", "retries")] == [
        "0 turns", "1 turn", "2 retries", "1 retry"
    ]

    def doc(*calls: dict, cassette: dict | None = None) -> dict:
        turn = {"model_calls": list(calls)}
        return {"features": [{"cassette": cassette, "scenarios": [{"turns": [turn], "cassette": None}]}]}

    assert scripted_answers(doc({"model": "scripted"})) == "live"
    assert scripted_answers(doc({"model": "scripted/careful"}, {"model": "scripted/hasty"})) == "live"
    assert scripted_answers(doc({"model": "scripted"}, {"model": "openai/gpt-4.1"})) == "some"
    assert scripted_answers(doc({"model": "openai/gpt-4.1"})) is None
    recorded = {"mode": "replay", "recorded_at": "2026-11-01", "recorded_scripted": True}
    assert scripted_answers(doc({"model": "scripted", "replayed": True}, cassette=recorded)) == "replayed"
    assert scripted_answers(doc({"model": "openai/x", "replayed": True}, cassette={**recorded, "recorded_scripted": False})) is None


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: the report's browser tests need Debian's chromium package (apt-get install -y chromium)")
def test_the_report_explains_itself_in_a_browser_without_an_emoji_font(project: Project, tmp_path: Path) -> None:
    with FakeOpenAI(brain=_brain) as server:
        project.config(
            '[project]\nname = "bank-agent-tests"\n\n'
            + llm_config(server, retries=0, scripted_rules="features/rules.toml")
            + BANK
            + '[tool.behave_aitest.agents.banker]\nservers = ["bank"]\n'
        )
        (project.root / "features" / "rules.toml").write_text(RULES, encoding="utf-8")
        project.feature("chat.feature", FEATURE)
        project.feature("scripted.feature", SCRIPTED)
        result = project.run("-f", "behave_aitest.formatter:HTMLFormatter", "-o", "reports/r.html",
                             "-f", "behave_aitest.formatter:MarkdownFormatter", "-o", "reports/r.md")
    assert result.returncode == 1, result.output
    doc = json.loads((project.root / "reports" / "r.json").read_text(encoding="utf-8"))
    assert doc["title"] == "bank-agent-tests"
    t = doc["totals"]
    assert (t["passed"], t["failed"], t["error"], t["skipped"]) == (4, 1, 1, 1), t
    markdown = (project.root / "reports" / "r.md").read_text(encoding="utf-8")
    assert "Some answers come from behave-aitest's built-in **scripted model**, not an LLM." in markdown
    assert not ONE_PLURAL.search(markdown), ONE_PLURAL.search(markdown)

    assert CHROMIUM is not None
    with Browser(CHROMIUM) as browser:
        browser.open(project.root / "reports" / "r.html")
        assert browser.js("document.documentElement.dataset.ready") == "1"
        assert browser.js("document.querySelector('h1').textContent") == "bank-agent-tests"
        assert "Some answers come from the scripted model, not from an LLM." in browser.js("document.querySelector('.scripted-banner').innerText")

        # Icons are inline SVG that draw something; no emoji anywhere in the page, also
        # once every scenario is open (conversations, tool calls, steps).
        browser.js("document.querySelectorAll('.scn-head').forEach(h => h.click())")
        text = browser.js("document.body.innerText")
        assert not EMOJI.search(text), EMOJI.search(text)
        sizes = browser.js("Array.from(document.querySelectorAll('svg.i')).filter(e => e.offsetParent !== null).map(e => e.getBoundingClientRect().width)")
        assert len(sizes) > 30 and min(sizes) > 8, sizes
        drawn = browser.js("document.querySelector('.session svg.i use').getBBox().width")
        assert drawn > 5, "the <use> finds its symbol"
        for name in ("session", "tool", "skipped", "passed", "failed", "error"):
            assert browser.js(f"document.querySelectorAll('svg.i-{name}').length") > 0, name
        assert browser.js("document.querySelectorAll('.rank.r1, .rank.r2, .rank.r3').length") == 2  # model-a, model-b; scripted ran others

        # A tooltip on every figure and badge.
        untitled = browser.js(
            "Array.from(document.querySelectorAll('.card, .card .s > span, .feature-stats > span, .metrics > span, .tag, "
            ".carry, code.model, .rank, .verdict, .turn-head > *, .tool-head > *, .step-time, .loc, #leaderboard td, #matrix td + td'))"
            ".filter(e => !e.closest('[title]') && !e.querySelector('[title]')).map(e => e.outerHTML.slice(0, 120))"
        )
        assert untitled == [], untitled
        latency = browser.js("document.querySelector('.turn-head [title^=latency]').title")
        assert re.fullmatch(r"latency [\d.]+ (ms|s) / [\d.]+ (ms|s): time waiting for the model / the whole turn \(model, tools and the rest\)", latency), latency
        carry = browser.js("document.querySelector('.carry').title")
        assert re.fullmatch(r"\d+ messages? of history carried into the next scenario", carry), carry

        # Singular for one, everywhere.
        text = browser.js("document.body.innerText")
        assert not ONE_PLURAL.search(text), ONE_PLURAL.search(text)
        assert "1 turn" in text and "1 tool call" in text and "1 error" in text

        # Filters count what the cards count.
        card = browser.js("document.querySelector('.card .s').innerText")
        assert card == "4 passed · 1 failed · 1 error · 1 skipped", card
        counts = browser.js("Object.fromEntries(Array.from(document.querySelectorAll('[data-filter]')).map(b => [b.dataset.filter, b.querySelector('span').textContent]))")
        assert counts == {"all": "7", "passed": "4", "failed": "1", "error": "1", "skipped": "1"}, counts
        for name, shown in (("failed", 1), ("error", 1), ("skipped", 1), ("passed", 4)):
            browser.js(f"document.querySelector('[data-filter={name}]').click()")
            assert browser.js("document.getElementById('count').textContent") == f"{shown} of 7 scenarios", name
            statuses = browser.js("Array.from(document.querySelectorAll('article.scn')).filter(a => !a.hidden).map(a => a.dataset.status)")
            assert set(statuses) == {name}, (name, statuses)
        browser.screenshot(tmp_path / "report.png", full_page=True)
        assert browser.errors() == []
        assert [u for u in browser.requests() if not u.startswith(("file:", "data:"))] == []
