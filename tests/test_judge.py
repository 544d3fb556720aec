"""Judge and budget steps, end to end: the fake server plays both the agent and the judge."""

from __future__ import annotations

import json

from conftest import BANK, Project, llm_config

from behave_aitest.model.fakellm import FakeOpenAI

JUDGED = 'judge_model = "openai/judge-model"\n'


def feature(project: Project, *then: str, tags: str = "") -> None:
    lines = "\n".join(f"    {line}" for line in then)
    project.feature(
        "j.feature",
        f"{tags}\nFeature: J\n  Scenario: s\n    Given the MCP server \"bank\"\n    When the user says \"What is in savings?\"\n{lines}\n",
    )


def verdicts(*items: tuple[bool, str]) -> dict:
    return {"content": json.dumps({"verdicts": [{"criterion": i, "pass": p, "reason": r} for i, (p, r) in enumerate(items, 1)]})}


def test_each_criterion_gets_its_own_verdict(project: Project, fake_llm: FakeOpenAI) -> None:
    fake_llm.add(
        {"tool_calls": [("get_balance", {"account": "savings"})]},
        {"content": "You have $3,200.00 in savings."},
        verdicts((True, "it states the balance"), (False, "it is not in French")),
    )
    project.config(llm_config(fake_llm, JUDGED) + BANK)
    feature(project, "Then the response satisfies:", '  """', "  states the savings balance", "  is written in French", '  """')
    result = project.run()
    assert result.returncode == 1
    assert "The judge found 1 of 2 criteria not met" in result.output
    assert "PASS: states the savings balance (it states the balance)" in result.output
    assert "FAIL: is written in French (it is not in French)" in result.output
    judge = fake_llm.requests[2]
    assert judge["model"] == "judge-model" and judge["temperature"] == 0
    prompt = judge["messages"][1]["content"]
    assert "1. states the savings balance\n2. is written in French" in prompt
    assert "You have $3,200.00 in savings." in prompt
    assert "tools" not in judge


def test_conversation_judge_sees_tool_calls_and_judge_tag_picks_the_model(project: Project, fake_llm: FakeOpenAI) -> None:
    fake_llm.add(
        {"tool_calls": [("get_balance", {"account": "savings"})]},
        {"content": "3,200"},
        verdicts((True, "looked it up")),
    )
    project.config(llm_config(fake_llm, JUDGED) + BANK)
    feature(project, 'Then the conversation satisfies "the agent looked the balance up with a tool"', tags="@judge:openai/tagged-judge")
    result = project.run()
    assert result.returncode == 0, result.output
    judge = fake_llm.requests[2]
    assert judge["model"] == "tagged-judge"
    assert 'TOOL CALL get_balance({"account": "savings"}) -> result: savings: $3,200.00' in judge["messages"][1]["content"]


def test_unparsable_judge_answer_is_retried_once_then_an_error(project: Project, fake_llm: FakeOpenAI) -> None:
    fake_llm.add({"content": "3,200"}, {"content": "I think it is fine"}, verdicts((True, "ok")))
    project.config(llm_config(fake_llm, JUDGED) + BANK)
    feature(project, 'Then the response satisfies "mentions a number"')
    assert project.run().returncode == 0
    assert "not valid" in fake_llm.requests[-1]["messages"][-1]["content"]

    fake_llm.add({"content": "3,200"}, {"content": "no json"}, {"content": "still none"})
    result = project.run()
    assert result.returncode == 1
    assert "The judge could not give a verdict: the judge model 'openai/judge-model' gave no valid answer after a retry" in result.output
    assert "0 failed, 1 error" in result.output  # an error of the step, not an agent failure


def test_unreachable_judge_is_an_error_not_a_failure(project: Project, fake_llm: FakeOpenAI) -> None:
    fake_llm.add({"content": "3,200"}, *[{"status": 503}] * 3)
    project.config(llm_config(fake_llm, JUDGED, retries=0) + BANK)
    feature(project, 'Then the response satisfies "mentions a number"')
    result = project.run()
    assert result.returncode == 1
    assert "The judge could not give a verdict: the judge model 'openai/judge-model' could not be reached" in result.output
    assert "0 failed, 1 error" in result.output


def test_score_and_clarification(project: Project, fake_llm: FakeOpenAI) -> None:
    fake_llm.add(
        {"content": "Would you like me to check savings?"},
        {"content": '```json\n{"score": 2, "reason": "vague"}\n```'},
    )
    project.config(llm_config(fake_llm, JUDGED) + BANK)
    feature(project, 'Then the response scores at least 4 out of 5 on "answers the question"')
    result = project.run()
    assert result.returncode == 1
    assert "The judge scored 2 out of 5 on 'answers the question' (at least 4 needed): vague" in result.output

    fake_llm.add({"content": "Would you like me to check savings?"}, {"content": '{"asks_for_clarification": true, "reason": "asks"}'})
    feature(project, "Then the agent did not ask for clarification")
    result = project.run()
    assert result.returncode == 1
    assert "The judge found the agent asked for clarification: asks" in result.output
    assert "Would you like me to" in fake_llm.requests[-1]["messages"][1]["content"]


def test_budgets_pass_and_fail(project: Project, fake_llm: FakeOpenAI) -> None:
    usage = {"usage": {"prompt_tokens": 1000, "completion_tokens": 1000}}
    fake_llm.add({"content": "ok", **usage})
    project.config(llm_config(fake_llm).replace("openai/fake-model", "openai/gpt-4o-mini") + BANK)
    feature(
        project,
        "Then the turn cost less than $0.001",
        "And the conversation cost less than $0.01",
        "And the turn used fewer than 2001 tokens",
        "And the turn took less than 60 seconds",
        "And the agent needed at most 1 model calls",
    )
    result = project.run()
    assert result.returncode == 0, result.output

    # Each budget failing, one scenario each, in one run.
    failing = (
        ("Then the turn cost less than $0.0005", "This turn cost $0.000750, not less than $0.0005."),
        ("Then the conversation cost less than $0.0001", "The conversation cost $0.000750, not less than $0.0001."),
        ("Then the turn used fewer than 2000 tokens", "The turn used 2000 tokens, not fewer than 2000."),
        ("Then the turn took less than 0.000001 seconds", "not less than 1e-06 s."),
        ("Then the agent needed at most 0 model calls", "The agent needed 1 model call, more than 0."),
    )
    scenarios = ""
    for i, (step, _) in enumerate(failing):
        fake_llm.add({"content": "ok", **usage})
        scenarios += f'  Scenario: budget {i}\n    When the user says "hi"\n    {step}\n'
    project.feature("j.feature", "Feature: J\n" + scenarios)
    result = project.run("-f", "plain")
    assert result.returncode == 1 and "0 scenarios passed, 5 failed" in result.output, result.output
    blocks = result.output.split("  Scenario: budget ")[1:]
    for block, (step, message) in zip(blocks, failing):
        assert message in block, (step, block)


def test_unknown_price_is_an_error_and_config_prices_fix_it(project: Project, fake_llm: FakeOpenAI) -> None:
    usage = {"usage": {"prompt_tokens": 1000, "completion_tokens": 1000}}
    fake_llm.add({"content": "ok", **usage})
    project.config(llm_config(fake_llm) + BANK)
    feature(project, "Then the turn cost less than $1")
    result = project.run()
    assert result.returncode == 1
    assert "The cost of this turn is unknown: litellm has no price for openai/fake-model" in result.output
    assert '[tool.behave_aitest.prices."openai/fake-model"]' in result.output
    assert "0 failed, 1 error" in result.output

    fake_llm.add({"content": "ok", **usage})
    project.config(
        llm_config(fake_llm) + BANK
        + '[tool.behave_aitest.prices."openai/fake-model"]\ninput_per_million = 100\noutput_per_million = 200\n'
    )
    feature(project, "Then the turn cost less than $0.31", "And the conversation cost less than $0.31")
    assert project.run().returncode == 0
    feature(project, "Then the turn cost less than $0.3")
    fake_llm.add({"content": "ok", **usage})
    assert "This turn cost $0.300000, not less than $0.3." in project.run().output


def test_judge_cost_is_recorded_and_counted_apart_from_the_agent(project: Project, fake_llm: FakeOpenAI) -> None:
    usage = {"usage": {"prompt_tokens": 1000, "completion_tokens": 1000}}
    fake_llm.add({"content": "You have $3,200.00 in savings.", **usage}, {**verdicts((True, "it states the balance")), **usage})
    project.config(
        llm_config(fake_llm).replace("openai/fake-model", "openai/gpt-4o-mini") + JUDGED + BANK
        + '[tool.behave_aitest.prices."openai/judge-model"]\ninput_per_million = 100\noutput_per_million = 200\n'
    )
    # The judge's $0.30 is not the agent's: the agent's turn stays under its $0.001 budget.
    feature(project, 'Then the response satisfies "states the savings balance"', "And the turn cost less than $0.001")
    result = project.run("-f", "behave_aitest.formatter:JSONFormatter", "-o", "run.json", "-f", "plain")
    assert result.returncode == 0, result.output
    doc = json.loads((project.root / "run.json").read_text(encoding="utf-8"))
    totals = doc["totals"]
    assert totals["model_calls"] == 1 and totals["cost_usd"] == 0.00075
    assert totals["judge_calls"] == 1 and totals["judge_cost_usd"] == 0.3 and totals["judge_unknown_cost_calls"] == 0
    judge = doc["features"][0]["scenarios"][0]["turns"][0]["judge_calls"][0]
    assert judge["model"] == "openai/judge-model" and judge["kind"]
    assert judge["input_tokens"] == 1000 and judge["output_tokens"] == 1000 and judge["cost_usd"] == 0.3
    assert judge["verdicts"] == [{"criterion": "states the savings balance", "passed": True, "reason": "it states the balance"}]
    assert judge["latency_s"] > 0
