"""Issue 18, "the first hour": what a new user meets first (the steps catalogue, the
scripted model's rules, the report's matrix) and a test suite that leaves their files alone."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from conftest import REPO, Project, llm_config

from behave_aitest.checks import describe
from behave_aitest.fakellm import FakeOpenAI
from behave_aitest.records import ToolCall, Turn

from behave_aitest.scripted import RulesBrain, parse_rules


@pytest.mark.parametrize(
    "formats",
    ['format = ["behave_aitest.formatter:HTMLFormatter"]\noutfiles = ["reports/aitest.html"]', 'format = ["pretty"]'],
    ids=["our-report", "behave-only"],
)
def test_steps_catalog_is_printed_once_when_tool_behave_configures_a_format(project: Project, formats: str) -> None:
    """behave 1.3.3 appends "steps.catalog" to the config file's format list in place, and
    that list is also its record of the configured formats, so it appends it once more.
    Our report formatters and our runner each drop the repeat."""
    project.config(f'[tool.behave]\n{formats}\nrunner = "behave_aitest.parallel:ParallelRunner"\n')
    project.feature("a.feature", "Feature: f\n  Scenario: s\n    When the user says \"hello\"\n")
    result = project.run("--steps-catalog")
    assert result.returncode == 0, result.output
    assert result.stdout.count('When the user says "{text}"') == 1, result.stdout
    assert not (project.root / "reports").exists()  # the catalogue keeps the last real report


def _runs_behave_in_the_repository(call: ast.Call) -> bool:
    """A call with ``cwd=REPO`` (or ROOT) whose command line runs behave, other than the
    steps catalogue (which writes no file)."""
    cwd = next((k.value for k in call.keywords if k.arg == "cwd"), None)
    if not (isinstance(cwd, ast.Name) and cwd.id in ("REPO", "ROOT")) or not call.args:
        return False
    words = [n.value for n in ast.walk(call.args[0]) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    return "behave" in words and "--steps-catalog" not in words


def test_no_test_runs_behave_in_the_repository_itself() -> None:
    """The repository's [tool.behave] writes reports/aitest.html on every run (and a -o only
    adds a report, it does not replace that one), so a test that runs behave there overwrites
    the user's report: such tests run a copy (conftest.example_project) under tmp instead."""
    offenders = []
    for path in sorted(Path(__file__).parent.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and _runs_behave_in_the_repository(node):
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []


# --------------------------------------------------------------------------- the scripted model's recall

SISTER = {"rule": [{"when": "what does she do", "recall": {"name": r"my sister (?P<name>\w+)"}, "reply": "{name} is a nurse."}]}


def _answer(rules: dict, *messages: tuple[str, str]) -> str:
    brain = RulesBrain(parse_rules(rules, "rules.toml"))
    return brain({"messages": [{"role": role, "content": text} for role, text in messages]})["content"]


def test_recall_skips_the_users_questions() -> None:
    """The newest earlier message naming "my sister" is a question: "live" is no name."""
    answer = _answer(
        SISTER,
        ("system", "You help."),
        ("user", "My sister Ann lives in Rome."),
        ("assistant", "Noted."),
        ("user", "Where does my sister live?"),
        ("assistant", "In Rome."),
        ("user", "What does she do?"),
    )
    assert answer == "Ann is a nurse."


def test_recall_keeps_the_statement_beside_a_question_in_one_message() -> None:
    answer = _answer(SISTER, ("user", "My sister Ann is here. Where does my sister Bo live?"), ("assistant", "Hi."), ("user", "What does she do?"))
    assert answer == "Ann is a nurse."


def test_recall_searches_neither_the_current_message_nor_tool_results_nor_the_system_prompt() -> None:
    """Only what the user and the assistant said earlier counts; a recall that finds nothing
    there leaves the rule out (here: no rule matches)."""
    answer = _answer(
        SISTER,
        ("system", "my sister Sys"),
        ("user", "Look her up."),
        ("assistant", None),  # type: ignore[arg-type]  # a tool call turn has no text
        ("tool", "my sister Tool"),
        ("assistant", "Found someone."),
        ("user", "My sister Cur: what does she do"),
    )
    assert answer.startswith("(scripted model: no rule matches"), answer


def test_recall_takes_the_newest_statement_by_user_or_assistant() -> None:
    answer = _answer(
        SISTER,
        ("user", "My sister Ann is a teacher."),
        ("assistant", "So my sister Bea, as you call her, teaches."),
        ("user", "What does she do?"),
    )
    assert answer == "Bea is a nurse."


def test_the_scripted_model_doc_names_every_key_and_quotes_the_example_rules() -> None:
    doc = (REPO / "docs" / "scripted-model.md").read_text(encoding="utf-8")
    for key in ("`when`", "`recall`", "`call`", "`reply`", "`tool`", "`arguments`", "`{result}`", "`{results[0]}`"):
        assert key in doc, key
    example = doc.split("```toml\n")[2].split("```")[0]
    assert example.strip() in (REPO / "features" / "scripted_model.toml").read_text(encoding="utf-8")
    assert "(scripted-model.md)" in (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert "(docs/scripted-model.md)" in (REPO / "README.md").read_text(encoding="utf-8")


# --------------------------------------------------------------------------- the scenario × model matrix


def test_an_outline_with_model_in_its_title_gives_one_matrix_row_per_examples_row(project: Project) -> None:
    """The rows of ``Say <word> with <model>`` differ by their title, but a row per model is
    one line of the matrix: the Outline and the row's other values, not the title, group them."""
    from behave_aitest import report

    def brain(request: dict) -> dict:
        return {"content": "fig" if request["model"] == "model-b" else "kiwi"}

    with FakeOpenAI(brain=brain) as server:
        project.config(llm_config(server))
        project.feature(
            "models.feature",
            """\
            Feature: Compare
              @model:<model>
              Scenario Outline: Say <word> with <model>
                When the user says "Say <word>."
                Then the response mentions "<word>"
                Examples:
                  | model          | word |
                  | openai/model-a | kiwi |
                  | openai/model-b | kiwi |
                  | openai/model-a | fig  |
                  | openai/model-b | fig  |
            """,
        )
        result = project.run("-f", "behave_aitest.formatter:HTMLFormatter", "-o", "r.html")
    assert result.returncode == 1, result.output  # model-a fails on fig, model-b on kiwi
    doc = report.load(project.root / "r.json")
    matrix = report.matrix(doc)
    assert [(r["scenario"], sorted(r["cells"])) for r in matrix["rows"]] == [
        ("Say kiwi with <model>", ["openai/model-a", "openai/model-b"]),
        ("Say fig with <model>", ["openai/model-a", "openai/model-b"]),
    ]
    statuses = [{m: [c["status"] for c in cells] for m, cells in r["cells"].items()} for r in matrix["rows"]]
    assert statuses == [
        {"openai/model-a": ["passed"], "openai/model-b": ["failed"]},
        {"openai/model-a": ["failed"], "openai/model-b": ["passed"]},
    ]
    html = (project.root / "r.html").read_text(encoding="utf-8")
    table = html.split('id="matrix"')[1].split("</table>")[0]
    assert table.count("<tr><td>") == 2 and "Say kiwi with &lt;model&gt;" in table
    assert doc["features"][0]["scenarios"][0]["outline"]["row"] == {"model": "openai/model-a", "word": "kiwi"}


# --------------------------------------------------------------------------- failure messages


def _turn(calls: list[ToolCall], response: str) -> Turn:
    return Turn(index=0, user_text="hi", model="m", history_before=0, tool_calls=calls, response=response)


def test_a_failure_message_shows_json_results_and_arguments_pretty_printed_not_as_repr() -> None:
    result = json.dumps({"source": {"timezone": "Europe/Paris", "datetime": "2026-11-27T10:00:00+01:00"}, "is_dst": False})
    arguments = {"timezone": "Europe/Paris", "time": "10:00", "target_timezone": "America/New_York", "note": "x" * 60}
    call = ToolCall("c1", "convert_time", "time", "convert_time", arguments, json.dumps(arguments), result)
    short = ToolCall("c2", "get_balance", "bank", "get_balance", {"account": "checking"}, '{"account": "checking"}', "checking: $1,500.00")
    text = describe([_turn([call, short], "It is 4 a.m.\nin New York.")])
    assert "\\n" not in text and "{'" not in text and "'{" not in text, text
    assert '        result:\n          {\n            "source": {\n              "timezone": "Europe/Paris",' in text, text
    assert '            "target_timezone": "America/New_York",' in text, text
    assert '    - get_balance({"account": "checking"})\n        result: checking: $1,500.00' in text, text
    assert text.endswith("  response:\n    It is 4 a.m.\n    in New York."), text


def test_a_long_result_is_cut_with_a_note() -> None:
    result = json.dumps({"rows": list(range(200))})
    call = ToolCall("c1", "list_rows", "db", "list_rows", {}, "{}", result)
    text = describe([_turn([call], "")])
    assert "more lines cut (the JSON report keeps the whole text)" in text, text
    assert len(text.splitlines()) < 50, text
    assert "  response: (none)" in text
