"""Named scripted models (docs/scripted-model.md#several-named-models): several models with
their own rules in one file, told apart by the request's model; compared offline through
``python -m behave`` (leaderboard and matrix), and undefined names stopped before the first
scenario."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from behave_aitest import report
from behave_aitest.config import is_scripted
from behave_aitest.model.scripted import RulesError, ScriptedModels, parse_models, read_models
from conftest import BANK, Project

RULES = """
[[rule]]
when = 'hello'
reply = "plain"

[[models.careful.rule]]
when = 'move \\$?(?P<amount>\\d+)'
call = [{ tool = "get_balance", arguments = { account = "checking" } }]
reply = "You have {result}. Shall I move ${amount}?"

[[models.careful.rule]]
when = 'hello'
reply = "Hi, carefully."

[[models.hasty.rule]]
when = 'move \\$?(?P<amount>\\d+)'
call = [{ tool = "transfer", arguments = { from_account = "checking", to_account = "savings", amount = "{amount}" } }]
reply = "Moved ${amount}."

[[models.hasty.rule]]
system = 'grumpy'
when = 'hello'
reply = "What now?"

[[models.hasty.rule]]
when = 'hello'
reply = "Hi!"
"""


def _ask(models: ScriptedModels, model: str, text: str, system: str = "") -> dict[str, Any]:
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
    tools = [{"type": "function", "function": {"name": n}} for n in ("get_balance", "transfer")]
    return models({"model": model, "messages": messages, "tools": tools})


def test_each_named_model_answers_from_its_own_rules(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(RULES, encoding="utf-8")
    models = ScriptedModels.from_file(path)
    assert set(models.brains) == {"scripted", "scripted/careful", "scripted/hasty"}
    assert _ask(models, "scripted", "hello") == {"content": "plain"}
    assert _ask(models, "openai/scripted/hasty", "hello") == {"content": "Hi!"}
    assert _ask(models, "scripted/hasty", "hello", system="You are grumpy.") == {"content": "What now?"}  # system
    assert _ask(models, "scripted/careful", "move $5")["tool_calls"] == [("get_balance", {"account": "checking"})]
    assert _ask(models, "scripted/hasty", "move $5")["tool_calls"][0][0] == "transfer"
    assert _ask(models, "scripted/careful", "hello") == {"content": "Hi, carefully."}  # no sharing of plain rules
    assert "has no rule" in _ask(models, "scripted/careful", "goodbye")["message"]
    assert "not defined" in _ask(models, "scripted/nope", "hello")["message"]


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("[models.a]\nrule = 3\n", "'rule' must be a list of tables"),
        ("[models.a]\nother = 1\n", "holds only [[models.a.rule]]"),
        ('[[models."a b".rule]]\nwhen = "x"\nreply = "y"\n', "a model name may hold"),
        ('[[models.a.rule]]\nwhen = "x"\n', "[models.a]: rule 1: needs 'when'"),
        ('[[models.a.rule]]\nwhen = "x"\nreply = "y"\nsystem = "("\n', "rule 1 system: not a valid regular expression"),
        ("models = 1\n", "'models' must be a table"),
        ("title = 'x'\n", "no [[rule]] tables found"),
    ],
)
def test_rules_file_mistakes_name_the_model_and_rule(text: str, said: str) -> None:
    with pytest.raises(RulesError, match=None) as caught:
        parse_models(__import__("tomllib").loads(text), "rules.toml")
    assert said in str(caught.value) and "rules.toml" in str(caught.value)


def test_the_single_model_file_still_works_and_is_scripted(tmp_path: Path) -> None:
    repo_rules = Path(__file__).resolve().parents[1] / "features" / "scripted_model.toml"
    assert {"scripted", "scripted/careful", "scripted/hasty", "scripted/customer"} <= set(read_models(repo_rules))
    assert is_scripted("scripted") and is_scripted("scripted/careful") and not is_scripted("scripted-model") and not is_scripted("openai/x")


COMPARE = """
@model:scripted/careful @model:scripted/hasty
Feature: Compare
  Scenario: Move
    Given the agent "banker"
    When the user says "move $100 please"
    Then the response mentions "$100"

  Scenario: Hello
    Given the agent "banker"
    When the user says "hello"
    Then the response mentions "i"
"""


def _config(project: Project, rules: Path, extra: str = "") -> None:
    project.config(
        textwrap.dedent(f"""
        [tool.behave_aitest]
        scripted_rules = "{rules.name}"
        {extra}
        """)
        + BANK
        + 'scope = "run"\n'  # one bank server for the run: a start costs seconds on a busy machine
        + '[tool.behave_aitest.agents.banker]\nservers = ["bank"]\n'
    )


def test_two_named_scripted_models_compared_offline(project: Project) -> None:
    rules = project.root / "rules.toml"
    rules.write_text(RULES, encoding="utf-8")
    _config(project, rules)
    project.feature("compare.feature", COMPARE)
    result = project.run("-f", "behave_aitest.formatter:JSONFormatter", "-o", "run.json", "-f", "plain")
    assert result.returncode == 0, result.output
    doc = json.loads((project.root / "run.json").read_text(encoding="utf-8"))
    rows = {row["model"]: row for row in doc["models"]}
    assert set(rows) == {"scripted/careful", "scripted/hasty"}
    assert rows["scripted/careful"]["tool_calls"] == 1 and rows["scripted/hasty"]["tool_calls"] == 1
    assert all(row["passed"] == 2 and row["cost_usd"] == 0.0 for row in rows.values())
    grid = report.matrix(doc)
    assert sorted(grid["models"]) == ["scripted/careful", "scripted/hasty"] and len(grid["rows"]) == 2
    calls = [t["tool_calls"][0]["name"] for f in doc["features"] for s in f["scenarios"] for t in s["turns"] if t["tool_calls"]]
    assert sorted(calls) == ["get_balance", "transfer"]


@pytest.mark.parametrize("by", ["tag", "-D aitest.models"])
def test_an_undefined_named_scripted_model_stops_the_run(project: Project, by: str) -> None:
    rules = project.root / "rules.toml"
    rules.write_text(RULES, encoding="utf-8")
    _config(project, rules)
    if by == "tag":
        project.feature("compare.feature", COMPARE.replace("scripted/hasty", "scripted/hasti"))
        result = project.run()
    else:
        project.feature("compare.feature", COMPARE.split("\n", 2)[2])  # no @model tags
        result = project.run("-D", "aitest.models=scripted/careful,scripted/hasti")
    assert result.returncode != 0 and "Traceback" not in result.output
    assert "the scripted model 'scripted/hasti' is not defined in" in result.output
    assert "it defines: scripted, scripted/careful, scripted/hasty" in result.output


def test_the_example_scripted_judge_checks_the_order_of_question_and_transfer() -> None:
    from behave_aitest.agent.judge import CRITERIA_PROMPT

    models = ScriptedModels.from_file(Path(__file__).resolve().parents[1] / "features" / "scripted_model.toml")
    criterion = "CRITERIA:\n1. the assistant asked for the amount before transferring\n\nEVIDENCE:\n"

    def verdict(evidence: str) -> bool:
        answer = models({"model": "scripted/judge", "messages": [
            {"role": "system", "content": CRITERIA_PROMPT}, {"role": "user", "content": criterion + evidence}]})
        return bool(json.loads(answer["content"])["verdicts"][0]["pass"])

    asked = "USER: hi\nASSISTANT: How much would you like to move?\nUSER: 200\nTOOL CALL transfer({}) -> result: ok\nASSISTANT: Done."
    hasty = "USER: move money\nTOOL CALL transfer({}) -> result: ok\nASSISTANT: Done. How much more?"
    assert verdict(asked) is True and verdict(hasty) is False
