"""End to end: ``python -m behave`` in a subprocess, litellm over HTTP to the fake server,
real MCP server processes. Each test checks the exit code, the output, and what the
model was actually sent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import BANK, WEATHER, Project, example_project, llm_config

from behave_aitest.model.fakellm import FakeOpenAI

REPO = Path(__file__).resolve().parents[1]

BANKER = '[tool.behave_aitest.agents.banker]\nservers = ["bank"]\nsystem_prompt = "You are a careful banking assistant."\n'

BANKING_SESSION = """\
@session
Feature: Banking assistant remembers a savings goal
  Background:
    Given the agent "banker"

  Scenario: Check balances
    When the user says "I'm saving for a trip to Paris. What are my balances?"
    Then the agent called tool "get_all_balances"

  Scenario: Transfer for that trip
    When the user says "Transfer $500 to savings for that trip I mentioned."
    Then the agent called tool "transfer" with:
      | argument     | value    |
      | from_account | checking |
      | to_account   | savings  |
      | amount       | 500      |

  Scenario: Remember the goal
    When the user says "What was I saving for again?"
    Then the response mentions "Paris"
    And the agent did not call tool "transfer"
    And the agent called tool "transfer" during the conversation
"""

# What the fake model answers, in order, for BANKING_SESSION (the bank server does the rest).
BANKING_REPLIES = (
    {"tool_calls": [("get_all_balances", {})]},
    {"content": "Checking $1,500, savings $3,200."},
    {"tool_calls": [("transfer", {"from_account": "checking", "to_account": "savings", "amount": 500, "memo": "Paris"})]},
    {"content": "Moved $500 to savings for Paris."},
    {"tool_calls": [("get_balance", {"account": "savings"})]},
    {"content": "You were saving for a trip to Paris; savings now hold $3,700."},
)


def texts(request: dict) -> list[str]:
    return [str(m.get("content") or "") for m in request["messages"]]


def test_banking_session_keeps_history_and_server_state(project: Project, fake_llm: FakeOpenAI) -> None:
    fake_llm.add(*BANKING_REPLIES)
    project.config(llm_config(fake_llm) + BANK + BANKER)
    project.feature("bank.feature", BANKING_SESSION)
    result = project.run()
    assert result.returncode == 0, result.output
    assert "3 scenarios passed" in result.output
    requests = fake_llm.requests
    assert len(requests) == 6
    # Scenario 3's first request carries the whole session so far, with the system prompt first.
    third = requests[4]
    assert third["messages"][0] == {"role": "system", "content": "You are a careful banking assistant."}
    assert "I'm saving for a trip to Paris. What are my balances?" in texts(third)
    assert "Transfer $500 to savings for that trip I mentioned." in texts(third)
    assert texts(third)[-1] == "What was I saving for again?"
    # One server process for the whole session: the transfer of scenario 2 shows in scenario 3.
    assert "3,700.00" in texts(requests[5])[-1], texts(requests[5])[-1]
    # The tools the provider saw are the MCP server's own.
    names = {t["function"]["name"] for t in requests[0]["tools"]}
    assert {"get_balance", "get_all_balances", "transfer"} <= names


def test_weather_chat_follow_ups_see_earlier_turns(project: Project, fake_llm: FakeOpenAI) -> None:
    fake_llm.add(
        {"tool_calls": [("get_weather", {"city": "Paris"})]},
        {"content": "Paris: 18°C, partly cloudy."},
        {"tool_calls": [("get_forecast", {"city": "Paris", "days": 2})]},
        {"content": "Tomorrow in Paris: rain likely."},
        {"content": "Yes, bring an umbrella."},
    )
    project.config(llm_config(fake_llm) + WEATHER + '[tool.behave_aitest.agents.forecaster]\nservers = ["weather"]\n')
    project.feature(
        "weather.feature",
        """\
        @session
        Feature: Weather chat
          Background:
            Given the agent "forecaster"
          Scenario: Now
            When the user says "What's the weather in Paris?"
            Then the agent called tool "get_weather"
          Scenario: Tomorrow
            When the user says "What about tomorrow?"
            Then the agent called tool "get_forecast" with:
              | argument | value |
              | city     | Paris |
          Scenario: Umbrella
            When the user says "Should I bring an umbrella?"
            Then the agent called no tools
            And the response mentions "umbrella"
            And the conversation has 10 messages
        """,
    )
    result = project.run()
    assert result.returncode == 0, result.output
    umbrella = fake_llm.requests[4]
    assert "What's the weather in Paris?" in texts(umbrella)
    assert any("rain" in t.lower() for t in texts(umbrella)[:-1]), "the forecast tool result is in the history"


def test_session_features_are_isolated(project: Project, fake_llm: FakeOpenAI) -> None:
    fake_llm.add(
        {"tool_calls": [("transfer", {"from_account": "checking", "to_account": "savings", "amount": 100})]},
        {"content": "done"},
        {"tool_calls": [("get_balance", {"account": "savings"})]},
        {"content": "savings 3,200"},
    )
    project.config(llm_config(fake_llm) + BANK + BANKER)
    for name, says in (("a", "Move $100 to savings, my name is Alice."), ("b", "What is in savings?")):
        project.feature(
            f"{name}.feature",
            f"""\
            @session
            Feature: Session {name}
              Scenario: only
                Given the agent "banker"
                When the user says "{says}"
            """,
        )
    result = project.run()
    assert result.returncode == 0, result.output
    second = fake_llm.requests[2]
    assert texts(second) == ["You are a careful banking assistant.", "What is in savings?"]
    # A fresh bank process: the first feature's transfer is not visible.
    assert "3,200.00" in texts(fake_llm.requests[3])[-1]


def test_session_with_two_model_tags_runs_two_flows(project: Project, fake_llm: FakeOpenAI) -> None:
    fake_llm.add(*[{"content": f"answer {i}"} for i in range(4)])
    project.config(llm_config(fake_llm))
    project.feature(
        "models.feature",
        """\
        @session @model:openai/model-a @model:openai/model-b
        Feature: Compare
          Scenario: first
            When the user says "Remember the word kiwi."
          Scenario: second
            When the user says "Which word?"
            Then the conversation has 4 messages
        """,
    )
    result = project.run()
    assert result.returncode == 0, result.output
    assert [r["model"] for r in fake_llm.requests] == ["model-a", "model-a", "model-b", "model-b"]
    assert texts(fake_llm.requests[2]) == ["Remember the word kiwi."], "flow b starts with an empty history"
    assert "Feature: Compare [openai/model-a]" in result.output
    assert "Feature: Compare [openai/model-b]" in result.output


def test_model_precedence_and_outline_rows(project: Project, fake_llm: FakeOpenAI) -> None:
    fake_llm.add(*[{"content": "ok"} for _ in range(5)])
    project.config(llm_config(fake_llm))
    project.feature(
        "m.feature",
        """\
        @model:openai/feature-model
        Feature: Models
          Scenario: feature tag
            When the user says "a"
          @model:openai/scenario-model
          Scenario: scenario tag
            When the user says "b"
          Scenario: step
            Given the model "openai/step-model"
            When the user says "c"
          @model:<model>
          Scenario Outline: compare
            When the user says "d"
            Examples:
              | model          |
              | openai/row-one |
              | openai/row-two |
        """,
    )
    result = project.run()
    assert result.returncode == 0, result.output
    assert [r["model"] for r in fake_llm.requests] == ["feature-model", "scenario-model", "step-model", "row-one", "row-two"]
    fake_llm.add(*[{"content": "ok"} for _ in range(5)])
    result = project.run("-D", "aitest.model=openai/override")
    assert result.returncode == 0, result.output
    assert {r["model"] for r in fake_llm.requests[5:]} == {"override"}


def test_max_turns_exceeded_fails_the_step(project: Project, fake_llm: FakeOpenAI) -> None:
    fake_llm.add(*[{"tool_calls": [("get_balance", {"account": "checking"})]} for _ in range(3)])
    project.config(llm_config(fake_llm, max_turns=3) + BANK + BANKER)
    project.feature(
        "loop.feature",
        """\
        Feature: Loop
          Scenario: never answers
            Given the agent "banker"
            When the user says "Check my balance"
        """,
    )
    result = project.run()
    assert result.returncode == 1
    assert "still calling tools after 3 model calls (max_turns = 3)" in result.output
    assert "1 scenario passed" not in result.output and "0 scenarios passed, 1 failed" in result.output
    assert "get_balance" in result.output  # what the agent did is shown


def test_failed_then_prints_what_happened(project: Project, fake_llm: FakeOpenAI) -> None:
    fake_llm.add({"tool_calls": [("get_balance", {"account": "checking"})]}, {"content": "You have $1,500."})
    project.config(llm_config(fake_llm) + BANK + BANKER)
    project.feature(
        "f.feature",
        """\
        Feature: F
          Scenario: wrong tool
            Given the agent "banker"
            When the user says "Move money"
            Then the agent called tool "transfer"
        """,
    )
    result = project.run()
    assert result.returncode == 1
    assert "Expected the agent to call tool 'transfer' in this turn, but it did not." in result.output
    assert 'get_balance({"account": "checking"})' in result.output
    assert "You have $1,500." in result.output


def test_steps_without_hooks_say_which_line_to_add(project: Project) -> None:
    (project.root / "features" / "environment.py").unlink()
    project.config("[tool.behave_aitest]\n")
    project.feature("f.feature", 'Feature: F\n  Scenario: s\n    When the user says "hi"\n')
    result = project.run()
    assert result.returncode == 1
    assert "from behave_aitest.environment import *" in result.output


def test_bad_config_is_reported_before_the_first_scenario(project: Project) -> None:
    project.feature("f.feature", 'Feature: F\n  Scenario: s\n    Given the agent "banker"\n    When the user says "hi"\n')
    cases = {
        '[tool.behave_aitest]\nmodle = "x"\n': "pyproject.toml [tool.behave_aitest]: unknown key 'modle'. Did you mean 'model'?",
        "[tool.behave_aitest]\nmax_turns = -1\n": "'max_turns' must be a whole number of at least 1",
        '[tool.behave_aitest.agents.banker]\nservers = ["bank"]\n': "'servers' names unknown server 'bank'",
        "[tool.behave_aitest.agents.teller]\n": "features/f.feature:3: unknown agent 'banker' (known agents: teller)",
    }
    for text, message in cases.items():
        project.config(text)
        result = project.run()
        assert result.returncode == 1, text
        assert message in result.output, (text, result.output)
        assert "Scenario: s" not in result.stdout.split("HOOK-ERROR")[0] or "passed" not in result.output


def test_dry_run_imports_neither_litellm_nor_mcp(project: Project) -> None:
    project.config("[tool.behave_aitest]\n")
    project.feature("f.feature", 'Feature: F\n  Scenario: s\n    When the user says "hi"\n    Then the response mentions "x"\n')
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "behave", "--dry-run", "--no-color"],
        cwd=project.root, capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    assert "behave_aitest.steps" in imported
    assert not {m for m in imported if m == "litellm" or m == "mcp"}, "a dry run must not import litellm or mcp"


def test_steps_catalog_documents_every_step() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "behave", "--steps-catalog", "--no-color"], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert 'When the user says "{text}"' in done.stdout
    import importlib
    import pkgutil

    from behave_aitest import steps

    modules = [importlib.import_module(f"behave_aitest.steps.{m.name}") for m in pkgutil.iter_modules(steps.__path__)]
    found = {f"{m.__name__}.{n}": f for m in modules for n, f in vars(m).items() if n.startswith("step_") and callable(f)}
    assert len(found) > 50, "the step families were not found"
    undocumented = [name for name, f in found.items() if not (f.__doc__ or "").strip()]
    assert not undocumented


def test_example_features_run_offline_with_the_scripted_model(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "behave", "--no-color", "-f", "plain"],
        cwd=example_project(tmp_path), capture_output=True, text=True, timeout=300,
        env={k: v for k, v in __import__("os").environ.items() if not k.endswith("_API_KEY")},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 failed" in done.stdout
    assert "built-in scripted model" in (done.stdout + done.stderr).lower()


def test_streamable_http_server(project: Project, fake_llm: FakeOpenAI, tmp_path: Path) -> None:
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "behave_aitest.testing.bank_server", "--transport", "streamable-http", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        fake_llm.add({"tool_calls": [("get_balance", {"account": "savings"})]}, {"content": "3,200"})
        project.config(
            llm_config(fake_llm)
            + f'[tool.behave_aitest.servers.bank]\nurl = "http://127.0.0.1:{port}/mcp"\n'
            + BANKER
        )
        project.feature(
            "h.feature",
            'Feature: H\n  Scenario: s\n    Given the agent "banker"\n    When the user says "savings?"\n'
            '    Then the result of tool "get_balance" mentions "3,200.00"\n',
        )
        result = project.run()
        assert result.returncode == 0, result.output
    finally:
        server.kill()
        server.wait()
    assert json.loads(fake_llm.requests[1]["messages"][-2]["tool_calls"][0]["function"]["arguments"]) == {"account": "savings"}


def test_session_warns_when_earlier_scenarios_did_not_run(project: Project, fake_llm: FakeOpenAI) -> None:
    fake_llm.add({"tool_calls": [("get_balance", {"account": "savings"})]}, {"content": "I don't know."})
    project.config(llm_config(fake_llm) + BANK + BANKER)
    project.feature("bank.feature", BANKING_SESSION.split("    Then the response mentions")[0])
    result = project.run("-n", "Remember the goal")
    assert result.returncode == 0, result.output
    assert "scenario 'Check balances' (features/bank.feature:6) did not run" in result.stderr
    assert "scenario 'Transfer for that trip' (features/bank.feature:10) did not run" in result.stderr
    assert texts(fake_llm.requests[0])[1:] == ["What was I saving for again?"]


def test_server_scope_run_is_shared_and_conversation_scope_is_not(project: Project, fake_llm: FakeOpenAI) -> None:
    feature = """\
        Feature: Scope
          Scenario: move money
            Given the agent "banker"
            And the agent may only use the tools "transfer, bank.get_balance"
            When the user says "Move $100 to savings"
          Scenario: look
            Given the agent "banker"
            And the system prompt:
              \"\"\"
              Answer in French.
              \"\"\"
            When the user says "Savings?"
            Then the result of tool "get_balance" mentions "{expected}"
    """
    for scope, expected in (("run", "3,300.00"), ("conversation", "3,200.00")):
        fake_llm.add(
            {"tool_calls": [("transfer", {"from_account": "checking", "to_account": "savings", "amount": 100})]},
            {"content": "done"},
            {"tool_calls": [("get_balance", {"account": "savings"})]},
            {"content": "ok"},
        )
        project.config(llm_config(fake_llm) + BANK + f'scope = "{scope}"\n' + BANKER)
        project.feature("scope.feature", feature.format(expected=expected))
        result = project.run()
        assert result.returncode == 0, (scope, result.output)
        look = fake_llm.requests[-2]
        assert look["messages"][0] == {"role": "system", "content": "Answer in French."}
    assert {t["function"]["name"] for t in fake_llm.requests[0]["tools"]} == {"transfer", "get_balance"}


def test_unknown_model_is_reported_before_any_call(project: Project, fake_llm: FakeOpenAI) -> None:
    project.config(llm_config(fake_llm))
    project.feature(
        "m.feature",
        'Feature: M\n  Scenario: ok\n    When the user says "a"\n  @model:gpt-nonsense-9000\n  Scenario: bad\n    When the user says "b"\n',
    )
    result = project.run()
    assert result.returncode == 1
    assert "features/m.feature:5: litellm does not know which provider serves model 'gpt-nonsense-9000'" in result.output
    assert fake_llm.requests == []
