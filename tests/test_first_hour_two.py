"""Issue 24, part C (the first hour, round two): what ``report diff`` says (item 19) and no
emoji in the diff's HTML (item 20). Pure: two report documents compared by ``report.diff``."""

from __future__ import annotations

import re

from behave_aitest.report import diff

EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\u23e9-\u23fa\u231a-\u231b\ufe0f]")


def _scn(name: str, status: str = "passed", calls: list | None = None, failure: dict | None = None) -> dict:
    turns = [{"tool_calls": [{"name": n, "arguments": a} for n, a in (calls or [])]}]
    stats = {"cost_usd": 0.01, "unknown_cost_calls": 0, "input_tokens": 100, "output_tokens": 10, "latency_s": 1.0}
    return {"name": name, "status": status, "turns": turns, "stats": stats, "first_failure": failure}


def _doc(*scenarios: dict) -> dict:
    return {"title": "t", "features": [{"name": "F", "title": "F", "scenarios": list(scenarios)}], "totals": {}}


BASE = _doc(_scn("pay", calls=[("transfer", {"to_account": "savings", "amount": 500})]), _scn("greet"))
NEW = _doc(
    _scn("pay", calls=[("transfer", {"to_account": "savings", "amount": 5000, "memo": "x"})]),
    _scn("greet", "failed", failure={"step": 'Then the response mentions "hello"', "message": "Expected the response to mention 'hello'."}),
)


def test_report_diff_says_which_argument_changed_and_why_a_regression_failed() -> None:
    """Item 19: ``arguments changed: transfer`` named no argument; now each changed argument
    with its old and new value; a regression names its failing step and message."""
    result = diff.compare(BASE, NEW)
    text = diff.markdown(result)
    assert "`transfer`: amount 500 → 5000, memo (none) → \"x\"" in text, text
    assert 'Then the response mentions "hello"' in text and "Expected the response to mention 'hello'." in text, text
    page = diff.html(result)
    assert "transfer: amount 500 → 5000" in page and "Expected the response to mention" in page


def test_the_diff_html_and_the_baseline_panel_have_no_emoji() -> None:
    """Item 20: the diff page's headline and the "Compared with the baseline" panel drew ❌/✅
    (empty boxes without an emoji font)."""
    result = diff.compare(BASE, NEW, {"cost_usd": 0.0})
    page = diff.html(result)
    assert not EMOJI.search(page), EMOJI.findall(page)
    assert "1 regression" in page
    doc = dict(NEW)
    doc["baseline"] = None
    assert not EMOJI.search(diff.headline(result, icons=False))


def test_a_missing_key_message_names_that_key_in_its_example(tmp_path, monkeypatch) -> None:
    """Item 22: a missing ANTHROPIC_API_KEY said "e.g. export OPENAI_API_KEY=..."."""
    import pytest

    from behave_aitest.config import ConfigError, load_config
    from behave_aitest.model.preflight import check_keys

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    (tmp_path / "pyproject.toml").write_text('[tool.behave_aitest]\nmodel = "anthropic/claude-sonnet-4-5"\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    config = load_config({})
    with pytest.raises(ConfigError) as caught:
        check_keys({"anthropic/claude-sonnet-4-5": "pyproject.toml"}, config)
    assert "export ANTHROPIC_API_KEY=..." in str(caught.value) and "OPENAI_API_KEY" not in str(caught.value), caught.value


def test_a_judge_step_without_a_judge_model_says_how_to_set_one(project) -> None:
    """Item 22: with the scripted model as the agent and no judge model, the judge step's error
    says how to set one (@judge:, judge_model, judge rules)."""
    (project.root / "rules.toml").write_text("[[rule]]\nwhen = 'hello'\nreply = 'Hello.'\n", encoding="utf-8")
    project.config('[tool.behave_aitest]\nmodel = "scripted"\nscripted_rules = "rules.toml"\n')
    project.feature(
        "judged.feature",
        """
        Feature: Judged
          Scenario: Polite
            When the user says "hello"
            Then the response satisfies "is polite"
        """,
    )
    result = project.run("-f", "plain")
    assert result.returncode == 1, result.output
    assert "The judge could not give a verdict" in result.output, result.output
    assert "no judge model is set" in result.output and "@judge:" in result.output and "judge_model" in result.output, result.output
    assert "docs/scripted-model.md#a-judge" in result.output, result.output


def test_init_configures_the_html_report(tmp_path) -> None:
    """Item 17: after ``behave-aitest init``, the first ``behave`` writes reports/aitest.html,
    as the examples do; a pyproject.toml with its own [tool.behave] keeps it, and init says
    what to add."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}

    def run(*args: str, cwd) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    assert run("-m", "behave_aitest.cli", "init", cwd=fresh).returncode == 0
    first = run("-m", "behave", "--no-color", cwd=fresh)
    assert first.returncode == 0, first.stdout + first.stderr
    assert (fresh / "reports" / "aitest.html").is_file() and "HTML report written to reports/aitest.html" in first.stdout + first.stderr

    own = tmp_path / "own"
    own.mkdir()
    (own / "pyproject.toml").write_text('[tool.behave]\nformat = ["progress"]\n', encoding="utf-8")
    done = run("-m", "behave_aitest.cli", "init", cwd=own)
    assert done.returncode == 0, done.stderr
    text = (own / "pyproject.toml").read_text(encoding="utf-8")
    assert text.startswith('[tool.behave]\nformat = ["progress"]\n') and text.count("[tool.behave]") == 1, text
    assert "[tool.behave_aitest]" in text and "HTMLFormatter" in done.stdout, done.stdout


def test_the_readme_setup_works_as_written(tmp_path, monkeypatch) -> None:
    """Item 15: README's "Set up your own project" starts with install, init and doctor, and
    its config block loads when copied verbatim (no unset ${VAR}, a server module that exists);
    no install line says `pip install behave-aitest` as if it were published."""
    import importlib.util
    from pathlib import Path

    from behave_aitest.config import load_config

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Set up your own project"):]
    section = section[:section.index("\n## ", 5)]
    assert section.index("pip install -e") < section.index("behave-aitest init") < section.index("behave-aitest doctor") < section.index("```toml")
    block = section[section.index("```toml") + len("```toml"):]
    block = block[:block.index("```")]
    (tmp_path / "pyproject.toml").write_text(block, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BANK_CURRENCY", raising=False)
    config = load_config({}, for_run=True)
    command = config.servers["bank"].command
    assert command[1] == "-m" and importlib.util.find_spec(command[2]) is not None, command
    # (docs/reliability.md quotes the messages of the code, not install instructions)
    for doc in [root / "README.md", *sorted(d for d in (root / "docs").glob("*.md") if d.name != "reliability.md")]:
        for line in doc.read_text(encoding="utf-8").splitlines():
            if "pip install behave-aitest" in line or "pip install 'behave-aitest" in line:
                assert "once published" in line.lower() or "once it is published" in line.lower() or "then: pip install" in line or "(not today" in line, f"{doc.name}: {line}"


def test_a_report_whose_file_suffix_is_another_formats_is_warned(project) -> None:
    """Item 18: behave pairs ``-o`` with ``-f`` by order, so ``-f pretty -f …HTMLFormatter -o
    a.html -f …MarkdownFormatter -o b.md`` writes HTML into b.md; the run says so, naming the
    pairs behave made and how to write them."""
    (project.root / "features" / "steps" / "basic.py").write_text(
        "from behave import given\n\n@given('it passes')\ndef it_passes(context):\n    pass\n", encoding="utf-8"
    )
    project.config("[tool.behave_aitest]\n")
    project.feature("plain.feature", "Feature: Plain\n  Scenario: One\n    Given it passes\n")
    result = project.run(
        "-f", "pretty", "-f", "behave_aitest.formatter:HTMLFormatter", "-o", "a.html", "-f", "behave_aitest.formatter:MarkdownFormatter", "-o", "b.md"
    )
    warning = [line for line in result.stderr.splitlines() if "WARNING" in line and "b.md" in line]
    assert warning, result.output
    assert "HTML report" in warning[0] and "-f pretty -o a.html" in warning[0] and "in the same order" in warning[0], warning[0]
    fine = project.run("-f", "behave_aitest.formatter:HTMLFormatter", "-o", "c.html", "-f", "behave_aitest.formatter:MarkdownFormatter", "-o", "d.md")
    assert "WARNING" not in fine.stderr, fine.stderr
    # Item 22: [tool.behave] names the HTML report, and so does the command line: behave runs
    # both formatters; the report is written (and said) once.
    project.config(
        '[tool.behave]\nformat = ["behave_aitest.formatter:HTMLFormatter"]\noutfiles = ["r/a.html"]\n[tool.behave_aitest]\n'
    )
    both = project.run("-f", "behave_aitest.formatter:HTMLFormatter", "-o", "r/a.html", "-f", "plain")
    assert both.stderr.count("HTML report written to r/a.html") == 1, both.output
    assert "WARNING" not in both.stderr, both.stderr
    # -o alone, meant to move the configured report: behave gives it its pretty formatter.
    moved = project.run("-o", "r/b.html")
    warning = [line for line in moved.stderr.splitlines() if "WARNING" in line and "r/b.html" in line]
    assert warning and "behave's pretty output" in warning[0] and "-f behave_aitest.formatter:HTMLFormatter -o r/b.html" in warning[0], moved.output


def test_init_from_server_drafts_only_what_an_agent_can_reach(tmp_path) -> None:
    """Item 14: ``init --from-server`` drafted a scenario for tools the agent's allowed_tools
    exclude (each would fail), and for a server no agent uses ran the draft against another
    agent; now it drafts the allowed tools only (naming the others) and reaches an unused
    server with ``Given the MCP server``."""
    import os
    import subprocess
    import sys

    (tmp_path / "pyproject.toml").write_text(
        '[tool.behave_aitest]\nmodel = "scripted"\n'
        '[tool.behave_aitest.servers.bank]\ncommand = ["python", "-m", "behave_aitest.testing.bank_server"]\n'
        '[tool.behave_aitest.servers.todo]\ncommand = ["python", "-m", "behave_aitest.testing.todo_server"]\n'
        '[tool.behave_aitest.agents.banker]\nservers = ["bank"]\nallowed_tools = ["get_balance", "bank.transfer"]\n',
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    for name in ("bank", "todo"):
        done = subprocess.run([sys.executable, "-m", "behave_aitest.cli", "init", "--from-server", name], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr
    bank = (tmp_path / "features" / "bank_tools.feature").read_text(encoding="utf-8")
    assert bank.count("  Scenario: ") == 2 and "Scenario: get_balance" in bank and "Scenario: transfer" in bank, bank
    assert "get_all_balances" in bank and "allowed_tools" in bank and "Scenario: get_all_balances" not in bank, bank
    todo = (tmp_path / "features" / "todo_tools.feature").read_text(encoding="utf-8")
    assert 'Given the MCP server "todo"' in todo and '    Given the agent "' not in todo and "No agent uses" in todo, todo


def test_a_shard_without_j_does_not_speak_of_j(project) -> None:
    """Item 22: a shard run without -j printed its console notice as "behave-aitest -j: ..."."""
    (project.root / "features" / "steps" / "basic.py").write_text(
        "from behave import given\n\n@given('it passes')\ndef it_passes(context):\n    pass\n", encoding="utf-8"
    )
    project.config("[tool.behave_aitest]\n")
    project.feature("plain.feature", "Feature: Plain\n  Scenario: One\n    Given it passes\n")
    result = project.run("--runner", "behave_aitest.parallel:ParallelRunner", "-D", "aitest.shard=1/1", "-f", "pretty")
    assert result.returncode == 0, result.output
    assert "is replaced by one line per conversation" in result.output and "behave-aitest -j:" not in result.output, result.output


def test_the_docs_the_messages_point_to_can_be_read(tmp_path) -> None:
    """Item 16: init's comments and the messages point to docs/<topic>.md, which a project does
    not have: ``behave-aitest docs TOPIC`` prints it (a did-you-mean for a wrong topic)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "behave_aitest.cli", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)

    listed = cli("docs")
    assert listed.returncode == 0 and "  scripted-model" in listed.stdout and "  configuration" in listed.stdout, listed.stdout
    page = cli("docs", "docs/scripted-model.md")
    assert page.returncode == 0 and page.stdout.startswith("# ") and "No rule matches" in page.stdout
    wrong = cli("docs", "scripted-modl")
    assert wrong.returncode == 1 and "Did you mean 'scripted-model'?" in wrong.stderr and "Traceback" not in wrong.stderr
    assert cli("init").returncode == 0
    assert "behave-aitest docs configuration" in (tmp_path / "pyproject.toml").read_text(encoding="utf-8")


def test_an_undefined_step_reads_as_one_in_the_report(project) -> None:
    """Item 22: an undefined step showed in the report with an empty message; now "undefined
    step", the nearest catalogue step, and the snippet to define it."""
    import json

    project.config("[tool.behave_aitest]\n")
    project.feature("typo.feature", 'Feature: Typo\n  Scenario: One\n    When the user sayz "hello"\n')
    result = project.run("-f", "behave_aitest.formatter:JSONFormatter", "-o", "r.json")
    assert result.returncode == 1, result.output
    failure = json.loads((project.root / "r.json").read_text(encoding="utf-8"))["features"][0]["scenarios"][0]["first_failure"]
    message = failure["message"]
    assert message.startswith("Undefined step: no step definition matches 'When the user sayz \"hello\"'."), message
    assert "Did you mean 'the user says \"{text}\"'?" in message and "@when(" in message, message
