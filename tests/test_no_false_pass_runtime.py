"""Issue 24, part A, items that live in the runtime: start-up work never counts against a turn's
``timeout_s`` (item 4), and the leaderboard ranks models only on the scenarios they all ran
(item 5). Each runs ``python -m behave`` in a subprocess against the fake OpenAI server."""

from __future__ import annotations

import json

from conftest import Project, llm_config
from behave_aitest.model.fakellm import FakeOpenAI


def test_start_up_never_counts_against_the_turn_timeout(project: Project, fake_llm: FakeOpenAI) -> None:
    """Item 4: the first turn of a fresh interpreter imports litellm (seconds of CPU) before
    its first model call; with ``timeout_s = 3`` and a model that answers at once, the turn
    must not time out, and no coroutine may be left un-awaited."""
    fake_llm.add({"content": "Hello there."})
    project.config(llm_config(fake_llm, timeout_s=3, retries=0))
    project.feature(
        "hello.feature",
        """
        Feature: Start-up
          Scenario: First turn
            When the user says "hello"
            Then the response mentions "Hello"
        """,
    )
    result = project.run("-f", "plain", fresh=True, env={"PYTHONWARNINGS": "always::RuntimeWarning"})
    assert result.returncode == 0, result.output
    assert "timeout" not in result.output and "never awaited" not in result.output, result.output


LEADER_RULES = """
[[rule]]
when = 'hello'
reply = "Hello."

[[models.careful.rule]]
when = 'move'
reply = "How much?"

[[models.hasty.rule]]
when = 'move'
reply = "Moved everything."
"""

COMPARED = """
@model:scripted/careful @model:scripted/hasty
Feature: Compare
  Scenario: Move
    When the user says "move money"
    Then the response mentions "how much"

  Scenario: Move again
    When the user says "move more"
    Then the response mentions "how much"
"""

OTHER = """
Feature: Small talk
  Scenario: One
    When the user says "hello"
    Then the response mentions "hello"

  Scenario: Two
    When the user says "hello again"
    Then the response mentions "hello"

  Scenario: Three
    When the user says "hello, three"
    Then the response mentions "hello"
"""


def test_the_leaderboard_ranks_only_models_that_ran_the_same_scenarios(project: Project) -> None:
    """Item 5: plain ``scripted`` passed 3 unrelated scenarios, ``scripted/careful`` and
    ``scripted/hasty`` ran the same 2: only the two compared are ranked; the third is shown
    apart, saying why (JSON, Markdown)."""
    (project.root / "rules.toml").write_text(LEADER_RULES, encoding="utf-8")
    project.config('[tool.behave_aitest]\nmodel = "scripted"\nscripted_rules = "rules.toml"\n')
    project.feature("compare.feature", COMPARED)
    project.feature("other.feature", OTHER)
    result = project.run(
        "-f", "behave_aitest.formatter:JSONFormatter", "-o", "r.json", "-f", "behave_aitest.formatter:MarkdownFormatter", "-o", "r.md", "-f", "plain"
    )
    assert result.returncode == 1, result.output  # hasty fails both
    doc = json.loads((project.root / "r.json").read_text(encoding="utf-8"))
    rows = {row["model"]: row for row in doc["models"]}
    assert rows["scripted/careful"]["rank"] == 1 and rows["scripted/hasty"]["rank"] == 2, doc["models"]
    assert rows["scripted"]["rank"] is None, rows["scripted"]
    assert "other scenarios" in rows["scripted"]["apart"] and "scripted/careful" in rows["scripted"]["apart"], rows["scripted"]
    assert [row["model"] for row in doc["models"]] == ["scripted/careful", "scripted/hasty", "scripted"]
    markdown = (project.root / "r.md").read_text(encoding="utf-8")
    assert "not ranked" in markdown and rows["scripted"]["apart"] in markdown, markdown
    # behave's "Failing scenarios" list names each scenario's model flow (one location, two flows)
    failing = result.output.split("Failing scenarios:", 1)[-1]
    assert "compare.feature:4  Move [scripted/hasty]" in failing, result.output
    assert "compare.feature:8  Move again [scripted/hasty]" in failing, result.output
    assert "[scripted/careful]" not in failing, result.output
