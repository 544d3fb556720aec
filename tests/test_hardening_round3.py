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

from conftest import Project, Result, llm_config, processes_in, wait_for_server_log

from behave_aitest.model.fakellm import FakeOpenAI

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


def parallel_run(project: Project, env: dict[str, str]) -> subprocess.Popen[str]:
    """``behave -j 2`` with the JSON report and JUnit, in its own process group, output piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "behave", "--no-color", "-j", "2", "--runner", "behave_aitest.parallel:ParallelRunner",
         "-f", "behave_aitest.formatter:JSONFormatter", "-o", "reports/r.json", "--junit", "--junit-directory", "reports/junit"],
        cwd=project.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )


def term_when(proc: subprocess.Popen[str], said: str, timeout: float) -> str:
    """Read the run's output until a line holds ``said``, send SIGTERM then; all it printed."""
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if said in line:
            proc.send_signal(signal.SIGTERM)
            break
    return "".join(lines) + proc.communicate(timeout=timeout)[0]


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


H2_FEATURE = """\
Feature: H2 answers belong to their scenario
  Scenario: A answers and the agent asks
    Given the agent "h"
    And the user will answer the server's questions with:
      | name | Alice-PRIVATE |
    When the user says "who am I?"
    Then the result of tool "whoami" mentions "Alice-PRIVATE"

  Scenario: B gave no answers and calls the tool itself
    Given the agent "h"
    When the tool "whoami" is called
    Then the tool result mentions "decline"
    And the tool result does not mention "Alice-PRIVATE"

  Scenario: C answers before its own call
    Given the agent "h"
    And the user will answer the server's questions with:
      | name | Bob |
    When the tool "whoami" is called
    Then the tool result mentions "Bob"

  Scenario: D gave no answers and the agent asks
    Given the agent "h"
    When the user says "who am I now?"
    Then the result of tool "whoami" mentions "decline"
"""


def test_h2_answers_hold_only_in_their_own_scenario_for_every_kind_of_call(project: Project, fake_llm: FakeOpenAI) -> None:
    fake_llm.add({"tool_calls": [("whoami", {})]}, {"content": "you are known"}, {"tool_calls": [("whoami", {})]}, {"content": "unknown"})
    project.config(llm_config(fake_llm) + hostile(scope="run"))  # one server process for every scenario
    project.feature("h2.feature", H2_FEATURE)
    result = run_bounded(project, *REPORT)
    found = scenarios(project.root)
    for name, scenario in found.items():
        assert scenario["status"] == "passed", (name, scenario["first_failure"], result.output[-3000:])
    assert "Alice-PRIVATE" not in json.dumps(found["B gave no answers and calls the tool itself"]["direct_calls"])


H1_FEATURE = """\
Feature: H1 sampling in the test's own call
  Scenario: the test's call makes the server sample before any turn
    Given the agent "h"
    When the tool "slogan" is called with:
      | argument | value |
      | topic    | tea   |
    Then the tool result mentions "Tea time"
    When the user says "and now?"
    Then the response mentions "done"
"""


def test_h1_sampling_in_a_direct_call_is_the_scenarios_counted_recorded_and_replayed(project: Project, fake_llm: FakeOpenAI) -> None:
    fake_llm.add({"content": "Tea time, every time."}, {"content": "done"})
    project.config(llm_config(fake_llm, cassette="record", cassette_dir="cassettes") + hostile(protocol="2026-07-28"))
    project.feature("h1.feature", H1_FEATURE)
    result = run_bounded(project, *REPORT)
    scenario = scenarios(project.root)["the test's call makes the server sample before any turn"]
    assert scenario["status"] == "passed", (scenario["first_failure"], result.output[-3000:])
    sampled = scenario["direct_calls"][0]["sampling_calls"]
    assert len(sampled) == 1 and sampled[0]["model"] == "openai/fake-model" and "Tea time" in sampled[0]["response"], sampled
    # the sampling call's tokens are the scenario's spend
    turn_tokens = sum(t["stats"]["input_tokens"] for t in scenario["turns"])
    assert scenario["stats"]["input_tokens"] > turn_tokens, scenario["stats"]
    # a full replay needs no provider: the sampling request was recorded in the cassette
    replay = run_bounded(project, *REPORT, "-D", "aitest.cassette=replay")
    again = scenarios(project.root)["the test's call makes the server sample before any turn"]
    assert again["status"] == "passed", (again["first_failure"], replay.output[-3000:])
    assert again["direct_calls"][0]["sampling_calls"][0]["replayed"] is True


H7_FEATURE = """\
Feature: H7 a greedy server
  Scenario: three samplings count as model calls
    Given the agent "h"
    When the user says "be a little greedy"
    Then the agent needed at most 2 model calls

  Scenario: thirty samplings in one call
    Given the agent "h"
    When the user says "be very greedy"
"""


def test_h7_sampling_is_capped_clamped_and_counted(project: Project, fake_llm: FakeOpenAI) -> None:
    fake_llm.add({"tool_calls": [("greedy", {"times": 3})]}, *[{"content": f"sample {i}"} for i in range(3)], {"content": "done"})
    fake_llm.add({"tool_calls": [("greedy", {"times": 30})]}, *[{"content": f"more {i}"} for i in range(30)], {"content": "done"})
    project.config(llm_config(fake_llm, max_sampling_tokens=1000, max_sampling_calls_per_tool_call=5) + hostile())
    project.feature("h7.feature", H7_FEATURE)
    result = run_bounded(project, *REPORT)
    found = scenarios(project.root)
    counted = found["three samplings count as model calls"]
    assert counted["status"] == "failed", counted
    message = counted["first_failure"]["message"]
    assert "5 model calls" in message and "3 sampling requests" in message, message
    sampled = [r for r in fake_llm.requests if "Say something" in json.dumps(r.get("messages"))]
    assert sampled and all(r.get("max_tokens") == 1000 for r in sampled), [r.get("max_tokens") for r in sampled]
    greedy = found["thirty samplings in one call"]
    assert greedy["status"] in ("failed", "error"), greedy
    message = greedy["first_failure"]["message"]
    assert "more than 5 sampling requests during one tool call (max_sampling_calls_per_tool_call)" in message and "'greedy'" in message, message
    assert len(sampled) == 3 + 5, len(sampled)
    calls = greedy["turns"][0]["tool_calls"]
    assert "sampled 5 times, then refused" in calls[0]["result"], calls[0]["result"]
    assert "Traceback" not in result.output


H6_FEATURE = """\
Feature: H6 floods
  Scenario: progress, logs and a huge question
    Given the agent "h"
    When the user says "flood me"
"""


def test_h6_floods_of_progress_logs_and_fields_are_bounded_and_counted(project: Project, fake_llm: FakeOpenAI) -> None:
    fake_llm.add(
        {"tool_calls": [("progress_flood", {"count": 5000})]},  # one at a time: each call owns its messages
        {"tool_calls": [("log_flood", {"count": 2000, "size": 1000})]},
        {"tool_calls": [("huge_form", {"fields": 3000})]},
        {"content": "flooded"},
    )
    project.config(llm_config(fake_llm, max_progress_per_call=50, max_logs_per_call=40, timeout_s=300) + hostile())
    project.feature("h6.feature", H6_FEATURE)
    result = run_bounded(project, *REPORT, timeout=300)
    report = project.root / "reports" / "r.json"
    scenario = scenarios(project.root)["progress, logs and a huge question"]
    assert scenario["status"] == "passed", (scenario["first_failure"], result.output[-2000:])
    calls = {c["name"]: c for c in scenario["turns"][0]["tool_calls"]}
    progress = calls["progress_flood"]["progress"]
    assert len(progress) == 51 and progress[0]["progress"] == 1 and progress[-1]["progress"] == 5000, progress[:3]
    assert "4950 progress notifications not kept (max_progress_per_call = 50" in json.dumps(progress), progress[25]
    logs = calls["log_flood"]["logs"]
    assert len(logs) == 41 and "1960 log messages not kept (max_logs_per_call = 40" in json.dumps(logs), logs[20]
    question = calls["huge_form"]["elicitations"][0]
    assert len(question["fields"]) <= 50 and question["fields_not_kept"] == 2950, {k: v for k, v in question.items() if k != "schema"}
    assert report.stat().st_size < 500_000, report.stat().st_size


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``behave-aitest ARGS`` as a user types it (``python -m behave_aitest.cli``)."""
    full = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "behave_aitest.cli", *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=180)


H4_PASSWORD = "s3cret-Passw0rd-H4"
H4_TOKEN = "tok-Doctor-9f8e7d6c5b4a"
H4_HEADER = "hdr-Secret-1a2b3c4d5e6f"


def test_h4_doctor_prints_no_secret(project: Project) -> None:
    project.config(f"""
        [tool.behave_aitest]
        model = "scripted"
        [tool.behave_aitest.servers.web]
        url = "http://alice:{H4_PASSWORD}@127.0.0.1:9/mcp"
        startup_timeout_s = 5
        [tool.behave_aitest.servers.envtoken]
        command = ["python", "-m", "behave_aitest.testing.hostile_server"]
        env = {{ HOSTILE_EXIT_AT_START = "1", HOSTILE_TOKEN = "{H4_TOKEN}" }}
        [tool.behave_aitest.servers.header]
        command = ["python", "-m", "behave_aitest.testing.hostile_server"]
        env = {{ HOSTILE_EXIT_AT_START = "1", HOSTILE_TOKEN = "${{HDR_SECRET}}" }}
    """)
    project.feature("a.feature", "Feature: A\n  Scenario: a\n    When the user says \"hi\"\n")
    done = cli("doctor", cwd=project.root, env={"HDR_SECRET": H4_HEADER})
    out = done.stdout + done.stderr
    assert "server 'envtoken'" in out and "server 'header'" in out and "refusing to start" in out, out
    for secret in (H4_PASSWORD, H4_TOKEN, H4_HEADER):
        assert secret not in out, (secret, out)
    assert "[REDACTED" in out, out


H16_FEATURE = """\
Feature: H16 a question from one of two calls at once
  Scenario: two calls, one asks
    Given the agent "h"
    When the user says "ask while quiet"
"""


def test_h16_a_question_during_parallel_calls_is_the_servers_not_a_guessed_calls(project: Project, fake_llm: FakeOpenAI) -> None:
    fake_llm.add({"tool_calls": [("ask_after", {"seconds": 0.5}), ("quiet", {"seconds": 3})]}, {"content": "both done"})
    project.config(llm_config(fake_llm) + hostile())  # 2025-11-25: a question carries no request id
    project.feature("h16.feature", H16_FEATURE)
    result = run_bounded(project, *REPORT)
    turn = scenarios(project.root)["two calls, one asks"]["turns"][0]
    calls = {c["name"]: c for c in turn["tool_calls"]}
    assert not calls["quiet"].get("elicitations"), (calls["quiet"], result.output[-2000:])
    events = turn.get("server_events") or []
    assert [e["server"] for e in events] == ["hostile"] and events[0]["elicitations"][0]["message"] == "Who are you?", events


H5_H8_FEATURE = '''\
Feature: H5 and H8 the simulated user
  Scenario: DONE before any message is no goal reached
    When a simulated user talks to the agent for at most 3 turns:
      """
      PERSONA-silent
      """
    Then the simulated user reached its goal

  Scenario: a lone surrogate from the simulated user is not the agent's error
    When a simulated user talks to the agent for at most 2 turns:
      """
      PERSONA-slip
      """
    Then the simulated user reached its goal
'''


def test_h5_h8_the_simulated_user_cannot_pass_by_silence_nor_blame_the_agent(project: Project, fake_llm: FakeOpenAI) -> None:
    fake_llm.add({"content": "DONE"}, {"content": "DONE"}, {"content": "DONE"}, model="fake-user")
    fake_llm.add({"content": "Hello \ud800 there"}, {"content": "DONE"}, model="fake-user")
    fake_llm.add({"content": "hi"})
    project.config(llm_config(fake_llm, retries=0, user_model="openai/fake-user"))
    project.feature("sim.feature", H5_H8_FEATURE)
    result = run_bounded(project, *REPORT)
    found = scenarios(project.root)
    silent = found["DONE before any message is no goal reached"]
    assert silent["status"] == "error", (silent["first_failure"], result.output[-2000:])
    assert "DONE before writing any message" in silent["first_failure"]["message"], silent["first_failure"]
    slip = found["a lone surrogate from the simulated user is not the agent's error"]
    assert slip["status"] == "passed", (slip["first_failure"], result.output[-2000:])
    assert slip["turns"][0]["user_text"] == "Hello \ufffd there"


def test_h12_init_never_writes_through_a_link_out_of_the_folder(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.toml"
    outside.write_text('[project]\nname = "other"\n', encoding="utf-8")
    root = tmp_path / "proj"
    root.mkdir()
    (root / "pyproject.toml").symlink_to(outside)
    done = cli("init", cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr
    assert outside.read_text(encoding="utf-8") == '[project]\nname = "other"\n'
    assert "nothing else changed" not in done.stdout and "outside the folder" in done.stdout, done.stdout


def test_h20_init_from_server_keeps_names_findable_and_control_characters_inert(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.behave_aitest]\nmodel = "scripted"\n[tool.behave_aitest.servers.hostile]\n'
        'command = ["python", "-m", "behave_aitest.testing.hostile_server"]\n', encoding="utf-8",
    )
    done = cli("init", "--from-server", "hostile", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    draft = (tmp_path / "features" / "hostile_tools.feature").read_text(encoding="utf-8")
    assert "\x1b" not in draft and "\x00" not in draft and "\\x1b[31mloudly" in draft, draft
    assert 'Then the agent called tool "say"hi"' in draft, draft


FAULTY = """
[tool.behave_aitest.servers.faulty]
command = ["python", "-m", "behave_aitest.testing.faulty_server"]
[tool.behave_aitest.agents.f]
servers = ["faulty"]
"""


def test_h18_a_big_tool_result_is_a_bounded_span_attribute(project: Project, fake_llm: FakeOpenAI) -> None:
    fake_llm.add({"tool_calls": [("big", {"megabytes": 3})]}, {"content": "big one"})
    project.config(llm_config(fake_llm, otel="spans.json", otel_content="on") + FAULTY)
    project.feature("big.feature", 'Feature: B\n  Scenario: big\n    Given the agent "f"\n    When the user says "big"\n')
    result = run_bounded(project, "-f", "plain")
    assert result.returncode == 0, result.output[-2000:]
    spans = project.root / "spans.json"
    text = spans.read_text(encoding="utf-8")
    assert "line 0000000" in text and "more characters not exported" in text
    assert spans.stat().st_size < 200_000, spans.stat().st_size


def _good_report(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    from test_report_unit import build, session_feature

    from behave_aitest import report

    good = tmp_path / "good.json"
    good.write_text(report.dumps(build(session_feature())), encoding="utf-8")
    return good, json.loads(good.read_text(encoding="utf-8"))


def test_h9_report_diff_refuses_a_partial_or_empty_run(tmp_path: Path) -> None:
    good, doc = _good_report(tmp_path)
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({**doc, "partial": True, "partial_reasons": ["The run was interrupted"]}), encoding="utf-8")
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({**doc, "features": []}), encoding="utf-8")
    done = cli("report", "diff", str(good), str(partial), cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "PARTIAL" in done.stdout and "interrupted run" in done.stderr, done.stdout + done.stderr
    done = cli("report", "diff", str(good), str(empty), cwd=tmp_path)
    assert done.returncode == 1 and "no features" in done.stderr, done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_h11_deep_json_and_a_bad_first_failure_give_one_line(tmp_path: Path) -> None:
    from behave_aitest.report import SCHEMA

    good, doc = _good_report(tmp_path)
    deepest = tmp_path / "deepest.json"
    deepest.write_text('{"schema": "%s", "schema_version": 1, "features": %s%s}' % (SCHEMA, "[" * 100_000, "]" * 100_000), encoding="utf-8")
    deep = tmp_path / "deep.json"
    deep_doc = json.loads(json.dumps(doc))
    deep_doc["features"][0]["scenarios"][0]["warnings"] = "NESTED"
    deep.write_text(json.dumps(deep_doc).replace('"NESTED"', "[" * 990 + '"end"' + "]" * 990), encoding="utf-8")
    bad = tmp_path / "bad.json"
    bad_doc = json.loads(json.dumps(doc))
    bad_doc["features"][0]["scenarios"][0]["first_failure"] = "it broke"
    bad.write_text(json.dumps(bad_doc), encoding="utf-8")
    for broken in (deepest, deep, bad):
        for argv in (["report", "render", str(broken), "-o", "x.html"], ["report", "merge", str(good), str(broken), "-o", "m.html"],
                     ["report", "diff", str(good), str(broken)]):
            done = cli(*argv, cwd=tmp_path)
            assert done.returncode == 1, (argv, done.stderr)
            assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1 and str(broken) in done.stderr, (argv, done.stderr)


SHARDED = """\
Feature: Four conversations
  Scenario: one
    Given the user declines the server's questions
  Scenario: two
    Given the user declines the server's questions
  Scenario: three
    Given the user declines the server's questions
  Scenario: four
    Given the user declines the server's questions
"""


def test_h10_report_merge_refuses_gaps_and_doubles_of_shards(project: Project) -> None:
    project.config('[tool.behave_aitest]\nmodel = "scripted"\n')
    project.feature("four.feature", SHARDED)
    for k in (1, 2):
        done = run_bounded(project, "--runner", "behave_aitest.parallel:ParallelRunner", "-D", f"aitest.shard={k}/2",
                           "-f", "behave_aitest.formatter:JSONFormatter", "-o", f"reports/s{k}.json")
        assert done.returncode == 0, done.output[-2000:]
    reports = project.root / "reports"
    both = cli("report", "merge", str(reports / "s1.json"), str(reports / "s2.json"), "-o", "m.json", cwd=project.root)
    assert both.returncode == 0, both.stderr
    assert "4 scenarios: 4 passed" in both.stderr, both.stderr
    twice = cli("report", "merge", str(reports / "s1.json"), str(reports / "s1.json"), "-o", "m.json", cwd=project.root)
    assert twice.returncode == 1 and "shard 1/2 given more than once" in twice.stderr, twice.stderr
    alone = cli("report", "merge", str(reports / "s2.json"), "-o", "m.json", cwd=project.root)
    assert alone.returncode == 1 and "shard 1/2 not given" in alone.stderr and "ran in no shard given" in alone.stderr, alone.stderr
    assert "Traceback" not in twice.stderr + alone.stderr


def test_h19_temporary_folders_of_a_killed_run_are_removed_at_the_next_start(project: Project, fake_llm: FakeOpenAI, tmp_path: Path) -> None:
    fake_llm.add({"tool_calls": [("hang", {"seconds": 600})]})
    fake_llm.add({"content": "hello"})
    project.config(llm_config(fake_llm) + FAULTY.replace('faulty_server"]\n', 'faulty_server"]\nenv = { NOTES = "${AITEST_SERVER_DIR}/n.json" }\n'))
    project.feature("a.feature", 'Feature: A\n  Scenario: busy\n    Given the agent "f"\n    When the user says "hang"\n')
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update({"OPENAI_API_KEY": "sk-fake", "TMPDIR": str(temp)})
    proc = subprocess.Popen([sys.executable, "-m", "behave", "--no-color", "-f", "plain"], cwd=project.root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_server_log(temp, "hanging in tool", 90)  # until the server is inside the tool
        os.killpg(proc.pid, signal.SIGKILL)  # behave and its server: nothing cleans up
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    left = sorted(p.name for p in temp.iterdir())
    assert any(n.startswith("behave-aitest-") for n in left) and any(n.startswith("aitest-faulty-") for n in left), left
    project.feature("a.feature", "Feature: A\n  Scenario: quick\n    When the user says \"hi\"\n")
    done = run_bounded(project, "-f", "plain", env={"TMPDIR": str(temp)})
    assert done.returncode == 0, done.output[-2000:]
    assert sorted(p.name for p in temp.iterdir()) == [], sorted(p.name for p in temp.iterdir())


def test_h13_sigterm_early_in_a_parallel_run_still_reports_every_planned_conversation(project: Project, fake_llm: FakeOpenAI) -> None:
    project.config(llm_config(fake_llm))
    project.feature("four.feature", SHARDED)
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env["OPENAI_API_KEY"] = "sk-fake"
    proc = parallel_run(project, env)
    try:
        out = term_when(proc, "conversations on 2 workers", 120)  # the plan is made: before any worker has started
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode != 0, out
    found = scenarios(project.root)
    assert sorted(found) == ["four", "one", "three", "two"], (sorted(found), out[-2000:])
    assert list((project.root / "reports" / "junit").glob("*.xml")), out[-2000:]
    assert "Traceback" not in out, out[-3000:]


HANGING_STEP = """\
from pathlib import Path
import time
from behave import when


@when("a step of the project ignores interrupts")
def ignore_interrupts(context):
    while True:  # a step stuck in code that swallows Ctrl-C: its worker never stops by itself
        try:
            Path("hanging").touch()
            time.sleep(60)
        except KeyboardInterrupt:
            pass
"""

HANGING_SESSION = """\
@session
Feature: A worker that never stops
  Scenario: First
    When the user says "hello"
    Then the response mentions "Hello there"

  Scenario: Second
    When the user says "hello again"
    Then the response mentions "Hello there"
    When a step of the project ignores interrupts
    Then the agent answered

  Scenario: Third
    When the user says "hello at last"
"""


def test_h15_a_worker_killed_after_the_grace_keeps_what_it_finished(project: Project) -> None:
    project.config('[tool.behave_aitest]\nmodel = "scripted"\nscripted_rules = "rules.toml"\n')
    (project.root / "rules.toml").write_text("[[rule]]\nwhen = 'hello'\nreply = \"Hello there\"\n", encoding="utf-8")
    (project.root / "features" / "steps" / "hang.py").write_text(HANGING_STEP, encoding="utf-8")
    project.feature("hang.feature", HANGING_SESSION)
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    proc = parallel_run(project, env)
    try:
        deadline = time.time() + 90
        while not (project.root / "hanging").exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        assert (project.root / "hanging").exists(), proc.communicate(timeout=30)[0][-3000:]
        proc.send_signal(signal.SIGTERM)  # the worker swallows it: after the grace it is killed
        out = term_when(proc, "stopping every worker", 60)  # a second signal ends the grace at once
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode != 0, out
    assert "stopping now (second signal)" in out, out[-3000:]
    found = scenarios(project.root)
    # what the killed worker had finished keeps its outcome, its turns included...
    assert found["First"]["status"] == "passed", (found["First"], out[-3000:])
    assert len(found["First"]["turns"]) == 1
    second = found["Second"]
    assert [s["status"] for s in second["steps"]] == ["passed", "passed", "error", "untested"], second["steps"]
    assert len(second["turns"]) == 1 and second["steps"][0]["turn"] == 0, second
    assert "was killed" in second["steps"][2]["error"], second["steps"][2]
    assert second["status"] == "error", second
    # ...and only what never ran is untested
    assert found["Third"]["status"] == "untested", found["Third"]
    assert "Traceback" not in out, out[-3000:]
    assert processes_in(project.root) == []


def test_h17_calling_another_agents_tool_names_the_server_not_allowed_tools(project: Project) -> None:
    project.config("""
        [tool.behave_aitest]
        model = "scripted"
        [tool.behave_aitest.servers.hostile]
        command = ["python", "-m", "behave_aitest.testing.hostile_server"]
        [tool.behave_aitest.servers.faulty]
        command = ["python", "-m", "behave_aitest.testing.faulty_server"]
        [tool.behave_aitest.agents.a]
        servers = ["hostile"]
        [tool.behave_aitest.agents.b]
        servers = ["faulty"]
    """)
    project.feature("h17.feature", 'Feature: H17\n  Scenario: b\'s tool\n    Given the agent "a"\n    When the tool "faulty.echo" is called with:\n      | text | hi |\n')
    result = run_bounded(project, "-f", "plain")
    assert "The MCP server 'faulty' (agent 'b' uses it) is not one of its servers (hostile)." in result.output, result.output[-2000:]
    assert "allowed_tools" not in result.output, result.output[-2000:]


A60 = "a" * 60 + "!"
PATTERN_RULES = r"""
[[rule]]
when = "greet me"
reply = "Alice Wonderland from the ACME Corporation Intl!"

[[rule]]
when = "spell it"
reply = "A60"

[[rule]]
when = "^(a|aa)*$"
reply = "never"
""".replace("A60", A60)

PATTERN_FEATURE = r"""
Feature: A pattern of the scenario's own against untrusted text
  Scenario: a matches step that backtracks without end with re
    When the user says "greet me"
    Then the response does not match "^(\w+\s?)*$"

  Scenario: a matches step no engine decides quickly
    When the user says "spell it"
    Then the response matches "^(a|aa)*$"

  Scenario: a scripted rule no engine decides quickly on the user's message
    When the user says "A60"
    Then the agent answered
""".replace("A60", A60)


def test_a_catastrophic_pattern_of_a_step_or_a_scripted_rule_cannot_hang_the_run(project: Project) -> None:
    """Like H3 for the scenario's own patterns: a ``matches`` step and a scripted rule search
    untrusted text (the answer, the user's message); with ``re`` the first scenario ran for
    ever, holding the interpreter lock (no timeout, no signal). Now every such search goes
    through the ``regex`` engine with a bound (text/patterns.py): the first is decided at once,
    one no engine decides quickly is a step error naming the pattern (the second) or the
    turn's model error (the third), and the run ends."""
    (project.root / "rules.toml").write_text(PATTERN_RULES, encoding="utf-8")
    project.config('[tool.behave_aitest]\nmodel = "scripted"\nscripted_rules = "rules.toml"\n')
    project.feature("patterns.feature", PATTERN_FEATURE)
    result = run_bounded(project, *REPORT, timeout=60)
    found = scenarios(project.root)
    assert found["a matches step that backtracks without end with re"]["status"] == "passed", found
    step = found["a matches step no engine decides quickly"]
    assert step["status"] == "error", step
    assert "could not be matched within 1 s" in step["first_failure"]["message"] and "^(a|aa)*$" in step["first_failure"]["message"], step
    rule = found["a scripted rule no engine decides quickly on the user's message"]
    assert rule["status"] == "error" and "could not be matched within 1 s" in rule["first_failure"]["message"], rule
    assert "Traceback" not in result.output, result.output
