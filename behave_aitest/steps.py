"""The step vocabulary. Import it from a step module: ``from behave_aitest.steps import *``.

``behave --steps-catalog`` prints every step below with its docstring: it is the
reference product owners write scenarios from. Then-steps look at the latest turn
(everything since the last "When the user says"); the tool steps also have a form
ending in "during the conversation" that looks at every turn of the conversation
(for a ``@session`` feature: of the whole session so far).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import behave

from . import checks

if TYPE_CHECKING:  # imported when a step runs: `behave --dry-run` and the steps catalog stay light
    from .records import Turn
    from .runtime import LiveConversation, Runtime

__all__: list[str] = []  # `import *` only needs to run the decorators


# --------------------------------------------------------------------------- secrets in messages


def _redacting(step: Callable[..., None]) -> Callable[..., None]:
    """``step``, raising any exception as one exception with a redacted message, ``from None``.

    A failing step's message quotes the agent's answer, tool results and server stderr,
    and behave prints it, puts it in JUnit XML and in the reports: one secret echoed by a
    tool would be everywhere. behave also prints an exception's whole chain (``__cause__``,
    ``__context__``) and every member of an exception group, so only a fresh exception with
    none of them is safe. It keeps the type (failure vs error) when the type allows.
    """

    @functools.wraps(step)
    def run(context: Any, *args: Any, **kwargs: Any) -> None:
        try:
            step(context, *args, **kwargs)
        except Exception as exc:
            from .redact import Redactor
            from .safetext import message  # escaped (no ANSI, no CI commands, valid XML) and capped
            from .servers import first_leaf

            redactor = getattr(getattr(context, "aitest", None), "redactor", None) or Redactor.from_environment()
            raise _redacted(first_leaf(exc), lambda text: message(redactor.text(text))) from None

    return run


class StepError(Exception):
    """An unexpected exception of a step, re-raised with a redacted message (its type named)."""


def _redacted(exc: BaseException, redact: Callable[[str], str]) -> BaseException:
    """A fresh exception like ``exc`` whose message is ``exc``'s, redacted (no chain, no group)."""
    message = redact(str(exc))
    try:
        fresh = type(exc)(message)
        if str(fresh) == message:
            return fresh
    except Exception:  # a constructor that wants other arguments
        pass
    if isinstance(exc, AssertionError):
        return AssertionError(message)
    return StepError(f"{type(exc).__name__}: {message}")


def _registering(register: Callable[[str], Callable[..., Any]]) -> Callable[[str], Callable[..., Any]]:
    """behave's ``@given``/``@when``/``@then``, registering the step wrapped by :func:`_redacting`
    (behave unwraps it to show the step's own location)."""

    def decorator(pattern: str) -> Callable[..., Any]:
        def add(step: Callable[..., None]) -> Callable[..., None]:
            register(pattern)(_redacting(step))
            return step

        return add

    return decorator


# Looked up on the `behave` module at import time: during step loading behave puts the
# runner's own registry there.
given, when, then = _registering(behave.given), _registering(behave.when), _registering(behave.then)


class AgentError(Exception):
    """The agent could not complete the turn (model or server trouble): a step error, not a verdict."""


def runtime_of(context: Any) -> Runtime:
    """The run's :class:`~behave_aitest.runtime.Runtime` (says which hook line is missing)."""
    from .runtime import runtime_of as get

    return get(context)


def _live(context: Any) -> LiveConversation:
    return runtime_of(context).live()


def _turns(context: Any, whole: bool) -> tuple[list[Turn], str]:
    live = _live(context)
    if whole:
        return list(live.record.turns), "the conversation"
    if not live.last_turns:
        raise AssertionError('No turn to check yet: a "When the user says ..." step must come before this step.')
    return list(live.last_turns), "this turn"


def _fail(message: str, turns: Sequence[Turn], what: str) -> None:
    raise AssertionError(f"{message}\n{checks.describe(turns, what=what)}")


# --------------------------------------------------------------------------- Given


@given('the agent "{name}"')
def step_agent(context: Any, name: str) -> None:
    """Use the agent configured under [tool.behave_aitest.agents.<name>]: its MCP servers,
    system prompt, allowed tools and model settings. In a @session feature (e.g. in a
    Background) this sets the agent up again without dropping the conversation so far."""
    runtime_of(context).use_agent(name)


@given('the model "{model}"')
def step_model(context: Any, model: str) -> None:
    """Talk to this model (any litellm model string, e.g. "openai/gpt-4.1-mini") for the rest
    of the scenario. Beats @model tags and the config; -D aitest.model=... beats it."""
    _live(context).agent.model = model


@given("the system prompt:")
def step_system_prompt(context: Any) -> None:
    """Replace the agent's system prompt with the doc string below the step."""
    if not context.text:
        raise ValueError('"Given the system prompt:" needs a doc string ("""...""") below it.')
    _live(context).agent.system_prompt = context.text


@given('the MCP server "{name}"')
def step_server(context: Any, name: str) -> None:
    """Give the agent the tools of this MCP server (configured under
    [tool.behave_aitest.servers.<name>]), in addition to its own."""
    runtime = runtime_of(context)
    if name not in runtime.config.servers:
        from .config import unknown_name

        raise unknown_name("MCP server", name, runtime.config.servers, "servers", str(runtime.config.path or "pyproject.toml"))
    agent = _live(context).agent
    if name not in agent.servers:
        agent.servers.append(name)


@given('the agent may only use the tools "{names}"')
def step_allowed_tools(context: Any, names: str) -> None:
    """Offer the model only these tools (comma-separated; "server.tool" picks one server's tool).
    A tool the model calls anyway is refused and recorded as an error."""
    _live(context).agent.allowed_tools = checks.split_names(names)


# --------------------------------------------------------------------------- When


TURN_ERRORS = {
    "max_turns": "turn limit reached",
    "timeout": "timeout",
    "model": "model error",
    "server": "MCP server error",
    "unexpected": "unexpected error",
}


def _say(context: Any, text: str) -> None:
    from .servers import ServerError

    runtime = runtime_of(context)
    try:
        turn = runtime.say(text)
    except ServerError as exc:
        runtime.drop_dead_servers()
        raise AgentError(str(exc)) from None
    if turn.error:
        runtime.drop_dead_servers()
        kind, _, detail = turn.error.partition(": ")
        label = TURN_ERRORS.get(kind, kind)
        message = f"The agent did not finish the turn ({label}): {detail}\n{checks.describe([turn])}"
        if kind == "max_turns":
            raise AssertionError(message)  # the agent misbehaved: a failure, not an error
        raise AgentError(message)


@when('the user says "{text}"')
def step_user_says(context: Any, text: str) -> None:
    """Send this message to the agent and let it work (call tools, answer) until it replies.
    Adds to the conversation's history; later turns (and later scenarios of a @session
    feature) see everything said and done before."""
    _say(context, text)


@when("the user says:")
def step_user_says_text(context: Any) -> None:
    """Send the doc string below the step to the agent, like "When the user says", for long
    or multi-line messages."""
    if not context.text:
        raise ValueError('"When the user says:" needs a doc string ("""...""") below it.')
    _say(context, context.text)


# --------------------------------------------------------------------------- Then: tools


def _called(context: Any, name: str, whole: bool) -> None:
    turns, what = _turns(context, whole)
    if not checks.calls_named(turns, name):
        _fail(f"Expected the agent to call tool {name!r} in {what}, but it did not.", turns, what)


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
    turns, what = _turns(context, whole)
    if checks.calls_named(turns, name):
        _fail(f"Expected the agent not to call tool {name!r} in {what}, but it did.", turns, what)


@then('the agent did not call tool "{name}"')
def step_not_called(context: Any, name: str) -> None:
    """The agent did not call this tool in the latest turn."""
    _not_called(context, name, False)


@then('the agent did not call tool "{name}" during the conversation')
def step_not_called_conv(context: Any, name: str) -> None:
    """The agent did not call this tool in any turn of the conversation so far."""
    _not_called(context, name, True)


def _count(context: Any, name: str, count: int, whole: bool) -> None:
    turns, what = _turns(context, whole)
    actual = len(checks.calls_named(turns, name))
    if actual != count:
        _fail(f"Expected tool {name!r} to be called {count} time(s) in {what}, but it was called {actual} time(s).", turns, what)


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
        raise ValueError(f'"{step}" needs a table below it: | argument | value |')
    headings = [h.strip().lower() for h in context.table.headings]
    if len(headings) != 2:
        raise ValueError(f'"{step}": the table needs two columns, | argument | value |.')
    # behave treats the first row as headings; accept tables written without a heading row.
    rows = [tuple(r.cells) for r in context.table.rows]
    if headings != ["argument", "value"]:
        rows.insert(0, tuple(context.table.headings))
    return {a.strip(): v.strip() for a, v in rows}


def _called_with(context: Any, name: str, whole: bool) -> None:
    expected = _table_dict(context, f'the agent called tool "{name}" with:')
    turns, what = _turns(context, whole)
    calls = checks.calls_named(turns, name)
    if not calls:
        _fail(f"Expected a call to tool {name!r} in {what}, but there was none.", turns, what)
    problems = [checks.argument_problems(expected, c.arguments if c.arguments is not None else {}) for c in calls]
    if not any(not p for p in problems):
        detail = "\n".join(f"  call {i + 1}: " + "; ".join(p) for i, p in enumerate(problems))
        _fail(f"No call to tool {name!r} in {what} had the expected arguments:\n{detail}", turns, what)


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
        raise ValueError(f'"{step}" needs a one-column table of tool names below it, e.g. | tool |.')
    names = [row.cells[0].strip() for row in context.table.rows]
    heading = context.table.headings[0].strip()
    if heading.lower() not in ("tool", "tools", "name"):
        names.insert(0, heading)
    return names


def _in_order(context: Any, whole: bool, exactly: bool) -> None:
    names = _names_from_table(context, "the agent called the tools in order:")
    turns, what = _turns(context, whole)
    calls = checks.calls_of(turns)
    if exactly:
        ok = len(calls) == len(names) and all(checks.name_matches(c, n) for c, n in zip(calls, names))
    else:
        ok = checks.is_subsequence(names, calls)
    if not ok:
        how = "exactly these tools" if exactly else "these tools"
        _fail(f"Expected the agent to call {how} in this order in {what}: {', '.join(names)}.", turns, what)


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
    turns, what = _turns(context, whole)
    if checks.calls_of(turns):
        _fail(f"Expected no tool calls in {what}.", turns, what)


@then("the agent called no tools")
def step_no_tools(context: Any) -> None:
    """The agent answered the latest message without calling any tool."""
    _no_tools(context, False)


@then("the agent called no tools during the conversation")
def step_no_tools_conv(context: Any) -> None:
    """The agent has not called any tool in the conversation so far."""
    _no_tools(context, True)


def _no_failures(context: Any, whole: bool) -> None:
    turns, what = _turns(context, whole)
    failed = [c for c in checks.calls_of(turns) if c.is_error]
    if failed:
        _fail(f"Expected every tool call in {what} to succeed, but {len(failed)} failed.", turns, what)


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
    turns, what = _turns(context, False)
    calls = checks.calls_named(turns, name)
    if not any(checks.mentions(c.result, text) for c in calls):
        _fail(f"Expected a result of tool {name!r} in {what} to mention {text!r}.", turns, what)


# --------------------------------------------------------------------------- Then: answer


def _response(context: Any) -> tuple[str, list[Turn]]:
    turns, _ = _turns(context, False)
    return turns[-1].response, turns


@then('the response mentions "{text}"')
def step_mentions(context: Any, text: str) -> None:
    """The agent's answer to the latest message contains this text, ignoring case and
    extra spaces."""
    response, turns = _response(context)
    if not checks.mentions(response, text):
        _fail(f"Expected the response to mention {text!r}.", turns, "this turn")


@then('the response does not mention "{text}"')
def step_not_mentions(context: Any, text: str) -> None:
    """The agent's answer to the latest message does not contain this text (ignoring case)."""
    response, turns = _response(context)
    if checks.mentions(response, text):
        _fail(f"Expected the response not to mention {text!r}.", turns, "this turn")


def _regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, re.IGNORECASE | re.DOTALL)
    except re.error as exc:
        raise ValueError(f"Not a valid regular expression {pattern!r}: {exc}.") from None


@then('the response matches "{pattern}"')
def step_matches(context: Any, pattern: str) -> None:
    """The agent's answer matches this regular expression somewhere (case-insensitive),
    e.g. "\\$\\s?1,?000"."""
    response, turns = _response(context)
    if not _regex(pattern).search(response):
        _fail(f"Expected the response to match /{pattern}/.", turns, "this turn")


@then('the response does not match "{pattern}"')
def step_not_matches(context: Any, pattern: str) -> None:
    """The agent's answer does not match this regular expression anywhere (case-insensitive)."""
    response, turns = _response(context)
    if _regex(pattern).search(response):
        _fail(f"Expected the response not to match /{pattern}/.", turns, "this turn")


@then("the agent answered")
def step_answered(context: Any) -> None:
    """The agent gave a non-empty text answer to the latest message."""
    response, turns = _response(context)
    if not response.strip():
        _fail("Expected a non-empty answer.", turns, "this turn")


@then("the conversation has {count:d} messages")
def step_message_count(context: Any, count: int) -> None:
    """The conversation's history holds exactly this many messages: user, assistant and
    tool-result messages, not counting the system prompt."""
    live = _live(context)
    actual = len(live.record.messages)
    if actual != count:
        roles = ", ".join(m.get("role", "?") for m in live.record.messages)
        raise AssertionError(f"Expected {count} messages in the conversation, found {actual}: {roles}.")


# --------------------------------------------------------------------------- Then: judge


def _judge(context: Any, kind: str, criteria: list[str], run: Any) -> Any:
    """Record a judge call on the latest turn, run it, and turn judge trouble into a step error."""
    from .judge import JudgeError
    from .records import JudgeCall

    runtime = runtime_of(context)
    live = _live(context)
    turns, _ = _turns(context, False)
    settings = runtime.judge_settings(live, runtime.current_scenario)
    record = JudgeCall(kind=kind, model=settings.model, criteria=criteria)
    turns[-1].judge_calls.append(record)
    try:
        return runtime.run_judge(settings, lambda complete, request: run(complete, request, record)), turns
    except JudgeError as exc:
        raise JudgeStepError(f"The judge could not give a verdict: {exc}") from None


class JudgeStepError(Exception):
    """The judge model failed (unreachable, or no valid JSON after a retry): a step error, not a verdict."""


def _criteria_verdicts(context: Any, criteria: list[str], whole: bool) -> None:
    from . import judge

    if not criteria:
        raise ValueError("No criteria given: write one criterion per line.")
    turns, what = _turns(context, whole)
    evidence = judge.conversation_evidence(turns) if whole else turns[-1].response
    kind = "conversation" if whole else "response"
    verdicts, _ = _judge(
        context, kind, criteria, lambda complete, request, record: judge.judge_criteria(complete, request, criteria, evidence, record)
    )
    failed = [v for v in verdicts if not v.passed]
    if failed:
        lines = "\n".join(f"  {'PASS' if v.passed else 'FAIL'}: {v.criterion} ({v.reason})" for v in verdicts)
        _fail(f"The judge found {len(failed)} of {len(verdicts)} criteria not met:\n{lines}", turns, what)


@then('the response satisfies "{criterion}"')
def step_satisfies(context: Any, criterion: str) -> None:
    """The judge model decides that the agent's answer to the latest message meets this
    criterion, e.g. "states the new savings balance". Its reason is shown on failure and in
    the report; its cost is counted apart from the agent's."""
    _criteria_verdicts(context, [criterion], False)


@then("the response satisfies:")
def step_satisfies_all(context: Any) -> None:
    """Like "the response satisfies", with one criterion per line of the doc string below;
    each criterion gets its own verdict and reason, and all must pass."""
    criteria = [line.strip().lstrip("-*").strip() for line in (context.text or "").splitlines() if line.strip()]
    _criteria_verdicts(context, criteria, False)


@then('the conversation satisfies "{criterion}"')
def step_conversation_satisfies(context: Any, criterion: str) -> None:
    """The judge model decides that the whole conversation so far — every user message,
    tool call with its arguments and result, and answer — meets this criterion."""
    _criteria_verdicts(context, [criterion], True)


@then('the response scores at least {minimum:d} out of {scale:d} on "{criterion}"')
def step_score(context: Any, minimum: int, scale: int, criterion: str) -> None:
    """The judge model rates the latest answer from 1 to the scale on this criterion, and the
    score is at least the minimum, e.g. "the response scores at least 4 out of 5 on
    'clarity'"."""
    from . import judge

    if not 1 <= minimum <= scale:
        raise ValueError(f"The minimum must be between 1 and {scale}.")
    turns, _ = _turns(context, False)
    (score, reason), _ = _judge(
        context, "score", [criterion],
        lambda complete, request, record: judge.judge_score(complete, request, criterion, turns[-1].response, scale, record),
    )
    if score < minimum:
        _fail(f"The judge scored {score} out of {scale} on {criterion!r} (at least {minimum} needed): {reason}", turns, "this turn")


def _clarification(context: Any, expected: bool) -> None:
    from . import judge

    turns, _ = _turns(context, False)
    (asks, reason), _ = _judge(
        context, "clarification", ["asks for clarification"],
        lambda complete, request, record: judge.judge_clarification(complete, request, turns[-1].response, record),
    )
    if asks != expected:
        did = "asked for clarification" if asks else "did not ask for clarification"
        _fail(f"The judge found the agent {did}: {reason}", turns, "this turn")


@then("the agent asked for clarification")
def step_asked_clarification(context: Any) -> None:
    """The judge model finds that the latest answer asks the user to clarify or confirm
    instead of acting (right for ambiguous requests)."""
    _clarification(context, True)


@then("the agent did not ask for clarification")
def step_no_clarification(context: Any) -> None:
    """The judge model finds that the agent acted on the latest message instead of stalling
    with a question such as "Would you like me to ...?"."""
    _clarification(context, False)


# --------------------------------------------------------------------------- Then: budgets


class BudgetError(Exception):
    """A budget cannot be checked (unknown cost): a step error, never a silent pass."""


def _dollars(text: str) -> float:
    try:
        return float(text.strip().lstrip("$").replace(",", ""))
    except ValueError:
        raise ValueError(f"Not an amount of dollars: {text!r} (write e.g. $0.01).") from None


def _known_cost(turns: Sequence[Turn], what: str) -> float:
    # A replayed call cost nothing now; the budget judges what the agent's calls cost when recorded.
    costs = [(c.model, c.recorded_cost_usd if c.replayed else c.cost_usd) for t in turns for c in t.model_calls]
    unknown = sorted({model for model, cost in costs if cost is None})
    if unknown:
        models = ", ".join(unknown)
        raise BudgetError(
            f"The cost of {what} is unknown: litellm has no price for {models}. Give one in the config, e.g.\n"
            f'  [tool.behave_aitest.prices."{unknown[0]}"]\n  input_per_million = 0.40\n  output_per_million = 1.60'
        )
    return sum(cost or 0.0 for _, cost in costs)


def _cost_budget(context: Any, amount: str, whole: bool) -> None:
    turns, what = _turns(context, whole)
    limit, cost = _dollars(amount), _known_cost(turns, what)
    if not cost < limit:
        _fail(f"{what[0].upper()}{what[1:]} cost ${cost:.6f}, not less than ${limit:g}.", turns, what)


@then("the turn cost less than {amount}")
def step_turn_cost(context: Any, amount: str) -> None:
    """The agent's model calls for the latest message cost less than this many US dollars,
    e.g. "$0.01" (judge calls not included). Unknown prices make this step an error."""
    _cost_budget(context, amount, False)


@then("the conversation cost less than {amount}")
def step_conversation_cost(context: Any, amount: str) -> None:
    """The agent's model calls in the whole conversation so far cost less than this many US
    dollars (judge calls not included). Unknown prices make this step an error."""
    _cost_budget(context, amount, True)


@then("the turn used fewer than {count:d} tokens")
def step_turn_tokens(context: Any, count: int) -> None:
    """The agent's model calls for the latest message used fewer than this many tokens,
    input and output together."""
    turns, what = _turns(context, False)
    used = sum(t.input_tokens + t.output_tokens for t in turns)
    if not used < count:
        _fail(f"The turn used {used} tokens, not fewer than {count}.", turns, what)


@then("the turn took less than {seconds:g} seconds")
def step_turn_time(context: Any, seconds: float) -> None:
    """The latest message was handled (model and tool calls together) in less than this
    many seconds of wall-clock time."""
    turns, what = _turns(context, False)
    took = sum(t.duration_s for t in turns)
    if not took < seconds:
        _fail(f"The turn took {took:.2f} s, not less than {seconds:g} s.", turns, what)


@then("the agent needed at most {count:d} model calls")
def step_model_calls(context: Any, count: int) -> None:
    """The agent answered the latest message with at most this many calls to the model."""
    turns, what = _turns(context, False)
    used = sum(len(t.model_calls) for t in turns)
    if used > count:
        _fail(f"The agent needed {used} model calls, more than {count}.", turns, what)
