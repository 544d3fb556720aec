"""Cassettes: record against the fake OpenAI-compatible server, then replay with the server
stopped and every non-loopback connection refused. behave runs in a subprocess, MCP servers
are real processes, and the cassette files are read back as JSON."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import BANK, Project, Result, example_project, llm_config
from test_e2e import BANKER, BANKING_REPLIES, BANKING_SESSION

from behave_aitest.record import cassettes
from behave_aitest.text.files import write_atomic
from behave_aitest.config import ConfigError, load_config
from behave_aitest.model.fakellm import FakeOpenAI
from behave_aitest.text.redact import Redactor

REPO = Path(__file__).resolve().parents[1]

# Loaded by every Python process of a guarded run (PYTHONPATH): any connection to a
# non-loopback address, and any name lookup other than localhost, fails and is logged.
NETWORK_GUARD = '''
import os, socket
_LOG = os.environ["AITEST_NETWORK_LOG"]
_LOCAL = ("127.0.0.1", "::1", "localhost")

def _note(what):
    with open(_LOG, "a", encoding="utf-8") as file:
        file.write(what + "\\n")

def _check(sock, address):
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        _note(f"connect {address[0]}:{address[1]}")
        if address[0] not in _LOCAL:
            raise OSError(f"network blocked by the test: connect to {address!r}")

_connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

def connect(self, address):
    _check(self, address)
    return _connect(self, address)

def connect_ex(self, address):
    _check(self, address)
    return _connect_ex(self, address)

def getaddrinfo(host, *args, **kwargs):
    if host not in (None, *_LOCAL):
        _note(f"getaddrinfo {host}")
        raise socket.gaierror(f"network blocked by the test: lookup of {host!r}")
    return _getaddrinfo(host, *args, **kwargs)

socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
'''

# A step the test projects use to look at the records the report will read.
RECORD_STEPS = '''
from behave import then
from behave_aitest.run.runtime import runtime_of

@then("the model calls match the cassette mode")
def step_calls_match_mode(context):
    runtime = runtime_of(context)
    live = runtime.live()
    calls = [c for t in live.record.turns for c in t.model_calls]
    assert calls, "no model calls"
    mode = context.config.userdata.get("aitest.cassette")
    if mode == "replay":
        assert live.record.cassette_mode == "replay", live.record
        assert live.record.cassette_recorded["models"] == ["openai/fake-model"], live.record.cassette_recorded
        assert live.record.cassette_recorded["scripted"] is False
        assert all(c.replayed and c.cost_usd == 0.0 for c in calls), calls
        assert all(c.recorded_cost_usd and c.recorded_cost_usd > 0 for c in calls), calls
    else:
        assert live.record.cassette_mode == "record" and live.record.cassette_recorded is None, live.record
        assert all(not c.replayed and c.cost_usd and c.recorded_cost_usd is None for c in calls), calls
    assert live.record.cassette.startswith("features/cassettes/"), live.record.cassette


@then("the judge calls match the cassette mode")
def step_judge_calls_match_mode(context):
    judged = [j for t in runtime_of(context).live().record.turns for j in t.judge_calls]
    replay = context.config.userdata.get("aitest.cassette") == "replay"
    assert judged and all(j.replayed == replay and j.error is None for j in judged), judged
    assert all((j.cost_usd == 0.0 and j.recorded_cost_usd > 0) if replay else (j.cost_usd > 0 and j.recorded_cost_usd is None) for j in judged), judged
'''

PRICE = '[tool.behave_aitest.prices."openai/fake-model"]\ninput_per_million = 1.0\noutput_per_million = 2.0\n'


def run(project: Project, *args: str, guard: bool = False, env: dict[str, str] | None = None, keyless: bool = False) -> tuple[Result, list[str]]:
    """``project.run``; with ``guard`` the network is refused and the attempts are returned;
    ``keyless`` runs with no provider key or base URL in the environment at all."""
    log = project.root / "network.log"
    log.unlink(missing_ok=True)
    extra = dict(env or {})
    if guard:
        guard_dir = project.root / "guard"
        guard_dir.mkdir(exist_ok=True)
        (guard_dir / "sitecustomize.py").write_text(NETWORK_GUARD, encoding="utf-8")
        extra["PYTHONPATH"] = os.pathsep.join([str(guard_dir), *filter(None, [os.environ.get("PYTHONPATH")])])
        extra["AITEST_NETWORK_LOG"] = str(log)
    if keyless:
        clean = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("OPENAI_")}
        done = subprocess.run(
            [sys.executable, "-m", "behave", "--no-color", "--no-capture", *args],
            cwd=project.root, env={**clean, **extra}, capture_output=True, text=True, encoding="utf-8", timeout=180,
        )
        result = Result(done.returncode, done.stdout, done.stderr)
    else:
        result = project.run(*args, env=extra)
    tried = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    return result, tried


def files(project: Project) -> list[str]:
    root = project.root / "features" / "cassettes"
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.exists() else []


def document(project: Project, name: str) -> dict:
    return json.loads((project.root / "features" / "cassettes" / name).read_text(encoding="utf-8"))


BANK_FEATURE = """\
Feature: Bank
  Scenario: Savings balance
    Given the agent "banker"
    When the user says "What is in savings?"
    Then the agent called tool "get_balance"
    And the response mentions "3,200"
    And the model calls match the cassette mode
    And the turn cost less than $0.01

  Scenario: Hello
    Given the agent "banker"
    When the user says "Hello"
    Then the response mentions "Hi"
    And the response satisfies "it greets the user"
    And the judge calls match the cassette mode
"""


def bank_project(project: Project, server: FakeOpenAI) -> None:
    project.config(llm_config(server) + BANK + BANKER + PRICE)
    project.feature("bank.feature", BANK_FEATURE)
    (project.root / "features" / "steps" / "records.py").write_text(RECORD_STEPS, encoding="utf-8")


def test_record_then_replay_offline_and_a_changed_prompt_fails_with_a_diff(project: Project, fake_llm: FakeOpenAI) -> None:
    fake_llm.add(
        {"tool_calls": [("get_balance", {"account": "savings"})]},
        {"content": "Savings hold $3,200.00."},
        {"content": "Hi! How can I help?"},
        {"content": '{"verdicts": [{"criterion": 1, "pass": true, "reason": "It says hi."}]}'},  # the judge
    )
    bank_project(project, fake_llm)
    result, _ = run(project, "-D", "aitest.cassette=record")
    assert result.returncode == 0, result.output
    assert files(project) == ["bank/hello.json", "bank/savings-balance.json"]
    recorded = document(project, "bank/savings-balance.json")
    assert (recorded["format"], recorded["version"]) == ("behave-aitest cassette", 2)
    assert (recorded["feature"], recorded["scenario"], recorded["session"]) == ("features/bank.feature", "Savings balance", False)
    assert recorded["recorded"]["models"] == ["openai/fake-model"] and recorded["recorded"]["scripted"] is False
    first, second = recorded["interactions"]
    assert first["request"]["model"] == "openai/fake-model"
    assert [m["role"] for m in first["request"]["messages"]] == ["system", "user"]
    assert first["request"]["tools"] in recorded["tool_schemas"]
    assert first["api_base"] == "http://127.0.0.1:<port>/v1"
    assert first["response"]["tool_calls"][0]["name"] == "get_balance"
    assert second["request"]["messages"][-1]["role"] == "tool" and "3,200.00" in second["request"]["messages"][-1]["content"]
    assert second["response"]["content"] == "Savings hold $3,200.00." and second["response"]["cost_usd"] > 0
    assert "api_key" not in json.dumps(recorded) and "sk-fake-key" not in json.dumps(recorded)
    # The judge's call goes through the same completer: recorded in the scenario's cassette, after the agent's.
    judged = document(project, "bank/hello.json")["interactions"]
    assert len(judged) == 2 and "CRITERIA:\n1. it greets the user" in judged[1]["request"]["messages"][-1]["content"]

    # Replay: the fake server is gone and the network is refused; the bank server runs for real.
    fake_llm.stop()
    result, tried = run(project, "-D", "aitest.cassette=replay", guard=True)
    assert result.returncode == 0, result.output
    assert "2 scenarios passed, 0 failed" in result.output
    assert tried == [], f"replay tried to reach the network: {tried}"
    assert len(fake_llm.requests) == 4

    # A changed system prompt: the replay fails with the cassette, the call and a diff, and
    # still makes no connection (a miss never falls through to a live call).
    config = project.root / "pyproject.toml"
    config.write_text(config.read_text().replace("a careful banking", "a terse banking"), encoding="utf-8")
    result, tried = run(project, "-D", "aitest.cassette=replay", guard=True)
    assert result.returncode == 1
    assert tried == []
    out = result.output
    assert "The agent did not finish the turn (cassette)" in out
    assert "model call 1 of this conversation matches no recorded request in cassette features/cassettes/bank/savings-balance.json" in out
    assert "scenario 'Savings balance' of features/bank.feature" in out
    assert '-      "content": "You are a careful banking assistant."' in out
    assert '+      "content": "You are a terse banking assistant."' in out
    assert "re-record with -D aitest.cassette=record" in out
    assert "0 scenarios passed, 0 failed, 2 error" in out, out[-600:]


def test_session_feature_is_one_cassette_and_replays_with_server_state(project: Project, fake_llm: FakeOpenAI) -> None:
    fake_llm.add(*BANKING_REPLIES)
    project.config(llm_config(fake_llm) + BANK + BANKER)
    project.feature("bank.feature", BANKING_SESSION)
    result, _ = run(project, "-D", "aitest.cassette=record")
    assert result.returncode == 0, result.output
    assert files(project) == ["bank/session.json"]
    recorded = document(project, "bank/session.json")
    assert recorded["session"] is True and recorded["scenario"] is None
    assert len(recorded["interactions"]) == 6
    # The third scenario's request carries the whole session, and the real bank's state.
    assert "3,700.00" in recorded["interactions"][5]["request"]["messages"][-1]["content"]

    fake_llm.stop()
    result, tried = run(project, "-D", "aitest.cassette=replay", guard=True)
    assert result.returncode == 0, result.output
    assert "3 scenarios passed" in result.output
    assert tried == []


def test_secrets_never_reach_a_cassette(project: Project, fake_llm: FakeOpenAI) -> None:
    planted = {
        "OPENAI_API_KEY": "sk-planted-openai-key-0123456789abcdef",
        "PLANTED_TOKEN": "tok-planted-9f8e7d6c5b4a",
        "GITHUB_TOKEN": "ghp_plantedplantedplantedplanted012345",
    }
    user_key = "sk-proj-PLANTEDuserPastedKey0123456789"
    fake_llm.add(
        {"tool_calls": [("getenv", {"name": "API_TOKEN"})]},
        {"content": f"Your token is {planted['PLANTED_TOKEN']}; I will not repeat {user_key}. GitHub: {planted['GITHUB_TOKEN']}"},
    )
    project.config(
        llm_config(fake_llm)
        + '[tool.behave_aitest.servers.faulty]\ncommand = ["python", "-m", "behave_aitest.testing.faulty_server"]\n'
        + 'env = { API_TOKEN = "${PLANTED_TOKEN}" }\n'
        + '[tool.behave_aitest.agents.helper]\nservers = ["faulty"]\n'
    )
    project.feature(
        "secret.feature",
        f"""\
        Feature: Secrets
          Scenario: Token
            Given the agent "helper"
            When the user says "My key is {user_key}. What is API_TOKEN?"
            Then the result of tool "getenv" mentions "tok-planted"
        """,
    )
    result, _ = run(project, "-D", "aitest.cassette=record", env=planted)
    assert result.returncode == 0, result.output
    text = (project.root / "features" / "cassettes" / "secret" / "token.json").read_text(encoding="utf-8")
    for secret in [*planted.values(), user_key]:
        assert secret not in text, f"{secret!r} reached the cassette"
    assert "[REDACTED:faulty.env.API_TOKEN]" in text  # the tool result, in the second request
    assert "[REDACTED]" in text  # the key the user pasted (looks like a provider key)
    # Scrubbing is part of the hash: the replay (real tool result, real token) still matches.
    fake_llm.stop()
    result, tried = run(project, "-D", "aitest.cassette=replay", env=planted, guard=True)
    assert result.returncode == 0, result.output
    assert tried == []


def test_a_recording_that_fails_or_is_interrupted_writes_nothing(project: Project, fake_llm: FakeOpenAI) -> None:
    fake_llm.add({"content": "Hi!"})
    project.config(llm_config(fake_llm, retries=0))
    project.feature("hello.feature", 'Feature: Hello\n  Scenario: Hello\n    When the user says "Hello"\n')
    result, _ = run(project, "-D", "aitest.cassette=record")
    assert result.returncode == 0, result.output
    good = (project.root / "features" / "cassettes" / "hello" / "hello.json").read_bytes()

    # A turn that errors (the model answers 500): the old cassette stays as it was.
    fake_llm.add({"status": 500, "message": "upstream exploded"})
    result, _ = run(project, "-D", "aitest.cassette=record")
    assert result.returncode == 1
    assert "cassette features/cassettes/hello/hello.json was NOT written: the recording is incomplete" in result.stderr
    assert (project.root / "features" / "cassettes" / "hello" / "hello.json").read_bytes() == good
    assert files(project) == ["hello/hello.json"]

    # Interrupted mid-call (Ctrl-C, then kill): no cassette, no temporary file.
    project.feature("slow.feature", 'Feature: Slow\n  Scenario: Slow\n    When the user says "Take your time"\n')
    for sig in (signal.SIGINT, signal.SIGKILL):
        fake_llm.add({"delay": 60, "content": "too late"})
        before = len(fake_llm.requests)
        env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
        # SIGKILL leaves the run's (empty) log folder behind by nature: keep it in the test's tmp
        (project.root.parent / "tmp").mkdir(exist_ok=True)
        env["TMPDIR"] = str(project.root.parent / "tmp")
        process = subprocess.Popen(
            [sys.executable, "-m", "behave", "--no-color", "-D", "aitest.cassette=record", "features/slow.feature"],
            cwd=project.root, env={**env, "OPENAI_API_KEY": "sk-fake"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            while len(fake_llm.requests) == before and time.monotonic() < deadline and process.poll() is None:
                time.sleep(0.05)
            assert len(fake_llm.requests) > before, process.communicate()[0]
            process.send_signal(sig)
            process.wait(timeout=30)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            process.stdout.close()
        assert files(project) == ["hello/hello.json"], (sig, files(project))


def test_auto_replays_what_exists_and_records_only_where_the_model_is_available(project: Project, fake_llm: FakeOpenAI) -> None:
    fake_llm.add({"content": "one"}, {"content": "two"})
    project.config(llm_config(fake_llm))
    feature = 'Feature: Auto\n  Scenario: One\n    When the user says "1"\n  Scenario: Two\n    When the user says "2"\n'
    project.feature("auto.feature", feature)
    result, _ = run(project, "-D", "aitest.cassette=auto")  # api_base configured: available
    assert result.returncode == 0, result.output
    assert files(project) == ["auto/one.json", "auto/two.json"] and len(fake_llm.requests) == 2

    # No api_base and no OPENAI_API_KEY: the existing cassettes replay (api_base is not part of
    # the hash), the new scenario cannot be recorded and says why; nothing goes out.
    fake_llm.stop()
    project.config('[tool.behave_aitest]\nmodel = "openai/fake-model"\n')
    project.feature("auto.feature", feature + '  Scenario: Three\n    When the user says "3"\n')
    result, tried = run(project, "-D", "aitest.cassette=auto", guard=True, keyless=True)
    assert result.returncode == 1
    assert "2 scenarios passed, 0 failed, 1 error" in result.output, result.output[-800:]
    assert "auto: there is no cassette features/cassettes/auto/three.json" in result.output
    assert "the environment has no OPENAI_API_KEY for model 'openai/fake-model'" in result.output
    assert tried == []
    assert files(project) == ["auto/one.json", "auto/two.json"]


def test_recorded_tools_replay_without_starting_the_servers(project: Project, fake_llm: FakeOpenAI) -> None:
    fake_llm.add({"tool_calls": [("get_balance", {"account": "savings"})]}, {"content": "3,200"})
    project.config(llm_config(fake_llm, cassette_tools="record") + BANK + BANKER)
    project.feature(
        "tools.feature",
        'Feature: Tools\n  Scenario: Savings\n    Given the agent "banker"\n    When the user says "Savings?"\n'
        '    Then the result of tool "get_balance" mentions "3,200.00"\n',
    )
    result, _ = run(project, "-D", "aitest.cassette=record")
    assert result.returncode == 0, result.output
    recorded = document(project, "tools/savings.json")
    tools = recorded["recorded_tools"]
    assert "get_balance" in [t["name"] for t in tools["servers"]["bank"]]
    assert tools["calls"] == [
        {"server": "bank", "tool": "get_balance", "arguments": {"account": "savings"}, "after_model_call": 1,
         "result": tools["calls"][0]["result"], "is_error": False}
    ] and "3,200.00" in tools["calls"][0]["result"]

    # The bank server cannot start any more (as on a CI machine without it): replay does not need it.
    config = llm_config(fake_llm, cassette_tools="record")
    fake_llm.stop()
    project.config(config + '[tool.behave_aitest.servers.bank]\ncommand = ["definitely-not-a-bank-server"]\n' + BANKER)
    result, tried = run(project, "-D", "aitest.cassette=replay", guard=True)
    assert result.returncode == 0, result.output
    assert tried == []
    # Without cassette_tools the server must run for real, and cannot.
    result, _ = run(project, "-D", "aitest.cassette=replay", "-D", "aitest.cassette_tools=off", guard=True)
    assert result.returncode == 1 and "command not found: 'definitely-not-a-bank-server'" in result.output


def test_cassette_names_and_prune(project: Project, fake_llm: FakeOpenAI) -> None:
    fake_llm.brain = lambda request: {"content": "ok"}
    project.config(llm_config(fake_llm))
    project.feature(
        "a.feature",
        """\
        Feature: A
          Scenario: Keep
            When the user says "keep"
          Scenario: Drop
            When the user says "drop"
          Scenario: Same
            When the user says "same 1"
          Scenario: Same
            When the user says "same 2"
          @repeat:2
          Scenario: Twice
            When the user says "twice"
          Scenario Outline: Row <n>
            When the user says "<n>"
            Examples:
              | n   |
              | one |
              | two |
        """,
    )
    project.feature(
        "b.feature",
        '@session @model:openai/model-a @model:openai/model-b\nFeature: B\n  Scenario: only\n    When the user says "b"\n',
    )
    result, _ = run(project, "-D", "aitest.cassette=record")
    assert result.returncode == 0, result.output
    assert files(project) == [
        "a/drop.json", "a/keep.json", "a/row-one-1-1.json", "a/row-two-1-2.json", "a/same.json", "a/same~2.json",
        "a/twice--run-2.json", "a/twice.json", "b/session--openai-model-a.json", "b/session--openai-model-b.json",
    ]
    assert document(project, "b/session--openai-model-b.json")["flow_model"] == "openai/model-b"

    def prune(*args: str) -> subprocess.CompletedProcess[str]:
        # `behave-aitest cassettes prune` (the console script's module) checks; `python -m
        # behave_aitest.cassettes prune` (no console script needed) removes.
        command = ["behave_aitest.cli", "cassettes"] if "--check" in args else ["behave_aitest.cassettes"]
        return subprocess.run([sys.executable, "-m", *command, "prune", *args], cwd=project.root, capture_output=True, text=True)

    done = prune("--check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 stale cassette(s), 10 in use." in done.stdout

    # Drop a scenario, delete a feature, leave a temporary file from an interrupted write.
    project.feature("a.feature", (project.root / "features" / "a.feature").read_text().replace('Scenario: Drop\n    When the user says "drop"\n  ', ""))
    (project.root / "features" / "b.feature").unlink()
    (project.root / "features" / "cassettes" / "a" / ".keep.json.x1y2.tmp").write_text("{", encoding="utf-8")
    done = prune("--check")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "stale: features/cassettes/a/drop.json (features/a.feature has no scenario named 'Drop' any more)" in done.stdout
    assert "stale: features/cassettes/b/session--openai-model-a.json (its feature file 'features/b.feature' no longer exists)" in done.stdout
    assert "stale: features/cassettes/a/.keep.json.x1y2.tmp (left over by an interrupted write)" in done.stdout
    assert "4 stale cassette(s), 7 in use." in done.stdout
    assert len(files(project)) == 11, "--check changes nothing"
    done = prune()
    assert done.returncode == 0 and "4 cassette(s) removed, 7 kept." in done.stdout, done.stdout + done.stderr
    assert "a/drop.json" not in files(project) and not any(f.startswith("b/") for f in files(project))
    assert prune("--check").returncode == 0


def test_example_cassettes_replay_offline(tmp_path: Path) -> None:
    """The repository's own cassettes (recorded against the scripted model) match its features."""
    log = tmp_path / "network.log"
    (tmp_path / "sitecustomize.py").write_text(NETWORK_GUARD, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(PYTHONPATH=str(tmp_path), AITEST_NETWORK_LOG=str(log))
    done = subprocess.run(
        [sys.executable, "-m", "behave", "--no-color", "-f", "behave_aitest.formatter:HTMLFormatter", "-o", str(tmp_path / "r.html"),
         "-f", "plain", "-D", "aitest.cassette=replay"],
        cwd=example_project(tmp_path), capture_output=True, text=True, timeout=300, env=env,
    )
    tried = log.read_text().splitlines() if log.exists() else []
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 failed" in done.stdout and "cassette mode 'replay'" in done.stdout
    assert tried == []
    # The report says the run was replayed, what it cost when recorded, and where the cassettes came from.
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "replayed: no model called" in page
    assert "cassette replay (recorded 20" in page and "against the built-in scripted model, not an LLM" in page
    totals = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))["totals"]
    assert totals["replayed_calls"] == totals["model_calls"] > 0 and totals["cost_usd"] == 0
    for path in (REPO / "features" / "cassettes").rglob("*.json"):
        recorded = json.loads(path.read_text(encoding="utf-8"))
        assert recorded["recorded"]["scripted"] is True, (
            f"{path} was not recorded against the scripted model: update the README and docs/cassettes.md, which say it was"
        )


# --------------------------------------------------------------------------- units: config, hashing, files


def test_cassette_keys_are_checked(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.behave_aitest]\ncassette = "replya"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"pyproject.toml \[tool.behave_aitest\]: 'cassette' must be one of 'off', 'record', 'replay', 'auto' \(got 'replya'\)"):
        load_config({}, cwd=tmp_path)
    (tmp_path / "pyproject.toml").write_text("[tool.behave_aitest]\ncasette = 'record'\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown key 'casette'. Did you mean 'cassette'"):
        load_config({}, cwd=tmp_path)
    (tmp_path / "pyproject.toml").write_text("[tool.behave_aitest]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"-D aitest.cassette_tools: must be one of 'off', 'record'"):
        load_config({"aitest.cassette_tools": "yes"}, cwd=tmp_path)
    with pytest.raises(ConfigError, match=r"-D aitest.cassette is 'replay' but the cassette folder 'features/cassettes' does not exist"):
        load_config({"aitest.cassette": "replay"}, cwd=tmp_path)
    (tmp_path / "tapes").write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^-D aitest.cassette_dir: 'tapes' is a file, not a folder"):
        load_config({"aitest.cassette_dir": "tapes"}, cwd=tmp_path)
    (tmp_path / "pyproject.toml").write_text('[tool.behave_aitest]\ncassette_dir = "tapes"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^pyproject.toml \[tool.behave_aitest\]: 'cassette_dir' 'tapes' is a file, not a folder"):
        load_config({}, cwd=tmp_path)
    (tmp_path / "pyproject.toml").write_text('[tool.behave_aitest]\ncassette = "auto"\ncassette_dir = "rec"\n', encoding="utf-8")
    config = load_config({}, cwd=tmp_path)
    assert (config.cassette, config.cassette_dir, config.cassette_tools) == ("auto", tmp_path / "rec", "off")


def test_hash_ignores_transport_and_provider_ids_but_not_what_changes_the_answer() -> None:
    def request(**changes: object) -> dict:
        base = {
            "model": "openai/gpt-4.1-mini",
            "api_base": "https://one.example/v1",
            "api_key": "sk-one",
            "temperature": 0,
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": None, "tool_calls": [{"id": "call_XyZ", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "call_XyZ", "content": "42"},
            ],
        }
        base.update(changes)
        return base

    digest = cassettes.request_hash(cassettes.normalize_request(request()))
    assert cassettes.request_hash(cassettes.normalize_request(request(api_base="http://127.0.0.1:9/v1", api_key="x", timeout=5))) == digest
    renamed = request()
    renamed["messages"][1]["tool_calls"][0]["id"] = renamed["messages"][2]["tool_call_id"] = "toolu_other"
    assert cassettes.request_hash(cassettes.normalize_request(renamed)) == digest
    for change in ({"temperature": 1}, {"model": "openai/gpt-4.1"}, {"seed": 7}, {"tools": [{"type": "function", "function": {"name": "g"}}]}):
        assert cassettes.request_hash(cassettes.normalize_request(request(**change))) != digest, change
    normalized = cassettes.normalize_request(request())
    assert normalized["messages"][2] == {"role": "tool", "content": "42", "tool_call_id": "call_1"}
    assert "api_key" not in json.dumps(normalized) and "one.example" not in json.dumps(normalized)


def test_scrubber_and_url_scrubbing() -> None:
    scrub = Redactor({"hunter2-long-secret": "DB_PASSWORD", "abc": "TOO_SHORT"})
    text = scrub.text("pw hunter2-long-secret, key sk-ant-api03-abcdefghijklmnopqrstu, Bearer abcdefghijklmnopqrstuvwxyz, abc")
    assert text == "pw [REDACTED:DB_PASSWORD], key [REDACTED], Bearer [REDACTED], abc"
    assert cassettes.scrub_url("https://user:pw@api.example.com:8443/v1?key=secret#x") == "https://api.example.com:8443/v1"
    assert cassettes.scrub_url("http://127.0.0.1:53211/v1") == "http://127.0.0.1:<port>/v1"


def test_write_atomic_keeps_the_old_file_when_writing_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "c" / "x.json"
    write_atomic(target, "old\n")

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        write_atomic(target, "new, half written")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.json"]


def test_slugs_are_stable_and_distinct() -> None:
    assert cassettes.slug("Check balances -- @1.2 Examples") == "check-balances-1-2-examples"
    assert cassettes.slug("Über größe!") == "uber-groe"
    long_a, long_b = "x" * 100 + "a", "x" * 100 + "b"
    assert cassettes.slug(long_a) != cassettes.slug(long_b) and len(cassettes.slug(long_a)) <= 80
    assert cassettes.slug("???").startswith("x-")
