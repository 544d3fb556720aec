"""Then steps about the tools the agent called: which, how often, with what, in what order."""

from __future__ import annotations

from typing import Any

from .. import checks
from .base import StepUsageError, fail, then, turns_of

__all__: list[str] = []


# --------------------------------------------------------------------------- Then: tools


def _called(context: Any, name: str, whole: bool) -> None:
    turns, what = turns_of(context, whole)
    if not checks.calls_named(turns, name):
        fail(f"Expected the agent to call tool {name!r} in {what}, but it did not.", turns, what)


@then('the agent called tool "{name}"')
def step_called(context: Any, name: str) -> None:
    """The agent called this tool (at least once) in the latest turn. Write "server.tool"
    to require the tool of one particular server."""
    _called(context, name, False)


@then('the agent called tool "{name}" during the conversation')
def step_called_conv(context: Any, name: str) -> None:
    """The agent called this tool at least once in any turn of the conversation so far."""
    _called(context, name, True)


def _not_called(context: Any, name: str, whole: bool) -> None:
    turns, what = turns_of(context, whole)
    if checks.calls_named(turns, name):
        fail(f"Expected the agent not to call tool {name!r} in {what}, but it did.", turns, what)


@then('the agent did not call tool "{name}"')
def step_not_called(context: Any, name: str) -> None:
    """The agent did not call this tool in the latest turn."""
    _not_called(context, name, False)


@then('the agent did not call tool "{name}" during the conversation')
def step_not_called_conv(context: Any, name: str) -> None:
    """The agent did not call this tool in any turn of the conversation so far."""
    _not_called(context, name, True)


def _count(context: Any, name: str, count: int, whole: bool) -> None:
    turns, what = turns_of(context, whole)
    actual = len(checks.calls_named(turns, name))
    if actual != count:
        fail(f"Expected tool {name!r} to be called {count} time(s) in {what}, but it was called {actual} time(s).", turns, what)


@then('the agent called tool "{name}" {count:d} times')
@then('the agent called tool "{name}" {count:d} time')
def step_count(context: Any, name: str, count: int) -> None:
    """The agent called this tool exactly this many times in the latest turn."""
    _count(context, name, count, False)


@then('the agent called tool "{name}" {count:d} times during the conversation')
@then('the agent called tool "{name}" {count:d} time during the conversation')
def step_count_conv(context: Any, name: str, count: int) -> None:
    """The agent called this tool exactly this many times in the whole conversation so far."""
    _count(context, name, count, True)


def _table_dict(context: Any, step: str) -> dict[str, str]:
    if context.table is None:
        raise StepUsageError(f'"{step}" needs a table below it: | argument | value |')
    headings = [h.strip().lower() for h in context.table.headings]
    if len(headings) != 2:
        raise StepUsageError(f'"{step}": the table needs two columns, | argument | value |.')
    # behave treats the first row as headings; accept tables written without a heading row.
    rows = [tuple(r.cells) for r in context.table.rows]
    if headings != ["argument", "value"]:
        rows.insert(0, tuple(context.table.headings))
    return {a.strip(): v.strip() for a, v in rows}


def _called_with(context: Any, name: str, whole: bool) -> None:
    expected = _table_dict(context, f'the agent called tool "{name}" with:')
    turns, what = turns_of(context, whole)
    calls = checks.calls_named(turns, name)
    if not calls:
        fail(f"Expected a call to tool {name!r} in {what}, but there was none.", turns, what)
    problems = [checks.argument_problems(expected, c.arguments if c.arguments is not None else {}) for c in calls]
    if not any(not p for p in problems):
        detail = "\n".join(f"  call {i + 1}: " + "; ".join(p) for i, p in enumerate(problems))
        fail(f"No call to tool {name!r} in {what} had the expected arguments:\n{detail}", turns, what)


@then('the agent called tool "{name}" with:')
def step_called_with(context: Any, name: str) -> None:
    """At least one call of this tool in the latest turn had these arguments (other
    arguments may be present). Table: | argument | value |. Values compare as JSON where
    they parse (500 equals 500.0, true, "text", {"a": 1}), otherwise as text; a dotted
    argument name looks inside objects (to.account)."""
    _called_with(context, name, False)


@then('the agent called tool "{name}" during the conversation with:')
def step_called_with_conv(context: Any, name: str) -> None:
    """Like "the agent called tool ... with:", over every turn of the conversation so far."""
    _called_with(context, name, True)


def _names_from_table(context: Any, step: str) -> list[str]:
    if context.table is None:
        raise StepUsageError(f'"{step}" needs a one-column table of tool names below it, e.g. | tool |.')
    names = [row.cells[0].strip() for row in context.table.rows]
    heading = context.table.headings[0].strip()
    if heading.lower() not in ("tool", "tools", "name"):
        names.insert(0, heading)
    return names


def _in_order(context: Any, whole: bool, exactly: bool) -> None:
    names = _names_from_table(context, "the agent called the tools in order:")
    turns, what = turns_of(context, whole)
    calls = checks.calls_of(turns)
    if exactly:
        ok = len(calls) == len(names) and all(checks.name_matches(c, n) for c, n in zip(calls, names))
    else:
        ok = checks.is_subsequence(names, calls)
    if not ok:
        how = "exactly these tools" if exactly else "these tools"
        fail(f"Expected the agent to call {how} in this order in {what}: {', '.join(names)}.", turns, what)


@then("the agent called the tools in order:")
def step_in_order(context: Any) -> None:
    """In the latest turn the agent called the tools listed in the table (one column,
    heading | tool |) in this order. Other calls may come before, between or after them."""
    _in_order(context, False, False)


@then("the agent called the tools in order during the conversation:")
def step_in_order_conv(context: Any) -> None:
    """Like "the agent called the tools in order:", over every turn of the conversation so far."""
    _in_order(context, True, False)


@then("the agent called exactly these tools in order:")
def step_exactly_in_order(context: Any) -> None:
    """In the latest turn the agent called exactly the tools in the table, in this order,
    and nothing else."""
    _in_order(context, False, True)


def _no_tools(context: Any, whole: bool) -> None:
    turns, what = turns_of(context, whole)
    if checks.calls_of(turns):
        fail(f"Expected no tool calls in {what}.", turns, what)


@then("the agent called no tools")
def step_no_tools(context: Any) -> None:
    """The agent answered the latest message without calling any tool."""
    _no_tools(context, False)


@then("the agent called no tools during the conversation")
def step_no_tools_conv(context: Any) -> None:
    """The agent has not called any tool in the conversation so far."""
    _no_tools(context, True)


def _no_failures(context: Any, whole: bool) -> None:
    turns, what = turns_of(context, whole)
    failed = [c for c in checks.calls_of(turns) if c.is_error]
    if failed:
        fail(f"Expected every tool call in {what} to succeed, but {len(failed)} failed.", turns, what)


@then("no tool call failed")
def step_no_tool_failed(context: Any) -> None:
    """Every tool call of the latest turn succeeded (no MCP error, unknown or refused tool,
    or arguments that were not valid JSON)."""
    _no_failures(context, False)


@then("no tool call failed during the conversation")
def step_no_tool_failed_conv(context: Any) -> None:
    """Every tool call of the conversation so far succeeded."""
    _no_failures(context, True)


@then('the result of tool "{name}" mentions "{text}"')
def step_result_mentions(context: Any, name: str, text: str) -> None:
    """A result the tool returned in the latest turn contains this text (case-insensitive).
    Checks what the server said, not what the agent repeated."""
    turns, what = turns_of(context, False)
    calls = checks.calls_named(turns, name)
    if not any(checks.mentions(c.result, text) for c in calls):
        fail(f"Expected a result of tool {name!r} in {what} to mention {text!r}.", turns, what)
