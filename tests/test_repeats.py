"""Repeated runs with a flaky scripted model: pass rate, pass^k, flaky flag, exit code."""

from __future__ import annotations

import json
from itertools import cycle

from conftest import Project, llm_config

from behave_aitest.model.fakellm import FakeOpenAI

FEATURE = """\
Feature: Flaky
  Scenario: says yes
    When the user says "Do you agree?"
    Then the response mentions "yes"
"""


def flaky(answers: list[str]) -> FakeOpenAI:
    pending = cycle(answers)
    return FakeOpenAI(brain=lambda request: {"content": next(pending)})


def test_repeat_with_min_pass_rate(project: Project) -> None:
    project.feature("f.feature", FEATURE)
    with flaky(["yes", "no", "yes", "yes", "yes"]) as server:
        project.config(llm_config(server))
        result = project.run("-D", "aitest.repeat=5", "-D", "aitest.min_pass_rate=0.8")
        assert result.returncode == 0, result.output
        assert "4/5 runs passed (pass rate 80%, pass^5 no) FLAKY: passes against min_pass_rate 0.8" in result.output
        assert "1 scenario passed" in result.output
        assert len(server.requests) == 5
    with flaky(["yes", "no", "yes", "yes", "yes"]) as server:
        project.config(llm_config(server))
        result = project.run("-D", "aitest.repeat=5")
        assert result.returncode == 1
        assert "FLAKY: fails against min_pass_rate 1" in result.output


def test_repeat_tag_and_a_session_repeated_as_a_whole(project: Project) -> None:
    project.feature(
        "s.feature",
        """\
        @session @repeat:3
        Feature: Session
          Scenario: one
            When the user says "Remember kiwi."
          Scenario: two
            When the user says "Which fruit?"
            Then the response mentions "kiwi"
            And the conversation has 4 messages
        """,
    )
    with flaky(["ok", "kiwi", "ok", "kiwi", "ok", "kiwi"]) as server:
        project.config(llm_config(server))
        result = project.run()
        assert result.returncode == 0, result.output
        assert "'two': 3/3 runs passed (pass rate 100%, pass^3 yes): passes" in result.output
        # each run of the session starts from an empty history
        assert [len(r["messages"]) for r in server.requests] == [1, 3, 1, 3, 1, 3]


def test_model_gate_fails_the_run_and_names_the_model(project: Project) -> None:
    project.feature("f.feature", FEATURE)
    brain = {"a": cycle(["yes"]), "b": cycle(["yes", "no"])}
    with FakeOpenAI(brain=lambda request: {"content": next(brain[request["model"]])}) as server:
        project.config(llm_config(server))
        result = project.run(
            "-D", "aitest.models=openai/a,openai/b", "-D", "aitest.repeat=4", "-D", "aitest.min_pass_rate=0.6",
            "-f", "behave_aitest.formatter:HTMLFormatter", "-o", "r.html", "-f", "plain",
        )
        assert result.returncode == 1
        assert "model 'openai/b' passed 2/4 runs (50%), below min_pass_rate 0.6" in result.output
        assert "'openai/a'" not in result.output.split("HOOK-ERROR")[-1]
        # The report's leaderboard marks the model below the gate, and only that one.
        rows = {row["model"]: row for row in json.loads((project.root / "r.json").read_text(encoding="utf-8"))["models"]}
        assert rows["openai/b"]["below_gate"] is True and rows["openai/a"]["below_gate"] is False
        assert (project.root / "r.html").read_text(encoding="utf-8").count("<use href=\"#i-gate\"/></svg> below min_pass_rate") == 1
