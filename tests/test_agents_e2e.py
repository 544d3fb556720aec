"""Any agent under test (issue 23), end to end through ``python -m behave``: the same Gherkin
for a python agent, an HTTP agent service and a CLI agent (behave_aitest/testing/agents), each
a real client of behave-aitest's model endpoint and MCP endpoints, against the bank server
(a real process) and the project's fake model. Recorded, then replayed with the fake model
stopped and no key; tool steps, a double, a failing tool, a judge step and a simulated user."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Any

import pytest
from conftest import BANK, Project, Result, llm_config, processes_in

from behave_aitest.model.fakellm import FakeOpenAI

FEATURE = '''
Feature: An external agent at the bank
  Background:
    Given the agent "banker"

  Scenario: Balance
    When the user says "What is the balance of checking?"
    Then the agent called tool "get_balance" with:
      | argument | value    |
      | account  | checking |
    And the response mentions "1,500.00"
    And the response satisfies "it gives the balance of checking"

  Scenario: A double answers instead of the bank
    Given the tool "get_balance" returns "checking: $9.99"
    When the user says "What is the balance of checking?"
    Then the agent called tool "get_balance"
    And the response mentions "9.99"

  Scenario: A tool that fails
    When the user says "What is the balance of travel?"
    Then the agent called tool "get_balance"
    And the response mentions "travel"

  Scenario: A simulated user
    When a simulated user talks to the agent for at most 3 turns:
      """
      You want to know the balance of your checking account.
      """
    Then the simulated user reached its goal
    And the agent called tool "get_balance" during the conversation
'''


def _last(request: dict[str, Any], role: str) -> str:
    texts = [str(m.get("content") or "") for m in request["messages"] if m.get("role") == role]
    return texts[-1] if texts else ""


def brain(request: dict[str, Any]) -> dict[str, Any]:
    """The agent's model (fake-model), the judge (fake-judge) and the simulated user (fake-user)."""
    model = str(request.get("model") or "")
    if model == "fake-judge":
        return {"content": json.dumps({"verdicts": [{"criterion": 1, "pass": True, "reason": "It gives it."}]})}
    if model == "fake-user":
        heard = _last(request, "user")
        return {"content": "DONE" if "checking" in heard and "$" in heard else "What is the balance of checking?"}
    if request["messages"][-1]["role"] == "tool":
        return {"content": f"Here you are: {request['messages'][-1]['content']}"}
    account = re.search(r"balance of (\w+)", _last(request, "user"))
    if account:
        return {"tool_calls": [("get_balance", {"account": account.group(1)})]}
    return {"content": "How can I help?"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def agent_table(kind: str, extra: str = "") -> str:
    """The [agents.banker] table of one kind, with the bank server."""
    table = '[tool.behave_aitest.agents.banker]\nservers = ["bank"]\n'
    if kind == "python":
        table += 'python = "behave_aitest.testing.agents.python_agent:agent"\n'
    elif kind == "service":
        port = free_port()
        table += (
            f'url = "http://127.0.0.1:{port}/v1/chat/completions"\n'
            f'command = ["python", "-m", "behave_aitest.testing.agents.service", "--port", "{port}"]\n'
            f'ready_url = "http://127.0.0.1:{port}/health"\n'
        )
    elif kind == "command":
        table += 'command = ["python", "-m", "behave_aitest.testing.agents.cli"]\n'
    return table + extra


def configure(project: Project, fake: FakeOpenAI, kind: str, extra: str = "", **top: Any) -> None:
    fake.brain = brain
    settings = {"retries": 0, "timeout_s": 60, "judge_model": "openai/fake-judge", "user_model": "openai/fake-user", **top}
    project.config(llm_config(fake, **settings) + BANK + 'scope = "run"\n' + agent_table(kind, extra))


def cassettes(project: Project) -> list[Path]:
    return sorted((project.root / "features" / "cassettes").rglob("*.json"))


@pytest.mark.parametrize("kind", ["python", "service", "command"])
def test_each_kind_records_then_replays_offline(project: Project, fake_llm: FakeOpenAI, kind: str) -> None:
    configure(project, fake_llm, kind)
    project.feature("bank.feature", FEATURE)
    result = project.run("-D", "aitest.cassette=record", "-f", "behave_aitest.formatter:JSONFormatter", "-o", "report.json", "-f", "plain")
    assert result.returncode == 0, result.output
    assert "4 scenarios passed, 0 failed" in result.output
    assert len(cassettes(project)) == 4
    live_requests = len(fake_llm.requests)
    assert live_requests >= 10
    report = json.loads((project.root / "report.json").read_text(encoding="utf-8"))
    text = json.dumps(report)
    assert "get_balance" in text
    assert not re.search(r"sk-aitest-[A-Za-z0-9_-]{32}", text)  # the per-run key is never written

    fake_llm.stop()
    result = project.run("-D", "aitest.cassette=replay", env={"OPENAI_API_KEY": ""})
    assert result.returncode == 0, result.output
    assert "4 scenarios passed, 0 failed" in result.output
    assert len(fake_llm.requests) == live_requests  # nothing reached the model
    assert processes_in(project.root) == []  # the service and the CLI agents are gone


@pytest.mark.parametrize("kind", ["python", "service"])
def test_two_workers_each_with_their_own_endpoints(project: Project, fake_llm: FakeOpenAI, kind: str) -> None:
    extra = ""
    if kind == "service":  # each worker starts its own service, on its own port
        kind, extra = "", (
            'url = "http://127.0.0.1:${AITEST_PORT}/v1/chat/completions"\n'
            'command = ["python", "-m", "behave_aitest.testing.agents.service", "--port", "${AITEST_PORT}"]\n'
            'ready_url = "http://127.0.0.1:${AITEST_PORT}/health"\n'
        )
    configure(project, fake_llm, kind, extra)
    project.feature("bank.feature", FEATURE)
    (project.root / "pyproject.toml").write_text(
        (project.root / "pyproject.toml").read_text() + '\n[tool.behave]\nrunner = "behave_aitest.parallel:ParallelRunner"\n'
    )
    result = project.run("-j", "2")
    assert result.returncode == 0, result.output
    assert "4 scenarios passed, 0 failed" in result.output


def test_a_tool_the_agent_keeps_in_process_counts_for_the_tool_steps(project: Project, fake_llm: FakeOpenAI) -> None:
    def clock_brain(request: dict[str, Any]) -> dict[str, Any]:
        if request["messages"][-1]["role"] == "tool":
            return {"content": f"It is {request['messages'][-1]['content']}."}
        return {"tool_calls": [("local_clock", {})]}

    project.config(llm_config(fake_llm, retries=0) + BANK + agent_table("python").replace(":agent", ":local_tool_agent"))
    fake_llm.brain = clock_brain
    project.feature("clock.feature", '''
Feature: The agent's own tool
  Scenario: Time
    When the user says "What time is it?"
    Then the agent called tool "local_clock"
    And the response mentions "12:00"
''')
    result = project.run("-f", "behave_aitest.formatter:JSONFormatter", "-o", "report.json", "-f", "plain")
    assert result.returncode == 0, result.output
    report = json.loads((project.root / "report.json").read_text(encoding="utf-8"))
    turns = [t for f in report["features"] for s in f["scenarios"] for t in s["turns"]]
    calls = [c for t in turns for c in t["tool_calls"]]
    assert [(c["name"], c.get("reported")) for c in calls] == [("local_clock", True)]
    assert turns[0]["agent_kind"] == "python"


BAD_AGENT_FEATURE = '''
Feature: A bad agent
  Scenario: Hello
    When the user says "hello"
    Then the response mentions "hello"
'''


def run_bad(project: Project, fake: FakeOpenAI, table: str, feature: str = BAD_AGENT_FEATURE) -> Result:
    fake.brain = brain
    project.config(llm_config(fake, retries=0, timeout_s=20) + BANK + '[tool.behave_aitest.agents.banker]\nservers = ["bank"]\n' + table)
    project.feature("bad.feature", feature)
    return project.run()


def one_reason(result: Result, expected: str) -> None:
    assert result.returncode != 0
    assert expected in result.output, result.output
    assert "Traceback" not in result.output, result.output


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('python = "no_such_module:agent"\n', "'python' = 'no_such_module:agent' does not import (ModuleNotFoundError"),
        ('python = "behave_aitest.testing.agents.python_agent:not_callable"\n', "is a str, not a callable"),
        ('python = "behave_aitest.testing.agents.python_agent:agnet"\n', "Did you mean 'agent'?"),
        ('python = "behave_aitest.testing.agents.python_agent:number_agent"\n', "returned a value of type int; allowed: a string"),
        ('command = ["python", "-m", "behave_aitest.testing.agents.cli", "--exit", "4"]\n', "exited with status 4"),
        ('command = ["python", "-m", "behave_aitest.testing.agents.cli", "--silent"]\n', "wrote nothing on stdout"),
        ('pyhton = "x:y"\n', "unknown key 'pyhton'. Did you mean 'python'?"),
    ],
)
def test_bad_agents_give_one_line(project: Project, fake_llm: FakeOpenAI, table: str, expected: str) -> None:
    one_reason(run_bad(project, fake_llm, table), expected)


@pytest.mark.parametrize(("args", "expected"), [("--fail 500", "answered HTTP 500"), ("--malformed", "not JSON")])
def test_a_failing_service_is_an_agent_error(project: Project, fake_llm: FakeOpenAI, args: str, expected: str) -> None:
    port = free_port()
    extra = ", ".join(f'"{a}"' for a in args.split())
    table = (
        f'url = "http://127.0.0.1:{port}/v1/chat/completions"\n'
        f'command = ["python", "-m", "behave_aitest.testing.agents.service", "--port", "{port}", {extra}]\n'
        f'ready_url = "http://127.0.0.1:{port}/health"\n'
    )
    result = run_bad(project, fake_llm, table)
    one_reason(result, expected)
    assert "The agent did not finish the turn (agent error): the agent service at" in result.output
    assert processes_in(project.root) == []


def test_a_service_that_is_down(project: Project, fake_llm: FakeOpenAI) -> None:
    one_reason(run_bad(project, fake_llm, f'url = "http://127.0.0.1:{free_port()}/v1/chat/completions"\n'), "is down")


def test_no_model_call_is_a_warning_and_a_tool_step_names_the_endpoint(project: Project, fake_llm: FakeOpenAI) -> None:
    feature = BAD_AGENT_FEATURE.replace('Then the response mentions "hello"', 'Then the response mentions "hello"\n    And the agent called tool "get_balance"')
    result = run_bad(project, fake_llm, 'python = "behave_aitest.testing.agents.python_agent:no_model_agent"\n', feature)
    one_reason(result, "no tool call reached behave-aitest's MCP endpoints in this turn (the agent's MCP URLs: bank: http://127.0.0.1:")
    assert "the agent answered without any model call through behave-aitest's model endpoint" in result.output


def test_doctor_checks_that_a_python_agent_imports(project: Project, fake_llm: FakeOpenAI) -> None:
    import subprocess
    import sys

    project.config(llm_config(fake_llm) + '[tool.behave_aitest.agents.good]\npython = "behave_aitest.testing.agents.python_agent:agent"\n'
                   '[tool.behave_aitest.agents.bad]\npython = "behave_aitest.testing.agents.python_agent:agnet"\n'
                   '[tool.behave_aitest.agents.cli]\ncommand = ["my-agent"]\n')
    project.feature("x.feature", BAD_AGENT_FEATURE)
    done = subprocess.run([sys.executable, "-m", "behave_aitest.cli", "doctor"], cwd=project.root, capture_output=True, text=True, timeout=180)
    assert done.returncode == 1, done.stdout + done.stderr
    assert re.search(r"\[ok\]\s+agent 'good': python agent behave_aitest.testing.agents.python_agent:agent imports\n", done.stdout)
    assert re.search(r"\[FAIL\]\s+agent 'bad': .* has no 'agnet'. Did you mean 'agent'\?\n", done.stdout), done.stdout
    assert re.search(r"\[ok\]\s+agent 'cli': CLI agent my-agent, run once per turn\n", done.stdout)


def test_models_compared_and_a_session_carried_for_an_external_agent(project: Project, fake_llm: FakeOpenAI) -> None:
    configure(project, fake_llm, "python")
    project.feature("session.feature", '''
@session
Feature: A session with an external agent
  Background:
    Given the agent "banker"

  Scenario: Ask
    When the user says "What is the balance of checking?"
    Then the agent called tool "get_balance"

  Scenario: Go on
    When the user says "Thanks"
    Then the response mentions "How can I help?"
''')
    result = project.run("-D", "aitest.models=openai/fake-model,openai/fake-other")
    assert result.returncode == 0, result.output
    assert "4 scenarios passed, 0 failed" in result.output
    asked = [r["model"] for r in fake_llm.requests if r["model"] in ("fake-model", "fake-other")]
    assert sorted(set(asked)) == ["fake-model", "fake-other"]  # the agent asked for neither: the flow's model answered
    last = [r for r in fake_llm.requests if r["model"] == "fake-other"][-1]
    assert [m["role"] for m in last["messages"]] == ["user", "assistant", "tool", "assistant", "user"]  # the session's history


def test_a_servers_question_is_answered_by_the_scenario_for_an_external_agent(project: Project, fake_llm: FakeOpenAI) -> None:
    fake_llm.add({"tool_calls": [("start_design", {})]}, {"content": "Started."})
    project.config(
        llm_config(fake_llm, retries=0)
        + '[tool.behave_aitest.servers.studio]\ncommand = ["python", "-m", "behave_aitest.testing.studio_server"]\n'
        + '[tool.behave_aitest.agents.designer]\nservers = ["studio"]\npython = "behave_aitest.testing.agents.python_agent:agent"\n'
        + '[tool.behave_aitest.agents.reader]\nservers = ["studio"]\npython = "behave_aitest.testing.agents.python_agent:reader_agent"\n'
    )
    project.feature("studio.feature", '''
Feature: Elicitation behind an external agent
  Scenario: answered
    Given the agent "designer"
    And the user will answer the server's questions with:
      | field   | value |
      | client  | ACME  |
      | colours | 3     |
    When the user says "start a design"
    Then the server asked the user for "client"
    And the result of tool "start_design" mentions "ACME in 3 colours"

  Scenario: resources and prompts reach the agent through its MCP endpoint
    Given the agent "reader"
    When the user says "studio://brand-guide"
    Then the response mentions "Never use pink"
    And the response mentions "listed: studio://brand-guide; templates: studio://projects/{name}"
    When the user says "studio://projects/fox"
    Then the response mentions "Project fox: a logo in autumn colours"
    When the user says "prompt critique fox logo"
    Then the response mentions "Please critique the design 'fox logo' against the brand guide"
    When the user says "studio://brand-guid"
    Then the response mentions "refused: MCP server 'studio': resources/read failed"
''')
    result = project.run()
    assert result.returncode == 0, result.output
    assert "2 scenarios passed, 0 failed" in result.output


def test_a_system_prompt_step_for_an_external_agent_says_it_changes_nothing(project: Project, fake_llm: FakeOpenAI) -> None:
    feature = BAD_AGENT_FEATURE.replace('    When the user says "hello"', '    Given the system prompt:\n      """\n      Be terse.\n      """\n    When the user says "hello"')
    result = run_bad(project, fake_llm, 'python = "behave_aitest.testing.agents.python_agent:no_model_agent"\n', feature)
    one_reason(result, "the agent 'banker' is a python agent with its own prompt.")
