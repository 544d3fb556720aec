"""Issue 24, part A: no check passes by accident.

The scripted model's "no rule" turn is no answer a check can pass on (item 1); every step that
names a tool checks that the scenario's agent has it, in its positive and negative forms, and
says what was meant (item 2). Each runs ``python -m behave`` in a subprocess on the real bank
server and the built-in scripted model."""

from __future__ import annotations

import re
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
        "glob that matches nothing": ("'delete_*'", "matches none of"),
        "allowed tools step": ("'transfr'", "Did you mean 'transfer'?"),
    }
    for title, (name, hint) in expected.items():
        block = blocks.get(title, "")
        assert name in block and hint in block, f"{title}:\n{block}\n---\n{result.output}"
        assert "get_all_balances, get_balance, get_transactions, transfer" in block, f"{title}:\n{block}"
        assert "Traceback" not in block, block
    assert "1 scenario passed, 0 failed, 12 error" in result.output or "1 scenario passed, 12 failed" in result.output, result.output
    assert result.returncode == 1
