"""Tool doubles and the test's own tool calls: make a tool answer, fail or be slow for one
scenario; call a tool directly to seed or check the server's state (docs/tool-doubles.md)."""

from __future__ import annotations

import json
from typing import Any

from ..agent import checks
from ..agent.doubles import DELAY, FAILS, RETURNS, parse_seconds
from .base import StepUsageError, given, regex, runtime_of, then, when

__all__: list[str] = []


# --------------------------------------------------------------------------- Given: doubles


def _when_table(context: Any, step: str) -> tuple[checks.ArgumentCheck, ...]:
    if context.table is None:
        raise StepUsageError(f'"{step}" needs a table below it: | argument | value | or | argument | check | value |.')
    try:
        return tuple(checks.parse_argument_table(context.table.headings, [r.cells for r in context.table.rows]))
    except checks.TableError as exc:
        raise StepUsageError(f'"{step}": {exc}') from None


def _doc_string(context: Any, step: str) -> str:
    if context.text is None:
        raise StepUsageError(f'"{step}" needs a doc string below it (the text between """ lines).')
    return str(context.text)


def _seconds(text: str, step: str) -> float:
    try:
        return parse_seconds(text.strip())
    except ValueError as exc:
        raise StepUsageError(f'"{step}": {exc}.') from None


@given('the tool "{name}" returns "{text}"')
def step_double_returns(context: Any, name: str, text: str) -> None:
    """Until the end of this scenario, every call the agent makes to this tool gets this text
    as its result, and the real server is not called (in a @session the next scenario has the
    real tool again). The tool must be one of the agent's tools. Recorded, reported and
    written to a cassette as a doubled call."""
    runtime_of(context).add_double(name, f'Given the tool "{name}" returns', kind=RETURNS, text=text)


@given('the tool "{name}" returns:')
def step_double_returns_text(context: Any, name: str) -> None:
    """Like "the tool ... returns "..."", with the result as the doc string below the step
    (several lines, JSON, ...)."""
    step = f'Given the tool "{name}" returns:'
    runtime_of(context).add_double(name, step, kind=RETURNS, text=_doc_string(context, step))


@given('the tool "{name}" fails with "{text}"')
def step_double_fails(context: Any, name: str, text: str) -> None:
    """Until the end of this scenario, every call the agent makes to this tool fails with
    this text, as an MCP error result (isError) the model reads: a declined payment, a rate
    limit, a daily limit. The real server is not called."""
    runtime_of(context).add_double(name, f'Given the tool "{name}" fails with', kind=FAILS, text=text)


@given('the tool "{name}" fails with:')
def step_double_fails_text(context: Any, name: str) -> None:
    """Like "the tool ... fails with "..."", with the error text as the doc string below the step."""
    step = f'Given the tool "{name}" fails with:'
    runtime_of(context).add_double(name, step, kind=FAILS, text=_doc_string(context, step))


@given('the tool "{name}" takes {seconds} seconds')
@given('the tool "{name}" takes {seconds} second')
def step_double_delay(context: Any, name: str, seconds: str) -> None:
    """Until the end of this scenario, every call of this tool waits this long and then calls
    the real tool: a slow upstream. The wait counts against the server's tool_timeout_s (past
    it, the model gets the usual "did not answer" error) and the turn's timeout_s."""
    step = f'Given the tool "{name}" takes {seconds} seconds'
    runtime_of(context).add_double(name, step, kind=DELAY, seconds=_seconds(seconds, step))


@given('the tool "{name}" returns "{text}" when called with:')
def step_double_returns_when(context: Any, name: str, text: str) -> None:
    """Like "the tool ... returns "..."", only for calls whose arguments match the table
    (| argument | value |, or | argument | check | value | with the checks of "the agent
    called tool ... with:"). Other calls reach the real server. A double with a table wins
    over one without; among equals, the one set last."""
    step = f'Given the tool "{name}" returns "{text}" when called with:'
    runtime_of(context).add_double(name, step, kind=RETURNS, text=text, when=_when_table(context, step))


@given('the tool "{name}" fails with "{text}" when called with:')
def step_double_fails_when(context: Any, name: str, text: str) -> None:
    """Like "the tool ... fails with "..."", only for calls whose arguments match the table;
    other calls reach the real server."""
    step = f'Given the tool "{name}" fails with "{text}" when called with:'
    runtime_of(context).add_double(name, step, kind=FAILS, text=text, when=_when_table(context, step))


@given('the tool "{name}" takes {seconds} seconds when called with:')
def step_double_delay_when(context: Any, name: str, seconds: str) -> None:
    """Like "the tool ... takes N seconds", only for calls whose arguments match the table."""
    step = f'Given the tool "{name}" takes {seconds} seconds when called with:'
    runtime_of(context).add_double(name, step, kind=DELAY, seconds=_seconds(seconds, step), when=_when_table(context, step))


# --------------------------------------------------------------------------- When: the test calls a tool


def _set(arguments: dict[str, Any], path: str, value: Any, row: int) -> None:
    """Put ``value`` at the dotted ``path`` (``to.account`` makes an object ``to``)."""
    *parents, last = path.split(".")
    target = arguments
    for part in parents:
        nested = target.setdefault(part, {})
        if not isinstance(nested, dict):
            raise StepUsageError(f"table row {row}: {path!r} goes inside {part!r}, which already has a value.")
        target = nested
    if last in target:
        raise StepUsageError(f"table row {row}: the argument {path!r} is given twice.")
    target[last] = value


def _argument_table(context: Any, step: str) -> dict[str, Any]:
    if context.table is None:
        raise StepUsageError(f'"{step}" needs a table below it: | argument | value |.')
    headings = [h.strip() for h in context.table.headings]
    if len(headings) != 2:
        raise StepUsageError(f'"{step}": the table needs two columns, | argument | value |.')
    rows = [[c.strip() for c in r.cells] for r in context.table.rows]
    if [h.lower() for h in headings] != ["argument", "value"]:
        rows.insert(0, headings)
    arguments: dict[str, Any] = {}
    for number, (name, text) in enumerate(rows, start=1):
        if not name:
            raise StepUsageError(f'"{step}": table row {number}: the argument name is empty.')
        try:
            value: Any = json.loads(text)
        except json.JSONDecodeError:
            value = text
        try:
            _set(arguments, name, value, number)
        except ValueError as exc:
            raise StepUsageError(f'"{step}": {exc}') from None
    return arguments


def _call(context: Any, name: str, arguments: dict[str, Any], step: str) -> None:
    call = runtime_of(context).call_tool(name, arguments, step)
    if call.is_error:
        lines = checks.labelled("error", checks.readable(call.result), "  ")
        raise AssertionError(f"The test's call to tool {name!r} failed:\n" + "\n".join(lines))


@when('the tool "{name}" is called with:')
def step_call_tool_with(context: Any, name: str) -> None:
    """The test itself (not the model) calls this tool of the agent with the arguments in the
    table (| argument | value |; values as JSON where they parse: 500, true, "007", {"a": 1};
    a dotted name builds an object: to.account). It runs in the conversation's own server
    process, so it seeds or reads the state the agent sees; it is never sent to the model
    nor doubled. Shown as "called by the test". A tool error fails the step with its text."""
    step = f'When the tool "{name}" is called with:'
    _call(context, name, _argument_table(context, step), step)


@when('the tool "{name}" is called')
def step_call_tool(context: Any, name: str) -> None:
    """Like "the tool ... is called with:", for a tool that needs no arguments."""
    _call(context, name, {}, f'When the tool "{name}" is called')


# --------------------------------------------------------------------------- Then: the test's call


def _latest(context: Any) -> Any:
    record = runtime_of(context).live().scenario
    calls = record.direct_calls if record is not None else []
    if not calls:
        raise AssertionError('No tool result to check yet: a "When the tool ... is called" step must come before this step.')
    return calls[-1]


def _fail_result(call: Any, expectation: str) -> None:
    arguments = json.dumps(call.arguments, ensure_ascii=False)
    lines = [f"Expected the result of the test's call {call.name}({arguments}) to {expectation}.", *checks.labelled("result", checks.readable(call.result), "  ")]
    raise AssertionError("\n".join(lines))


@then('the tool result mentions "{text}"')
def step_tool_result_mentions(context: Any, text: str) -> None:
    """The result of the latest "When the tool ... is called" contains this text
    (case-insensitive, runs of spaces count as one)."""
    call = _latest(context)
    if not checks.mentions(call.result, text):
        _fail_result(call, f"mention {text!r}")


@then('the tool result does not mention "{text}"')
def step_tool_result_not_mentions(context: Any, text: str) -> None:
    """The result of the latest "When the tool ... is called" does not contain this text
    (case-insensitive)."""
    call = _latest(context)
    if checks.mentions(call.result, text):
        _fail_result(call, f"not mention {text!r}")


@then('the tool result matches "{pattern}"')
def step_tool_result_matches(context: Any, pattern: str) -> None:
    """The result of the latest "When the tool ... is called" contains a match of this regular
    expression (ignoring case; "." also matches a line break)."""
    compiled = regex(pattern)
    call = _latest(context)
    if compiled.search(call.result) is None:
        _fail_result(call, f"match {pattern!r}")
