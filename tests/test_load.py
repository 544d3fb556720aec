"""Many conversations in one run: no file descriptor or process leak, memory flat.

Each Outline row is a conversation with its own bank server process (scope
conversation). A step of the test project notes the behave process's open file
descriptors and RSS after each conversation; the count must not grow with the number of
conversations. CI runs 40 conversations, enough to show a per-conversation leak (it would
add >= 40 fds); ``AITEST_LOAD_CONVERSATIONS=500 pytest tests/test_load.py`` runs the
issue's 500 (docs/reliability.md has the figures of such a run)."""

from __future__ import annotations

import json
import os

from conftest import BANK, Project, llm_config, processes_in

from behave_aitest.model.fakellm import FakeOpenAI

ROWS = int(os.environ.get("AITEST_LOAD_CONVERSATIONS", "40"))

NOTE_STEP = '''
import json, os, resource
from behave import then

@then("I note the resources")
def note(context):
    with open("resources.jsonl", "a") as f:
        f.write(json.dumps({"fds": len(os.listdir("/proc/self/fd")),
                            "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}) + "\\n")
'''


def test_many_conversations_leak_nothing(project: Project) -> None:
    (project.root / "features" / "steps" / "note.py").write_text(NOTE_STEP)
    rows = "\n".join(f"      | {i} |" for i in range(ROWS))
    project.feature(
        "load.feature",
        f"""\
Feature: Load
  Scenario Outline: conversation <n>
    Given the MCP server "bank"
    When the user says "balance <n>"
    Then the agent called tool "get_balance"
    And I note the resources
    Examples:
      | n |
{rows}
""",
    )
    brain_calls = {"n": 0}

    def brain(request: dict) -> dict:
        brain_calls["n"] += 1
        if request["messages"][-1]["role"] == "user":
            return {"tool_calls": [("get_balance", {"account": "checking"})]}
        return {"content": "ok"}

    with FakeOpenAI(brain=brain) as server:
        project.config(llm_config(server) + BANK)
        result = project.run("-f", "progress", timeout=60 + 6 * ROWS)
    assert result.returncode == 0, result.output[-3000:]
    notes = [json.loads(line) for line in (project.root / "resources.jsonl").read_text().splitlines()]
    assert len(notes) == ROWS
    early, late = notes[5], notes[-1]
    print(f"{ROWS} conversations: fds {early['fds']} -> {late['fds']}, peak RSS {early['rss_kb']} -> {late['rss_kb']} kB")
    assert late["fds"] - early["fds"] <= 3, [n["fds"] for n in notes]
    # Peak RSS may grow a little (allocator, caches); a leak per conversation would grow it steadily.
    assert late["rss_kb"] - early["rss_kb"] < 40_000, [n["rss_kb"] for n in notes]
    assert processes_in(project.root) == []
