"""Issue 17, team workflow, end to end: missing-key preflight, authentication errors, tool
coverage and its gate, ``report diff``, ``doctor``, ``init``.

behave and the ``behave-aitest`` command run as subprocesses; litellm talks HTTP to the
fake model; MCP servers are the packaged example servers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import BANK, Project, llm_config

from behave_aitest.model.fakellm import FakeOpenAI

HELLO = """\
Feature: Hello
  Scenario: Greet
    When the user says "hello"
    Then the response mentions "Hi"
"""


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``behave-aitest ARGS`` as a user types it (``python -m behave_aitest.cli``)."""
    full = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "behave_aitest.cli", *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=180
    )


# --------------------------------------------------------------------------- 1. missing key, auth errors


def test_missing_key_stops_the_run_once_before_the_first_scenario(project: Project) -> None:
    project.config('[tool.behave_aitest]\nmodel = "anthropic/claude-sonnet-4-5"\n')
    project.feature("hello.feature", HELLO)
    result = project.run(env={"ANTHROPIC_API_KEY": ""})  # an empty variable is a missing key too
    assert result.returncode != 0
    assert "Traceback" not in result.output
    assert result.output.count("HOOK-ERROR in before_all: ConfigError: model 'anthropic/claude-sonnet-4-5' (") == 1
    assert "pyproject.toml [tool.behave_aitest]) needs ANTHROPIC_API_KEY: not set in the environment" in result.output
    assert "Scenario: Greet" not in result.stdout  # stopped before the first scenario


def test_authentication_error_is_not_retried_nor_a_server_error(project: Project, fake_llm: FakeOpenAI) -> None:
    fake_llm.add({"status": 401, "message": "Incorrect API key provided: sk-fake***"})
    project.config(llm_config(fake_llm, retries=3))
    project.feature("hello.feature", HELLO)
    result = project.run()
    assert result.returncode != 0
    assert len(fake_llm.requests) == 1  # never retried
    assert "authentication failed (HTTP 401) for model 'openai/fake-model', not retried" in result.output
    assert "InternalServerError" not in result.output and "MCP server error" not in result.output


# --------------------------------------------------------------------------- 2. tool coverage

HTML = "behave_aitest.formatter:HTMLFormatter"
JSONF = "behave_aitest.formatter:JSONFormatter"
MD = "behave_aitest.formatter:MarkdownFormatter"

BANK_FEATURE = """\
Feature: Bank
  Scenario: Balance
    When the user says "what is my balance?"
    Then the agent called tool "get_balance"

  Scenario: Transfer from nowhere
    When the user says "move 5 from nowhere"
    Then the response mentions "Sorry"
"""

# The tool name "<img src=x>" is never shown unescaped: the coverage tables print server output.


BANKER = '[tool.behave_aitest.agents.banker]\nservers = ["bank"]\n'


def bank_replies() -> list[dict]:
    return [
        {"tool_calls": [("get_balance", {"account": "checking"})]},
        {"content": "You have 1,500.00."},
        {"tool_calls": [("transfer", {"from_account": "nowhere", "to_account": "savings", "amount": 5})]},
        {"content": "Sorry, no such account."},
    ]


def test_tool_coverage_report_gate_and_merge(project: Project, fake_llm: FakeOpenAI) -> None:
    fake_llm.add(*bank_replies())
    project.config(llm_config(fake_llm, BANK + BANKER))
    project.feature("bank.feature", BANK_FEATURE)
    result = project.run(
        "-D", "aitest.min_tool_coverage=0.8", "-D", "aitest.otel=reports/spans.json", "-D", "aitest.otel_content=on",
        "-f", JSONF, "-o", "reports/run.json", "-f", MD, "-o", "reports/run.md", "-f", HTML, "-o", "reports/run.html", "-f", "plain",
    )
    assert result.returncode == 1, result.output  # every scenario passed: the gate fails the run
    assert "2 scenarios passed" in result.output
    assert ("tool coverage 25% (1 of 4 tools called successfully) is below min_tool_coverage 80%; "
            "never called: bank.get_all_balances, bank.get_transactions, bank.transfer.") in result.output
    assert "Traceback" not in result.output
    doc = json.loads((project.root / "reports" / "run.json").read_text())
    cov = doc["coverage"]
    assert (cov["offered"], cov["called"], cov["ratio"], cov["below_gate"]) == (4, 1, 0.25, True)
    tools = {t["name"]: t for t in cov["servers"][0]["tools"]}
    assert (tools["get_balance"]["ok"], tools["transfer"]["failed"], tools["transfer"]["ok"]) == (1, 1, 0)
    assert tools["transfer"]["params"] == ["amount", "from_account", "memo", "to_account"]
    assert tools["get_balance"]["unused_params"] == []
    md = (project.root / "reports" / "run.md").read_text()
    assert "## Tool coverage: 25% (1 of 4 tools) · ⛔ below min_tool_coverage 80%" in md
    assert "| bank | 1/4 (25%) | get\\_all\\_balances, get\\_transactions, transfer | 1 | 0 | – |" in md
    page = (project.root / "reports" / "run.html").read_text()
    assert 'id="coverage"' in page and "never called" in page

    # 7. the OpenTelemetry export (OTLP/JSON file): GenAI semantic-convention spans
    exported = json.loads((project.root / "reports" / "spans.json").read_text())["resourceSpans"][0]
    spans = exported["scopeSpans"][0]["spans"]
    attrs = [{a["key"]: next(iter(a["value"].values())) for a in span["attributes"]} for span in spans]
    names = [span["name"] for span in spans]
    assert names.count("invoke_agent banker") == 2 and names.count("chat openai/fake-model") == 4
    roots = [a for a, span in zip(attrs, spans) if span["name"].startswith("invoke_agent")]
    assert len({a["gen_ai.conversation.id"] for a in roots}) == 2 and roots[0]["gen_ai.provider.name"] == "openai"
    tool = next(i for i, n in enumerate(names) if n == "execute_tool transfer")
    assert attrs[tool]["gen_ai.tool.name"] == "transfer" and attrs[tool]["gen_ai.tool.call.id"] == "call_2"
    assert '"from_account": "nowhere"' in attrs[tool]["gen_ai.tool.call.arguments"] and spans[tool]["status"]["code"] == 2
    assert spans[tool]["parentSpanId"] == spans[names.index("invoke_agent banker", 1)]["spanId"]
    chat = attrs[names.index("chat openai/fake-model")]
    assert chat["gen_ai.operation.name"] == "chat" and int(chat["gen_ai.usage.input_tokens"]) > 0
    assert "spans written to reports/spans.json" in result.stderr

    # merged across shards: the same run twice is still 1 of 4; the gate is the merge's exit code
    reports = project.root / "reports"
    merged = cli("report", "merge", "run.json", "run.json", "-o", "all.json", cwd=reports)
    assert merged.returncode == 1 and "never called: bank.get_all_balances" in merged.stderr
    assert json.loads((reports / "all.json").read_text())["coverage"]["servers"][0]["tools"][0]["calls"] == 0
    assert cli("report", "merge", "run.json", "-o", "all.md", "--min-tool-coverage", "20%", cwd=reports).returncode == 0


# --------------------------------------------------------------------------- 3. report diff, baseline deltas

PRICED = '[tool.behave_aitest.prices."openai/fake-model"]\ninput_per_million = 1000\noutput_per_million = 1000\n'

DIFF_BASE = """\
Feature: Bank
  Scenario: Balance
    When the user says "what is my balance?"
    Then the response mentions "You have"

  Scenario: Transfer
    When the user says "move 5 to savings"
    Then the response mentions "Done"

  Scenario: Greeting
    When the user says "hello"
    Then the response mentions "Hi"
"""

DIFF_NEW = """\
Feature: Bank
  Scenario: Balance
    When the user says "what is my balance?"
    Then the response mentions "You have"

  Scenario: Transfer
    When the user says "move 5 to savings"
    Then the response mentions "Done"

  Scenario: Goodbye <b>bold</b>
    When the user says "bye"
    Then the response mentions "Bye"
"""


def test_report_diff_and_inline_baseline(project: Project, fake_llm: FakeOpenAI) -> None:
    transfer = ("transfer", {"from_account": "checking", "to_account": "savings", "amount": 5})
    fake_llm.add(
        {"tool_calls": [("get_balance", {"account": "checking"})]}, {"content": "You have 1,500.00."},
        {"tool_calls": [transfer]}, {"content": "Done."},
        {"content": "Hi!"},
    )
    project.config(llm_config(fake_llm, BANK + BANKER + PRICED))
    project.feature("bank.feature", DIFF_BASE)
    assert project.run("-f", JSONF, "-o", "base.json").returncode == 0
    fake_llm.add(
        {"tool_calls": [("get_all_balances", {})]}, {"content": "You have 1,500.00 and 3,200.00 in all your accounts, as always."},
        {"tool_calls": [transfer]}, {"content": "I could not do that."},
        {"content": "Bye!"},
    )
    project.feature("bank.feature", DIFF_NEW)
    run = project.run("-D", "aitest.baseline=base.json", "-f", HTML, "-o", "new.html", "-f", MD, "-o", "new.md")
    assert run.returncode == 1  # the transfer fails now
    page = (project.root / "new.html").read_text()
    assert 'id="baseline"' in page and "vs baseline: passed → failed" in page
    assert "vs baseline: tools get_balance → get_all_balances (added get_all_balances; removed get_balance)" in page
    assert "new since the baseline" in page and "Not in this run: Bank › Greeting" in page
    assert "Compared with the baseline `base.json`: 1 regression · 1 tool sequence changed · 1 added · 1 removed" in (project.root / "new.md").read_text()

    diff = cli("report", "diff", "base.json", "new.json", cwd=project.root)
    assert diff.returncode == 1, diff.stderr
    md = diff.stdout
    assert "**❌ 1 regression · 1 tool sequence changed · 1 added · 1 removed** (2 scenarios compared)" in md
    assert "### Regressions (1)\n\n- **Bank › Transfer** — passed → failed" in md
    assert "- **Bank › Balance** — tools `get_balance` → `get_all_balances` (added `get_all_balances`; removed `get_balance`)" in md
    assert "Goodbye &lt;b&gt;bold&lt;/b&gt;" in md and "<b>" not in md  # names are escaped
    assert "| Cost | $" in md and "| Tokens |" in md
    for out in ("diff.html", "diff.json"):
        assert cli("report", "diff", "base.json", "new.json", "-o", out, cwd=project.root).returncode == 1
    data = json.loads((project.root / "diff.json").read_text())
    assert data["summary"] == {"regressed": 1, "improved": 0, "throttled": 0, "tool_changes": 1, "added": 1, "removed": 1, "compared": 2}
    page = (project.root / "diff.html").read_text()
    assert "Goodbye &lt;b&gt;bold&lt;/b&gt;" in page and "passed → failed" in page
    # the other way round is an improvement with a lower cost: exit 0, even with a threshold
    back = cli("report", "diff", "new.json", "base.json", "--max-cost-increase", "20%", cwd=project.root)
    assert back.returncode == 0 and "1 improved" in back.stdout

    # bad input: one line naming the file
    (project.root / "notes.json").write_text('{"hello": 1}')
    bad = cli("report", "diff", "base.json", "notes.json", cwd=project.root)
    assert bad.returncode == 1 and bad.stderr.startswith("behave-aitest: notes.json: not a behave-aitest report")
    assert len(bad.stderr.strip().splitlines()) == 1
    newer = json.loads((project.root / "base.json").read_text())
    newer["schema_version"] = 99
    (project.root / "newer.json").write_text(json.dumps(newer))
    bad = cli("report", "diff", "newer.json", "new.json", cwd=project.root)
    assert bad.returncode == 1 and "newer.json: report schema version 99" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    bad = cli("report", "diff", "base.json", "new.json", "--max-cost-increase", "lots", cwd=project.root)
    assert bad.returncode == 2 and "'lots' is not an increase" in bad.stderr


# --------------------------------------------------------------------------- 4. doctor

RULES = "[[rule]]\nwhen = 'hello'\nreply = 'Hi!'\n"


def test_doctor_lists_every_problem_without_hanging(project: Project) -> None:
    project.config(
        '[tool.behave]\nformat = ["behave_aitest.formatter:HTMLFormatter"]\noutfiles = ["reports/last.html"]\n'
        '[tool.behave_aitest]\nmodel = "scripted"\nscripted_rules = "rules.toml"\n'
        "[tool.behave_aitest.prices.x]\ninput_per_million = 1\noutput_per_million = 1\n"
        + BANK
        + '[tool.behave_aitest.servers.stuck]\ncommand = ["python", "-c", "import time; time.sleep(120)"]\nstartup_timeout_s = 2\n'
        + '[tool.behave_aitest.agents.banker]\nservers = ["bank"]\nallowed_tools = ["get_balance", "bank.launder"]\n'
        + '[tool.behave_aitest.servers.web]\nurl = "http://127.0.0.1:9/mcp"\nheaders = { Authorization = "Bearer ${WEB_TOKEN:-none}" }\n'
    )
    (project.root / "rules.toml").write_text(RULES)
    (project.root / "features" / "cassettes").mkdir()
    project.feature("hello.feature", HELLO + "\n  @model:anthropic/claude-sonnet-4-5\n  Scenario: Wave\n    When the user waves\n")
    done = cli("doctor", "-D", "aitest.cassette=replay", cwd=project.root)
    lines = done.stdout.splitlines()
    assert done.returncode == 1, done.stdout + done.stderr
    assert lines[0].startswith("[ok]   config: ") and lines[0].endswith("pyproject.toml is valid")
    assert "[ok]   features: 1 file, 2 scenarios parse" in lines
    assert "[FAIL] steps: 1 undefined: features/hello.feature:8: When the user waves" in lines
    assert any(line.startswith("[ok]   model 'scripted' (") for line in lines)
    assert ("[ok]   model 'anthropic/claude-sonnet-4-5' (features/hello.feature:7): provider anthropic, "
            "key not needed in replay mode, price known") in lines
    assert any(line.startswith("[ok]   server 'bank': started in ") and line.endswith("4 tools: get_balance, get_all_balances, transfer, get_transactions") for line in lines)
    assert any(line.startswith("[FAIL] server 'stuck': ") and "2 s" in line for line in lines), done.stdout
    assert any(
        line.startswith("[FAIL] agent 'banker': ") and "allowed_tools entry is not offered by the servers of the agent 'banker': 'bank.launder'" in line
        and "Its servers offer: bank.get_all_balances, bank.get_balance, bank.get_transactions, bank.transfer." in line
        for line in lines
    ), done.stdout
    assert ("[FAIL] cassettes: 2 of 2 conversations have none in features/cassettes/: "
            "features/hello.feature:2, features/hello.feature:7") in lines
    assert any(line.startswith("[FAIL] server (streamable-http http://127.0.0.1:9/mcp) 'web': ") and "cannot reach" in line for line in lines)
    assert lines[-1] == f"doctor: {len(lines) - 1} checks, 5 problems."
    assert "Traceback" not in done.stdout + done.stderr
    assert not (project.root / "reports").exists()  # a check writes no report over the last real one


# --------------------------------------------------------------------------- 5. init (and the parallel coverage gate, doctor on it)

EXISTING = '[project]\nname = "shop"\nversion = "1.0"\n\n[tool.ruff]\nline-length = 100'  # no final newline


def behave(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    return subprocess.run([sys.executable, "-m", "behave", "--no-color", *args], cwd=root, env=env, capture_output=True, text=True, timeout=300)


def test_init_writes_a_project_that_passes_offline(tmp_path: Path) -> None:
    root = tmp_path / "shop"
    (root / "features").mkdir(parents=True)
    (root / "pyproject.toml").write_text(EXISTING)
    mine = "# my own hooks\nfrom behave_aitest.environment import *\n"
    (root / "features" / "environment.py").write_text(mine)
    done = cli("init", "shop", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "left alone features/environment.py (it exists)" in done.stdout
    assert "added      pyproject.toml ([tool.behave_aitest] and [tool.behave] (the HTML report) at its end; nothing else changed)" in done.stdout
    assert "wrote      features/example.feature" in done.stdout
    assert (root / "features" / "environment.py").read_text() == mine
    assert (root / "pyproject.toml").read_text().startswith(EXISTING + "\n")

    run = behave(root, "-f", JSONF, "-o", "run.json", "-f", "plain")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 scenarios passed, 0 failed" in run.stdout
    assert json.loads((root / "run.json").read_text())["coverage"]["called"] == 2
    # the gate, in a parallel run: applied by the parent over every worker
    gated = behave(root, "-j", "2", "--runner", "behave_aitest.parallel:ParallelRunner", "-D", "aitest.min_tool_coverage=0.9")
    assert gated.returncode == 1
    assert ("CoverageGateFailed: tool coverage 50% (2 of 4 tools called successfully) is below min_tool_coverage 90%; "
            "never called: bank.get_all_balances, bank.get_transactions.") in gated.stdout + gated.stderr

    doctor = cli("doctor", cwd=root)
    assert doctor.returncode == 0, doctor.stdout
    assert doctor.stdout.splitlines()[-1].startswith("doctor: ") and "all is well" in doctor.stdout

    again = cli("init", cwd=root)  # nothing is ever overwritten
    assert again.returncode == 0 and again.stdout.count("left alone") == 5
    drafted = cli("init", "--from-server", "bank", cwd=root)
    assert drafted.returncode == 0 and "wrote      features/bank_tools.feature" in drafted.stdout
    draft = (root / "features" / "bank_tools.feature").read_text()
    assert draft.count("  Scenario: ") == 4 and 'Then the agent called tool "transfer"' in draft and 'Given the agent "banker"' in draft
    unknown = cli("init", "--from-server", "crm", cwd=root)
    assert unknown.returncode == 1 and unknown.stderr.startswith("behave-aitest init: Unknown MCP server 'crm' (known MCP servers: bank)")

    # a folder that cannot be written: one line
    blocked = cli("init", "run.json/inside", cwd=root)
    assert blocked.returncode == 1 and len(blocked.stderr.strip().splitlines()) == 1
    assert blocked.stderr.startswith("behave-aitest init: run.json/inside: cannot create the folder")
