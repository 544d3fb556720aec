"""Issue 24, part A: no check passes by accident.

The scripted model's "no rule" turn is no answer a check can pass on (item 1); every step that
names a tool checks that the scenario's agent has it, in its positive and negative forms, and
says what was meant (item 2). Each runs ``python -m behave`` in a subprocess on the real bank
server and the built-in scripted model."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

from conftest import BANK, Project

RULES = """
[[rule]]
when = 'balances?'
call = [{ tool = "get_all_balances" }]
reply = "Here are your balances:\\n{result}"

[[rule]]
when = 'hello'
reply = "Hello there."
"""


def _scripted(project: Project, extra: str = "") -> None:
    (project.root / "rules.toml").write_text(textwrap.dedent(RULES), encoding="utf-8")
    project.config(
        '[tool.behave_aitest]\nmodel = "scripted"\nscripted_rules = "rules.toml"\n'
        + BANK
        + '[tool.behave_aitest.agents.banker]\nservers = ["bank"]\n'
        + textwrap.dedent(extra)
    )


def _scenarios(output: str) -> dict[str, str]:
    """Each scenario's block of behave's plain output, by title."""
    blocks: dict[str, str] = {}
    current = None
    for line in output.splitlines():
        found = re.match(r"\s*Scenario: (.+?)\s*$", line)
        if found:
            current = found.group(1)
            blocks[current] = ""
        elif current is not None:
            blocks[current] += line + "\n"
    return blocks


def test_a_turn_with_no_rule_is_an_error_not_an_answer(project: Project) -> None:
    """Item 1: `Then the response mentions "joke"` after "Tell me a joke about banks", with no
    rule for it, must not pass (the old no-rule answer repeated the user's words); the turn's
    error names the message and the rules file."""
    _scripted(project)
    project.feature(
        "joke.feature",
        """
        Feature: No rule
          Scenario: A joke
            Given the agent "banker"
            When the user says "Tell me a joke about banks"
            Then the response mentions "joke"

          Scenario: Something else
            Given the agent "banker"
            When the user says "Tell me a story"
            Then the agent answered
        """,
    )
    result = project.run("-f", "plain")
    assert result.returncode == 1, result.output
    assert "0 scenarios passed" in result.output, result.output
    blocks = _scenarios(result.output)
    assert "Tell me a joke about banks" in blocks["A joke"] and "rules.toml" in blocks["A joke"], result.output
    assert "has no rule" in blocks["A joke"], result.output
    assert "Tell me a story" in blocks["Something else"] and "rules.toml" in blocks["Something else"], result.output


TOOL_STEPS = """
Feature: Named tools
  Background:
    Given the agent "banker"

  Scenario: negative, misspelt
    When the user says "hello"
    Then the agent did not call tool "get_balanse"

  Scenario: negative during the conversation
    When the user says "hello"
    Then the agent did not call tool "get_balanse" during the conversation

  Scenario: zero times
    When the user says "hello"
    Then the agent called tool "get_balanse" 0 times

  Scenario: positive, misspelt
    When the user says "balances"
    Then the agent called tool "get_all_balanse"

  Scenario: with arguments
    When the user says "balances"
    Then the agent called tool "get_all_balanse" with:
      | argument | value |
      | account  | x     |

  Scenario: result mentions
    When the user says "balances"
    Then the result of tool "get_all_balanse" mentions "checking"

  Scenario: only these
    When the user says "hello"
    Then the agent called only the tools:
      | tool        |
      | get_balanse |

  Scenario: in order
    When the user says "balances"
    Then the agent called the tools in order:
      | tool             |
      | get_all_balances |
      | transfr          |

  Scenario: in any order
    When the user says "balances"
    Then the agent called the tools in any order:
      | tool            |
      | get_all_balanse |

  Scenario: server of a tool
    When the user says "hello"
    Then the agent did not call tool "bnk.transfer"

  Scenario: glob that matches nothing
    When the user says "hello"
    Then the agent never called a tool matching "delete_*"

  Scenario: allowed tools step
    Given the agent may only use the tools "get_balance, transfr"
    When the user says "hello"
    Then the agent answered

  Scenario: right names pass
    When the user says "balances"
    Then the agent called tool "get_all_balances"
    And the agent called tool "bank.get_all_balances" 1 time
    And the agent did not call tool "transfer"
    And the agent did not call tool "bank.transfer" during the conversation
    And the agent never called a tool matching "trans*"
    And the agent called only the tools:
      | tool             |
      | get_all_balances |
      | transfer         |
    And the result of tool "get_all_balances" mentions "checking"
"""


def test_every_tool_step_checks_the_name_exists(project: Project) -> None:
    """Item 2, tools: each step naming a tool the agent does not have is an error with a
    did-you-mean and the agent's tools, in the positive and the negative forms."""
    _scripted(project)
    project.feature("tools.feature", TOOL_STEPS)
    result = project.run("-f", "plain")
    blocks = _scenarios(result.output)
    expected = {
        "negative, misspelt": ("'get_balanse'", "Did you mean 'get_balance'?"),
        "negative during the conversation": ("'get_balanse'", "Did you mean 'get_balance'?"),
        "zero times": ("'get_balanse'", "Did you mean 'get_balance'?"),
        "positive, misspelt": ("'get_all_balanse'", "Did you mean 'get_all_balances'?"),
        "with arguments": ("'get_all_balanse'", "Did you mean 'get_all_balances'?"),
        "result mentions": ("'get_all_balanse'", "Did you mean 'get_all_balances'?"),
        "only these": ("'get_balanse'", "Did you mean 'get_balance'?"),
        "in order": ("'transfr'", "Did you mean 'transfer'?"),
        "in any order": ("'get_all_balanse'", "Did you mean 'get_all_balances'?"),
        "server of a tool": ("'bnk.transfer'", "Did you mean 'bank.transfer'?"),
        "glob that matches nothing": ("'delete_*'", "matches none of the tools"),
        "allowed tools step": ("'transfr'", "(did you mean 'transfer'?)"),
    }
    for title, (name, hint) in expected.items():
        block = blocks.get(title, "")
        assert name in block and hint in block, f"{title}:\n{block}\n---\n{result.output}"
        tools = "bank.get_all_balances, bank.get_balance" if title == "allowed tools step" else "get_all_balances, get_balance, get_transactions, transfer"
        assert tools in block, f"{title}:\n{block}"
        assert "Traceback" not in block, block
    assert "1 scenario passed, 0 failed, 12 error" in result.output or "1 scenario passed, 12 failed" in result.output, result.output
    assert result.returncode == 1


# --------------------------------------------------------------------------- item 3: doctor = the run's checks


def _cli(*args: str, cwd) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    return subprocess.run([sys.executable, "-m", "behave_aitest.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180)


NAMED_RULES = RULES + """
[[models.careful.rule]]
when = 'hello'
reply = "Hello, carefully."

[[models.judge.rule]]
when = 'criteri'
reply = '{"verdicts": [{"criterion": "x", "passed": true, "reason": "ok"}]}'
"""

NAMED = """
@model:scripted/carefull
Feature: Named things
  @judge:scripted/juge
  Scenario: A judged answer
    Given the agent "bankr"
    When the user says "hello"
    Then the agent did not call tool "get_balanse"
    And the response satisfies "is polite"

  Scenario: A task-only tool
    Given the MCP server "studio"
    When the user says "hello"
    Then the agent did not call tool "research"
"""

STUDIO = """
[tool.behave_aitest.servers.studio]
command = ["python", "-m", "behave_aitest.testing.studio_server"]
protocol = "legacy"
env = { STUDIO_TASK_ONLY = "1" }
"""


def test_doctor_runs_the_runs_own_checks(project: Project) -> None:
    """Item 3 (and item 2's "doctor says all is well"): every named thing the run refuses,
    doctor refuses too, through the same functions: an undefined named scripted model (its
    /name shown), a @judge: tag naming an undefined model, an unknown agent (did-you-mean),
    a tool no server of the scenario's agent offers; the run stops before its first scenario."""
    _scripted(project, STUDIO)
    (project.root / "rules.toml").write_text(textwrap.dedent(NAMED_RULES), encoding="utf-8")
    project.feature("named.feature", NAMED)
    done = _cli("doctor", cwd=project.root)
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    fails = [line for line in out.splitlines() if line.startswith("[FAIL]")]
    assert any("'scripted/carefull'" in f and "scripted/careful" in f for f in fails), out
    assert any("'scripted/juge'" in f and "@judge:" in f for f in fails), out
    assert any("'bankr'" in f and "Did you mean 'banker'?" in f for f in fails), out
    assert any("'get_balanse'" in f and "Did you mean 'get_balance'?" in f and "features/named.feature:8" in f for f in fails), out
    assert "Traceback" not in out + done.stderr
    # item 13: doctor shows the protocol revision each server negotiated
    assert any(line.startswith("[ok]   server 'bank': started in ") and "MCP 2026-07-28" in line for line in out.splitlines()), out
    studio = next(line for line in out.splitlines() if line.startswith("[ok]   server 'studio': started in "))
    assert "(MCP 2025-11-25)" in studio and "(not offered: research, which only run as tasks)" in studio, out
    # item 13: a task-only tool named by a step is said to be task-only, as the run says it
    assert any(
        "features/named.feature:14" in f and "the tool 'research' of MCP server 'studio' only runs as a task" in f and "has no tool" not in f for f in fails
    ), out
    run = project.run("-f", "plain")
    assert run.returncode == 1 and "HOOK-ERROR in before_all" in run.output, run.output
    assert "0 scenarios passed" in run.output or "scenarios passed" not in run.output, run.output


def test_judge_tag_and_scripted_without_rules_stop_the_run(project: Project) -> None:
    """Item 3: a @judge: tag naming an undefined scripted model, and model = "scripted" with no
    scripted_rules, stop the run before the first scenario (not at the judge step), as in doctor."""
    _scripted(project)
    project.feature(
        "judged.feature",
        """
        Feature: Judged
          @judge:scripted/juge
          Scenario: A judged answer
            When the user says "hello"
            Then the response satisfies "is polite"
        """,
    )
    run = project.run("-f", "plain")
    assert run.returncode == 1 and "HOOK-ERROR in before_all" in run.output, run.output
    assert "'scripted/juge'" in run.output and "features/judged.feature:4" in run.output, run.output
    project.config('[tool.behave_aitest]\nmodel = "scripted"\n' + BANK)
    project.feature("judged.feature", "Feature: Plain\n  Scenario: Hi\n    When the user says \"hello\"\n")
    run = project.run("-f", "plain")
    assert run.returncode == 1 and "HOOK-ERROR in before_all" in run.output and "scripted_rules" in run.output, run.output
    doctor = _cli("doctor", cwd=project.root)
    assert doctor.returncode == 1 and any(
        line.startswith("[FAIL]") and "scripted_rules" in line for line in doctor.stdout.splitlines()
    ), doctor.stdout


def test_allowed_tools_in_the_config_are_said_once_with_a_did_you_mean(project: Project) -> None:
    """Item 2: an ``allowed_tools`` entry no server offers is said once per run, in full (a
    did-you-mean, the tools the servers offer); a later scenario of the same agent points at it."""
    _scripted(project, 'allowed_tools = ["get_balance", "transfr"]\n')
    project.feature(
        "allowed.feature",
        """
        Feature: Allowed tools
          Scenario: First
            Given the agent "banker"
            When the user says "hello"

          Scenario: Second
            Given the agent "banker"
            When the user says "hello"
        """,
    )
    result = project.run("-f", "plain")
    blocks = _scenarios(result.output)
    first, second = blocks["First"], blocks["Second"]
    assert "'transfr' (did you mean 'transfer'?)" in first and "Its servers offer: bank.get_all_balances, bank.get_balance" in first, result.output
    assert "Did you mean" not in second and "features/allowed.feature:3" in second and "allowed_tools" in second, result.output
