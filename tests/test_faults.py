"""Faults of MCP servers: each gives a clear, specific error of the right scenario, later
scenarios still run, and no server process is left behind."""

from __future__ import annotations

import subprocess

from conftest import Project, llm_config, processes_in

from behave_aitest.fakellm import FakeOpenAI

FAULTY = """
[tool.behave_aitest.servers.faulty]
command = ["python", "-m", "behave_aitest.testing.faulty_server"]
tool_timeout_s = 1
[tool.behave_aitest.servers.dead]
command = ["python", "-m", "behave_aitest.testing.faulty_server"]
env = { FAULTY_EXIT_AT_START = "1" }
[tool.behave_aitest.servers.missing]
command = ["no-such-program-xyz"]
[tool.behave_aitest.agents.f]
servers = ["faulty"]
"""

FEATURE = """\
Feature: faults
  Scenario: crash
    Given the agent "f"
    When the user says "crash please"
  Scenario: after crash
    Given the agent "f"
    When the user says "echo"
    Then the response mentions "echoed"
  Scenario: hang
    Given the agent "f"
    When the user says "hang"
    Then the result of tool "hang" mentions "did not answer within 1 s"
    And the agent called tool "fail"
    And the result of tool "fail" mentions "it went wrong"
  Scenario: dead at start
    Given the MCP server "dead"
    When the user says "x"
  Scenario: missing
    Given the MCP server "missing"
    When the user says "x"
"""




def test_server_faults(project: Project, fake_llm: FakeOpenAI) -> None:
    fake_llm.add(
        {"tool_calls": [("crash", {})]},
        {"tool_calls": [("echo", {"text": "x"})]},
        {"content": "echoed"},
        {"tool_calls": [("hang", {}), ("fail", {})]},
        {"content": "gave up"},
    )
    project.config(llm_config(fake_llm) + FAULTY)
    project.feature("faults.feature", FEATURE)
    result = project.run("-f", "plain")
    out = result.output
    assert result.returncode == 1
    assert "2 scenarios passed, 0 failed, 3 error" in out
    # A crash fails the current step with the server's own last words ...
    assert "MCP server 'faulty' stopped answering during a call to 'crash'" in out
    assert "faulty server: crashing on purpose (tool 'crash')" in out
    # ... and the next conversation gets a new process (scenario "after crash" passed).
    assert "MCP server 'dead' failed to start" in out
    assert "faulty server: refusing to start (FAULTY_EXIT_AT_START is set)" in out
    assert "MCP server 'missing': command not found: 'no-such-program-xyz'" in out
    assert "[tool.behave_aitest.servers.missing]" in out
    assert processes_in(project.root) == []


def test_servers_get_only_the_environment_they_are_given(project: Project, fake_llm: FakeOpenAI) -> None:
    fake_llm.add(
        {"tool_calls": [("getenv", {"name": "OPENAI_API_KEY"}), ("getenv", {"name": "GREETING"}), ("getenv", {"name": "PATH"})]},
        {"content": "ok"},
    )
    project.config(
        llm_config(fake_llm)
        + '[tool.behave_aitest.servers.faulty]\ncommand = ["python", "-m", "behave_aitest.testing.faulty_server"]\n'
        + 'env = { GREETING = "${HELLO_FROM_TEST:-none} world" }\n'
    )
    project.feature(
        "env.feature",
        """\
        Feature: env
          Scenario: env
            Given the MCP server "faulty"
            When the user says "env?"
            Then the agent called tool "getenv" 3 times
        """,
    )
    result = project.run(env={"HELLO_FROM_TEST": "hello"})
    assert result.returncode == 0, result.output
    results = [m["content"] for m in fake_llm.requests[1]["messages"] if m["role"] == "tool"]
    assert results[0] == "(unset)"  # the runner's provider key does not reach the server
    assert results[1] == "hello world"
    assert results[2] != "(unset)"


def test_ctrl_c_in_the_middle_of_a_turn_stops_at_once_and_stops_servers(project: Project, fake_llm: FakeOpenAI) -> None:
    import os
    import signal
    import sys
    import time

    fake_llm.add({"tool_calls": [("echo", {"text": "x"})]}, {"content": "late", "delay": 60})
    project.config(llm_config(fake_llm) + FAULTY)
    project.feature("slow.feature", 'Feature: S\n  Scenario: slow\n    Given the agent "f"\n    When the user says "hi"\n')
    env = {**os.environ, "OPENAI_API_KEY": "sk-fake"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "behave", "--no-color", "-f", "plain"], cwd=project.root, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    deadline = time.monotonic() + 60
    while len(fake_llm.requests) < 2 and time.monotonic() < deadline:  # the slow second model call is in flight
        time.sleep(0.1)
    assert len(fake_llm.requests) == 2
    proc.send_signal(signal.SIGINT)
    started = time.monotonic()
    out, _ = proc.communicate(timeout=50)
    assert time.monotonic() - started < 40, "an interrupted turn must not wait for the slow (60 s) model"
    assert proc.returncode == 1
    assert "ABORTED" in out
    assert processes_in(project.root) == []
