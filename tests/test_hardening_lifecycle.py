"""Issue 13, lifecycle: cassettes that cannot be written, crashes during parallel tool calls,
signals, server children, errors that only mention a closed connection, turn timeouts during a
tool call, secrets in chained errors, HTTP MCP status codes.

Few behave runs, each exercising several cases (a run costs about 4 s of CPU).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import Project, llm_config, processes_in, wait_for_server_log

from behave_aitest.model.fakellm import FakeOpenAI
from behave_aitest.model.llm import retry_after

SERVER_TOKEN = "tok-Lifecycle-7a6b5c4d3e2f"
PROVIDER_KEY = "sk-fake-key-for-the-local-fake-server"  # what conftest's Project.run gives litellm

FAULTY = """
[tool.behave_aitest.servers.faulty]
command = ["python", "-m", "behave_aitest.testing.faulty_server"]
tool_timeout_s = 60
env = {{ FAULTY_TOKEN = "${{LIFECYCLE_TOKEN}}" }}
[tool.behave_aitest.servers.http401]
url = "http://127.0.0.1:{p401}/mcp"
[tool.behave_aitest.servers.http500]
url = "http://127.0.0.1:{p500}/mcp"
[tool.behave_aitest.agents.f]
servers = ["faulty"]
[tool.behave_aitest.agents.plain]
servers = []
"""

FEATURE = """\
Feature: lifecycle faults
  Scenario: crash during parallel calls
    Given the agent "f"
    When the user says "two things at once"
  Scenario: a JSON-RPC error that mentions a closed connection
    Given the agent "f"
    When the user says "pid, rpc error, pid"
    Then the result of tool "rpc_error" mentions "Connection closed by the upstream database"
    And the response mentions "still here"
  Scenario: a server that starts a helper
    Given the agent "f"
    When the user says "start a helper"
    Then the response mentions "helper started"
  Scenario: turn timeout during a tool call
    Given the agent "f"
    When the user says "hang"
  Scenario: rate limited with a nonsensical Retry-After and the key in the body
    When the user says "hello"
  Scenario: HTTP MCP server refuses the credentials
    Given the MCP server "http401"
    When the user says "x"
  Scenario: HTTP MCP server fails
    Given the MCP server "http500"
    When the user says "x"
"""


class _Status(BaseHTTPRequestHandler):
    """Answers every request with the server's fixed status."""

    def _answer(self) -> None:
        body = b'{"error": "nope"}'
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = _answer  # noqa: N815

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def status_servers() -> Iterator[dict[int, int]]:
    """Local HTTP servers answering 401 and 500 to everything: {status: port}."""
    servers = {}
    for status in (401, 500):
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Status)
        server.status = status  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers[status] = server
    yield {s: srv.server_address[1] for s, srv in servers.items()}
    for srv in servers.values():
        srv.shutdown()
        srv.server_close()


def _scenarios(root: Path) -> dict[str, dict]:
    doc = json.loads((root / "reports" / "r.json").read_text(encoding="utf-8"))
    return {s["name"]: s for f in doc["features"] for s in f["scenarios"]}


def test_faults_give_one_clear_error_keep_the_turn_and_leak_nothing(
    project: Project, fake_llm: FakeOpenAI, status_servers: dict[int, int]
) -> None:
    rate_limited = {"status": 429, "echo_auth": True, "headers": {"retry-after": "nan"}}
    fake_llm.add(
        {"tool_calls": [("echo", {"text": "fine"}), ("crash_after", {"seconds": 0.5})]},  # crash during parallel calls
        {"tool_calls": [("pid", {})]},  # a JSON-RPC error mentioning "connection closed"
        {"tool_calls": [("rpc_error", {})]},
        {"tool_calls": [("pid", {})]},
        {"content": "still here"},
        {"tool_calls": [("spawn_helper", {})]},  # a helper child process
        {"content": "helper started"},
        {"tool_calls": [("echo", {"text": "quick"}), ("hang", {"seconds": 600})]},  # the turn times out in 'hang'
        rate_limited, rate_limited, rate_limited,
    )
    project.config(llm_config(fake_llm, timeout_s=5) + FAULTY.format(p401=status_servers[401], p500=status_servers[500]))
    project.feature("lifecycle.feature", FEATURE)
    result = project.run(
        "-f", "behave_aitest.formatter:JSONFormatter", "-o", "reports/r.json", "-f", "plain", "--junit",
        "--junit-directory", "reports/junit", env={"LIFECYCLE_TOKEN": SERVER_TOKEN}, timeout=120,
    )
    out = result.output
    junit = "".join(p.read_text(encoding="utf-8") for p in (project.root / "reports" / "junit").glob("*.xml"))
    scenarios = _scenarios(project.root)
    leftovers = processes_in(project.root)

    # F6: no secret through chained or grouped exceptions, in the console or in JUnit.
    assert "<testcase" in junit and "[REDACTED:faulty.env.FAULTY_TOKEN]" in out
    for where, text in (("console", out), ("junit", junit)):
        assert SERVER_TOKEN not in text, where
        assert PROVIDER_KEY not in text, where
        assert "ExceptionGroup" not in text and "During handling of the above exception" not in text, where
        assert "The above exception was the direct cause" not in text, where

    # F8: the crash gives the same one-line server error as a single call; the turn is kept.
    crash = scenarios["crash during parallel calls"]
    assert crash["status"] == "error"
    assert "MCP server 'faulty' stopped answering during a call to 'crash_after'" in crash["first_failure"]["message"]
    turn = crash["turns"][0]
    assert len(turn["model_calls"]) == 1
    echo = [c for c in turn["tool_calls"] if c["name"] == "echo"]
    assert echo and echo[0]["result"] == "fine" and not echo[0]["is_error"], turn["tool_calls"]

    # F11: a JSON-RPC error is an error result for the model; the server is not restarted.
    rpc = scenarios["a JSON-RPC error that mentions a closed connection"]
    assert rpc["status"] == "passed", rpc.get("first_failure")
    pids = [c["result"] for c in rpc["turns"][0]["tool_calls"] if c["name"] == "pid"]
    assert len(pids) == 2 and pids[0] == pids[1], pids
    assert [c["is_error"] for c in rpc["turns"][0]["tool_calls"] if c["name"] == "rpc_error"] == [True]

    # F10: the helper the server started is stopped with it.
    assert scenarios["a server that starts a helper"]["status"] == "passed"
    assert leftovers == [], leftovers

    # F17: the call cut by the turn timeout is recorded and named.
    cut = scenarios["turn timeout during a tool call"]
    assert cut["status"] == "error"
    message = cut["first_failure"]["message"]
    assert "timeout" in message and "hang" in message and "tools called: none" not in message, message
    calls = {c["name"]: c for c in cut["turns"][0]["tool_calls"]}
    assert calls["echo"]["result"] == "quick" and "cut off by the turn timeout" in calls["hang"]["result"], calls

    # F6: a NaN Retry-After is not slept on (our own backoff instead); 429s are waited out until
    # timeout_s (issue 26), then the outcome is "throttled", a message that quotes nothing of the body.
    limited = scenarios["rate limited with a nonsensical Retry-After and the key in the body"]
    assert limited["status"] == "throttled", limited["first_failure"]
    message = limited["first_failure"]["message"]
    assert "kept refusing" in message and "429" in message and PROVIDER_KEY not in message, message

    # F21: HTTP status codes are named, with what to check.
    refused = scenarios["HTTP MCP server refuses the credentials"]["first_failure"]["message"]
    assert "MCP server 'http401'" in refused and "authentication failed (HTTP 401)" in refused and "headers" in refused, refused
    assert "Is the server running?" not in refused
    failed = scenarios["HTTP MCP server fails"]["first_failure"]["message"]
    assert "MCP server 'http500'" in failed and "server error (HTTP 500)" in failed and "Is the server running?" not in failed, failed


def test_retry_after_is_finite_and_not_negative() -> None:
    class Limited(Exception):
        def __init__(self, value: str) -> None:
            self.litellm_response_headers = {"retry-after": value}

    assert retry_after(Limited("nan")) is None
    assert retry_after(Limited("-5")) == 0.0
    wait = retry_after(Limited("inf"))
    assert wait is not None and math.isfinite(wait)
    assert retry_after(Limited("2.5")) == 2.5


CASSETTE_FEATURES = {
    "a_first.feature": """\
Feature: A plain scenario with a server
  Scenario: zero
    Given the agent "f"
    When the user says "zero"
""",
    "b_session.feature": """\
@session
Feature: A session
  Scenario: one
    When the user says "first"
  Scenario: two
    When the user says "second"
""",
    "c_plain.feature": """\
Feature: Plain after a session
  Scenario: fresh
    When the user says "hello"
    Then the conversation has 2 messages
""",
}


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A real folder nothing can be written to: chmod, or as root (whom chmod does not
    stop) a read-only tmpfs; skipped when neither is possible."""
    folder = tmp_path / "project" / "cassettes"
    folder.mkdir(parents=True)
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("running as root (chmod does not stop root) and cannot mount a read-only tmpfs")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def test_a_cassette_that_cannot_be_written_is_an_error_and_nothing_hangs(read_only_folder: Path, fake_llm: FakeOpenAI) -> None:
    project = Project(read_only_folder.parent)  # the folder that holds the read-only one
    echo = {"tool_calls": [("echo", {"text": "x"})]}
    fake_llm.add(echo, {"content": "zero"}, {"content": "one"}, {"content": "two"}, {"content": "hi"})
    # A failed write used to leak the conversation's server scope: after_all then waited for ever.
    project.config(llm_config(fake_llm, cassette="record", cassette_dir="cassettes") + FAULTY.format(p401=1, p500=1))
    for name, text in CASSETTE_FEATURES.items():
        project.feature(name, text)
    result = project.run("-f", "behave_aitest.formatter:JSONFormatter", "-o", "reports/r.json", "-f", "plain", env={"LIFECYCLE_TOKEN": SERVER_TOKEN}, timeout=60)
    out = result.output
    assert result.returncode == 1, out
    # F1: the failure names the file and the reason, as a hook error of its scenario or session feature.
    assert "HOOK-ERROR in after_feature" in out and "HOOK-ERROR in after_scenario" in out, out
    assert "cassettes/" in out and "could not be written" in out, out
    assert "Read-only file system" in out or "Permission denied" in out, out
    fresh = _scenarios(project.root)["fresh"]
    assert fresh["status"] == "error" and "could not be written" in fresh["first_failure"]["message"], fresh
    assert _scenarios(project.root)["zero"]["status"] == "error"
    # F2: the next feature does not continue the session (its step counting 2 messages passed).
    assert "Expected 2 messages" not in out, out
    assert len(fresh["turns"]) == 1 and fresh["turns"][0]["history_before"] == 0
    assert "Traceback" not in out
    assert processes_in(project.root) == []


def _pids_in(root: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if Path(os.readlink(proc / "cwd")) == root.resolve():
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


@pytest.mark.parametrize(
    "signals",
    [(signal.SIGINT, signal.SIGINT, signal.SIGINT), (signal.SIGTERM, signal.SIGINT, signal.SIGTERM)],
    ids=["three-ctrl-c", "sigterm-then-more"],
)
def test_signals_while_a_server_is_busy_leave_nothing_behind(
    project: Project, fake_llm: FakeOpenAI, tmp_path: Path, signals: tuple[signal.Signals, ...]
) -> None:
    fake_llm.add({"tool_calls": [("hang", {"seconds": 600})]})
    project.config(llm_config(fake_llm) + FAULTY.format(p401=1, p500=1))
    project.feature("busy.feature", 'Feature: B\n  Scenario: busy\n    Given the agent "f"\n    When the user says "hang"\n')
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "behave", "--no-color", "-f", "plain"], cwd=project.root,
        env={**env, "OPENAI_API_KEY": "sk-fake", "TMPDIR": str(temp), "LIFECYCLE_TOKEN": SERVER_TOKEN},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        wait_for_server_log(temp, "hanging in tool", 60)  # until the server is inside the tool
        for sig in signals:
            proc.send_signal(sig)
            time.sleep(0.05)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode != 0, out
        assert processes_in(project.root) == [], out
        assert list(temp.iterdir()) == [], out
        assert "Traceback" not in out, out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        for pid in _pids_in(project.root):
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
