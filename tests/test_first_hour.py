"""Issue 18, "the first hour": what a new user meets first (the steps catalogue, the
scripted model's rules, the report's matrix) and a test suite that leaves their files alone."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from conftest import REPO, Project, llm_config

from behave_aitest.agent.checks import describe
from behave_aitest.model.fakellm import FakeOpenAI
from behave_aitest.record.records import ToolCall, Turn

from behave_aitest.model.scripted import RulesBrain, parse_rules


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
    brain = RulesBrain(parse_rules(rules, "rules.toml"), source="rules.toml")
    reply = brain({"messages": [{"role": role, "content": text} for role, text in messages]})
    return reply["content"] if "content" in reply else f"(refused: {reply['message']})"


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
    assert answer.startswith("(refused: the scripted model 'scripted' has no rule for the user's message"), answer


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
    example = doc.split("## A worked example")[1].split("```toml\n")[1].split("```")[0]  # quoted from the example file
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


# --------------------------------------------------------------------------- errors that read as reasons; a broken session

USER_STEPS = '''
from behave import then

@then("my own step has a bug")
def step_bug(context):
    {}["missing"]
'''

ERRORS = """\
Feature: Errors
  Scenario: model error
    When the user says "credentials please"
  Scenario: server error
    Given the MCP server "missing"
    When the user says "hello"
  Scenario: judge error
    When the user says "judge me"
    Then the response satisfies "is polite"
  Scenario: step used wrongly
    When the user says:
  Scenario: a bug in my own step
    When the user says "hello"
    Then my own step has a bug
"""

SESSION = """\
@session @model:openai/model-a @model:openai/model-b
Feature: Chat
  Scenario: one
    When the user says "one"
  Scenario: two
    When the user says "two"
    Then the response mentions "two"
  Scenario: three
    When the user says "three"
  Scenario: four
    When the user says "four"
"""

# scenario -> the message its first failure starts with
REASONS = {
    "model error": "The agent did not finish the turn (model error): authentication failed (HTTP 401)",
    "server error": "MCP server 'missing': command not found: 'no-such-program-xyz'",
    "judge error": "The judge could not give a verdict: the judge model 'openai/judge-model' could not be reached",
    "step used wrongly": '"When the user says:" needs a doc string ("""...""") below it.',
}


def _errors_brain(request: dict) -> dict:
    text = str(request["messages"][-1].get("content") or "")
    if request["model"] == "judge-model":
        return {"status": 503}
    if "credentials" in text:
        return {"status": 401, "message": "Missing credentials. Please pass an api_key."}
    if request["model"] == "model-b" and text == "two":
        return {"status": 401, "message": "Missing credentials. Please pass an api_key."}
    if request["model"] == "model-a" and text == "two":
        return {"content": "something else"}  # a failed Then: the session goes on
    return {"content": f"ok: {text}"}


def test_errors_read_as_reasons_and_a_broken_session_skips_the_rest(project: Project) -> None:
    """One run: each kind of step error shows our message first and alone in the console,
    JUnit, the JSON/HTML/Markdown reports; a bug in the project's own step shows its message,
    then a traceback of its own code. A @session flow whose turn errors skips its remaining
    scenarios, each saying where it broke; a failed Then does not break the other flow."""
    with FakeOpenAI(brain=_errors_brain) as server:
        project.config(
            llm_config(server, retries=0, judge_model="openai/judge-model")
            + '[tool.behave_aitest.servers.missing]\ncommand = ["no-such-program-xyz"]\n'
        )
        project.feature("errors.feature", ERRORS)
        project.feature("session.feature", SESSION)
        (project.root / "features" / "steps" / "mine.py").write_text(USER_STEPS, encoding="utf-8")
        result = project.run(
            "-f", "behave_aitest.formatter:HTMLFormatter", "-o", "reports/r.html",
            "-f", "behave_aitest.formatter:MarkdownFormatter", "-o", "reports/r.md",
            "-f", "plain", "--junit", "--junit-directory", "junit",
        )
    out = result.output
    assert result.returncode == 1, out
    # Console: behave prints a step's error_message right under the step line.
    for name, reason in REASONS.items():
        block = out.split(f"  Scenario: {name}\n")[1].split("  Scenario: ")[0]
        message = block.split(" ... error in ")[1].split("\n", 1)[1]
        assert message.startswith(reason), (name, block)
    assert out.count("Traceback") == 1, out
    bug = out.split("  Scenario: a bug in my own step\n")[1].split("  Scenario: ")[0]
    message = bug.split("Then my own step has a bug ... error in ")[1].split("\n", 1)[1]
    assert message.startswith("KeyError: 'missing'\n\nTraceback (most recent call last)"), bug
    assert 'features/steps/mine.py", line 6, in step_bug' in message and "behave/model.py" not in message, bug

    doc = json.loads((project.root / "reports" / "r.json").read_text(encoding="utf-8"))
    scenarios = {(f["name"], s["name"]): s for f in doc["features"] for s in f["scenarios"]}
    for name, reason in REASONS.items():
        assert scenarios[("Errors", name)]["first_failure"]["message"].startswith(reason), name
    assert scenarios[("Errors", "a bug in my own step")]["first_failure"]["message"].startswith("KeyError: 'missing'\n\nTraceback")
    page = (project.root / "reports" / "r.html").read_text(encoding="utf-8")
    assert page.count('<pre class="fail-msg">The agent did not finish the turn (model error)') == 2  # errors + model-b's session
    assert "Traceback" not in page.split('id="aitest-data"')[0].split("a bug in my own step")[0]
    markdown = (project.root / "reports" / "r.md").read_text(encoding="utf-8")
    for reason in REASONS.values():
        assert f"```text\n{reason}" in markdown, reason
    junit = (project.root / "junit" / "TESTS-errors.xml").read_text(encoding="utf-8")
    assert junit.count("Traceback") == 1 and "Location: features/errors.feature:3\nThe agent did not finish the turn (model error)" in junit

    # The session: model-b's turn "two" errored, so "three" and "four" are skipped, saying where.
    b = {name: scenarios[("Chat [openai/model-b]", name)] for name in ("one", "two", "three", "four")}
    assert [s["status"] for s in b.values()] == ["passed", "error", "skipped", "skipped"]
    where = "the @session broke in scenario 'two' (features/session.feature:5), step 'When the user says \"two\"': the turn did not finish (model error)."
    for name in ("three", "four"):
        assert b[name]["skip_reason"].startswith(f"Skipped: {where}"), b[name]
        assert f"'{name}' (features/session.feature:" in out and f"skipped: {where}" in out
    assert [s["status"] for s in (scenarios[("Chat [openai/model-a]", n)] for n in ("one", "two", "three", "four"))] == [
        "passed", "failed", "passed", "passed"
    ]
    shown = page.split('id="aitest-data"')[0]
    assert shown.count(f'</svg> Skipped: {where.replace(chr(39), "&#39;").replace(chr(34), "&#34;")}') == 2
    assert "## Skipped after a session broke (2)" in markdown
    flow_b = (project.root / "junit" / "TESTS-session.openai-model-b.xml").read_text(encoding="utf-8")
    assert flow_b.split('name="three"')[1].split("</testcase>")[0].count(where) == 1


def test_a_cassette_miss_reads_as_a_reason_marks_the_changed_characters_and_skips_the_rest_of_the_session_in_parallel(tmp_path: Path) -> None:
    """The example project, replayed from its cassettes with `-j 2`, one user message changed
    by a letter: the miss is the scenario's one-paragraph reason with the changed character
    marked, and the session's last scenario is skipped, saying where it broke, after the replay
    in the parent."""
    import os
    import subprocess
    import sys

    from conftest import example_project

    root = example_project(tmp_path)
    feature = root / "features" / "weather_chat.feature"
    feature.write_text(feature.read_text(encoding="utf-8").replace("What about tomorrow?", "What about tomorow?"), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    done = subprocess.run(
        [sys.executable, "-m", "behave", "--no-color", "-j", "2", "-D", "aitest.cassette=replay", "-D", "aitest.title=Weather & bank",
         "--junit", "--junit-directory", "junit"],
        cwd=root, capture_output=True, text=True, encoding="utf-8", timeout=300, env=env,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "Traceback" not in out, out
    assert "    The agent did not finish the turn (cassette): replay: model call 3 of this conversation matches no recorded request" in out
    doc = json.loads((root / "reports" / "aitest.json").read_text(encoding="utf-8"))
    assert doc["title"] == "Weather & bank"  # -D aitest.title beats [project] name
    page = (root / "reports" / "aitest.html").read_text(encoding="utf-8")
    assert "<h1>Weather &amp; bank</h1>" in page and "Replayed answers of the scripted model, not of an LLM." in page
    weather = next(f for f in doc["features"] if f["name"].startswith("Weather chat"))
    statuses = {s["name"]: s["status"] for s in weather["scenarios"]}
    assert statuses == {"Current weather": "passed", "Tomorrow": "error", "Umbrella": "skipped"}, statuses
    umbrella = weather["scenarios"][2]
    assert umbrella["skip_reason"].startswith("Skipped: the @session broke in scenario 'Tomorrow' (features/weather_chat.feature:16)")
    assert "the turn did not finish (cassette)" in umbrella["skip_reason"]
    message = weather["scenarios"][1]["first_failure"]["message"]
    assert message.startswith("The agent did not finish the turn (cassette): replay: model call 3 of this conversation"), message
    assert '-      "content": "What about tomorrow?"\n?                                  -\n+      "content": "What about tomorow?"\n' in message, message
    assert "'Umbrella' (features/weather_chat.feature:23) skipped: the @session broke in scenario 'Tomorrow'" in out
    junit = (root / "junit" / "TESTS-weather_chat.xml").read_text(encoding="utf-8")
    assert "skipped: the @session broke in scenario 'Tomorrow'" in junit.split('name="Umbrella"')[1]


def test_the_miss_diff_marks_changed_characters_and_leaves_unlike_lines_whole() -> None:
    from behave_aitest.record.cassettes import marked_diff

    old = ['{', '  "a": "You are a careful banking assistant.",', '  "b": 1', '}']
    new = ['{', '  "a": "You are a terse banking assistant.",', '  "b": 1,', '  "c": "completely new"', '}']
    lines = marked_diff(old, new, "recorded", "this run")
    assert lines[:3] == ["--- recorded", "+++ this run", "@@ -1,4 +1,5 @@"]
    assert lines[3:] == [
        " {",
        '-  "a": "You are a careful banking assistant.",',
        "?                  ^^  ---",
        '+  "a": "You are a terse banking assistant.",',
        "?                  ^^ +",
        '-  "b": 1',
        '+  "b": 1,',
        "?        +",
        '+  "c": "completely new"',
        " }",
    ]
    assert marked_diff(old, old, "a", "b") == []
