"""The simulated user (docs/simulated-user.md), end to end through ``python -m behave``: the real
bank MCP server, and the project's fake OpenAI server playing both the agent (model
``fake-agent``) and the simulated user (``fake-user``), told apart by model name. One behave
run holds many scenarios; the JSON report is checked per scenario."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from behave_aitest.model.fakellm import FakeOpenAI
from behave_aitest.record.records import Simulation, SimulatorCall, Turn
from behave_aitest.agent.simulator import (
    GO_ON,
    OPENING,
    LimitsError,
    check_limits,
    run,
    step_limits,
    system_prompt,
    user_view,
)
from conftest import BANK, Project, llm_config

# --------------------------------------------------------------------------- the two fake models


def _last(request: dict[str, Any], role: str) -> str:
    texts = [str(m.get("content") or "") for m in request["messages"] if m.get("role") == role]
    return texts[-1] if texts else ""


def agent_brain(request: dict[str, Any]) -> dict[str, Any]:
    """A banking agent that asks for the amount before it transfers."""
    messages = request["messages"]
    if messages[-1]["role"] == "tool":
        amount = re.search(r"(\d+)", _last(request, "user"))
        return {"content": f"Done: I moved ${amount.group(1) if amount else '?'} to savings. Anything else?"}
    said = _last(request, "user")
    if "break the agent" in said:
        return {"status": 400, "message": "the agent's provider refused the request"}
    if "saving for" in said:
        return {"content": "Nice goal! How can I help with it?"}
    if "balance" in said:
        return {"tool_calls": [("get_all_balances", {})]}
    amount = re.search(r"(\d+) dollars", said)
    if amount:
        return {"tool_calls": [("transfer", {"from_account": "checking", "to_account": "savings", "amount": int(amount.group(1))})]}
    if "move money" in said:
        return {"content": "Sure. How much would you like to move to savings?"}
    return {"content": "Could you say that again?"}


def user_brain(request: dict[str, Any]) -> dict[str, Any]:
    """Simulated users, picked by a word of their persona (in the system prompt)."""
    persona = request["messages"][0]["content"]
    heard = _last(request, "user")
    if "PERSONA-broken" in persona:
        return {"status": 400, "message": "the simulator's provider refused the request"}
    if "PERSONA-slow" in persona:
        return {"delay": 4, "content": "too late"}
    if "PERSONA-quiet" in persona:
        return {"content": "  "}
    if "PERSONA-chatty" in persona:
        return {"content": "Tell me my balances."}
    if "PERSONA-stubborn" in persona:
        return {"content": "DONE"}
    if "PERSONA-breaker" in persona:
        return {"content": "Please break the agent."}
    if "PERSONA-eager" in persona:
        return {"content": "What is my balance?" if heard.startswith("(Not yet") else " DONE \n"}
    # PERSONA-saver: gives the amount only when asked
    if heard == OPENING:
        return {"content": "Hi, I want to move money to savings."}
    if "How much" in heard:
        return {"content": "200 dollars, please."}
    if heard.startswith("Done: I moved"):
        return {"content": "DONE"}
    return {"content": "I want to move money to savings."}


def both(request: dict[str, Any]) -> dict[str, Any]:
    return user_brain(request) if str(request.get("model", "")).startswith("fake-user") else agent_brain(request)


CONFIG = """
[tool.behave_aitest.agents.banker]
servers = ["bank"]
system_prompt = "You are a banking assistant."
"""


def configure(project: Project, fake_llm: FakeOpenAI, **top: object) -> None:
    fake_llm.brain = both
    config = llm_config(fake_llm, **{"retries": 0, "timeout_s": 2, "user_model": "openai/fake-user", **top})  # type: ignore[arg-type]
    # one bank server for the whole run (a server start costs seconds on a busy machine)
    project.config(config.replace("openai/fake-model", "openai/fake-agent") + BANK + 'scope = "run"\n' + CONFIG)


SIMULATED = '''
Feature: Simulated users
  Background:
    Given the agent "banker"

  Scenario: A saver who gives the amount only when asked
    When the user says "Hi, I'm saving for a trip to Lisbon."
    And a simulated user talks to the agent for at most 6 turns:
      """
      PERSONA-saver. You want to move money to savings; you give the amount (200 dollars) only when asked.
      """
    Then the simulated user reached its goal
    And the agent called tool "transfer" during the conversation
    And the agent called tool "transfer" with:
      | argument | value |
      | amount   | 200   |
    And the response mentions "200"

  Scenario: A quiet user ends at once with an empty reply
    When a simulated user talks to the agent for at most 3 turns:
      """
      PERSONA-quiet
      """
    Then the simulated user did not reach its goal

  Scenario: A chatty user runs out of turns
    When a simulated user talks to the agent for at most 2 turns:
      """
      PERSONA-chatty
      """
    Then the simulated user did not reach its goal
    And the agent called tool "get_all_balances"

  Scenario: An eager user is told to go on until the minimum
    When a simulated user talks to the agent for at least 2 and at most 4 turns:
      """
      PERSONA-eager
      """
    Then the simulated user reached its goal

  Scenario: A stubborn user will not go on
    When a simulated user talks to the agent for at least 2 and at most 3 turns:
      """
      PERSONA-stubborn
      """

  Scenario: The simulator's provider fails
    When a simulated user talks to the agent for at most 3 turns:
      """
      PERSONA-broken
      """

  Scenario: The simulator times out
    When a simulated user talks to the agent for at most 3 turns:
      """
      PERSONA-slow
      """

  Scenario: The agent fails during a simulated turn
    When a simulated user talks to the agent for at most 3 turns:
      """
      PERSONA-breaker
      """

  Scenario: Expecting the goal when it was not reached fails
    When a simulated user talks to the agent for at most 1 turns:
      """
      PERSONA-chatty
      """
    Then the simulated user reached its goal

  @user_model:openai/fake-user-2 @repeat:2
  Scenario: Another model plays the user, twice
    When a simulated user talks to the agent for at most 6 turns:
      """
      PERSONA-saver
      """
    Then the simulated user reached its goal
'''

SESSION = '''
@session
Feature: A session mixing scripted and simulated turns
  Background:
    Given the agent "banker"

  Scenario: The user mentions a goal
    When the user says "I'm saving for a car."

  Scenario: A simulated user goes on from there
    When a simulated user talks to the agent for at most 4 turns:
      """
      PERSONA-saver
      """
    Then the simulated user reached its goal
    And the agent called tool "transfer" during the conversation

  Scenario: Scripted again after the simulated user
    When the user says "What is my balance now?"
    Then the agent called tool "get_all_balances"
'''


def scenarios(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for f in doc["features"] for s in f["scenarios"]}


def test_simulated_users_end_to_end(project: Project, fake_llm: FakeOpenAI) -> None:
    configure(project, fake_llm)
    project.feature("simulated.feature", SIMULATED)
    project.feature("session.feature", SESSION)
    result = project.run("-f", "behave_aitest.formatter:JSONFormatter", "-o", "run.json",
                         "-f", "behave_aitest.formatter:HTMLFormatter", "-o", "run.html", "-f", "plain")
    out = result.output
    doc = json.loads((project.root / "run.json").read_text(encoding="utf-8"))
    by_name = scenarios(doc)
    status = {name: s["status"] for name, s in by_name.items()}
    assert status == {
        "A saver who gives the amount only when asked": "passed",
        "A quiet user ends at once with an empty reply": "passed",  # an empty reply ends, never an error
        "A chatty user runs out of turns": "passed",
        "An eager user is told to go on until the minimum": "passed",
        "A stubborn user will not go on": "error",
        "The simulator's provider fails": "error",
        "The simulator times out": "error",
        "The agent fails during a simulated turn": "error",
        "Expecting the goal when it was not reached fails": "failed",
        "Another model plays the user, twice": "passed",
        "The user mentions a goal": "passed",
        "A simulated user goes on from there": "passed",
        "Scripted again after the simulated user": "passed",
    }, out

    # The saver: one scripted turn, then two simulated ones; the simulator's calls apart.
    saver = by_name["A saver who gives the amount only when asked"]
    assert [t["simulated"] for t in saver["turns"]] == [False, True, True]
    assert [t["user_text"] for t in saver["turns"]] == [
        "Hi, I'm saving for a trip to Lisbon.", "I want to move money to savings.", "200 dollars, please."]
    (sim,) = saver["simulations"]
    assert sim["model"] == "openai/fake-user" and sim["persona"].startswith("PERSONA-saver") and sim["max_turns"] == 6
    assert [c["outcome"] for c in sim["calls"]] == ["message", "message", "done"]
    assert sim["goal_reached"] and sim["ended"] == "done" and sim["turns"] == [1, 2]
    assert [st["turns"] for st in saver["steps"] if st["name"].startswith("a simulated user")] == [[1, 2]]
    assert sim["stats"]["simulator_calls"] == 3 and saver["stats"]["simulator_calls"] == 3
    assert saver["stats"]["model_calls"] == 4  # the agent's own (1 + 1 + 2 around the transfer), not the simulator's
    assert all(c["input_tokens"] > 0 for c in sim["calls"])
    assert doc["totals"]["simulator_calls"] >= 3

    # What the simulator saw: persona and rules; the agent's text answers only (never tools);
    # the scripted opening once, as its own earlier message.
    user_requests = [r for r in fake_llm.requests if r["model"] == "fake-user" and "Lisbon" in json.dumps(r)]
    first = user_requests[0]["messages"]
    assert "exactly DONE" in first[0]["content"] and "empty message" in first[0]["content"]
    assert [m["role"] for m in first] == ["system", "user", "assistant", "user"]
    assert first[2]["content"] == "Hi, I'm saving for a trip to Lisbon." and first[3]["content"] == "Nice goal! How can I help with it?"
    assert all(m["role"] in ("system", "user", "assistant") and "tool_calls" not in m for r in user_requests for m in r["messages"])
    assert not any("tool" in r for r in user_requests)
    agent_requests = [r for r in fake_llm.requests if r["model"] == "fake-agent"]
    lisbon = [m for m in agent_requests[-1]["messages"] if m.get("content") == "Hi, I'm saving for a trip to Lisbon."]
    assert len(lisbon) <= 1  # never a duplicated first turn

    quiet = by_name["A quiet user ends at once with an empty reply"]
    assert quiet["turns"] == [] and quiet["simulations"][0]["ended"] == "empty"
    chatty = by_name["A chatty user runs out of turns"]["simulations"][0]
    assert chatty["ended"] == "max_turns" and [c["outcome"] for c in chatty["calls"]] == ["message", "message", "final"]
    eager = by_name["An eager user is told to go on until the minimum"]
    assert [c["outcome"] for c in eager["simulations"][0]["calls"]] == ["refused", "message", "refused", "message", "done"]
    assert len(eager["turns"]) == 2

    def message(name: str) -> str:
        return by_name[name]["first_failure"]["message"]

    assert "The simulated user failed (its model 'openai/fake-user', not the agent)" in message("A stubborn user will not go on")
    assert "told 2 times to go on" in message("A stubborn user will not go on")
    assert "not the agent" in message("The simulator's provider fails") and "refused the request" in message("The simulator's provider fails")
    assert "not the agent" in message("The simulator times out") and "within 2 s" in message("The simulator times out")
    assert "The agent did not finish the turn (model error)" in message("The agent fails during a simulated turn")
    assert "not the agent" not in message("The agent fails during a simulated turn")
    assert "it was still going after 1 turn" in message("Expecting the goal when it was not reached fails")
    assert "simulated user: Tell me my balances.\n  agent: Done" in message("Expecting the goal when it was not reached fails")
    other = by_name["Another model plays the user, twice"]
    assert other["simulations"][0]["model"] == "openai/fake-user-2" and other["repeat"]["runs"] == 2 and other["repeat"]["passed"] == 2

    # A @session: the simulated user continues the scripted turn of an earlier scenario.
    mixed = by_name["A simulated user goes on from there"]
    assert mixed["history_at_start"] == 2 and [t["simulated"] for t in mixed["turns"]] == [True, True]
    car = [r for r in fake_llm.requests if r["model"] == "fake-user" and "car" in json.dumps(r)][0]["messages"]
    assert car[2] == {"role": "assistant", "content": "I'm saving for a car."}

    # The report labels the simulated user's messages, shows the persona and its cost apart.
    html = (project.root / "run.html").read_text(encoding="utf-8")
    assert "PERSONA-saver" in html and '"simulated":true' in html.replace(" ", "")
    assert re.search(r"\d+ simulated user</span>", html) and re.search(r"simulated user (unknown|≥)", html)  # its cost apart (no price known)


def test_simulated_conversation_records_and_replays_identically(project: Project, fake_llm: FakeOpenAI) -> None:
    configure(project, fake_llm, cassette="record", user_model="openai/not-this-one")
    project.feature("simulated.feature", SIMULATED.split("  Scenario: A quiet user")[0])
    user = ("-D", "aitest.user_model=openai/fake-user")  # -D beats the config's user_model
    recorded = project.run(*user, "-f", "behave_aitest.formatter:JSONFormatter", "-o", "rec.json", "-f", "plain")
    assert recorded.returncode == 0, recorded.output
    cassettes = list((project.root / "features" / "cassettes").rglob("*.json"))
    assert len(cassettes) == 1
    models = json.loads(cassettes[0].read_text(encoding="utf-8"))["recorded"]["models"]
    assert models == ["openai/fake-agent", "openai/fake-user"]
    asked = len(fake_llm.requests)
    fake_llm.brain = None  # a replay must not ask any model
    # replayed in a parallel run: the records come back from a worker process
    replayed = project.run(*user, "--runner", "behave_aitest.parallel:ParallelRunner", "-j", "2", "-D", "aitest.cassette=replay", "-f", "behave_aitest.formatter:JSONFormatter", "-o", "rep.json", "-f", "plain")
    assert replayed.returncode == 0, replayed.output
    assert len(fake_llm.requests) == asked

    def conversation(name: str) -> list[Any]:
        doc = json.loads((project.root / name).read_text(encoding="utf-8"))
        (scenario,) = scenarios(doc).values()
        sims = [[(c["outcome"], c["reply"]) for c in s["calls"]] for s in scenario["simulations"]]
        return [[(t["user_text"], t["response"], t["simulated"]) for t in scenario["turns"]], sims]

    assert conversation("rec.json") == conversation("rep.json")
    doc = json.loads((project.root / "rep.json").read_text(encoding="utf-8"))
    assert all(c["replayed"] for s in scenarios(doc).values() for c in s["simulations"][0]["calls"])
    (scenario,) = scenarios(doc).values()
    assert [st["turns"] for st in scenario["steps"] if st["name"].startswith("a simulated user")] == [[1, 2]]


BAD_STEPS = [
    ("at most 0 turns", "at least 1 turn"),
    ("at most 51 turns", "at most 50 turns"),
    ("at least 4 and at most 3 turns", "the minimum is larger than the maximum"),
    ("at most many turns", "'many' is not a whole number"),
]


@pytest.mark.parametrize(("limits", "said"), BAD_STEPS)
def test_bad_limits_stop_the_run_before_the_first_scenario(project: Project, fake_llm: FakeOpenAI, limits: str, said: str) -> None:
    configure(project, fake_llm)
    project.feature("bad.feature", f'''
        Feature: Bad
          Scenario: First
            When the user says "hello"
          Scenario: Bad limits
            When a simulated user talks to the agent for {limits}:
              """
              PERSONA-saver
              """
        ''')
    result = project.run()
    assert result.returncode != 0
    assert "Traceback" not in result.output
    assert said in result.output and "bad.feature:6" in result.output
    assert fake_llm.requests == []  # stopped before the first scenario


def test_no_model_for_the_simulated_user_stops_the_run(project: Project) -> None:
    project.config('[tool.behave_aitest]\nmodel = "scripted"\n' + BANK)
    project.feature("bad.feature", '''
        Feature: Bad
          Scenario: No simulator
            When a simulated user talks to the agent for at most 2 turns:
              """
              Someone.
              """
        ''')
    result = project.run()
    assert result.returncode != 0 and "Traceback" not in result.output
    assert "no model can play the simulated user" in result.output and "bad.feature:4" in result.output


# --------------------------------------------------------------------------- pure parts


def test_limits() -> None:
    check_limits(0, 1)
    check_limits(50, 50)
    for low, high in ((0, 0), (0, 51), (3, 2), (-1, 2)):
        with pytest.raises(LimitsError):
            check_limits(low, high)
    assert step_limits("a simulated user talks to the agent for at most 6 turns:") == (0, 6)
    assert step_limits("a simulated user talks to the agent for at least 2 and at most 6 turns:") == (2, 6)
    assert step_limits('the user says "x"') is None


def test_user_view_flips_roles_and_hides_tools() -> None:
    turn = Turn(index=0, user_text="hi", model="m", history_before=0, response="Hello! Moved $5.")
    turn.messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]},
                     {"role": "tool", "content": "SECRET tool result"}, {"role": "assistant", "content": "Hello! Moved $5."}]
    silent = Turn(index=1, user_text="and?", model="m", history_before=4, response="")
    view = user_view("a persona", [turn, silent])
    assert view[0] == {"role": "system", "content": system_prompt("a persona")}
    assert [m["role"] for m in view] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert "SECRET" not in json.dumps(view) and view[-1]["content"] == "(the assistant gave no answer)"
    assert "NOT the end" in view[0]["content"]  # a confirmation question is not the end


def test_loop_refuses_an_early_end_then_accepts_done() -> None:
    from behave_aitest.model.llm import ModelReply

    answers = iter(["DONE", "first", "DONE"])
    seen: list[list[dict[str, Any]]] = []
    turns: list[Turn] = []

    def ask(messages: list[dict[str, Any]]) -> tuple[ModelReply, int]:
        seen.append(messages)
        return ModelReply(content=next(answers)), 1

    def say(text: str) -> Turn:
        turns.append(Turn(index=len(turns), user_text=text, model="m", history_before=0, response="ok"))
        return turns[-1]

    sim = run(Simulation(persona="p", model="u", max_turns=3, min_turns=1), ask, say, lambda: turns)
    assert sim.goal_reached and [c.outcome for c in sim.calls] == ["refused", "message", "done"]
    assert seen[1][-1]["content"] == GO_ON.format(minimum=1, written=0)
    assert isinstance(sim.calls[0], SimulatorCall) and sim.turns == [0]


def test_the_simulators_model_falls_back_to_the_judges_then_the_agents(tmp_path: Path) -> None:
    from behave_aitest.config import Config
    from behave_aitest.run.runtime import Runtime

    def model(**settings: Any) -> str:
        runtime = Runtime(Config(model="openai/agent", **settings))
        try:
            return runtime.user_model_for(runtime._new_conversation("t", session=False, feature_model=None))
        finally:
            runtime.close()

    assert model() == "openai/agent"
    assert model(judge_model="openai/judge") == "openai/judge"
    assert model(judge_model="openai/judge", user_model="openai/user") == "openai/user"


def test_fake_server_queues_replies_per_model() -> None:
    import urllib.error
    import urllib.request

    with FakeOpenAI([{"content": "shared"}]) as server:
        server.add({"content": "for the user"}, model="fake-user")

        def ask(model: str) -> str:
            body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]}).encode()
            request = urllib.request.Request(server.base_url + "/chat/completions", body, {"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as answer:
                return str(json.load(answer)["choices"][0]["message"]["content"])

        assert ask("fake-user") == "for the user" and ask("fake-agent") == "shared"
        assert server.remaining == 0
        with pytest.raises(urllib.error.HTTPError):
            ask("fake-user")  # its own queue is used up; it never takes the shared replies
