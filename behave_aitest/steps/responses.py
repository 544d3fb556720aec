"""Then steps about the agent's answer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..agent import checks
from .base import fail, live_of, regex, then, turns_of

if TYPE_CHECKING:
    from ..record.records import Turn

__all__: list[str] = []


# --------------------------------------------------------------------------- Then: answer


def _response(context: Any) -> tuple[str, list[Turn]]:
    turns, _ = turns_of(context, False)
    return turns[-1].response, turns


@then('the response mentions "{text}"')
def step_mentions(context: Any, text: str) -> None:
    """The agent's answer to the latest message contains this text, ignoring case and
    extra spaces."""
    response, turns = _response(context)
    if not checks.mentions(response, text):
        fail(f"Expected the response to mention {text!r}.", turns, "this turn")


@then('the response does not mention "{text}"')
def step_not_mentions(context: Any, text: str) -> None:
    """The agent's answer to the latest message does not contain this text (ignoring case)."""
    response, turns = _response(context)
    if checks.mentions(response, text):
        fail(f"Expected the response not to mention {text!r}.", turns, "this turn")


@then('the response matches "{pattern}"')
def step_matches(context: Any, pattern: str) -> None:
    """The agent's answer matches this regular expression somewhere (case-insensitive),
    e.g. "\\$\\s?1,?000"."""
    response, turns = _response(context)
    if not regex(pattern).search(response):
        fail(f"Expected the response to match /{pattern}/.", turns, "this turn")


@then('the response does not match "{pattern}"')
def step_not_matches(context: Any, pattern: str) -> None:
    """The agent's answer does not match this regular expression anywhere (case-insensitive)."""
    response, turns = _response(context)
    if regex(pattern).search(response):
        fail(f"Expected the response not to match /{pattern}/.", turns, "this turn")


@then("the agent answered")
def step_answered(context: Any) -> None:
    """The agent gave a non-empty text answer to the latest message."""
    response, turns = _response(context)
    if not response.strip():
        fail("Expected a non-empty answer.", turns, "this turn")


@then("the conversation has {count:d} messages")
def step_message_count(context: Any, count: int) -> None:
    """The conversation's history holds exactly this many messages: user, assistant and
    tool-result messages, not counting the system prompt."""
    live = live_of(context)
    actual = len(live.record.messages)
    if actual != count:
        roles = ", ".join(m.get("role", "?") for m in live.record.messages)
        from ..text.safetext import plural

        raise AssertionError(f"Expected {plural(count, 'message')} in the conversation, found {actual}: {roles}.")
