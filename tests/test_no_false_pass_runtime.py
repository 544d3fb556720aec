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
