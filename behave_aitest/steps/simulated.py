"""When a simulated user talks to the agent; Then it reached (or did not reach) its goal."""

from __future__ import annotations

from typing import Any

from .base import StepUsageError, ThrottledError, fail, live_of, runtime_of, then, turns_of, when

__all__: list[str] = []


class SimulatedUserError(Exception):
    """The simulated user (the simulator model), not the agent, failed: a step error."""


def _whole(text: str, what: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise StepUsageError(f"{what} must be a whole number of turns, got {text!r}.") from None


def _simulate(context: Any, min_turns: int, max_turns: int) -> None:
    from ..agent.simulator import SimulatorError, SimulatorThrottled, check_limits
    from .conversation import _say

    check_limits(min_turns, max_turns)
    if not (context.text or "").strip():
        raise StepUsageError(
            "A simulated user needs its persona and goal in a doc string (\"\"\"...\"\"\") below the step, "
            "e.g. You are a customer who wants to move 200 dollars to savings."
        )
    runtime = runtime_of(context)
    step = runtime.current_step
    try:
        runtime.simulate(
            context.text, min_turns, max_turns, lambda text: _say(context, text, simulated=True), str(getattr(step, "location", ""))
        )
    except SimulatorThrottled as exc:  # the outcome "throttled", as for a turn (docs/rate-limits.md)
        model = live_of(context).record.simulations[-1].model
        raise ThrottledError(
            f"The simulated user could not go on (throttled by the provider's rate limit; its model {model!r}, not the agent): {exc}"
        ) from None
    except SimulatorError as exc:
        model = live_of(context).record.simulations[-1].model
        raise SimulatedUserError(
            f"The simulated user failed (its model {model!r}, not the agent): {exc}"
        ) from None


@when("a simulated user talks to the agent for at most {max_turns} turns:")
def step_simulated_user(context: Any, max_turns: str) -> None:
    """A model plays the user described in the doc string below (who they are, what they
    want, what they say only when asked) and talks to the agent for at most this many turns
    (1 to 50), ending when it replies DONE (its goal is reached) or nothing. Each of its
    messages is an ordinary turn of the conversation, marked simulated; the Then steps look
    at all of them. It sees the agent's answers only, never its tools. Its model:
    @user_model:... tag, else user_model in the config, else the judge's model, else the
    agent's. Its cost is counted apart from the agent's."""
    _simulate(context, 0, _whole(max_turns, "'at most N turns'"))


@when("a simulated user talks to the agent for at least {min_turns} and at most {max_turns} turns:")
def step_simulated_user_between(context: Any, min_turns: str, max_turns: str) -> None:
    """Like "a simulated user talks to the agent for at most N turns:", but an end before
    the minimum (DONE or an empty reply) is refused and the simulated user is told to go on,
    e.g. to see whether the agent copes with a user who keeps changing their mind."""
    _simulate(context, _whole(min_turns, "'at least M'"), _whole(max_turns, "'at most N turns'"))


def _latest(context: Any) -> Any:
    simulations = live_of(context).record.simulations
    if not simulations:
        raise AssertionError('No simulated user has talked yet: a "When a simulated user talks to the agent ..." step must come first.')
    return simulations[-1]


def _transcript(context: Any, simulation: Any, limit: int = 300) -> str:
    """The simulated part of the conversation, as the simulated user saw it (bounded)."""
    from ..text.safetext import clip

    turns = live_of(context).record.turns
    lines = [f"The simulated user ({simulation.model}) and the agent:"]
    for index in simulation.turns:
        turn = turns[index]
        lines.append(f"  simulated user: {clip(' '.join(turn.user_text.split()), limit)}")
        lines.append(f"  agent: {clip(' '.join(turn.response.split()), limit) or '(no answer)'}")
    last = simulation.calls[-1] if simulation.calls else None
    if last is not None and last.outcome in ("final", "done", "empty"):
        lines.append(f"  simulated user (last): {clip(last.reply, limit) or '(an empty reply)'}")
    return "\n".join(lines)


@then("the simulated user reached its goal")
def step_goal_reached(context: Any) -> None:
    """The latest simulated user said its goal was reached (it replied DONE) within its turns."""
    from ..agent.simulator import outcome_text

    simulation = _latest(context)
    if not simulation.goal_reached:
        turns, what = turns_of(context, False)
        fail(f"The simulated user did not reach its goal: {outcome_text(simulation)}.\n{_transcript(context, simulation)}", turns, what)


@then("the simulated user did not reach its goal")
def step_goal_not_reached(context: Any) -> None:
    """The latest simulated user ended without reaching its goal: it ran out of turns or gave
    up (an empty reply), e.g. to show that the agent refuses what it must refuse."""
    from ..agent.simulator import outcome_text

    simulation = _latest(context)
    if simulation.goal_reached:
        turns, what = turns_of(context, False)
        fail(
            f"The simulated user reached its goal, which it should not have: {outcome_text(simulation)}.\n"
            f"{_transcript(context, simulation)}",
            turns,
            what,
        )

