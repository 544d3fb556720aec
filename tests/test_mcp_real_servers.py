"""Issue 24, part B: the MCP client against real servers. Item 7: a stateless (2026-07-28)
server's tool-list changes reach the next model call, through ``subscriptions/listen`` (that
era has no unsolicited notifications). Item 8: an attached resource may come from a resource
template. The studio server (behave_aitest/testing/studio_server.py) runs for real over stdio;
its ``unlock_admin`` tool swaps itself for ``archive`` and says the list changed."""

from __future__ import annotations

import json

from conftest import Project, llm_config
from behave_aitest.model.fakellm import FakeOpenAI

CONFIG = """
[tool.behave_aitest.servers.studio]
command = ["python", "-m", "behave_aitest.testing.studio_server"]
protocol = "2026-07-28"

[tool.behave_aitest.agents.admin]
servers = ["studio"]
"""

FEATURE = """
Feature: Tool list changes of a stateless server
  Scenario: unlock, then archive in the same turn
    Given the agent "admin"
    When the user says "unlock admin and archive the fox project"
    Then the result of tool "archive" mentions "Archived fox"
"""


def test_a_stateless_servers_tool_list_change_reaches_the_next_model_call(project: Project, fake_llm: FakeOpenAI) -> None:
    project.config(llm_config(fake_llm, CONFIG))
    project.feature("stateless.feature", FEATURE)
    fake_llm.add({"tool_calls": [("unlock_admin", {})]}, {"tool_calls": [("archive", {"project": "fox"})]}, {"content": "Archived."})
    result = project.run("-f", "behave_aitest.formatter:JSONFormatter", "-o", "r.json", "-f", "plain")
    assert result.returncode == 0, result.output
    offered = [[t["function"]["name"] for t in r.get("tools", [])] for r in fake_llm.requests]
    assert "unlock_admin" in offered[0] and "archive" not in offered[0], offered
    assert "archive" in offered[1] and "unlock_admin" not in offered[1], offered
    doc = json.loads((project.root / "r.json").read_text(encoding="utf-8"))
    turn = doc["features"][0]["scenarios"][0]["turns"][0]
    assert turn["tool_list_changes"] == ["studio: +archive -unlock_admin"], turn.get("tool_list_changes")


LEGACY = """
[tool.behave_aitest.servers.legacy]
command = ["python", "-m", "behave_aitest.testing.studio_server"]
protocol = "legacy"
env = { STUDIO_TASK_ONLY = "1" }  # it also lists "research", a tool that only runs as a task
scope = "feature"  # one process for the feature's scenarios (each still its own conversation)

[tool.behave_aitest.agents.old]
servers = ["legacy"]

[tool.behave_aitest.servers.only2025]
command = ["python", "-m", "behave_aitest.testing.studio_server", "--era", "2025"]
protocol = "2026-07-28"

[tool.behave_aitest.servers.only2026]
command = ["python", "-m", "behave_aitest.testing.studio_server", "--era", "2026"]
protocol = "legacy"

[tool.behave_aitest.agents.pinned_new]
servers = ["only2025"]

[tool.behave_aitest.agents.pinned_old]
servers = ["only2026"]
"""

ATTACH = """
Feature: Attached resources
  Scenario: a URI of a resource template
    Given the agent "old"
    And the resource "studio://projects/fox" is attached
    When the user says "what is the fox project?"
    Then the response mentions "autumn"

  Scenario: a URI no server has
    Given the agent "old"
    And the resource "studio://brand-guid" is attached

  Scenario: a prompt no server has
    Given the agent "old"
    When the user runs the prompt "critque"

  Scenario: answers that do not fit the question
    Given the agent "old"
    And the user will answer the server's questions with:
      | field | value |
      | brief | a fox |
    When the user says "start a design"

  Scenario: a check on a task-only tool
    Given the agent "old"
    When the user says "hello"
    Then the agent did not call tool "research"

  Scenario: the test calls a task-only tool
    Given the agent "old"
    When the tool "legacy.research" is called with:
      | argument | value |
      | topic    | foxes |

  Scenario: a double of a task-only tool
    Given the agent "old"
    And the tool "research" returns "a study"

  Scenario: a 2025 server pinned to 2026-07-28
    Given the agent "pinned_new"
    When the user says "hello"

  Scenario: a 2026-07-28 server pinned to the 2025 handshake
    Given the agent "pinned_old"
    When the user says "hello"
"""


def test_an_attached_resource_may_come_from_a_template(project: Project, fake_llm: FakeOpenAI) -> None:
    """Item 8: ``Given the resource ... is attached`` reads a URI of a resource template (as
    ``read_resource`` does) on a 2025 server, whose list it is not in; one that no server can
    read says what was meant. Item 13: a server pinned to an era it does not speak (the studio
    server with ``--era``) says so and names the fix, in both directions."""
    project.config(llm_config(fake_llm, LEGACY))
    project.feature("attach.feature", ATTACH)
    fake_llm.add({"content": "A logo in autumn colours."}, {"tool_calls": [("start_design", {})]}, {"content": "ok"}, {"content": "Hi."})
    result = project.run("-f", "behave_aitest.formatter:JSONFormatter", "-o", "r.json", "-f", "plain")
    assert "1 scenario passed, 1 failed, 7 error" in result.output, result.output
    # item 13: a task-only tool named by a check, the test's own call or a double says why it
    # cannot be used (not "has no tool" with a did-you-mean) ...
    blocks = result.output.split("Scenario: ")
    for title, step in (("a check on a task-only tool", 'Then the agent did not call tool "research"'),
                        ("the test calls a task-only tool", 'When the tool "legacy.research" is called with:'),
                        ("a double of a task-only tool", 'Given the tool "research" returns')):
        block = next(b for b in blocks if b.startswith(title))
        said = f"{step}: the tool 'research' of MCP server 'legacy' only runs as a task (execution.taskSupport = \"required\"), and behave-aitest does not use the MCP task API"
        assert said in block and "has no tool" not in block and "Did you mean" not in block, block
    # ... and its warning is said once per run: once on the console, once in the report (at the run)
    warning = "MCP server 'legacy': tool 'research' is not offered to the model: it only runs as a task"
    assert result.stderr.count(warning) == 1, result.stderr
    doc = json.loads((project.root / "r.json").read_text(encoding="utf-8"))
    assert [w for w in doc["runs"][0]["warnings"] if warning in w] == [doc["runs"][0]["warnings"][0]], doc["runs"][0]
    cards = [w for f in doc["features"] for s in [f, *f["scenarios"]] for w in s["warnings"]]
    assert not [w for w in cards if warning in w], cards
    from behave_aitest.report import render

    assert render.html(doc).count("tool &#39;research&#39; is not offered") == 1 and render.markdown(doc).count(warning) == 1
    # item 13: a pinned protocol era the server does not speak is said in one line, with the fix
    blocks = result.output.split("Scenario: ")
    new = next(b for b in blocks if b.startswith("a 2025 server pinned"))
    assert "MCP server 'only2025' does not speak protocol revision 2026-07-28: it answers in revision 2025-11-25. " in new, new
    assert 'Set protocol = "auto" (protocol in pyproject.toml [tool.behave_aitest.servers.only2025])' in new, new
    assert "ValidationError" not in new and "Traceback" not in new, new
    old = next(b for b in blocks if b.startswith("a 2026-07-28 server pinned"))
    assert "MCP server 'only2026' does not speak the 2025 handshake (protocol = \"legacy\"): it answers in revision 2026-07-28." in old, old
    assert 'Set protocol = "auto" (protocol in pyproject.toml [tool.behave_aitest.servers.only2026])' in old, old
    # item 13: answers that do not fit a question are the scenario's mistake, not the agent's trouble
    block = result.output[result.output.index("Scenario: answers that do not fit the question"):]
    assert "The scenario's answers do not fit a server's question" in block and "did not finish the turn" not in block, block
    user = [m for m in fake_llm.requests[0]["messages"] if m["role"] == "user"]
    assert "Project fox: a logo in autumn colours." in user[-1]["content"], user
    assert "'studio://brand-guid'" in result.output and "Did you mean 'studio://brand-guide'?" in result.output, result.output
    # item 2, prompts: a did-you-mean too
    assert "Unknown prompt 'critque': the agent's servers offer legacy.critique. Did you mean 'critique'?" in result.output, result.output


TASK_ONLY_J = """
Feature: Two conversations on two workers
  Scenario: one
    Given the agent "old"
    When the user says "hello"

  Scenario: two
    Given the agent "old"
    When the user says "hello"
"""


def test_the_task_only_warning_is_said_once_under_j(project: Project, fake_llm: FakeOpenAI) -> None:
    """Item 13: the task-only warning is true of the server, not of a scenario: under ``-j 2``
    each worker meets it, and the run still says it once (the parent, from the records)."""
    project.config(llm_config(fake_llm, LEGACY.replace('scope = "feature"', 'scope = "conversation"')))
    project.feature("two.feature", TASK_ONLY_J)
    fake_llm.add({"content": "Hi."}, {"content": "Hi."})
    result = project.run("-j", "2", "--runner", "behave_aitest.parallel:ParallelRunner", "-f", "behave_aitest.formatter:JSONFormatter", "-o", "r.json")
    assert "2 scenarios passed" in result.output, result.output
    doc = json.loads((project.root / "r.json").read_text(encoding="utf-8"))
    warning = "MCP server 'legacy': tool 'research' is not offered to the model: it only runs as a task"
    assert result.output.count(warning) == 1, result.output
    assert [w for w in doc["runs"][0]["warnings"] if warning in w], doc["runs"][0]


def test_the_scripted_model_reads_a_tool_image_as_part_of_the_tool_results() -> None:
    """Item 11: with ``vision = true`` a tool's image reaches the model as a user message after
    the tool results; the scripted model read it as the latest user message ("no rule matches
    'Image returned by …'") instead of answering the user's message with the results."""
    from behave_aitest.mcp.content import image_message
    from behave_aitest.model.scripted import RulesBrain, parse_rules

    brain = RulesBrain(parse_rules({"rule": [{"when": "sketch", "call": [{"tool": "sketch"}], "reply": "Here: {result}"}]}, "rules.toml"))
    messages = [
        {"role": "user", "content": "Make a sketch of a fox"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "1", "type": "function", "function": {"name": "sketch", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "1", "content": "A sketch of fox"},
        image_message([("sketch #1", {"mime_type": "image/png", "data": "iVBORw0KGgo="})]),
    ]
    reply = brain({"messages": messages, "tools": [{"type": "function", "function": {"name": "sketch"}}]})
    assert reply == {"content": "Here: A sketch of fox"}, reply


def test_structured_content_keeps_no_text_over_the_image_limit() -> None:
    """Item 12: a tool image's base64 repeated in ``structuredContent`` went whole into the
    report (600 KB image, 808 KB report.json) although images over the limit are not kept."""
    from behave_aitest.mcp.content import MAX_IMAGE_CHARS, structured_for_record

    big = "A" * (MAX_IMAGE_CHARS + 1)
    kept = structured_for_record({"name": "fox", "image": {"data": big, "mimeType": "image/png"}, "frames": [big, "small"]})
    assert kept["name"] == "fox" and kept["frames"][1] == "small" and kept["image"]["mimeType"] == "image/png"
    assert big not in str(kept) and "not kept" in kept["image"]["data"] and str(MAX_IMAGE_CHARS + 1) in kept["frames"][0], kept
    assert structured_for_record(None) is None and structured_for_record({"a": "x" * 10}) == {"a": "x" * 10}


SAMPLING = """
Feature: A failed sampling request
  Scenario: the client's model fails while the server samples
    Given the agent "old"
    When the user says "a slogan about leaves"
"""


def test_a_failed_sampling_call_keeps_its_request(project: Project, fake_llm: FakeOpenAI) -> None:
    """Item 13: a sampling request whose model call failed was recorded with its error only;
    it keeps its request (messages, max_tokens) like one that succeeded."""
    project.config(llm_config(fake_llm, LEGACY, retries=0))
    project.feature("sampling.feature", SAMPLING)
    fake_llm.add({"tool_calls": [("slogan", {"topic": "leaves"})]}, {"status": 400, "message": "bad request for sampling"}, {"content": "No slogan."})
    result = project.run("-f", "behave_aitest.formatter:JSONFormatter", "-o", "r.json", "-f", "plain")
    doc = json.loads((project.root / "r.json").read_text(encoding="utf-8"))
    call = doc["features"][0]["scenarios"][0]["turns"][0]["tool_calls"][0]
    sampled = call["sampling_calls"][0]
    assert sampled["error"] and "bad request for sampling" in sampled["error"], (sampled, result.output)
    assert sampled["messages"] and sampled["max_tokens"], sampled
