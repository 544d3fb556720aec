"""Issue 24, part B, item 7: a stateless (2026-07-28) server's tool-list changes reach the next
model call, through ``subscriptions/listen`` (that era has no unsolicited notifications). The
studio server (behave_aitest/testing/studio_server.py) runs for real over stdio, pinned to
2026-07-28; its ``unlock_admin`` tool swaps itself for ``archive`` and says the list changed."""

from __future__ import annotations

import json

from conftest import Project, llm_config
from behave_aitest.model.fakellm import FakeOpenAI

CONFIG = """
[tool.behave_aitest.servers.studio]
command = ["python", "-m", "behave_aitest.testing.studio_server"]
protocol = "2026-07-28"

[tool.behave_aitest.agents.admin]
servers = ["studio"]
"""

FEATURE = """
Feature: Tool list changes of a stateless server
  Scenario: unlock, then archive in the same turn
    Given the agent "admin"
    When the user says "unlock admin and archive the fox project"
    Then the result of tool "archive" mentions "Archived fox"
"""


def test_a_stateless_servers_tool_list_change_reaches_the_next_model_call(project: Project, fake_llm: FakeOpenAI) -> None:
    project.config(llm_config(fake_llm, CONFIG))
    project.feature("stateless.feature", FEATURE)
    fake_llm.add({"tool_calls": [("unlock_admin", {})]}, {"tool_calls": [("archive", {"project": "fox"})]}, {"content": "Archived."})
    result = project.run("-f", "behave_aitest.formatter:JSONFormatter", "-o", "r.json", "-f", "plain")
    assert result.returncode == 0, result.output
    offered = [[t["function"]["name"] for t in r.get("tools", [])] for r in fake_llm.requests]
    assert "unlock_admin" in offered[0] and "archive" not in offered[0], offered
    assert "archive" in offered[1] and "unlock_admin" not in offered[1], offered
    doc = json.loads((project.root / "r.json").read_text(encoding="utf-8"))
    turn = doc["features"][0]["scenarios"][0]["turns"][0]
    assert turn["tool_list_changes"] == ["studio: +archive -unlock_admin"], turn.get("tool_list_changes")
