"""``behave -j N`` through behave_aitest.parallel:ParallelRunner, end to end.

Every run is ``python -m behave`` in a subprocess on a temporary project; the model is the
built-in scripted model (each worker starts its own, litellm talks HTTP to it), the MCP
servers are real processes. A parallel run is compared with the sequential run of the
same project: same scenarios, outcomes, turns, tool calls, leaderboard and exit code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import BANK, Project, processes_in

from behave_aitest.parallel.units import Unit, shard

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
_VOLATILE = {"id", "generated_at", "started_at", "finished_at", "command", "wall_time_s", "duration_s", "turn_time_s", "latency_s", "cwd", "at", "wait_s"}  # a rate limit: when it settled, time waited


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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-j", "0"), "-j 0: the number of jobs must be a whole number of at least 1"),
        (("-j", "2", "-D", "aitest.shard=3/2"), "-D aitest.shard: must be K/N with 1 <= K <= N"),
        (("-D", "aitest.shard=0/2"), "-D aitest.shard: must be K/N with 1 <= K <= N"),
        (("-D", "aitest.shard=a/b"), "-D aitest.shard: must be K/N, e.g. 1/4"),
        (("-j", "2", "-D", "aitest.max_turns=0"), "HOOK-ERROR in before_all: ConfigError: -D aitest.max_turns"),
    ],
)
def test_bad_jobs_and_shards_are_one_line_errors(project: Project, args: tuple[str, ...], message: str) -> None:
    make(project, ("session.feature", SESSION))
    result = project.run(*RUNNER, *args, "-f", "behave_aitest.formatter:JSONFormatter", "-o", "r.json")
    assert result.returncode != 0
    assert message in result.output, result.output
    assert "Traceback" not in result.output, result.output
    if args[:2] != ("-j", "0"):  # found by the runner, like a sequential before_all: the report says why
        doc = report(project, "r.json")
        assert doc["partial"] is True and "stopped before the first scenario" in doc["partial_reasons"][0], doc["partial_reasons"]


def test_shard_parts_hold_every_unit_once() -> None:
    plan = [Unit(i, i % 3, (i,), 1, 1, False, f"u{i}", f"f:{i}", 1 + i % 4, (f"k{i}",)) for i in range(23)]
    for n in (1, 2, 3, 5, 23, 30):
        parts = [shard(plan, k, n) for k in range(1, n + 1)]
        seen = [u.index for part in parts for u in part]
        assert sorted(seen) == list(range(23)), (n, seen)
        loads = [sum(u.turns for u in part) for part in parts]
        assert max(loads) - min(loads) <= 4, (n, loads)  # balanced within one unit's weight


def test_longest_units_first_from_an_earlier_report(tmp_path: Path) -> None:
    from behave_aitest.parallel.units import duration_key, load_durations, longest_first

    earlier = {
        "features": [
            {"name": "F", "scenarios": [
                {"location": "f:1", "duration_s": 2.0},
                {"location": "f:2", "duration_s": 9.0, "repeat": {"runs": 3}},  # 3 s per run
                {"location": "f:3", "duration_s": 5.0},
            ]},
        ]
    }
    path = tmp_path / "earlier.json"
    path.write_text(json.dumps(earlier), encoding="utf-8")
    durations = load_durations(path)
    assert durations == {duration_key("F", "f:1"): 2.0, duration_key("F", "f:2"): 3.0, duration_key("F", "f:3"): 5.0}
    plan = [Unit(i, 0, (i,), 1, 1, False, f"u{i}", f"f:{i + 1}", 1, (duration_key("F", f"f:{i + 1}"),)) for i in range(3)]
    assert [u.index for u in longest_first(plan, durations)] == [2, 1, 0]
    # without an earlier report: by user turns, ties in plan order
    turns = [Unit(i, 0, (i,), 1, 1, False, f"u{i}", f"f:{i}", t, (f"k{i}",)) for i, t in enumerate((1, 3, 1, 2))]
    assert [u.index for u in longest_first(turns, {})] == [1, 3, 0, 2]
    assert load_durations(tmp_path / "missing.json") == {}
    (tmp_path / "foreign.json").write_text('["not a report"]', encoding="utf-8")
    assert load_durations(tmp_path / "foreign.json") == {}


TWO_MODELS = """\
@model:openai/model-a @model:openai/model-b
Feature: Two models, one scenario picked
  Scenario: First
    When the user says "first question"
    Then the agent answered

  Scenario: Second
    When the user says "second question"
    Then the agent answered
"""


@pytest.mark.parametrize("jobs", [(), ("--runner", "behave_aitest.parallel:ParallelRunner", "-j", "2")], ids=["sequential", "parallel"])
def test_file_line_runs_only_that_scenario_for_every_model(project: Project, jobs: tuple[str, ...]) -> None:
    """F13: `behave file.feature:LINE` (an IDE's "run this scenario") on a feature run once per
    model runs that scenario once per model, not every scenario for every model."""
    from behave_aitest.model.fakellm import FakeOpenAI

    project.feature("models.feature", TWO_MODELS)
    with FakeOpenAI(brain=lambda request: {"content": "an answer"}) as server:
        project.config(f'[tool.behave_aitest]\napi_base = "{server.base_url}"\nretry_backoff_s = 0\n')
        result = project.run(*jobs, "features/models.feature:7")
        asked = sorted(str(r["messages"][-1]["content"]) + " @" + str(r["model"]) for r in server.requests)
    assert result.returncode == 0, result.output
    assert "2 scenarios passed, 0 failed, 2 skipped" in result.output, result.output
    assert asked == ["second question @model-a", "second question @model-b"], asked


def test_local_server_starts_take_one_slot_per_core(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a parallel run, stdio servers start at most one per core at a time (across the workers:
    file locks); outside one (no slots folder) nothing waits."""
    import anyio

    from behave_aitest.model import limits

    monkeypatch.setattr(limits, "start_slots", lambda: 2)

    def most_at_once(starts: int) -> int:
        holding, most = 0, 0

        async def start() -> None:
            nonlocal holding, most
            async with limits.start_slot():
                holding += 1
                most = max(most, holding)
                await anyio.sleep(0.05)
                holding -= 1

        async def main() -> None:
            async with anyio.create_task_group() as tasks:
                for _ in range(starts):
                    tasks.start_soon(start)

        anyio.run(main)
        return most

    monkeypatch.delenv(limits.START_SLOTS_ENV, raising=False)
    assert most_at_once(5) == 5
    monkeypatch.setenv(limits.START_SLOTS_ENV, str(tmp_path / "start-slots"))
    assert most_at_once(5) == 2
