"""``behave -j N`` through behave_aitest.parallel:ParallelRunner, end to end.

Every run is ``python -m behave`` in a subprocess on a temporary project; the model is the
built-in scripted model (each worker starts its own, litellm talks HTTP to it), the MCP
servers are real processes. A parallel run is compared with the sequential run of the
same project: same scenarios, outcomes, turns, tool calls, leaderboard and exit code.
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

import pytest
from conftest import BANK, Project, processes_in

from behave_aitest.units import Unit, shard

RUNNER = ("--runner", "behave_aitest.parallel:ParallelRunner")

RULES = r"""
[[rule]]
when = 'what was i saving for'
recall = { goal = "saving for (?:a |an )?(?P<goal>[^.?!]+)" }
call = [{ tool = "get_balance", arguments = { account = "savings" } }]
reply = "You were saving for a {goal}. Your savings account now holds {result}."

[[rule]]
when = 'transfer \$?(?P<amount>[\d,]+) to (?P<to>\w+)'
call = [{ tool = "transfer", arguments = { from_account = "checking", to_account = "{to}", amount = "{amount}" } }]
reply = "Done. {result}"

[[rule]]
when = 'balances?'
call = [{ tool = "get_all_balances" }]
reply = "Here are your balances:\n{result}"

[[rule]]
when = 'crash the probe'
call = [{ tool = "crash" }]
reply = "unreachable"

[[rule]]
when = 'kill the worker'
call = [{ tool = "kill_worker" }]
reply = "unreachable"

[[rule]]
when = 'take your time'
call = [{ tool = "slow" }]
reply = "done slowly"

[[rule]]
when = 'echo (?P<word>\w+)'
call = [{ tool = "echo", arguments = { text = "{word}" } }]
reply = "The probe said {result}"
"""

PROBE_SERVER = '''\
import os, signal, sys, time
from mcp.server.mcpserver import MCPServer

server = MCPServer("probe")

@server.tool()
def echo(text: str) -> str:
    return f"echo-{text}"

@server.tool()
def crash() -> str:
    os._exit(3)

@server.tool()
def kill_worker() -> str:
    os.kill(os.getppid(), signal.SIGKILL)
    time.sleep(10)
    return "too late"

@server.tool()
def slow() -> str:
    time.sleep(120)
    return "slept"

if __name__ == "__main__":
    server.run()
'''

CONFIG = f"""\
[tool.behave_aitest]
model = "scripted"
scripted_rules = "rules.toml"
timeout_s = 100
{BANK}
[tool.behave_aitest.servers.probe]
command = ["python", "probe_server.py"]
cwd = "."

[tool.behave_aitest.agents.banker]
servers = ["bank"]
system_prompt = "You are a careful banking assistant."

[tool.behave_aitest.agents.prober]
servers = ["probe"]
"""

SESSION = """\
@session
Feature: Savings session
  Background:
    Given the agent "banker"

  Scenario: Goal
    When the user says "I'm saving for a trip to Paris. What are my balances?"
    Then the agent called tool "get_all_balances"

  Scenario: Transfer
    When the user says "Transfer $500 to savings please."
    Then the agent called tool "transfer"

  Scenario: Remember
    When the user says "What was I saving for again?"
    Then the response mentions "Paris"
    And the response mentions "3,700.00"
"""

PLAIN = """\
Feature: Probe
  Background:
    Given the agent "prober"

  Scenario: Echo one
    When the user says "echo alpha"
    Then the response mentions "echo-alpha"

  Scenario: Echo fails its check
    When the user says "echo beta"
    Then the response mentions "gamma"

  Scenario: A server that crashes
    When the user says "crash the probe"
    Then the agent answered

  Scenario Outline: Echo <word>
    When the user says "echo <word>"
    Then the response mentions "echo-<word>"

    Examples:
      | word  |
      | delta |
      | omega |
"""

FLOWS = """\
@model:scripted @model:openai/other-model
Feature: Two models
  Background:
    Given the agent "banker"

  @repeat:3
  Scenario: Balances three times
    When the user says "What are my balances?"
    Then the agent called tool "get_all_balances"
"""


def make(project: Project, *features: tuple[str, str]) -> None:
    project.config(CONFIG)
    (project.root / "rules.toml").write_text(RULES, encoding="utf-8")
    (project.root / "probe_server.py").write_text(PROBE_SERVER, encoding="utf-8")
    for name, text in features:
        project.feature(name, text)


# times, the command line, and tool-call ids (each worker's scripted model numbers its own calls;
# a real provider makes them up anyway)
_VOLATILE = {"id", "generated_at", "started_at", "finished_at", "command", "wall_time_s", "duration_s", "turn_time_s", "latency_s", "cwd"}


def stable(node: Any) -> Any:
    """A report without what differs between two runs of the same thing (times, command line)."""
    if isinstance(node, dict):
        return {k: stable(v) for k, v in node.items() if k not in _VOLATILE}
    if isinstance(node, list):
        return [stable(v) for v in node]
    return node


def report(project: Project, name: str) -> dict[str, Any]:
    return json.loads((project.root / name).read_text(encoding="utf-8"))


def summary(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.split(" ", 1)[0].isdigit() and (" passed, " in line)]


def failing(output: str) -> list[str]:
    """behave's lists of failing and errored scenarios (location and name)."""
    lines, keep = [], False
    for line in output.splitlines():
        if line.endswith("scenarios:") and line.split()[0] in ("Failing", "Errored"):
            keep = True
        elif keep and line.startswith("  features/"):
            lines.append(line.strip())
        else:
            keep = False
    return lines


def junit(project: Project, folder: str) -> dict[str, str]:
    """JUnit files without their times."""
    import re

    out = {}
    for path in sorted((project.root / folder).glob("*.xml")):
        text = path.read_text(encoding="utf-8")
        out[path.name] = re.sub(r'(time|timestamp|hostname)="[^"]*"|in \d+\.\d+s', "", text)
    return out


def test_parallel_run_equals_the_sequential_run(project: Project) -> None:
    make(project, ("session.feature", SESSION), ("probe.feature", PLAIN))
    fmt = ("-f", "behave_aitest.formatter:JSONFormatter")
    seq = project.run(*fmt, "-o", "seq.json", "--junit", "--junit-directory", "junit-seq")
    par = project.run(*RUNNER, "-j", "4", *fmt, "-o", "par.json", "--junit", "--junit-directory", "junit-par")
    assert seq.returncode == 1, seq.output
    assert par.returncode == 1, par.output
    # behave's summary over all workers, and the failing scenarios with their locations
    assert summary(par.stdout) == summary(seq.stdout), par.output
    assert "6 scenarios passed, 1 failed, 1 error, 0 skipped" in par.stdout, par.output
    assert failing(par.stdout) == failing(seq.stdout) != [], par.output
    # one line per finished conversation, with a done/total count
    lines = [line for line in par.stdout.splitlines() if line.startswith("[")]
    assert len(lines) == 6, par.output
    assert any(line.startswith("[6/6]") for line in lines)
    assert any("FAILED" in line and "Echo fails its check" in line for line in lines), lines
    # the merged JSON report is the sequential one, but for times and the command line
    assert stable(report(project, "par.json")) == stable(report(project, "seq.json"))
    # one JUnit file per feature, as sequential behave writes them
    assert junit(project, "junit-par") == junit(project, "junit-seq")
    # the session kept its history and its server's state in one worker
    doc = report(project, "par.json")
    session = next(f for f in doc["features"] if f["session"])
    assert [s["status"] for s in session["scenarios"]] == ["passed"] * 3
    assert session["scenarios"][2]["history_at_start"] == 8  # two turns of user, tool call, tool result, answer
    assert processes_in(project.root) == []


def test_exit_code_zero_and_the_html_report_when_all_pass(project: Project) -> None:
    make(project, ("session.feature", SESSION))
    (project.root / "pyproject.toml").write_text(
        (project.root / "pyproject.toml").read_text() + '\n[tool.behave]\nrunner = "behave_aitest.parallel:ParallelRunner"\n'
        'format = ["behave_aitest.formatter:HTMLFormatter"]\noutfiles = ["reports/aitest.html"]\n'
    )
    result = project.run("-j", "2")  # the runner comes from [tool.behave]
    assert result.returncode == 0, result.output
    assert "USING RUNNER: behave_aitest.parallel:ParallelRunner" in result.output
    assert "1 conversation on 1 worker" in result.output
    assert (project.root / "reports" / "aitest.html").is_file()
    assert report(project, "reports/aitest.json")["totals"]["passed"] == 3


def test_model_flows_and_repeats_split_across_workers(project: Project) -> None:
    make(project, ("flows.feature", FLOWS))
    fmt = ("-f", "behave_aitest.formatter:JSONFormatter")
    # openai/other-model is no model at all here: its flow errors in every run (no key, no server)
    env = {"OPENAI_API_BASE": "http://127.0.0.1:9", "OPENAI_API_KEY": "sk-none"}
    seq = project.run(*fmt, "-o", "seq.json", "-D", "aitest.retries=0", "--junit", "--junit-directory", "junit-seq", env=env)
    par = project.run(*RUNNER, "-j", "3", *fmt, "-o", "par.json", "-D", "aitest.retries=0", "--junit", "--junit-directory", "junit-par", env=env)
    assert seq.returncode == par.returncode == 1, par.output
    assert len([line for line in par.stdout.splitlines() if line.startswith("[")]) == 6
    a, b = report(project, "seq.json"), report(project, "par.json")
    assert stable(a["models"]) == stable(b["models"])
    scripted = [f for f in b["features"] if f["flow_model"] == "scripted"][0]["scenarios"][0]
    assert scripted["repeat"]["runs"] == 3 and scripted["repeat"]["passed"] == 3
    other = [f for f in b["features"] if f["flow_model"] == "openai/other-model"][0]["scenarios"][0]
    assert other["repeat"]["runs"] == 3 and other["repeat"]["passed"] == 0
    assert stable(a["features"]) == stable(b["features"])
    # one JUnit file per model's copy of the feature, in both kinds of run
    assert sorted(junit(project, "junit-par")) == ["TESTS-flows.openai-other-model.xml", "TESTS-flows.scripted.xml"]
    assert junit(project, "junit-par") == junit(project, "junit-seq")


def test_shards_partition_the_run(project: Project) -> None:
    make(project, ("session.feature", SESSION), ("probe.feature", PLAIN))
    fmt = ("-f", "behave_aitest.formatter:JSONFormatter")
    one = project.run(*RUNNER, "-j", "2", "-D", "aitest.shard=1/2", *fmt, "-o", "s1.json")
    two = project.run(*RUNNER, "-D", "aitest.shard=2/2", *fmt, "-o", "s2.json")  # without -j
    seq = project.run(*fmt, "-o", "seq.json")
    names = []
    for part in ("s1.json", "s2.json"):
        doc = report(project, part)
        names.append({(f["name"], s["name"]) for f in doc["features"] for s in f["scenarios"]})
    assert names[0] and names[1] and not names[0] & names[1], names
    whole = report(project, "seq.json")
    assert names[0] | names[1] == {(f["name"], s["name"]) for f in whole["features"] for s in f["scenarios"]}
    assert {one.returncode, two.returncode} == {0, 1} or one.returncode == two.returncode == 1
    merged = subprocess.run(
        [sys.executable, "-m", "behave_aitest.cli", "report", "merge", "s1.json", "s2.json", "-o", "merged.json"],
        cwd=project.root, capture_output=True, text=True, timeout=60,
    )
    assert merged.returncode == 0, merged.stderr
    doc = report(project, "merged.json")
    statuses = {(f["name"], s["name"]): s["status"] for f in doc["features"] for s in f["scenarios"]}
    assert statuses == {(f["name"], s["name"]): s["status"] for f in whole["features"] for s in f["scenarios"]}
    assert doc["totals"]["features"] == 2


def test_a_worker_that_dies_errors_its_conversation_only(project: Project) -> None:
    feature = PLAIN.split("  Scenario: Echo fails")[0] + '  Scenario: Kill my worker\n    When the user says "kill the worker"\n'
    make(project, ("probe.feature", feature), ("session.feature", SESSION))
    result = project.run(*RUNNER, "-j", "2", "-f", "behave_aitest.formatter:JSONFormatter", "-o", "r.json")
    assert result.returncode == 1, result.output
    assert "was killed by signal SIGKILL while running this conversation" in result.output, result.output
    doc = report(project, "r.json")
    statuses = {s["name"]: s["status"] for f in doc["features"] for s in f["scenarios"]}
    assert statuses == {"Echo one": "passed", "Kill my worker": "error", "Goal": "passed", "Transfer": "passed", "Remember": "passed"}
    deadline = time.time() + 10
    while processes_in(project.root) and time.time() < deadline:
        time.sleep(0.2)  # the dead worker's server sees its stdin close and ends
    assert processes_in(project.root) == []


def test_sigterm_stops_every_worker_and_server(project: Project, tmp_path_factory: pytest.TempPathFactory) -> None:
    feature = "Feature: Slow\n" + "".join(
        f'  Scenario: Slow {i}\n    Given the agent "prober"\n    When the user says "take your time"\n' for i in range(4)
    )
    make(project, ("slow.feature", feature))
    tmp = tmp_path_factory.mktemp("tmpdir")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env["TMPDIR"] = str(tmp)
    proc = subprocess.Popen(
        [sys.executable, "-m", "behave", "--no-color", *RUNNER, "-j", "2", "-f", "behave_aitest.formatter:JSONFormatter", "-o", "r.json"],
        cwd=project.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.time() + 60
        while sum("probe_server" in p for p in processes_in(project.root)) < 2 and time.time() < deadline:
            time.sleep(0.2)
        assert sum("probe_server" in p for p in processes_in(project.root)) == 2
        time.sleep(1.0)  # both tools are now sleeping
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0, output
    assert "stopping every worker" in output, output
    doc = report(project, "r.json")
    assert doc["partial"] is True, output
    assert processes_in(project.root) == []
    assert list(tmp.iterdir()) == [], list(tmp.iterdir())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-j", "0"), "-j 0: the number of jobs must be a whole number of at least 1"),
        (("-j", "2", "-D", "aitest.shard=3/2"), "-D aitest.shard: must be K/N with 1 <= K <= N"),
        (("-D", "aitest.shard=0/2"), "-D aitest.shard: must be K/N with 1 <= K <= N"),
        (("-D", "aitest.shard=a/b"), "-D aitest.shard: must be K/N, e.g. 1/4"),
    ],
)
def test_bad_jobs_and_shards_are_one_line_errors(project: Project, args: tuple[str, ...], message: str) -> None:
    make(project, ("session.feature", SESSION))
    result = project.run(*RUNNER, *args)
    assert result.returncode != 0
    assert message in result.output, result.output
    assert "Traceback" not in result.output, result.output


def test_shard_parts_hold_every_unit_once() -> None:
    plan = [Unit(i, i % 3, (i,), 1, 1, False, f"u{i}", f"f:{i}", 1 + i % 4, (f"k{i}",)) for i in range(23)]
    for n in (1, 2, 3, 5, 23, 30):
        parts = [shard(plan, k, n) for k in range(1, n + 1)]
        seen = [u.index for part in parts for u in part]
        assert sorted(seen) == list(range(23)), (n, seen)
        loads = [sum(u.turns for u in part) for part in parts]
        assert max(loads) - min(loads) <= 4, (n, loads)  # balanced within one unit's weight


def test_max_model_concurrency_holds_across_workers(project: Project) -> None:
    """Four conversations on four workers against one slow model: with the limit, one call at a time."""
    import threading

    from behave_aitest.fakellm import FakeOpenAI

    state = {"now": 0, "most": 0}
    lock = threading.Lock()

    def slow_brain(request: dict[str, Any]) -> dict[str, Any]:
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        time.sleep(0.6)
        with lock:
            state["now"] -= 1
        return {"content": "fine"}

    feature = "Feature: Busy model\n" + "".join(
        f'  Scenario: Ask {i}\n    When the user says "hello {i}"\n    Then the agent answered\n' for i in range(4)
    )
    project.feature("busy.feature", feature)
    with FakeOpenAI(brain=slow_brain) as server:
        project.config(f'[tool.behave_aitest]\nmodel = "openai/fake"\napi_base = "{server.base_url}"\nretry_backoff_s = 0\n')
        free = project.run(*RUNNER, "-j", "4")
        assert free.returncode == 0, free.output
        unlimited, state["most"] = state["most"], 0
        limited = project.run(*RUNNER, "-j", "4", "-D", "aitest.max_model_concurrency=1")
        assert limited.returncode == 0, limited.output
    assert unlimited >= 2  # the workers do call the model at the same time...
    assert state["most"] == 1  # ...and the limit makes them take turns
