"""Reports from real runs: ``python -m behave`` in a subprocess with the report formatters,
litellm over HTTP to the fake server, real MCP server processes. Each test reads the
files the run wrote: the HTML page, its JSON twin, the Markdown summary."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from conftest import BANK, Project, llm_config

from behave_aitest import report
from behave_aitest.model.fakellm import FakeOpenAI

HTML = "behave_aitest.formatter:HTMLFormatter"
JSONF = "behave_aitest.formatter:JSONFormatter"
MD = "behave_aitest.formatter:MarkdownFormatter"
XSS = "</script><img src=x onerror=alert(1)>"
PASSWORD = "hunter2-correct-horse-battery"  # reaches a server through its config env
USER_KEY = "sk-live-abcdefghijklmnopqrstuvwxyz0123"  # typed by the user, shaped like a provider key

SHOWCASE_CONFIG = """
[tool.behave_aitest.prices."openai/priced"]
input_per_million = 1.0
output_per_million = 2.0
[tool.behave_aitest.servers.helper]
command = ["python", "-m", "behave_aitest.testing.faulty_server"]
env = { API_PASSWORD = "${SHOWCASE_PASSWORD}" }
[tool.behave_aitest.agents.banker]
servers = ["bank"]
system_prompt = "You are a careful banking assistant."
[tool.behave_aitest.agents.helper]
servers = ["helper"]
"""

BANK_FEATURE = """\
@session @model:openai/priced
Feature: Banking assistant remembers a savings goal
  Background:
    Given the agent "banker"

  Scenario: Check balances
    When the user says "I'm saving for a trip to Paris. What are my balances?"
    Then the agent called tool "get_all_balances"

  Scenario: Transfer for that trip
    When the user says "Transfer $500 to savings for that trip I mentioned."
    Then the agent called tool "transfer"

  Scenario: Remember the goal
    When the user says "What was I saving for again?"
    Then the response mentions "Paris"
"""

TOOLS_FEATURE = f"""\
Feature: Tools that misbehave
  Scenario: Markup is shown as text
    Given the agent "helper"
    When the user says "Echo this: {XSS}"
    Then the agent called tool "echo"

  @smoke
  Scenario: A failing tool
    Given the agent "helper"
    When the user says "Please fail"
    Then no tool call failed

  Scenario: Secrets stay out
    Given the agent "helper"
    When the user says "My key is {USER_KEY}. What is the API password?"
    Then the agent called tool "getenv"
"""

BANK_REPLIES = (
    {"tool_calls": [("get_all_balances", {})]},
    {"content": "Checking $1,500.00, savings $3,200.00."},
    {"tool_calls": [("get_balance", {"account": "checking"})]},
    {"content": "You have $1,500.00 in checking."},
    {"content": "You were saving for a trip to Paris."},
)
TOOLS_REPLIES = (
    {"tool_calls": [("echo", {"text": XSS})]},
    {"content": f"It said: {XSS}"},
    {"tool_calls": [("fail", {"message": "the tool broke"})]},
    {"content": "Sorry, the tool failed."},
    {"tool_calls": [("getenv", {"name": "API_PASSWORD"})]},
    {"content": f"The password is {PASSWORD}."},
)


def showcase(project: Project, fake_llm: FakeOpenAI) -> None:
    """Two features: a @session with a failing scenario (priced model), and tool trouble,
    markup and secrets (a model without a price, so its cost is unknown)."""
    fake_llm.add(*BANK_REPLIES, *TOOLS_REPLIES)
    project.config(llm_config(fake_llm) + BANK + SHOWCASE_CONFIG)
    project.feature("a_bank.feature", BANK_FEATURE)
    project.feature("b_tools.feature", TOOLS_FEATURE)


def links(page: str) -> list[str]:
    """Every src/href value of the page's real elements (text that merely mentions one is not a link)."""
    from test_report_unit import links as element_links

    return element_links(page)


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "behave_aitest.cli", *args], cwd=cwd, capture_output=True, text=True, encoding="utf-8")


def test_showcase_shards_give_html_json_markdown_and_merge_into_one_report(project: Project, fake_llm: FakeOpenAI) -> None:
    """Two shards (one per feature), as a parallel CI run makes them, with other outputs alongside."""
    from concurrent.futures import ThreadPoolExecutor

    showcase(project, fake_llm)
    env = {"SHOWCASE_PASSWORD": PASSWORD}
    with FakeOpenAI(list(TOOLS_REPLIES)) as second, ThreadPoolExecutor(2) as pool:
        # The shards run at the same time, the second against its own fake server.
        first_run = pool.submit(
            project.run, "-f", HTML, "-o", "reports/bank.html", "-f", "pretty", "--junit", "--junit-directory", "reports/junit",
            "features/a_bank.feature", env=env,
        )
        second_run = pool.submit(
            project.run, "-f", JSONF, "-o", "reports/tools.json", "-f", MD, "-o", "reports/tools.md",
            "-D", f"aitest.api_base={second.base_url}", "features/b_tools.feature", env=env,
        )
        one, two = first_run.result(), second_run.result()
    assert one.returncode == 1 and two.returncode == 1, one.output + two.output
    assert "Feature: Banking assistant remembers a savings goal" in one.output, "pretty still writes to stdout"
    reports = project.root / "reports"
    assert list((reports / "junit").glob("TESTS-*.xml")), "--junit still works"

    # The HTML can be regenerated from its JSON twin, byte for byte.
    done = cli(reports, "report", "render", "bank.json", "-o", "again.html")
    assert done.returncode == 0, done.stderr
    assert (reports / "again.html").read_text(encoding="utf-8") == (reports / "bank.html").read_text(encoding="utf-8")

    # Merge the shards.
    done = cli(reports, "report", "merge", "bank.json", "tools.json", "-o", "all.html")
    assert done.returncode == 0, done.stderr
    assert "merged 2 reports, 6 scenarios: 4 passed, 2 failed" in done.stderr
    assert cli(reports, "report", "merge", "bank.json", "tools.json", "-o", "all.json").returncode == 0
    assert cli(reports, "report", "merge", "bank.json", "tools.json", "-o", "all.md", "--title", "Nightly").returncode == 0
    html = (reports / "all.html").read_text(encoding="utf-8")
    doc = report.load(reports / "all.json")
    md = (reports / "all.md").read_text(encoding="utf-8")

    assert doc["schema"] == "behave-aitest-report" and doc["schema_version"] == report.SCHEMA_VERSION
    assert [r["id"] for r in doc["runs"]] == ["r1", "r2"] and [f["run"] for f in doc["features"]] == ["r1", "r2"]
    t = doc["totals"]
    assert (t["scenarios"], t["passed"], t["failed"], t["error"]) == (6, 4, 2, 0)
    assert (t["model_calls"], t["tool_calls"], t["tool_errors"]) == (11, 5, 1)
    assert t["unknown_cost_calls"] == 6 and t["cost_usd"] > 0, "the priced model is counted, the other is not"
    assert not doc["partial"]

    bank, tools = doc["features"]
    assert bank["session"] and bank["messages"] == 10
    assert [s["history_at_start"] for s in bank["scenarios"]] == [0, 4, 8], "the session is whole"
    assert [s["status"] for s in bank["scenarios"]] == ["passed", "failed", "passed"]
    failure = bank["scenarios"][1]["first_failure"]
    assert failure["step"] == 'Then the agent called tool "transfer"'
    assert failure["location"] == "features/a_bank.feature:12"
    assert "Expected the agent to call tool 'transfer'" in failure["message"]
    turn = bank["scenarios"][1]["turns"][0]
    assert [i["kind"] for i in turn["timeline"]] == ["user", "tool", "assistant"]
    assert turn["tool_calls"][0]["name"] == "get_balance" and turn["tool_calls"][0]["server"] == "bank"
    assert turn["stats"]["cost_usd"] > 0 and turn["stats"]["unknown_cost_calls"] == 0
    assert bank["scenarios"][1]["steps"][1]["turn"] == 0, "the When step points at its turn"
    failing_tool = tools["scenarios"][1]
    assert failing_tool["turns"][0]["tool_calls"][0]["is_error"]
    assert failing_tool["tags"] == ["smoke"]

    # The first failing step and its message are in the page itself, not only in the data.
    assert "<strong>Then the agent called tool &#34;transfer&#34;</strong>" in html
    assert "Expected the agent to call tool &#39;transfer&#39;" in html
    assert "6 calls of unknown price" in html
    assert '<use href="#i-session"/>' in html and "→ 4 msgs →" in html and "→ 8 msgs →" in html

    # Escaping: the markup is data, never markup, in every format.
    for page in (html, (reports / "bank.html").read_text(encoding="utf-8")):
        assert XSS not in page
    assert "<img" not in html
    assert "\\u003c/script\\u003e\\u003cimg src=x onerror=alert(1)\\u003e" in html
    assert json.dumps(XSS)[1:-1] in (reports / "tools.json").read_text(encoding="utf-8")
    for text in (md, (reports / "tools.md").read_text(encoding="utf-8")):
        outside_code = re.sub(r"(?ms)^(`{3,}).*?^\1", "", text)
        assert "<img" not in outside_code and "</script>" not in outside_code

    # Self-contained: nothing to fetch.
    assert [u for u in links(html) if not u.startswith("#")] == []
    assert "<link" not in html and "@import" not in html and "url(" not in html

    # Secrets: neither the server's env value nor a provider-shaped key survive anywhere.
    for path in reports.iterdir():
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            assert PASSWORD not in text and USER_KEY not in text, path
    assert "[REDACTED:helper.env.API_PASSWORD]" in json.dumps(doc)

    # Markdown: totals, failures with a link to the .feature line.
    assert md.startswith("# ❌ Nightly")
    assert "| 6 | 4 | 2 | 0 |" in md
    assert "[`features/a_bank.feature:12`](<features/a_bank.feature#L12>)" in md
    assert "### ❌ Tools that misbehave › A failing tool" in md

    # Files the CLI cannot use are refused with a message.
    bad = cli(reports, "report", "render", "bank.html", "-o", "x.html")
    assert bad.returncode == 1 and "bank.html: not JSON" in bad.stderr
    (reports / "future.json").write_text(json.dumps({"schema": report.SCHEMA, "schema_version": 99}), encoding="utf-8")
    bad = cli(reports, "report", "render", "future.json", "-o", "x.html")
    assert bad.returncode == 1 and "newer than this behave-aitest reads" in bad.stderr


def test_two_models_get_a_leaderboard_a_matrix_and_flows_side_by_side(project: Project) -> None:
    # model-a remembers, model-b forgets: the brain answers by model.
    def brain(request: dict) -> dict:
        last = request["messages"][-1]["content"]
        if "Which word" in last:
            return {"content": "kiwi" if request["model"] == "model-a" else "I don't know"}
        return {"content": "OK"}

    with FakeOpenAI(brain=brain) as server:
        project.config(llm_config(server))
        project.feature(
            "models.feature",
            """\
            @session @model:openai/model-a @model:openai/model-b
            Feature: Compare
              Scenario: first
                When the user says "Remember the word kiwi."
              Scenario: second
                When the user says "Which word?"
                Then the response mentions "kiwi"
            """,
        )
        result = project.run("-f", HTML, "-o", "r.html")
    assert result.returncode == 1, result.output
    doc = report.load(project.root / "r.json")
    assert [(m["model"], m["rank"], m["passed"], m["pass_rate"]) for m in doc["models"]] == [
        ("openai/model-a", 1, 2, 1.0),
        ("openai/model-b", 2, 1, 0.5),
    ]
    assert [f["name"] for f in doc["features"]] == ["Compare [openai/model-a]", "Compare [openai/model-b]"]
    assert {f["title"] for f in doc["features"]} == {"Compare"}
    html = (project.root / "r.html").read_text(encoding="utf-8")
    assert 'id="leaderboard"' in html and 'id="matrix"' in html
    assert 'class="group flows" style="--flows:2"' in html
    matrix = report.matrix(doc)
    assert [r["scenario"] for r in matrix["rows"]] == ["first", "second"]
    cell = matrix["rows"][1]["cells"]["openai/model-b"][0]
    assert cell["status"] == "failed" and cell["first_failure"]["step"] == 'Then the response mentions "kiwi"'
