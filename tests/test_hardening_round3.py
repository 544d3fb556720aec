"""Issue 25, hardening round three: what a hostile server (behave_aitest.testing.hostile_server),
a greedy server and a broken run can still do. One test per finding (docs/reliability.md,
"Round three: a hostile server"); behave runs as `python -m behave` in a subprocess, the
servers are real processes, litellm talks HTTP to the fake OpenAI server.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from conftest import Project, Result, llm_config, processes_in

from behave_aitest.fakellm import FakeOpenAI

HOSTILE = """
[tool.behave_aitest.servers.hostile]
command = ["python", "-m", "behave_aitest.testing.hostile_server"]
protocol = "{protocol}"
scope = "{scope}"
[tool.behave_aitest.agents.h]
servers = ["hostile"]
"""


def hostile(protocol: str = "legacy", scope: str = "conversation") -> str:
    return HOSTILE.format(protocol=protocol, scope=scope)


def run_bounded(project: Project, *args: str, timeout: float = 120, env: dict[str, str] | None = None) -> Result:
    """``python -m behave`` in a new interpreter and its own process group; a run still going
    after ``timeout`` is a hang: its whole group is killed and the test fails saying so."""
    clean = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    clean.update({"OPENAI_API_KEY": "sk-fake-key-for-the-local-fake-server", **(env or {})})
    proc = subprocess.Popen(
        [sys.executable, "-m", "behave", "--no-color", "--no-capture", *args],
        cwd=project.root, env=clean, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"the run hung: still going after {timeout} s\n{out[-3000:]}\n{err[-3000:]}") from None
    return Result(proc.returncode, out, err)


def scenarios(root: Path, name: str = "r.json") -> dict[str, dict[str, Any]]:
    doc = json.loads((root / "reports" / name).read_text(encoding="utf-8"))
    return {s["name"]: s for f in doc["features"] for s in f["scenarios"]}


REPORT = ("-f", "behave_aitest.formatter:JSONFormatter", "-o", "reports/r.json", "-f", "plain")

NAME = "Alice Wonderland from the ACME Corporation Intl!"

H3_FEATURE = f"""\
Feature: H3 catastrophic patterns
  Scenario: a pattern re would never finish
    Given the agent "h"
    And the user will answer the server's questions with:
      | name | {NAME} |
    When the user says "ask my name"

  Scenario: a pattern no engine decides quickly
    Given the agent "h"
    And the user will answer the server's questions with:
      | name | {"a" * 60}! |
    When the user says "ask my name again"
"""


def test_h3_a_catastrophic_pattern_in_a_question_cannot_hang_the_run(project: Project, fake_llm: FakeOpenAI) -> None:
    fake_llm.add(
        {"tool_calls": [("ask_name", {})]}, {"content": "asked"},
        {"tool_calls": [("ask_name", {"pattern": "^(a|aa)*$"})]}, {"content": "asked again"},
    )
    project.config(llm_config(fake_llm, timeout_s=10) + hostile())
    project.feature("h3.feature", H3_FEATURE)
    result = run_bounded(project, *REPORT, timeout=90)
    found = scenarios(project.root)
    first = found["a pattern re would never finish"]
    assert first["status"] == "failed", first
    assert "does not match" in first["first_failure"]["message"] and "'name'" in first["first_failure"]["message"], first
    second = found["a pattern no engine decides quickly"]
    assert second["status"] == "failed", second
    assert "could not be checked within" in second["first_failure"]["message"], second["first_failure"]
    # the server got a decline, not a hang
    calls = [c for s in (first, second) for t in s["turns"] for c in t["tool_calls"]]
    assert all("decline" in c["result"] for c in calls), calls
    assert "Traceback" not in result.output
    assert processes_in(project.root) == []
