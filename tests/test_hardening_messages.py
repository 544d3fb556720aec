"""Issue 13, messages, config and reports: hostile text from the model and from servers never
breaks JUnit XML, drives the CI log, floods the console or costs a report; config numbers and
environments are checked before the first scenario; malformed report files give one line.

One behave run covers every message case (each `python -m behave` costs seconds of imports).
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import BANK, Project, llm_config

from behave_aitest import report
from behave_aitest.text import safetext
from behave_aitest.config import ConfigError, load_config
from behave_aitest.model.fakellm import FakeOpenAI

ESC = "\x1b"
HOSTILE_NAME = f"get{ESC}[31m_bal\x07ance\n::error file=app.py,line=1::spoofed by a tool name"
BIG = 300_000  # characters of tool arguments and of one stderr line

# A "server" that writes a progress bar with ANSI codes (one 300 KB line) and two workflow
# commands to stderr, then exits during start-up.
HOSTILE_SERVER = f"""\
import sys
sys.stderr.write("{ESC}[2J{ESC}[31mprogress " + "#" * {BIG} + "\\r100%\\n")
sys.stderr.write("::error file=app.py,line=1::spoofed by server stderr\\n")
sys.stderr.write("  ::add-mask::nothing\\n")
sys.stderr.flush()
sys.exit(3)
"""

SERVERS = """
[tool.behave_aitest.servers.hostile]
command = ["python", "hostile_server.py"]
[tool.behave_aitest.servers.web]
url = "http://alice:s3cret-Passw0rd@127.0.0.1:{port}/mcp?token=${{WEB_MCP_TOKEN}}"
"""
WEB_TOKEN = "tokValue-7f6e5d4c3b2a"

FEATURE = """\
Feature: Hostile texts
  Scenario: a tool name with control characters and a workflow command
    Given the MCP server "bank"
    When the user says "balance?"
    Then no tool call failed

  Scenario: huge tool arguments
    Given the MCP server "bank"
    When the user says "balance?"
    Then no tool call failed

  Scenario: a server's stderr with ANSI codes, a 300 KB line and workflow commands
    Given the MCP server "hostile"
    When the user says "go"

  Scenario: a lone surrogate in the model's answer
    When the user says "hello"
    Then the response mentions "nothing like it"

  Scenario: no choices at all
    When the user says "hello"

  Scenario: a judge answer of the wrong shape
    When the user says "hello"
    Then the response satisfies "it greets the user"

  Scenario: a judge reason with control characters
    When the user says "hello"
    Then the response satisfies "it greets the user"

  Scenario: an HTTP server with a password and a token in its URL
    Given the MCP server "web"
    When the user says "go"
"""


def _by_scenario(output: str) -> dict[str, str]:
    return {block.splitlines()[0].strip(): block for block in output.split("  Scenario: ")[1:]}


def test_hostile_texts_stay_inert_bounded_and_reports_survive(project: Project, fake_llm: FakeOpenAI) -> None:
    no_choices = {"id": "x", "object": "chat.completion", "created": 0, "model": "fake-model", "choices": [],
                  "usage": {"prompt_tokens": 1, "completion_tokens": 0, "total_tokens": 1}}
    hostile_reason = f"no\n::error::spoofed by the judge {ESC}[1m"
    fake_llm.add(
        {"tool_calls": [(HOSTILE_NAME, {})]}, {"content": "done"},
        {"tool_calls": [{"name": "get_balance", "arguments": "{" + "a" * BIG}]}, {"content": "done"},
        {"content": "odd \ud800 character"},
        {"raw": json.dumps(no_choices)},
        {"content": "hello there"}, {"content": '{"verdicts": ["yes"]}'}, {"content": '{"verdicts": ["yes"]}'},
        {"content": "hello there"},
        {"content": json.dumps({"verdicts": [{"criterion": 1, "pass": False, "reason": hostile_reason}]})},
    )
    project.config(llm_config(fake_llm, retries=0) + BANK + SERVERS.format(port=fake_llm.port))
    (project.root / "hostile_server.py").write_text(HOSTILE_SERVER, encoding="utf-8")
    project.feature("hostile.feature", FEATURE)
    result = project.run(
        "-f", "behave_aitest.formatter:HTMLFormatter", "-o", "reports/run.html",
        "-f", "behave_aitest.formatter:MarkdownFormatter", "-o", "reports/run.md",
        "-f", "behave_aitest.formatter:JSONFormatter", "-o", "reports/run.json",
        "-f", "plain", "--junit", "--junit-directory", "reports/junit",
        env={"WEB_MCP_TOKEN": WEB_TOKEN},
    )
    out = result.output
    blocks = _by_scenario(out)
    # F14/F16: nothing that drives a terminal or a CI runner reaches the console; shown escaped.
    assert ESC not in out and "\x07" not in out
    assert not [line for line in out.splitlines() if line.lstrip().startswith("::")]
    assert "\\x1b[31m_bal\\x07ance" in blocks["a tool name with control characters and a workflow command"]
    assert "\\x3a:error file=app.py" in blocks["a tool name with control characters and a workflow command"]
    stderr_block = blocks["a server's stderr with ANSI codes, a 300 KB line and workflow commands"]
    assert "\\x1b[2J" in stderr_block and "\\x3a:error file=app.py,line=1::spoofed by server stderr" in stderr_block
    assert "characters cut]" in stderr_block and "\n100%\n" in stderr_block
    assert "\\x3a:error::spoofed by the judge \\x1b[1m" in blocks["a judge reason with control characters"]
    # F15: a 300 KB argument and a 300 KB stderr line cost a few KB of console each.
    assert len(blocks["huge tool arguments"]) < 25_000 and "characters cut]" in blocks["huge tool arguments"]
    assert len(stderr_block) < 25_000
    assert len(out) < 200_000
    # F14: JUnit XML is well-formed and bounded.
    junit = list((project.root / "reports" / "junit").glob("*.xml"))
    assert junit
    for path in junit:
        ET.parse(path)
        assert path.stat().st_size < 200_000
    # F21: what happened, said plainly.
    assert "the model returned no choices (empty answer)" in blocks["no choices at all"]
    assert "IndexError" not in blocks["no choices at all"]
    judge_block = blocks["a judge answer of the wrong shape"]
    assert "judge answer of the wrong shape" in judge_block and "AttributeError" not in judge_block
    retried = [r for r in fake_llm.requests if any("That was not valid" in str(m.get("content")) for m in r["messages"])]
    assert len(retried) == 1  # retried once
    # F7: neither the URL's password nor its token value is printed (behave prints the captured log).
    for secret in ("s3cret-Passw0rd", WEB_TOKEN):
        assert secret not in out
        assert all(secret not in p.read_text(encoding="utf-8") for p in junit)
    # F3: one lone surrogate costs no report; the character shows as U+FFFD.
    doc = json.loads((project.root / "reports" / "run.json").read_text(encoding="utf-8"))
    answers = [t["response"] for f in doc["features"] for s in f["scenarios"] for t in s["turns"]]
    assert "odd \ufffd character" in answers
    assert "odd \ufffd character" in (project.root / "reports" / "run.html").read_text(encoding="utf-8")
    assert "a lone surrogate in the model's answer" in (project.root / "reports" / "run.md").read_text(encoding="utf-8")
    # F15: the JSON report keeps the whole arguments (turns) but bounded messages.
    huge = next(s for f in doc["features"] for s in f["scenarios"] if s["name"] == "huge tool arguments")
    assert len(huge["turns"][0]["tool_calls"][0]["raw_arguments"]) == BIG + 1
    assert len(huge["first_failure"]["message"]) <= safetext.MESSAGE_LIMIT + 200
    hostile = next(s for f in doc["features"] for s in f["scenarios"] if s["name"].startswith("a server's stderr"))
    assert len(json.dumps(hostile)) < 100_000


# --------------------------------------------------------------------------- F19, F7: config


def _config(root: Path, text: str) -> None:
    (root / "pyproject.toml").write_text(text, encoding="utf-8")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[tool.behave_aitest]\ntimeout_s = inf\n", r"\[tool.behave_aitest\]: 'timeout_s' must be a finite number \(got inf\)"),
        ("[tool.behave_aitest]\nretry_backoff_s = nan\n", r"'retry_backoff_s' must be a finite number \(got nan\)"),
        ("[tool.behave_aitest]\nmin_pass_rate = nan\n", r"'min_pass_rate' must be a finite number"),
        ("[tool.behave_aitest.agents.a]\ntemperature = nan\n", r"\[tool.behave_aitest.agents.a\]: 'temperature' must be a finite number"),
        ("[tool.behave_aitest.prices.m]\ninput_per_million = nan\noutput_per_million = 1\n", r"prices.'m'\]: 'input_per_million' must be a finite"),
        ('[tool.behave_aitest.servers.s]\ncommand = ["x"]\ntool_timeout_s = inf\n', r"servers.s\]: 'tool_timeout_s' must be a finite number"),
    ],
)
def test_non_finite_config_numbers_are_rejected_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    _config(tmp_path, text)
    with pytest.raises(ConfigError, match=message):
        load_config({}, cwd=tmp_path)


def test_non_finite_userdata_numbers_are_rejected(tmp_path: Path) -> None:
    for key in ("timeout_s", "retry_backoff_s", "min_pass_rate"):
        with pytest.raises(ConfigError, match=rf"-D aitest.{key}: must be a finite number"):
            load_config({f"aitest.{key}": "inf" if key == "timeout_s" else "nan"}, cwd=tmp_path)


def test_a_system_prompt_file_that_is_not_utf8_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "prompt.md").write_bytes(b"Be helpful \xff\xfe\x80 please")
    _config(tmp_path, '[tool.behave_aitest.agents.a]\nsystem_prompt_file = "prompt.md"\n')
    with pytest.raises(ConfigError, match=r"agents.a\]: 'system_prompt_file' 'prompt.md' is not UTF-8 text \(byte 0xff at position 11\)"):
        load_config({}, cwd=tmp_path)


def test_unset_server_variables_and_missing_cwd_are_config_errors_for_a_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("H13_UNSET_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)
    _config(tmp_path, '[tool.behave_aitest.servers.bank]\ncommand = ["python", "-m", "x"]\nenv = { BANK_TOKEN = "${H13_UNSET_TOKEN}" }\n')
    load_config({}, cwd=tmp_path)  # `cassettes prune` reads the config too: it needs no server
    with pytest.raises(ConfigError, match=r"servers.bank\] env.BANK_TOKEN: environment variable H13_UNSET_TOKEN is not set"):
        load_config({}, cwd=tmp_path, for_run=True)
    # a replay with recorded tools starts no server: the variable may be missing (CI without secrets)
    (tmp_path / "features" / "cassettes").mkdir(parents=True)
    load_config({"aitest.cassette": "replay", "aitest.cassette_tools": "record"}, cwd=tmp_path, for_run=True)
    _config(tmp_path, '[tool.behave_aitest.servers.bank]\ncommand = ["python", "-m", "x"]\ncwd = "no-such-folder"\n')
    with pytest.raises(ConfigError, match=r"servers.bank\]: 'cwd' folder 'no-such-folder' does not exist"):
        load_config({}, cwd=tmp_path, for_run=True)
    _config(tmp_path, '[tool.behave_aitest.servers.web]\nurl = "http://h/mcp?token=${H13_UNSET_TOKEN}"\n')
    with pytest.raises(ConfigError, match=r"servers.web\] url: environment variable H13_UNSET_TOKEN is not set"):
        load_config({}, cwd=tmp_path, for_run=True)


def test_a_mistyped_url_in_a_config_error_is_redacted(tmp_path: Path) -> None:
    _config(tmp_path, '[tool.behave_aitest.servers.web]\ntransport = "streamable-http"\nurl = "htp://alice:s3cret-Passw0rd@host/mcp"\n')
    with pytest.raises(ConfigError, match=r"'url' must start with http:// or https://") as caught:
        load_config({}, cwd=tmp_path)
    assert "s3cret-Passw0rd" not in str(caught.value) and "[REDACTED]" in str(caught.value)


def test_an_unset_server_variable_stops_the_run_before_the_first_scenario(project: Project, fake_llm: FakeOpenAI) -> None:
    project.config(llm_config(fake_llm) + BANK + 'env = { BANK_TOKEN = "${H13_UNSET_TOKEN}" }\n')
    project.feature("f.feature", 'Feature: F\n  Scenario: one\n    Given the MCP server "bank"\n    When the user says "hi"\n'
                    '  Scenario: two\n    Given the MCP server "bank"\n    When the user says "hi"\n')
    result = project.run()
    assert result.returncode == 1
    assert ("HOOK-ERROR in before_all: ConfigError: pyproject.toml [tool.behave_aitest.servers.bank] env.BANK_TOKEN: "
            "environment variable H13_UNSET_TOKEN is not set") in result.output
    assert result.output.count("H13_UNSET_TOKEN is not set") == 1  # once, not once per scenario
    assert fake_llm.requests == []


def _strict(text: str) -> object:
    def refuse(constant: str) -> object:
        raise AssertionError(f"{constant} in JSON")

    return json.loads(text, parse_constant=refuse)


def test_reports_never_hold_nan_or_a_lone_surrogate() -> None:
    from behave_aitest.report import render

    doc = report.build_document([], started_at=1.0, finished_at=2.0, title="t \ud800")
    doc["totals"]["cost_usd"] = math.nan
    doc["runs"][0]["wall_time_s"] = math.inf
    _strict(report.dumps(doc))
    assert "\ud800" not in report.dumps(doc)
    page = render.html(doc)
    embedded = re.search(r'<script type="application/json"[^>]*>(.*?)</script>', page, re.DOTALL)
    assert embedded is not None and "NaN" not in embedded.group(1) and "Infinity" not in embedded.group(1)
    _strict(embedded.group(1))
    assert report.build_document([], started_at=1.0, finished_at=2.0, title="t \ud800")["title"] == "t \ufffd"


# --------------------------------------------------------------------------- F20: malformed reports


def _malformed(doc: dict, case: str) -> dict:
    feature, scenario = doc["features"][0], doc["features"][0]["scenarios"][0]
    if case == "features":
        doc["features"] = "nope"
    elif case == "scenarios":
        del feature["scenarios"]
    elif case == "status":
        scenario["status"] = "weird"
    elif case == "version 0":
        doc["schema_version"] = 0
    elif case == "version -5":
        doc["schema_version"] = -5
    elif case == "stats":
        scenario["stats"] = "lots"
    elif case == "turns":
        scenario["turns"] = [None]
    elif case == "steps":
        scenario["steps"] = [{"bogus": 1}]
    return doc


MALFORMED = {
    "features": "'features' must be a list",
    "scenarios": "features[0]: 'scenarios' is missing",
    "status": "features[0].scenarios[0].status: unknown status 'weird' (one of passed, failed, error, throttled, skipped, untested)",
    "version 0": "'schema_version' 0 is not a version",
    "version -5": "'schema_version' -5 is not a version",
    "stats": "features[0].scenarios[0].stats: must be an object",
    "turns": "features[0].scenarios[0].turns[0]: must be an object",
    "steps": "features[0].scenarios[0].steps[0]",
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_reports_give_one_line_naming_file_and_field(tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    from test_report_unit import build, session_feature

    from behave_aitest import cli

    good = tmp_path / "good.json"
    good.write_text(report.dumps(build(session_feature())), encoding="utf-8")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_malformed(json.loads(good.read_text(encoding="utf-8")), case)), encoding="utf-8")
    for argv in (["report", "render", str(bad), "-o", str(tmp_path / "x.html")],
                 ["report", "merge", str(good), str(bad), "-o", str(tmp_path / "m.html")]):
        code = cli.main(argv)
        err = capsys.readouterr().err
        assert code in (1, 2), (argv, err)
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert err.startswith(f"behave-aitest: {bad}: ") and MALFORMED[case] in err, err
    assert not (tmp_path / "x.html").exists() and not (tmp_path / "m.html").exists()


def test_the_cli_says_malformed_in_one_line_without_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text(json.dumps({"schema": report.SCHEMA, "schema_version": 1, "features": "nope"}), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "behave_aitest.cli", "report", "render", "bad.json", "-o", "x.html"],
                          cwd=tmp_path, capture_output=True, text=True, encoding="utf-8")
    assert done.returncode == 1 and done.stderr == "behave-aitest: bad.json: 'features' must be a list (got 'nope').\n", done.stderr


def test_a_field_of_the_wrong_type_deep_inside_is_one_line_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from test_report_unit import build, session_feature

    from behave_aitest import cli

    doc = build(session_feature())
    doc["features"][0]["scenarios"][1]["first_failure"] = "a string, not an object"
    (tmp_path / "odd.json").write_text(report.dumps(doc), encoding="utf-8")
    assert cli.main(["report", "render", str(tmp_path / "odd.json"), "-o", str(tmp_path / "x.md")]) == 1
    err = capsys.readouterr().err
    # refused when read, naming the field (issue 25, H11), no longer an AttributeError from the renderer
    assert err.startswith(f"behave-aitest: {tmp_path / 'odd.json'}: features[0].scenarios[1].first_failure: must be an object or null") and err.count("\n") == 1, err


def test_message_escaping_keeps_tabs_and_newlines_and_bounds_every_line() -> None:
    text = "a\tb\nc\x00d\x9be\ufffef\ud800g\r\n  ::warning::x\nno :: here\n" + "z" * 10_000
    out = safetext.message(text)
    assert out.startswith("a\tb\nc\\x00d\\x9be\\ufffef\ufffdg\\r\n  \\x3a:warning::x\nno :: here\n")
    assert all(len(line) <= safetext.LINE_LIMIT + 60 for line in out.split("\n"))
    ET.fromstring(f"<m>{out.replace('&', '&amp;').replace('<', '&lt;')}</m>")  # XML 1.0 accepts it
    assert len(safetext.message("\n".join(["y" * 1_999] * 100))) <= safetext.MESSAGE_LIMIT + 60
