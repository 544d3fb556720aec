"""Faults of MCP servers: each gives a clear, specific error of the right scenario, later
scenarios still run, and no server process is left behind."""

from __future__ import annotations

import json
import subprocess

from conftest import Project, llm_config, processes_in

from behave_aitest.model.fakellm import FakeOpenAI

FAULTY = """
[tool.behave_aitest.servers.faulty]
command = ["python", "-m", "behave_aitest.testing.faulty_server"]
tool_timeout_s = 1
[tool.behave_aitest.servers.dead]
command = ["python", "-m", "behave_aitest.testing.faulty_server"]
env = { FAULTY_EXIT_AT_START = "1" }
[tool.behave_aitest.servers.missing]
command = ["no-such-program-xyz"]
[tool.behave_aitest.servers.badschema]
command = ["python", "-m", "behave_aitest.testing.faulty_server"]
env = { FAULTY_BAD_SCHEMA = "1" }
[tool.behave_aitest.servers.down]
url = "http://127.0.0.1:{port}/mcp"
[tool.behave_aitest.servers.roomy]   # the same server, with time for five megabytes on a busy machine
command = ["python", "-m", "behave_aitest.testing.faulty_server"]
tool_timeout_s = 60
[tool.behave_aitest.agents.f]
servers = ["faulty"]
[tool.behave_aitest.agents.big]
servers = ["roomy"]
[tool.behave_aitest.agents.bad]
servers = ["badschema"]
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
  Scenario: invalid input schema
    Given the agent "bad"
    When the user says "x"
  Scenario: http server down
    Given the MCP server "down"
    When the user says "x"
  Scenario: five megabytes
    Given the agent "big"
    When the user says "big"
    Then the result of tool "big" mentions "END"
"""


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])




def test_server_faults(project: Project, fake_llm: FakeOpenAI) -> None:
    fake_llm.add(
        {"tool_calls": [("crash", {})]},
        {"tool_calls": [("echo", {"text": "x"})]},
        {"content": "echoed"},
        {"tool_calls": [("hang", {}), ("fail", {})]},
        {"content": "gave up"},
        {"tool_calls": [("big", {"megabytes": 5})]},
        {"content": "that was long"},
    )
    project.config(llm_config(fake_llm) + FAULTY.replace("{port}", str(closed_port())))
    project.feature("faults.feature", FEATURE)
    result = project.run("-f", "behave_aitest.formatter:HTMLFormatter", "-o", "reports/faults.html", "-f", "plain")
    out = result.output
    assert result.returncode == 1
    assert "3 scenarios passed, 0 failed, 5 error" in out
    # A crash fails the current step with the server's own last words ...
    assert "MCP server 'faulty' stopped answering during a call to 'crash'" in out
    assert "faulty server: crashing on purpose (tool 'crash')" in out
    # ... and the next conversation gets a new process (scenario "after crash" passed).
    assert "MCP server 'dead' failed to start" in out
    assert "faulty server: refusing to start (FAULTY_EXIT_AT_START is set)" in out
    assert "MCP server 'missing': command not found: 'no-such-program-xyz'" in out
    assert "[tool.behave_aitest.servers.missing]" in out
    assert (
        "MCP server 'badschema': tool 'broken' has an invalid input schema: 'zero' is not of type 'number' "
        "(at properties/n/minimum). Fix the tool's parameters in the server, or leave the tool out with the agent's allowed_tools."
    ) in out
    assert "MCP server 'down' failed to start: cannot reach http://127.0.0.1:" in out
    assert "Is the server running? behave-aitest connects to HTTP servers; it does not start them" in out
    assert processes_in(project.root) == []

    # The report is written and shows each fault on its own scenario.
    doc = json.loads((project.root / "reports" / "faults.json").read_text(encoding="utf-8"))
    scenarios = {s["name"]: s for f in doc["features"] for s in f["scenarios"]}
    for name, words in (
        ("crash", "stopped answering during a call to 'crash'"),
        ("dead at start", "FAULTY_EXIT_AT_START is set"),
        ("missing", "command not found"),
        ("invalid input schema", "invalid input schema"),
        ("http server down", "MCP server 'down' failed to start"),
    ):
        assert scenarios[name]["status"] == "error", name
        assert words in scenarios[name]["first_failure"]["message"], (name, scenarios[name]["first_failure"])
    hang = scenarios["hang"]["turns"][0]["tool_calls"]
    assert [c["is_error"] for c in hang] == [True, True] and "did not answer within 1 s" in hang[0]["result"]
    # A 5 MB result: whole in the JSON, cut with a note in the HTML.
    result_text = scenarios["five megabytes"]["turns"][0]["tool_calls"][0]["result"]
    assert len(result_text) > 5_000_000 and result_text.endswith("END")
    page = (project.root / "reports" / "faults.html").read_text(encoding="utf-8")
    assert len(page) < 1_000_000 and "more characters not shown; the JSON report has the full text" in page


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
