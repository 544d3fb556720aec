"""Then steps that bound what a turn or a conversation cost: dollars, tokens, time, model calls."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .base import StepUsageError, fail, live_of, then, turns_of

if TYPE_CHECKING:
    from ..record.records import Turn

__all__: list[str] = []


# --------------------------------------------------------------------------- Then: budgets


class BudgetError(Exception):
    """A budget cannot be checked (unknown cost): a step error, never a silent pass."""


def _dollars(text: str) -> float:
    try:
        return float(text.strip().lstrip("$").replace(",", ""))
    except ValueError:
        raise StepUsageError(f"Not an amount of dollars: {text!r} (write e.g. $0.01).") from None


def _known_cost(turns: Sequence[Turn], what: str, extra: Sequence[Any] = ()) -> float:
    # A replayed call cost nothing now; the budget judges what the agent's calls cost when recorded.
    costs = [(c.model, c.recorded_cost_usd if c.replayed else c.cost_usd) for t in turns for c in t.model_calls]
    # a server's sampling requests answered by the client's model are the agent's spend too (docs/mcp.md)
    sampled = [s for t in turns for s in t.sampling_calls()] + list(extra)
    costs += [(s.model, s.recorded_cost_usd if s.replayed else s.cost_usd) for s in sampled if not (s.error or "").startswith("refused")]
    unknown = sorted({model for model, cost in costs if cost is None})
    if unknown:
        models = ", ".join(unknown)
        raise BudgetError(
            f"The cost of {what} is unknown: litellm has no price for {models}. Give one in the config, e.g.\n"
            f'  [tool.behave_aitest.prices."{unknown[0]}"]\n  input_per_million = 0.40\n  output_per_million = 1.60'
        )
    return sum(cost or 0.0 for _, cost in costs)


def _cost_budget(context: Any, amount: str, whole: bool) -> None:
    turns, what = turns_of(context, whole)
    extra: list[Any] = []
    if whole:  # the sampling of the test's own tool calls is the scenario's spend too (issue 25, H1)
        record = live_of(context).scenario
        extra = [s for c in getattr(record, "direct_calls", None) or [] for s in c.sampling_calls]
    limit, cost = _dollars(amount), _known_cost(turns, what, extra)
    if not cost < limit:
        fail(f"{what[0].upper()}{what[1:]} cost ${cost:.6f}, not less than ${limit:g}.", turns, what)


@then("the turn cost less than {amount}")
def step_turn_cost(context: Any, amount: str) -> None:
    """The agent's model calls for the latest message cost less than this many US dollars,
    e.g. "$0.01" (judge calls not included; MCP servers' sampling requests answered by the
    client's model included). Unknown prices make this step an error."""
    _cost_budget(context, amount, False)


@then("the conversation cost less than {amount}")
def step_conversation_cost(context: Any, amount: str) -> None:
    """The agent's model calls in the whole conversation so far cost less than this many US
    dollars (judge calls not included; MCP servers' sampling requests included, also those
    made during the test's own tool calls). Unknown prices make this step an error."""
    _cost_budget(context, amount, True)


@then("the turn used fewer than {count:d} tokens")
def step_turn_tokens(context: Any, count: int) -> None:
    """The agent's model calls for the latest message used fewer than this many tokens,
    input and output together (MCP servers' sampling requests included)."""
    turns, what = turns_of(context, False)
    used = sum(t.input_tokens + t.output_tokens for t in turns)
    if not used < count:
        fail(f"The turn used {used} tokens, not fewer than {count}.", turns, what)


@then("the turn took less than {seconds:g} seconds")
def step_turn_time(context: Any, seconds: float) -> None:
    """The latest message was handled (model and tool calls together) in less than this
    many seconds of wall-clock time."""
    turns, what = turns_of(context, False)
    took = sum(t.duration_s for t in turns)
    if not took < seconds:
        fail(f"The turn took {took:.2f} s, not less than {seconds:g} s.", turns, what)


@then("the agent needed at most {count:d} model calls")
def step_model_calls(context: Any, count: int) -> None:
    """The agent answered the latest message with at most this many calls to the model,
    counting the MCP servers' sampling requests its model answered during the turn's tool
    calls (judge and simulated-user calls not included)."""
    turns, what = turns_of(context, False)
    own = sum(len(t.model_calls) for t in turns)
    sampled = sum(1 for t in turns for s in t.sampling_calls() if not (s.error or "").startswith("refused"))  # a refused one never reached the model
    used = own + sampled
    if used > count:
        from ..text.safetext import plural

        if sampled:
            what_used = f"{plural(used, 'model call')} ({own} of its own, {plural(sampled, 'sampling request')} of its MCP servers)"
        else:
            what_used = plural(used, "model call")
        fail(f"The agent needed {what_used}, more than {count}.", turns, what)
