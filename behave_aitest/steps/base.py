"""What every step family shares: the redacting step decorators, the step errors, and the way
to the run's live conversation and its turns."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import behave

from ..agent import checks
from ..errors import StepUsageError  # noqa: F401  (the steps raise it; defined low so checks and doubles can too)
from ..text.patterns import Pattern, PatternError, compile_pattern

if TYPE_CHECKING:  # imported when a step runs: `behave --dry-run` and the steps catalog stay light
    from ..record.records import Turn
    from ..run.runtime import LiveConversation, Runtime

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
            from ..mcp.connection import first_leaf
            from ..run.reasons import MARK, install, is_reason
            from ..text.redact import Redactor
            from ..text.safetext import (
                message,  # escaped (no ANSI, no CI commands, valid XML) and capped
            )

            redactor = getattr(getattr(context, "aitest", None), "redactor", None) or Redactor.from_environment()
            leaf = first_leaf(exc)
            fresh = _redacted(leaf, lambda text: message(redactor.text(text)))
            reason = isinstance(leaf, AssertionError) or is_reason(leaf)
            setattr(fresh, MARK, reason)
            install(getattr(context, "_runner", None))  # also when the project's hooks are missing
            if reason:
                raise fresh from None
            # A bug: the reader needs where it happened (frames only; the message is redacted).
            raise fresh.with_traceback(leaf.__traceback__) from None

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


class ThrottledError(AgentError):
    """The provider kept refusing (429, its rate limit) until the turn's timeout_s: the outcome
    "throttled" in every report, never a failure of the agent (docs/rate-limits.md)."""


def runtime_of(context: Any) -> Runtime:
    """The run's :class:`~behave_aitest.runtime.Runtime` (says which hook line is missing)."""
    from ..run.runtime import runtime_of as get

    return get(context)


def live_of(context: Any) -> LiveConversation:
    return runtime_of(context).live()


def turns_of(context: Any, whole: bool) -> tuple[list[Turn], str]:
    live = live_of(context)
    if whole:
        return list(live.record.turns), "the conversation"
    if not live.last_turns:
        raise AssertionError('No turn to check yet: a "When the user says ..." step must come before this step.')
    return list(live.last_turns), "this turn"


def fail(message: str, turns: Sequence[Turn], what: str) -> None:
    raise AssertionError(f"{message}\n{checks.describe(turns, what=what)}")


def regex(pattern: str) -> Pattern:
    """``pattern`` for a ``matches`` step: case-insensitive, ``.`` matches newlines, and its
    searches of the agent's text end within a second (``text.patterns``)."""
    try:
        return compile_pattern(pattern)
    except PatternError as exc:
        raise StepUsageError(f"Not a valid regular expression {pattern!r}: {exc}.") from None


# --------------------------------------------------------------------------- named tools


def step_text(context: Any, fallback: str) -> str:
    """The running step as written (``Then the agent called tool "x"``), for messages."""
    step = getattr(runtime_of(context), "current_step", None)
    return f"{step.keyword} {step.name}" if step is not None and getattr(step, "name", None) else fallback


def known_tools(context: Any) -> Any:
    """What the scenario's agent's steps may name (behave_aitest/agent/names.py): its servers'
    tools (started on first use, as a turn starts them) and the tools called so far."""
    from ..agent.names import known_tools as known

    runtime = runtime_of(context)
    live = runtime.live()
    return known(runtime.toolbox(live), live.agent.name or "", checks.calls_of(live.record.turns))


def check_tools(context: Any, names: Sequence[str] | str, fallback: str) -> None:
    """Each named tool exists for the scenario's agent, else this step's error with a
    did-you-mean: a check on a name nobody offers could pass whatever the agent did."""
    from ..agent.names import check_tool

    check_tool(names, known_tools(context), step_text(context, fallback))
