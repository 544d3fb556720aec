"""Model-side faults, injected by the fake OpenAI server: each gives the right outcome and
message for its own scenario, later scenarios still run, no server process is left."""

from __future__ import annotations

import json

from conftest import BANK, Project, llm_config, processes_in

from behave_aitest.model.fakellm import FakeOpenAI

# name -> (replies the fake server gives for that scenario, Then steps, expected outcome, message)
CASES: list[tuple[str, list[dict], str, str, str]] = [
    ("rate limited then ok", [{"status": 429, "headers": {"retry-after": "0"}}, {"content": "fine"}],
     'Then the response mentions "fine"', "passed", ""),
    ("server error", [{"status": 500}] * 3, "", "error", "The agent did not finish the turn (model error): InternalServerError after 3 attempts"),
    ("unavailable", [{"status": 503}] * 3, "", "error", "(model error): ServiceUnavailableError after 3 attempts"),
    ("connection reset", [{"disconnect": True}] * 3, "", "error", "after 3 attempts"),
    ("slower than the timeout", [{"content": "late", "delay": 30}], "", "error",
     "(timeout): the turn did not finish within 8 s (timeout_s)"),
    ("not JSON", [{"raw": "<html>oops</html>"}] * 3, "", "error", "(model error): InternalServerError"),
    ("arguments not JSON", [{"tool_calls": [{"name": "get_balance", "arguments": "{oops"}]}, {"content": "sorry"}],
     "Then no tool call failed", "failed", "Arguments are not valid JSON"),
    ("unknown tool", [{"tool_calls": [("drain_account", {})]}, {"content": "sorry"}],
     "Then no tool call failed", "failed", "Unknown tool 'drain_account'"),
    ("calls tools forever", [{"tool_calls": [("get_all_balances", {})]}] * 3, "", "failed",
     "(turn limit reached): the agent was still calling tools after 3 model calls (max_turns = 3)"),
    ("empty answer", [{"content": ""}], "Then the agent answered", "failed", "Expected a non-empty answer."),
    ("refusal", [{"content": "I can't help with that."}], 'Then the response mentions "savings"', "failed",
     "Expected the response to mention 'savings'."),
]


def test_model_faults(project: Project, fake_llm: FakeOpenAI) -> None:
    scenarios = []
    for name, replies, then, _, _ in CASES:
        fake_llm.add(*replies)
        scenarios.append(f"  Scenario: {name}\n    Given the MCP server \"bank\"\n    When the user says \"go\"\n" + (f"    {then}\n" if then else ""))
    fake_llm.add({"content": "still here"})
    scenarios.append('  Scenario: after the faults\n    When the user says "hello"\n    Then the response mentions "still here"\n')
    project.config(llm_config(fake_llm, max_turns=3, timeout_s=8, retries=2) + BANK)
    project.feature("faults.feature", "Feature: Model faults\n" + "".join(scenarios))
    result = project.run("-f", "behave_aitest.formatter:JSONFormatter", "-o", "reports/faults.json", "-f", "plain")
    out = result.output
    assert result.returncode == 1
    blocks = out.split("  Scenario: ")[1:]
    by_name = {block.splitlines()[0].strip(): block for block in blocks}
    for name, _, _, outcome, message in CASES:
        block = by_name[name]
        if outcome == "passed":
            assert "failed" not in block and "error" not in block, (name, block)
        else:
            assert f" ... {outcome} in " in block, (name, block)
            assert message in block, (name, message, block)
    assert "after the faults" in by_name and " ... failed" not in by_name["after the faults"]
    assert "2 scenarios passed, 5 failed, 5 error" in out
    assert processes_in(project.root) == []
    # The report is written and shows each fault on its own scenario.
    doc = json.loads((project.root / "reports" / "faults.json").read_text(encoding="utf-8"))
    in_report = {s["name"]: s for f in doc["features"] for s in f["scenarios"]}
    for name, _, _, outcome, message in CASES:
        assert in_report[name]["status"] == outcome, name
        if outcome != "passed":
            assert message in in_report[name]["first_failure"]["message"], (name, in_report[name]["first_failure"])
    retried = in_report["rate limited then ok"]["turns"][0]["model_calls"][0]
    assert retried["attempts"] == 2, retried  # the 429 shows as a retry
    assert doc["totals"]["passed"] == 2 and doc["totals"]["failed"] == 5 and doc["totals"]["error"] == 5
