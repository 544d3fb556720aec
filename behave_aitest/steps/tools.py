"""Then steps about the tools the agent called: which, how often, with what, in what order."""

from __future__ import annotations

from typing import Any

from ..agent import checks
from .base import StepUsageError, check_tools, fail, known_tools, regex, step_text, then, turns_of

__all__: list[str] = []


# --------------------------------------------------------------------------- Then: tools


def _called(context: Any, name: str, whole: bool) -> None:
    turns, what = turns_of(context, whole)
    check_tools(context, name, f'Then the agent called tool "{name}"')
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
    check_tools(context, name, f'Then the agent did not call tool "{name}"')
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
    check_tools(context, name, f'Then the agent called tool "{name}" {count} times')
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


def argument_checks(context: Any, step: str) -> list[checks.ArgumentCheck]:
    """The step's ``| argument | value |`` or ``| argument | check | value |`` table, checked
    before anything runs: a mistake in it is an error naming the row."""
    if context.table is None:
        raise StepUsageError(f'"{step}" needs a table below it: | argument | value | or | argument | check | value |.')
    try:
        return checks.parse_argument_table(context.table.headings, [r.cells for r in context.table.rows])
    except checks.TableError as exc:
        raise StepUsageError(f'"{step}": {exc}') from None


def _called_with(context: Any, name: str, whole: bool) -> None:
    expected = argument_checks(context, f'the agent called tool "{name}" with:')
    turns, what = turns_of(context, whole)
    check_tools(context, name, f'Then the agent called tool "{name}" with:')
    calls = checks.calls_named(turns, name)
    if not calls:
        fail(f"Expected a call to tool {name!r} in {what}, but there was none.", turns, what)
    if not any(checks.arguments_hold(expected, c.arguments if c.arguments is not None else {}) for c in calls):
        detail = checks.arguments_report(name, expected, calls)
        fail(f"No call to tool {name!r} in {what} had the expected arguments:\n{detail}", turns, what)


@then('the agent called tool "{name}" with:')
def step_called_with(context: Any, name: str) -> None:
    """At least one call of this tool in the latest turn had these arguments (other
    arguments may be present). Table: | argument | value |, or | argument | check | value |
    with a check per row:
      equals (the default): the value compares as JSON where it parses (500 equals 500.0,
        true, "text", {"a": 1}), otherwise as text;
      contains: the text (or the JSON of a non-text value) contains it, ignoring case;
      matches: a regular expression found in it (ignoring case; every matches search of the
               agent's text ends within 1 s, or the step is an error naming the pattern);
      about: a number within a tolerance, "500 ± 1" or "500 ± 1%" (+/- works too);
      any: the argument is present, whatever its value (leave the value empty);
      absent: the argument is not there (leave the value empty);
      one of: equals one of the comma-separated values, "USD, EUR" (a value holding a comma
              in double quotes: "Paris, France", Rome).
    A dotted argument name looks inside objects and lists (to.account, entities.0.name).
    A failure lists every call with each argument's check, expected and actual value."""
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
    check_tools(context, names, "Then the agent called the tools in order:")
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


def _any_order(context: Any, whole: bool) -> None:
    names = _names_from_table(context, "the agent called the tools in any order:")
    turns, what = turns_of(context, whole)
    check_tools(context, names, "Then the agent called the tools in any order:")
    missing = checks.missing_in_any_order(names, checks.calls_of(turns))
    if missing:
        fail(
            f"Expected the agent to call these tools, in any order, in {what}: {', '.join(names)}; "
            f"not called: {', '.join(missing)}.",
            turns,
            what,
        )


@then("the agent called the tools in any order:")
def step_any_order(context: Any) -> None:
    """In the latest turn the agent called every tool listed in the table (one column,
    heading | tool |), in any order; other calls are allowed. A tool listed twice must
    have been called (at least) twice."""
    _any_order(context, False)


@then("the agent called the tools in any order during the conversation:")
def step_any_order_conv(context: Any) -> None:
    """Like "the agent called the tools in any order:", over every turn of the conversation so far."""
    _any_order(context, True)


def _only(context: Any, whole: bool) -> None:
    names = _names_from_table(context, "the agent called only the tools:")
    turns, what = turns_of(context, whole)
    check_tools(context, names, "Then the agent called only the tools:")
    other = checks.calls_outside(names, checks.calls_of(turns))
    if other:
        called = ", ".join(dict.fromkeys(c.name or c.provider_name for c in other))
        fail(f"Expected the agent to call only {', '.join(names)} in {what}, but it also called: {called}.", turns, what)


@then("the agent called only the tools:")
def step_only(context: Any) -> None:
    """Every tool call of the latest turn was to one of the tools in the table (one column,
    heading | tool |). Calling none of them, or not all of them, is fine: this forbids
    everything else."""
    _only(context, False)


@then("the agent called only the tools during the conversation:")
def step_only_conv(context: Any) -> None:
    """Like "the agent called only the tools:", over every turn of the conversation so far."""
    _only(context, True)


def _at_most(context: Any, count: int, whole: bool) -> None:
    turns, what = turns_of(context, whole)
    over = {name: n for name, n in checks.call_counts(checks.calls_of(turns)).items() if n > count}
    if over:
        listed = ", ".join(f"{name} {n} times" for name, n in over.items())
        fail(f"Expected no tool to be called more than {count} time(s) in {what}, but: {listed}.", turns, what)


@then("the agent called no tool more than {count:d} times")
@then("the agent called no tool more than {count:d} time")
def step_at_most(context: Any, count: int) -> None:
    """No tool was called more than this many times in the latest turn: catches loops and
    redundant calls (a tool offered by two servers counts once per server)."""
    _at_most(context, count, False)


@then("the agent called no tool more than {count:d} times during the conversation")
@then("the agent called no tool more than {count:d} time during the conversation")
def step_at_most_conv(context: Any, count: int) -> None:
    """Like "the agent called no tool more than N times", over every turn of the conversation so far."""
    _at_most(context, count, True)


def _never_glob(context: Any, pattern: str, whole: bool) -> None:
    from ..agent.names import check_pattern

    checks.check_glob(pattern)
    turns, what = turns_of(context, whole)
    check_pattern(pattern, known_tools(context), step_text(context, f'Then the agent never called a tool matching "{pattern}"'))
    found = checks.calls_matching_glob(pattern, checks.calls_of(turns))
    if found:
        names = ", ".join(dict.fromkeys(c.name for c in found))
        fail(f"Expected the agent never to call a tool matching {pattern!r} in {what}, but it called: {names}.", turns, what)


@then('the agent never called a tool matching "{pattern}"')
def step_never_glob(context: Any, pattern: str) -> None:
    """The agent called no tool whose name matches this pattern in the latest turn: * is any
    text, ? one character, [abc] one of these ("delete*", "*_admin"). Case-sensitive;
    "server.*" matches every tool of one server."""
    _never_glob(context, pattern, False)


@then('the agent never called a tool matching "{pattern}" during the conversation')
def step_never_glob_conv(context: Any, pattern: str) -> None:
    """Like "the agent never called a tool matching ...", over every turn of the conversation so far."""
    _never_glob(context, pattern, True)


def _no_argument_matched(context: Any, pattern: str, whole: bool) -> None:
    compiled = regex(pattern)
    turns, what = turns_of(context, whole)
    found = checks.arguments_matching(compiled, checks.calls_of(turns))
    if found:
        listed = "\n".join(f"  {line}" for line in found)
        fail(f"Expected no tool argument to match {pattern!r} in {what}, but:\n{listed}", turns, what)


@then('no tool argument matched "{pattern}"')
def step_no_argument_matched(context: Any, pattern: str) -> None:
    """No argument value of any tool call in the latest turn contains a match of this
    regular expression (ignoring case), at any depth: e.g. no social security number,
    "\\d{3}-\\d{2}-\\d{4}", ever sent to a tool. Numbers are checked as written in JSON."""
    _no_argument_matched(context, pattern, False)


@then('no tool argument matched "{pattern}" during the conversation')
def step_no_argument_matched_conv(context: Any, pattern: str) -> None:
    """Like "no tool argument matched ...", over every turn of the conversation so far."""
    _no_argument_matched(context, pattern, True)


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


def _result_mentions(context: Any, name: str, text: str, whole: bool) -> None:
    turns, what = turns_of(context, whole)
    check_tools(context, name, f'Then the result of tool "{name}" mentions "{text}"')
    calls = checks.calls_named(turns, name)
    if not any(checks.mentions(c.result, text) for c in calls):
        fail(f"Expected a result of tool {name!r} in {what} to mention {text!r}.", turns, what)


@then('the result of tool "{name}" mentions "{text}"')
def step_result_mentions(context: Any, name: str, text: str) -> None:
    """A result the tool returned in the latest turn (any of its calls) contains this text
    (case-insensitive). Checks what the server said, not what the agent repeated."""
    _result_mentions(context, name, text, False)


@then('the result of tool "{name}" mentions "{text}" during the conversation')
def step_result_mentions_conv(context: Any, name: str, text: str) -> None:
    """Like "the result of tool ... mentions ...", over every turn of the conversation so far."""
    _result_mentions(context, name, text, True)


# What doctor checks without a turn (behave_aitest/agent/names.py, step_names): the argument
# or table of each step that names tools, read from behave's match of the step.
for _step in (step_called, step_called_conv, step_not_called, step_not_called_conv, step_count, step_count_conv,
              step_called_with, step_called_with_conv, step_result_mentions, step_result_mentions_conv):
    _step.aitest_names = "name"  # type: ignore[attr-defined]
for _step in (step_in_order, step_in_order_conv, step_exactly_in_order, step_any_order, step_any_order_conv, step_only, step_only_conv):
    _step.aitest_names = "table"  # type: ignore[attr-defined]
for _step in (step_never_glob, step_never_glob_conv):
    _step.aitest_names = "pattern"  # type: ignore[attr-defined]
