"""Tool doubles, the test's own tool calls, argument checks, trajectories and invariants, and
fresh server state (``${AITEST_SERVER_DIR}``), end to end: ``python -m behave`` in a
subprocess, litellm over HTTP to the fake model, the bank and notes servers as real MCP
processes. Few behave runs, many scenarios each: every scenario's outcome is read from the
JSON report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chromium import Browser, find_chromium
from conftest import BANK, Project, llm_config

from behave_aitest.model.fakellm import FakeOpenAI

CHROMIUM = find_chromium()
JSONF = "behave_aitest.formatter:JSONFormatter"
HTML = "behave_aitest.formatter:HTMLFormatter"


def scripted(request: dict[str, Any]) -> dict[str, Any]:
    """The fake model, scripted by the user's words: ``call TOOL {json} && TOOL {json}`` (the
    JSON with single quotes, as a step's text is in double quotes) asks
    for those calls; after tool results it answers ``Tool said: <results>``; else ``ok``."""
    messages = request["messages"]
    last = messages[-1]
    if last["role"] == "tool":
        results = []
        for message in reversed(messages):
            if message["role"] != "tool":
                break
            results.insert(0, str(message.get("content") or ""))
        return {"content": "Tool said: " + " | ".join(results)}
    text = str(last.get("content") or "")
    if text.startswith("call "):
        calls = []
        for part in text[len("call "):].split(" && "):
            name, _, arguments = part.strip().partition(" ")
            calls.append((name, json.loads(arguments.replace("'", '"') or "{}")))
        return {"tool_calls": calls}
    return {"content": "ok"}


def outcomes(path: Path) -> dict[str, dict[str, Any]]:
    """Scenario name -> its dict in the JSON report."""
    document = json.loads(path.read_text(encoding="utf-8"))
    return {s["name"]: s for f in document["features"] for s in f["scenarios"]}


def message(scenario: dict[str, Any]) -> str:
    return (scenario.get("first_failure") or {}).get("message") or ""


BANKER = '[tool.behave_aitest.agents.banker]\nservers = ["bank"]\n'
# One bank process per feature: a server start costs seconds, and sharing it proves more here:
# the doubled transfers of the first scenarios never reached it, so the later ones see its
# first balances. tool_timeout_s is short for the slow-upstream scenario.
SLOW_BANK = BANK + 'tool_timeout_s = 1.5\nscope = "feature"\n'


DOUBLES = '''\
Feature: Tool doubles and direct calls on the bank
  Background:
    Given the agent "banker"

  Scenario: A declined transfer never reaches the bank
    Given the tool "transfer" fails with "Payment declined: daily limit reached"
    When the user says "call transfer {'from_account': 'checking', 'to_account': 'savings', 'amount': 500}"
    Then the agent called tool "transfer"
    And the response mentions "daily limit reached"
    When the tool "get_balance" is called with:
      | argument | value    |
      | account  | checking |
    Then the tool result mentions "1,500.00"
    And the tool result does not mention "1,000.00"
    And the tool result matches "checking: \\$1,500\\.\\d\\d"

  Scenario: Only matching calls are doubled, the others reach the server
    Given the tool "get_balance" returns "checking: $2,000.00" when called with:
      | argument | check  | value |
      | account  | one of | checking, current |
    When the user says "call get_balance {'account': 'checking'} && get_balance {'account': 'savings'}"
    Then the result of tool "get_balance" mentions "2,000.00"
    And the result of tool "get_balance" mentions "3,200.00"
    And the agent called tool "get_balance" 2 times

  Scenario: A result as a doc string, and the last double set wins
    Given the tool "get_all_balances" returns "first"
    And the tool "get_all_balances" returns:
      """
      {"checking": 1, "savings": 2}
      """
    When the user says "call get_all_balances {}"
    Then the response matches "checking.: 1, .savings.: 2"
    And the response does not mention "first"
    And no tool call failed

  Scenario: A slow upstream: in time, and past tool_timeout_s
    Given the tool "get_all_balances" takes 0.2 seconds
    And the tool "get_balance" takes 5 seconds
    When the user says "call get_all_balances {} && get_balance {'account': 'savings'}"
    Then the result of tool "get_all_balances" mentions "total: $4,700.00"
    And the result of tool "get_balance" mentions "did not answer within 1.5 s (tool_timeout_s)"

  Scenario: Seeding an account, then checking the state after the conversation
    When the tool "transfer" is called with:
      | argument     | value    |
      | from_account | savings  |
      | to_account   | checking |
      | amount       | 500      |
      | memo         | seed     |
    Then the tool result mentions "checking: $2,000.00"
    When the user says "call transfer {'from_account': 'checking', 'to_account': 'savings', 'amount': 500.4, 'memo': 'Trip to PARIS', 'reference': 'R-1', 'currency': 'EUR'}"
    Then the agent called tool "transfer" with:
      | argument     | check    | value             |
      | amount       | about    | 500 ± 0.1%        |
      | memo         | contains | paris             |
      | to_account   | matches  | ^sav              |
      | reference    | any      |                   |
      | fee          | absent   |                   |
      | currency     | one of   | USD, EUR          |
      | from_account |          | checking          |
    And the agent called only the tools:
      | tool     |
      | transfer |
    And the agent never called a tool matching "get_*"
    And no tool argument matched "\\d{3}-\\d{2}-\\d{4}"
    When the user says "call get_balance {'account': 'savings'} && get_all_balances {}"
    Then the agent called the tools in any order:
      | tool             |
      | get_all_balances |
      | get_balance      |
    And the agent called the tools in any order during the conversation:
      | tool        |
      | transfer    |
      | get_balance |
    And the agent called no tool more than 1 time during the conversation
    And the result of tool "transfer" mentions "TX0002" during the conversation
    When the tool "get_transactions" is called
    Then the tool result mentions "2 of 2 transaction(s)"
    And the tool result matches "memo: .Trip to PARIS."
'''

MISTAKES = '''\
Feature: Mistakes and failures say what is wrong
  Background:
    Given the agent "banker"

  Scenario: with-check failure lists each call
    When the user says "call transfer {'from_account': 'checking', 'to_account': 'savings', 'amount': 10, 'memo': 'rent'} && transfer {'from_account': 'checking', 'to_account': 'savings', 'amount': 20}"
    Then the agent called tool "transfer" with:
      | argument | check    | value   |
      | amount   | about    | 100 ± 5 |
      | memo     | contains | RENT    |

  Scenario: bad tolerance
    When the user says "hi"
    Then the agent called tool "transfer" with:
      | argument | check | value    |
      | amount   | about | 100 ± x  |

  Scenario: unknown check
    When the user says "hi"
    Then the agent called tool "transfer" with:
      | argument | check   | value |
      | amount   | roughly | 100   |

  Scenario: unknown tool in a double
    Given the tool "tranfser" fails with "no"

  Scenario: a tool the agent may not use
    Given the agent may only use the tools "get_balance"
    And the tool "transfer" fails with "no"

  Scenario: unknown tool in a direct call
    When the tool "get_balances" is called

  Scenario: a double before switching to an agent without its server
    Given the tool "transfer" fails with "no"
    And the agent "scribe"

  Scenario: a direct call the tool refuses
    When the tool "transfer" is called with:
      | argument     | value    |
      | from_account | nowhere  |
      | to_account   | savings  |
      | amount       | 5        |

  Scenario: bad glob
    When the user says "hi"
    Then the agent never called a tool matching "delete["

  Scenario: bad regex
    When the user says "hi"
    Then no tool argument matched "(\\d"

  Scenario: bad regex in a double's table
    Given the tool "transfer" fails with "no" when called with:
      | argument | check   | value |
      | memo     | matches | [a-   |

  Scenario: bad seconds
    Given the tool "transfer" takes soon seconds

  Scenario: too many calls
    When the user says "call get_all_balances {} && get_all_balances {}"
    Then the agent called no tool more than 1 time

  Scenario: a forbidden tool
    When the user says "call transfer {'from_account': 'checking', 'to_account': 'savings', 'amount': 1}"
    Then the agent never called a tool matching "trans*"

  Scenario: an argument leaks
    When the user says "call transfer {'from_account': 'checking', 'to_account': 'savings', 'amount': 1, 'memo': 'ssn 123-45-6789'}"
    Then no tool argument matched "\\d{3}-\\d{2}-\\d{4}"

  Scenario: only the tools fails
    When the user says "call get_all_balances {}"
    Then the agent called only the tools:
      | tool        |
      | get_balance |

  Scenario: any order fails
    When the user says "call get_all_balances {}"
    Then the agent called the tools in any order:
      | tool             |
      | get_all_balances |
      | transfer         |

  Scenario: direct result does not mention
    When the tool "get_balance" is called with:
      | argument | value   |
      | account  | savings |
    Then the tool result mentions "9,999"

  Scenario: no direct call yet
    Then the tool result mentions "x"

  Scenario: a delay past the turn's timeout_s
    Given the agent "scribe"
    And the tool "list_notes" takes 60 seconds
    When the user says "call list_notes {}"
'''

SESSION = '''\
@session
Feature: A double lasts one scenario of a session
  Background:
    Given the agent "banker"

  Scenario: Doubled here
    Given the tool "transfer" returns "Transferred (double)"
    When the user says "call transfer {'from_account': 'checking', 'to_account': 'savings', 'amount': 100}"
    Then the response mentions "Transferred (double)"

  Scenario: The real tool again
    When the user says "call transfer {'from_account': 'checking', 'to_account': 'savings', 'amount': 100}"
    Then the response mentions "Transferred $100.00"
    When the tool "get_balance" is called with:
      | argument | value    |
      | account  | checking |
    Then the tool result mentions "1,400.00"
'''


def test_doubles_direct_calls_checks_and_mistakes(project: Project, fake_llm: FakeOpenAI) -> None:
    fake_llm.brain = scripted
    project.config(llm_config(fake_llm, timeout_s=6) + SLOW_BANK + BANKER + NOTES)
    project.feature("doubles.feature", DOUBLES)
    project.feature("mistakes.feature", MISTAKES)
    project.feature("session.feature", SESSION)
    result = project.run("-j", "2", "-f", JSONF, "-o", "report.json", "-f", HTML, "-o", "report.html")  # records go through the workers
    found = outcomes(project.root / "report.json")
    for name in (
        "A declined transfer never reaches the bank",
        "Only matching calls are doubled, the others reach the server",
        "A result as a doc string, and the last double set wins",
        "A slow upstream: in time, and past tool_timeout_s",
        "Seeding an account, then checking the state after the conversation",
        "Doubled here",
        "The real tool again",
    ):
        assert found[name]["status"] == "passed", (name, message(found[name]), result.output[-3000:])

    declined = found["A declined transfer never reaches the bank"]
    call = declined["turns"][0]["tool_calls"][0]
    assert (call["doubled"], call["is_error"], call["by_test"]) == ("fails", True, False)
    assert call["result"] == "Payment declined: daily limit reached"
    direct = declined["direct_calls"]
    assert [(c["name"], c["by_test"], c["doubled"]) for c in direct] == [("get_balance", True, None)]
    assert [s["direct_call"] for s in declined["steps"] if s["direct_call"] is not None] == [0]
    # The test's own calls never reach the model: the seeding transfer came before the turn,
    # yet no request of that conversation carries it.
    seeded = [json.dumps(r["messages"]) for r in fake_llm.requests if "Trip to PARIS" in json.dumps(r["messages"])]
    assert seeded and not any("from savings to checking" in text or "seed" in text for text in seeded)

    partial = found["Only matching calls are doubled, the others reach the server"]["turns"][0]["tool_calls"]
    assert [c["doubled"] for c in partial] == ["returns", None]
    slow = found["A slow upstream: in time, and past tool_timeout_s"]["turns"][0]["tool_calls"]
    assert [(c["doubled"], c["is_error"]) for c in slow] == [("delay", False), ("delay", True)]
    session = found["The real tool again"]["turns"][0]["tool_calls"]
    assert session[0]["doubled"] is None
    # Coverage counts a doubled call's failure where the header counts it (issue 24, item 22):
    # its failed calls per tool are the turns' calls that ended in an error.
    doc = json.loads((project.root / "report.json").read_text(encoding="utf-8"))
    errors: dict[tuple[str, str], int] = {}
    for scenario in (s for f in doc["features"] for s in f["scenarios"]):
        for turn in scenario["turns"]:
            for c in turn["tool_calls"]:
                if c["server"] and c["is_error"]:
                    errors[(c["server"], c["name"])] = errors.get((c["server"], c["name"]), 0) + 1
    failed = {(row["server"], t["name"]): t["failed"] for row in doc["coverage"]["servers"] for t in row["tools"] if t["failed"]}
    assert failed == errors and ("bank", "transfer") in failed, (failed, errors)

    failures = {
        "with-check failure lists each call": [
            "No call to tool 'transfer' in this turn had the expected arguments:",
            "  call 1 of 2 to 'transfer':",
            "    ✗ amount  about 100 ± 5  → actual: 10",
            "    ✓ memo    contains RENT  → actual: \"rent\"",
            "  call 2 of 2 to 'transfer':",
            "    ✗ amount  about 100 ± 5  → actual: 20",
            "    ✗ memo    contains RENT  → actual: (missing)",
        ],
        "bad tolerance": ["table row 1 (| amount | about | 100 ± x |): '100 ± x' is not 'number ± tolerance'"],
        "unknown check": ["table row 1 (| amount | roughly | 100 |): unknown check 'roughly'. Use one of: equals, contains, matches, about, any, absent, one of."],
        "unknown tool in a double": ["has no tool 'tranfser'. Did you mean 'transfer'? Its tools: get_balance, get_all_balances, transfer, get_transactions."],
        "a tool the agent may not use": ["the agent 'banker' has no tool 'transfer'. Its servers offer it, but its allowed_tools leave it out. Its tools: get_balance."],
        "unknown tool in a direct call": ["has no tool 'get_balances'.", "Its tools: get_balance, get_all_balances"],
        "a double before switching to an agent without its server": [
            "the tool doubles set before this step (bank.transfer) are of tools the agent 'scribe' cannot call (its servers: notes)",
            "give the agent first, then its doubles.",
        ],
        "a direct call the tool refuses": ["The test's call to tool 'transfer' failed:", "Unknown account 'nowhere'"],
        "bad glob": ["'delete[' is not a valid pattern: a '[' is not closed by ']'."],
        "bad regex": ["Not a valid regular expression '(\\\\d'"],
        "bad regex in a double's table": ["table row 1 (| memo | matches | [a- |): not a valid regular expression"],
        "bad seconds": ["'soon' is not a number of seconds"],
        "too many calls": ["Expected no tool to be called more than 1 time(s) in this turn, but: get_all_balances 2 times."],
        "a forbidden tool": ["Expected the agent never to call a tool matching 'trans*' in this turn, but it called: transfer."],
        "an argument leaks": ["  transfer: memo = ssn 123-45-6789"],
        "only the tools fails": ["Expected the agent to call only get_balance in this turn, but it also called: get_all_balances."],
        "any order fails": ["not called: transfer."],
        "direct result does not mention": ["Expected the result of the test's call get_balance({\"account\": \"savings\"}) to mention '9,999'.", "result: savings: $"],
        "no direct call yet": ['a "When the tool ... is called" step must come before this step'],
        "a delay past the turn's timeout_s": ["the turn did not finish within 6 s (timeout_s). It was cut off during the tool call 'notes.list_notes'."],
    }
    errors = {"a delay past the turn's timeout_s", "a tool the agent may not use", "a double before switching to an agent without its server", "bad tolerance", "unknown check", "unknown tool in a double", "unknown tool in a direct call", "bad glob", "bad regex", "bad regex in a double's table", "bad seconds"}
    for name, parts in failures.items():
        scenario = found[name]
        assert scenario["status"] == ("error" if name in errors else "failed"), (name, scenario["status"], message(scenario))
        for part in parts:
            assert part in message(scenario), (name, part, message(scenario))
    html = (project.root / "report.html").read_text(encoding="utf-8")
    assert "called by the test" in html and "doubled: failed by the test" in html  # the report's script marks them
    if CHROMIUM is not None:  # and a browser shows them (tests/test_browser.py needs Debian's chromium too)
        with Browser(CHROMIUM) as browser:
            browser.open(project.root / "report.html")
            browser.js(
                "Array.from(document.querySelectorAll('article.scn')).find(a => a.querySelector('.scn-name').textContent"
                " === 'A declined transfer never reaches the bank').querySelector('.scn-head').click()"
            )
            tags = browser.js("Array.from(document.querySelectorAll('article.open .tag')).map(e => e.textContent)")
            assert "doubled: failed by the test" in tags and "called by the test" in tags, tags
            steps = browser.js("Array.from(document.querySelectorAll('article.open li.step')).map(e => e.innerText)")
            direct = [text for text in steps if "called by the test" in text]
            assert len(direct) == 1 and "get_balance" in direct[0] and "checking: $1,500.00" in direct[0], steps
            assert browser.errors() == []


# --------------------------------------------------------------------------- clean state, cassettes

NOTES = """\
[tool.behave_aitest.servers.notes]
command = ["python", "-m", "behave_aitest.testing.notes_server"]
env = { NOTES_FILE = "${AITEST_SERVER_DIR}/notes.json" }
[tool.behave_aitest.servers.notes_in_cwd]
command = ["python", "-m", "behave_aitest.testing.notes_server"]
cwd = "${AITEST_SERVER_DIR}/work"
[tool.behave_aitest.agents.scribe]
servers = ["notes"]
[tool.behave_aitest.agents.clerk]
servers = ["notes_in_cwd"]
"""

FRESH = '''\
Feature: Every conversation starts with an empty notes file
  Scenario: Write a note
    Given the agent "scribe"
    When the tool "add_note" is called with:
      | argument | value |
      | text     | one   |
    And the tool "list_notes" is called
    Then the tool result mentions "1. one"

  Scenario: The next conversation has none
    Given the agent "scribe"
    When the tool "list_notes" is called
    Then the tool result mentions "No notes."

  Scenario: A cwd inside the folder
    Given the agent "clerk"
    When the tool "add_note" is called with:
      | argument | value |
      | text     | two   |
    And the tool "list_notes" is called
    Then the tool result mentions "1. two"
'''

KEPT = '''\
@session
Feature: A session keeps its notes
  Scenario: The agent writes a note
    Given the agent "scribe"
    When the user says "call add_note {'text': 'milk'}"
    Then the response mentions "Noted (1 note(s)"

  Scenario: It is still there
    When the tool "list_notes" is called
    Then the tool result mentions "1. milk"
'''

RECORDED = '''\
Feature: Doubles in a cassette
  Scenario: A doubled and a real call
    Given the agent "banker"
    And the tool "transfer" fails with "Declined by the test"
    When the user says "call transfer {'from_account': 'checking', 'to_account': 'savings', 'amount': 5} && get_balance {'account': 'checking'}"
    Then the response mentions "Declined by the test"
    And the response mentions "checking: $1,500.00"
    When the tool "get_balance" is called with:
      | argument | value   |
      | account  | savings |
    Then the tool result mentions "3,200.00"
'''


def test_server_dir_gives_fresh_state_and_cassettes_mark_doubles(project: Project, fake_llm: FakeOpenAI) -> None:
    fake_llm.brain = scripted
    project.config(llm_config(fake_llm, cassette="record", cassette_tools="record") + BANK + BANKER + NOTES)
    project.feature("fresh.feature", FRESH)
    project.feature("kept.feature", KEPT)
    project.feature("recorded.feature", RECORDED)
    result = project.run("-f", JSONF, "-o", "report.json")
    assert result.returncode == 0, result.output[-4000:]
    found = outcomes(project.root / "report.json")
    files = [
        c["result"].rsplit("(file: ", 1)[1].rstrip(")")
        for s in found.values()
        for c in s["direct_calls"]
        if c["name"] == "list_notes"
    ]
    # list_notes shows its file: ${AITEST_SERVER_DIR}/notes.json, or notes.json in the cwd
    assert [f == "notes.json" for f in files] == [False, False, True, False], files
    folders = [Path(f).parent for f in files if f != "notes.json"]
    assert len(set(folders)) == 3 and all(f.name.startswith("aitest-notes-") for f in folders), files  # one per process
    assert not any(folder.exists() for folder in folders), "each folder is removed after its process ended"

    cassette = json.loads((project.root / "features" / "cassettes" / "recorded" / "a-doubled-and-a-real-call.json").read_text(encoding="utf-8"))
    assert [(c["tool"], c["double"], c["result"], c["is_error"]) for c in cassette["doubled_calls"]] == [
        ("transfer", "fails", "Declined by the test", True)
    ]
    # the doubled call never reached the server, so it is not a recorded tool call; the test's own call is
    assert [c["tool"] for c in cassette["recorded_tools"]["calls"]] == ["get_balance", "get_balance"]

    asked = len(fake_llm.requests)
    # The replay runs no model and no server: the test's own calls (also in a scenario without
    # a model call) and the agent's real calls come from the cassettes, the doubles answer again.
    replay = project.run("-D", "aitest.cassette=replay", "-f", JSONF, "-o", "replay.json")
    assert replay.returncode == 0, replay.output[-4000:]
    assert len(fake_llm.requests) == asked  # no model was called
    replayed = outcomes(project.root / "replay.json")
    assert {s["status"] for s in replayed.values()} == {"passed"} and len(replayed) == 6
    scenario = replayed["A doubled and a real call"]
    assert [(c["name"], c["doubled"]) for c in scenario["turns"][0]["tool_calls"]] == [("transfer", "fails"), ("get_balance", None)]
    assert scenario["direct_calls"][0]["by_test"] and "were not replayed" not in replay.output
