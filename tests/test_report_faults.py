"""Reports when things go wrong: Ctrl-C, crashing hooks, dry runs, odd console encodings.

Each test runs ``python -m behave`` in a subprocess and reads the report it left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import Project, llm_config
from test_report import HTML, JSONF, MD

from behave_aitest import report
from behave_aitest.model.fakellm import FakeOpenAI


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_run_writes_a_partial_report(project: Project, fake_llm: FakeOpenAI, sig: signal.Signals) -> None:
    fake_llm.add({"content": "first answer"}, {"content": "late", "delay": 60})
    project.config(llm_config(fake_llm))
    project.feature(
        "slow.feature",
        'Feature: S\n  Scenario: quick\n    When the user says "hi"\n  Scenario: slow\n    When the user says "and now?"\n'
        '  Scenario: never\n    When the user says "too late"\n',
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "behave", "--no-color", "-f", HTML, "-o", "r.html", "-f", "plain"],
        cwd=project.root, env={**env, "OPENAI_API_KEY": "sk-fake"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    deadline = time.monotonic() + 60
    while len(fake_llm.requests) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=60)
    doc = report.load(project.root / "r.json")
    assert doc["partial"], out
    statuses = [s["status"] for s in doc["features"][0]["scenarios"]]
    if sig == signal.SIGINT:  # behave catches it, stops the run, and closes the formatters
        assert proc.returncode == 1, out
        assert any("interrupted" in r for r in doc["partial_reasons"]), doc["partial_reasons"]
        assert statuses[0] == "passed" and statuses[1] == "error" and statuses[2] in ("untested", "skipped")
    else:  # nobody catches it: the formatter's handler writes the report, then the process dies of it
        assert proc.returncode == -signal.SIGTERM, out
        assert "terminated (SIGTERM" in doc["partial_reasons"][0], doc["partial_reasons"]
        assert statuses[0] == "passed" and statuses[1] in ("error", "untested") and statuses[2] == "untested"
    assert doc["features"][0]["scenarios"][0]["turns"][0]["response"] == "first answer"
    assert "Partial report" in (project.root / "r.html").read_text(encoding="utf-8")


def test_hook_crashes_still_give_a_report(project: Project, fake_llm: FakeOpenAI) -> None:
    fake_llm.add({"content": "hello"}, {"content": "hello again"})
    project.config(llm_config(fake_llm))
    project.feature("f.feature", 'Feature: F\n  Scenario: s\n    When the user says "hi"\n  Scenario: t\n    When the user says "ho"\n')
    # A scenario hook that crashes makes that scenario an error, shown with the hook's message;
    # then an interrupt where behave does not catch it (a cleanup): close() never runs, atexit writes.
    (project.root / "features" / "environment.py").write_text(
        "from behave_aitest.environment import *\n"
        "from behave_aitest import hooks\n"
        "def before_all(context):\n"
        "    hooks.before_all(context)\n"
        "    def interrupt():\n"
        "        raise KeyboardInterrupt\n"
        "    context.add_cleanup(interrupt)\n"
        "def after_scenario(context, scenario):\n"
        "    hooks.after_scenario(context, scenario)\n"
        "    if scenario.name == 's':\n"
        "        raise RuntimeError('cleanup blew up')\n"
    )
    result = project.run("-f", JSONF, "-o", "r.json")
    assert result.returncode != 0
    doc = report.load(project.root / "r.json")
    assert doc["partial"] and "behave did not finish the run" in doc["partial_reasons"][0], doc["partial_reasons"]
    first, second = doc["features"][0]["scenarios"]
    assert first["status"] == "error" and "cleanup blew up" in first["first_failure"]["message"]
    assert first["turns"][0]["response"] == "hello"
    assert second["status"] == "passed" and second["turns"][0]["response"] == "hello again"

    # before_all fails (a config mistake): nothing ran, and the report says why.
    project.config('[tool.behave_aitest]\nmodle = "x"\n')
    (project.root / "features" / "environment.py").write_text("from behave_aitest.environment import *\n")
    result = project.run("-f", HTML, "-o", "r.html")
    assert result.returncode == 1
    doc = report.load(project.root / "r.json")
    assert doc["partial"] and "unknown key 'modle'" in doc["partial_reasons"][0], doc["partial_reasons"]
    assert "HOOK-ERROR in before_all: ConfigError" in doc["runs"][0]["hook_errors"][0]
    assert "This report is partial." in (project.root / "r.html").read_text(encoding="utf-8")


def test_dry_run_and_utf8_whatever_the_locale(project: Project) -> None:
    project.config("[tool.behave_aitest]\n")
    project.feature("f.feature", 'Feature: Grüße\n  Scenario: café ☕\n    When the user says "héllo"\n')
    result = project.run("--dry-run", "-f", HTML, "-o", "r.html", "-f", MD, env={"PYTHONIOENCODING": "latin-1", "LC_ALL": "C", "LANG": "C"})
    assert result.returncode == 0, result.output
    html = (project.root / "r.html").read_bytes().decode("utf-8")
    assert "café ☕" in html and "Dry run" in html
    doc = report.load(project.root / "r.json")
    assert not doc["partial"] and doc["runs"][0]["dry_run"]
    assert doc["features"][0]["scenarios"][0]["status"] == "untested"


def test_markdown_to_stdout_is_utf8_even_with_a_latin1_console(project: Project) -> None:
    project.config("[tool.behave_aitest]\n")
    project.feature("f.feature", 'Feature: F\n  Scenario: ☕\n    When the user says "x"\n')
    done = subprocess.run(
        [sys.executable, "-m", "behave", "--dry-run", "--no-summary", "-f", MD],
        cwd=project.root, capture_output=True, env={**os.environ, "PYTHONIOENCODING": "latin-1"},
    )
    assert done.returncode == 0, done.stderr
    assert "# ⚪".encode() in done.stdout


@pytest.mark.parametrize("key", ["behave.formatter.aitest.title", "aitest.report_title"])
def test_title_option(project: Project, key: str) -> None:
    project.config("[tool.behave_aitest]\n")
    project.feature("f.feature", "Feature: F\n  Scenario: s\n")
    # Not a dry run: the hooks load the config, which must accept -D aitest.report_title.
    result = project.run("-f", JSONF, "-o", "r.json", "-D", f"{key}=Agent <acceptance> tests")
    assert result.returncode == 0, result.output
    assert report.load(project.root / "r.json")["title"] == "Agent <acceptance> tests"


def test_formatter_alias_in_behave_ini(project: Project) -> None:
    project.config("[tool.behave_aitest]\n")
    project.feature("f.feature", 'Feature: F\n  Scenario: s\n    When the user says "x"\n')
    (project.root / "behave.ini").write_text("[behave.formatters]\naitest = behave_aitest.formatter:JSONFormatter\n", encoding="utf-8")
    result = project.run("--dry-run", "-f", "aitest", "-o", "r.json")
    assert result.returncode == 0, result.output
    assert report.load(project.root / "r.json")["totals"]["scenarios"] == 1


def test_a_report_that_cannot_be_written_leaves_the_run_and_other_formatters_alone(project: Project, fake_llm: FakeOpenAI) -> None:
    """A formatter's failure (here: its output folder is a file) is reported on stderr; the
    run's exit code, the other report formatters and behave's JUnit output are unaffected."""
    fake_llm.add({"content": "hi there"})
    project.config(llm_config(fake_llm))
    project.feature("ok.feature", 'Feature: ok\n  Scenario: ok\n    When the user says "hello"\n    Then the response mentions "hi"\n')
    (project.root / "blocked").write_text("a file where the report folder should be", encoding="utf-8")
    result = project.run(
        "-f", HTML, "-o", "blocked/run.html", "-f", JSONF, "-o", "reports/run.json", "-f", "plain",
        "--junit", "--junit-directory", "reports/junit",
    )
    assert result.returncode == 0, result.output
    assert "1 scenario passed, 0 failed" in result.output
    assert "behave-aitest: could not write the HTML report to blocked/run.html: [Errno 17] File exists: 'blocked'" in result.output
    assert "Traceback" not in result.output  # a path problem needs no traceback
    assert report.load(project.root / "reports" / "run.json")["totals"]["passed"] == 1
    assert list((project.root / "reports" / "junit").glob("*.xml"))
