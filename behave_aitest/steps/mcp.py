"""Steps for the rest of the MCP protocol: the user's answers to servers' questions
(elicitation), prompts, attached resources, and checks on what servers asked and on tool
annotations (docs/mcp.md)."""

from __future__ import annotations

from typing import Any

from .base import StepUsageError, fail, given, live_of, runtime_of, then, turns_of, when


def _two_columns(context: Any, step: str, heading: str) -> dict[str, str]:
    """A two-column table ``| heading | value |`` (the heading row may be left out)."""
    if context.table is None:
        raise StepUsageError(f'"{step}" needs a table below it: | {heading} | value |')
    if len(context.table.headings) != 2:
        raise StepUsageError(f'"{step}": the table needs two columns, | {heading} | value |.')
    rows = [tuple(r.cells) for r in context.table.rows]
    if [h.strip().lower() for h in context.table.headings] != [heading, "value"]:
        rows.insert(0, tuple(context.table.headings))
    return {k.strip(): v.strip() for k, v in rows}


def _plan(context: Any, action: str, values: dict[str, Any] | None = None) -> None:
    from ..mcp.elicitation import ElicitationPlan

    live_of(context).elicitation = ElicitationPlan(action=action, values=values or {}, given=True)


@given("the user will answer the server's questions with:")
def step_answer_questions(context: Any) -> None:
    """When an MCP server asks the user something during a tool call (elicitation), the user
    accepts and answers with these values, one row per field: | field | value |. Values are
    read as JSON where they can be (true, 42, ["a", "b"]), else as text. If the answers do
    not fit the question (a required field missing, a wrong type), the turn fails naming the
    field. Without this step the user declines every question."""
    from ..mcp.elicitation import parse_value

    values = {k: parse_value(v) for k, v in _two_columns(context, "the user will answer the server's questions with:", "field").items()}
    _plan(context, "accept", values)


@given("the user declines the server's questions")
def step_decline_questions(context: Any) -> None:
    """The user says no to every question an MCP server asks (also what happens when the
    scenario says nothing)."""
    _plan(context, "decline")


@given("the user cancels the server's questions")
def step_cancel_questions(context: Any) -> None:
    """The user dismisses every question an MCP server asks without answering."""
    _plan(context, "cancel")


@given('the resource "{uri}" is attached')
def step_attach_resource(context: Any, uri: str) -> None:
    """Read this resource from the agent's MCP servers and add its content to the next thing
    the user says (like attaching a file in a chat app)."""
    runtime_of(context).attach_resource(uri)


def _run_prompt(context: Any, name: str, arguments: dict[str, str]) -> None:
    from .conversation import _say

    messages = runtime_of(context).prompt_messages(name, arguments)
    _say(context, "\n\n".join(str(m["content"]) for m in messages if m["role"] == "user") or f"(prompt {name})", messages)


@when('the user runs the prompt "{name}"')
def step_run_prompt(context: Any, name: str) -> None:
    """Use a prompt an MCP server offers (like picking it from a menu): its messages become
    what the user says, in order, and the agent answers."""
    _run_prompt(context, name, {})


@when('the user runs the prompt "{name}" with:')
def step_run_prompt_with(context: Any, name: str) -> None:
    """Use a prompt an MCP server offers, filling in its arguments from the table:
    | argument | value |."""
    _run_prompt(context, name, _two_columns(context, f'the user runs the prompt "{name}" with:', "argument"))


@then('the server asked the user for "{name}"')
def step_server_asked(context: Any, name: str) -> None:
    """During this turn an MCP server asked the user a question (elicitation) that asked for
    this field, or whose message mentions these words."""
    from ..mcp.elicitation import asked_for

    turns, what = turns_of(context, False)
    questions = [q for t in turns for c in t.tool_calls for q in c.elicitations]
    if not any(asked_for(q, name) for q in questions):
        asked = "; ".join(f"{q.get('message')!r} (fields: {', '.join(q.get('fields') or []) or 'none'})" for q in questions)
        fail(f"No server asked the user for {name!r} in {what}. Questions asked: {asked or 'none'}.", turns, what)


@then("the agent called no destructive tools")
def step_no_destructive(context: Any) -> None:
    """In this turn the agent called no tool that its server marks as possibly destructive.
    As the MCP specification says, a tool counts as destructive unless its annotations say
    readOnlyHint: true or destructiveHint: false; a tool without annotations counts."""
    from ..agent import checks

    turns, what = turns_of(context, False)
    bad = [c for c in checks.calls_of(turns) if c.server and destructive(c.annotations)]
    if bad:
        names = ", ".join(sorted({c.qualified_name for c in bad}))
        fail(f"The agent called tools that may be destructive in {what}: {names}.", turns, what)


def destructive(annotations: dict[str, Any] | None) -> bool:
    """The MCP defaults: readOnlyHint false, destructiveHint true."""
    hints = annotations or {}
    return not hints.get("readOnlyHint", False) and hints.get("destructiveHint", True) is not False
