"""``behave -j N``: shards, a dying worker, SIGTERM, shared model limits, the config-set runner.

Split from test_parallel.py (which holds the project these tests share) so that pytest-xdist
runs the two files at the same time.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
from conftest import Project, processes_in
from test_parallel import PLAIN, RUNNER, SESSION, make, report


def start_busy_run(project: Project, tmp: Any, conversations: int, *args: str, output: Any) -> subprocess.Popen[str]:
    """``behave -j 2`` on conversations whose tool sleeps, in its own TMPDIR, returned once
    both workers' servers are busy in that tool."""
    feature = "Feature: Slow\n" + "".join(
        f'  Scenario: Slow {i}\n    Given the agent "prober"\n    When the user says "take your time"\n' for i in range(conversations)
    )
    make(project, ("slow.feature", feature))
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env["TMPDIR"] = str(tmp)
    proc = subprocess.Popen(
        [sys.executable, "-m", "behave", "--no-color", *RUNNER, "-j", "2", *args],
        cwd=project.root, env=env, stdout=output, stderr=subprocess.STDOUT, text=True,
    )
    deadline = time.time() + 60
    while sum("probe_server" in p for p in processes_in(project.root)) < 2 and time.time() < deadline:
        time.sleep(0.2)
    if sum("probe_server" in p for p in processes_in(project.root)) < 2:
        proc.kill()
        raise AssertionError("the two servers did not start within 60 s")
    time.sleep(1.0)  # both tools are now sleeping
    return proc


def test_exit_code_zero_and_the_html_report_when_all_pass(project: Project) -> None:
    make(project, ("session.feature", SESSION))
    (project.root / "pyproject.toml").write_text(
        (project.root / "pyproject.toml").read_text() + '\n[tool.behave]\nrunner = "behave_aitest.parallel:ParallelRunner"\n'
        'format = ["behave_aitest.formatter:HTMLFormatter"]\noutfiles = ["reports/aitest.html"]\n'
    )
    result = project.run("-j", "2", env={"BEHAVE_AITEST_START_METHOD": "spawn"})  # the runner comes from [tool.behave]; workers spawned, not forked
    assert result.returncode == 0, result.output
    assert "USING RUNNER: behave_aitest.parallel:ParallelRunner" in result.output
    assert "1 conversation on 1 worker" in result.output
    assert (project.root / "reports" / "aitest.html").is_file()
    assert report(project, "reports/aitest.json")["totals"]["passed"] == 3


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
    assert seq.returncode == 1, seq.output
    for result, part in ((one, "s1.json"), (two, "s2.json")):  # a shard fails exactly when one of its conversations did
        bad = report(project, part)["totals"]["failed"] + report(project, part)["totals"]["error"]
        assert result.returncode == (1 if bad else 0), result.output
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
    # what the worker finished before it died keeps its outcome; the step it was running says why (H15)
    killed = next(s for f in doc["features"] for s in f["scenarios"] if s["name"] == "Kill my worker")
    assert [s["status"] for s in killed["steps"]] == ["passed", "error"], killed["steps"]
    assert "was killed by signal SIGKILL" in killed["steps"][1]["error"], killed["steps"][1]
    deadline = time.time() + 10
    while processes_in(project.root) and time.time() < deadline:
        time.sleep(0.2)  # the dead worker's server sees its stdin close and ends
    assert processes_in(project.root) == []


def test_sigterm_stops_every_worker_and_server(project: Project, tmp_path_factory: pytest.TempPathFactory) -> None:
    tmp = tmp_path_factory.mktemp("tmpdir")
    proc = start_busy_run(project, tmp, 4, "-f", "behave_aitest.formatter:JSONFormatter", "-o", "r.json", output=subprocess.PIPE)
    try:
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


def test_max_model_concurrency_holds_across_workers(project: Project) -> None:
    """Four conversations on four workers against one slow model: with the limit, one call at a time."""
    import threading

    from behave_aitest.model.fakellm import FakeOpenAI

    state = {"now": 0, "most": 0, "meet": False}
    lock = threading.Lock()
    meet = threading.Barrier(4, timeout=60)

    def slow_brain(request: dict[str, Any]) -> dict[str, Any]:
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        if state["meet"]:  # the free run: the four conversations wait for each other, then 2 s side by side
            meet.wait()
            time.sleep(2.0)
        else:
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
        limited = project.run(*RUNNER, "-j", "4", "-D", "aitest.max_model_concurrency=1")
        assert limited.returncode == 0, limited.output
        limited_most, state["most"], state["meet"] = state["most"], 0, True
        began = time.monotonic()
        free = project.run(*RUNNER, "-j", "4")
        elapsed = time.monotonic() - began
        assert free.returncode == 0, free.output
    assert state["most"] == 4  # the workers do call the model at the same time...
    assert limited_most == 1  # ...and the limit makes them take turns
    # issue 25, H14: behave's "Took" is the run's wall time, not the conversations' times added up
    # over the workers (each of the four turns lasted at least 2 s, side by side)
    took = re.search(r"^Took (\d+)min ([\d.]+)s$", free.stdout, re.MULTILINE)
    assert took and int(took[1]) * 60 + float(took[2]) <= elapsed, (elapsed, free.stdout[-1500:])
    together = re.search(r"its conversations took (\d+)min ([\d.]+)s together", free.stdout)
    assert together and int(together[1]) * 60 + float(together[2]) >= 4 * 2.0, free.stdout[-1500:]


RULES_FEATURE = """\
Feature: Rules
  Background:
    Given it passes

  Scenario: Plain
    Given it passes

  Rule: Good rule
    Scenario: In the good rule
      Given it passes

  @broken
  Rule: Broken rule
    Scenario: In the broken rule
      Given it passes
"""

RULES_ENVIRONMENT = """\
import os
from behave_aitest.run import hooks as aitest
from behave_aitest.environment import *


def before_rule(context, rule):
    if "broken" in rule.tags:
        raise RuntimeError("rule set-up failed")


def after_all(context):
    aitest.after_all(context)
    if os.environ.get("AFTER_ALL_FAILS"):
        raise RuntimeError("user tear-down failed")
"""


def test_user_hooks_rules_and_other_formatters_as_in_a_sequential_run(project: Project) -> None:
    """The user's own hook failures count as in behave's run_model; Rules reach every formatter."""
    import re

    project.config('[tool.behave_aitest]\nmodel = "scripted"\n')
    project.feature("rules.feature", RULES_FEATURE)
    (project.root / "features" / "environment.py").write_text(RULES_ENVIRONMENT, encoding="utf-8")
    (project.root / "features" / "steps" / "basic.py").write_text(
        "from behave import given\n\n@given('it passes')\ndef it_passes(context):\n    pass\n", encoding="utf-8"
    )
    outputs = ("-f", "plain", "-o", "{}.txt", "-f", "json", "-o", "{}.json", "--junit", "--junit-directory", "junit-{}")
    seq = project.run(*(a.format("seq") for a in outputs))
    par = project.run(*RUNNER, "-j", "3", *(a.format("par") for a in outputs))
    assert seq.returncode == par.returncode == 1, par.output

    def summary(text: str) -> list[str]:
        return [line for line in text.splitlines() if re.match(r"\d+ (features?|rules?|scenarios?|steps?) ", line)]

    assert summary(par.stdout) == summary(seq.stdout), par.output
    assert "HOOK-ERROR in before_rule" in par.output, par.output

    def text(name: str) -> str:
        return re.sub(r"\d+\.\d+s|\"duration\": [\d.e-]+|\"(start|stop)\": [\d.]+", "", (project.root / name).read_text(encoding="utf-8"))

    assert text("par.txt") == text("seq.txt")
    assert text("par.json") == text("seq.json")
    for name in ("TESTS-rules.xml",):
        junit = [re.sub(r'(time|timestamp|hostname)="[^"]*"|in \d+\.\d+s', "", (project.root / f"junit-{k}" / name).read_text()) for k in ("seq", "par")]
        assert junit[0] == junit[1]
    # a failing after_all of the user's own fails the run, as it does without -j
    failing = project.run(*RUNNER, "-j", "2", "-t", "not @broken", env={"AFTER_ALL_FAILS": "1"})
    assert failing.returncode == 1 and "user tear-down failed" in failing.output, failing.output
    passing = project.run(*RUNNER, "-j", "2", "-t", "not @broken")
    assert passing.returncode == 0, passing.output


def test_workers_end_when_the_parent_is_killed(project: Project, tmp_path_factory: pytest.TempPathFactory) -> None:
    tmp = tmp_path_factory.mktemp("tmpdir")
    proc = start_busy_run(project, tmp, 2, output=subprocess.DEVNULL)
    try:
        proc.kill()  # SIGKILL: no chance to stop anything itself
        proc.wait(timeout=10)
        deadline = time.time() + 30
        while (processes_in(project.root) or list(tmp.iterdir())) and time.time() < deadline:
            time.sleep(0.2)
        assert processes_in(project.root) == []
        assert list(tmp.iterdir()) == []  # the last worker out removed the run's folder
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_shard_without_the_runner_is_refused(project: Project) -> None:
    make(project, ("session.feature", SESSION))
    result = project.run("-D", "aitest.shard=1/2")
    assert result.returncode == 1
    assert "-D aitest.shard needs behave-aitest's runner" in result.output, result.output
    assert "Traceback" not in result.output, result.output
