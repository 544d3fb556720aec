"""The simulated user: a model plays the user, turn by turn, until its goal is reached.

Why a module of its own: the simulator is a second model in the conversation with its own
view of it. It gets the persona (the step's doc string) and the rules of the game in its
system prompt, and sees the conversation *from the user's side*: its own messages as the
assistant's (roles flipped, as it is the one writing them), the agent's text answers as
the user's, never tool calls or tool results (a real user does not see them).

The loop (:func:`run`) asks the simulator for the next user message and hands it to the
agent as an ordinary turn (the caller's ``say``, marked simulated). A reply that is exactly
``DONE`` (after trimming) means the goal is reached; an empty reply ends the conversation
too, without its goal and never as an error. Both are refused before the minimum number of
turns: the simulator is told to go on. A ``DONE`` before any user message at all (no
scripted opening either) is refused the same way: a goal is not reached by saying nothing. After the maximum number of turns the simulator is
asked once more, so a goal reached on the last turn still counts; nothing more is sent.

Traps others fell into, avoided on purpose: the opening message is never sent twice (a
scripted turn before the step is history, not re-sent; the simulator writes the next one),
the opening turn is kept when roles are flipped, an empty reply is an end and not an
error, and the prompt tells the simulator that a question or a request for confirmation is
not the end (answer it), so it does not stop on "Shall I go ahead?".
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ..model.llm import ModelReply
from ..text.safetext import json_safe
from ..record.records import Simulation, SimulatorCall, Turn
from .loop import TurnSettings, _complete_with_retries

Completer = Callable[..., Awaitable[ModelReply]]

MAX_TURNS = 50  # the most a step may ask for: a longer simulated conversation is a runaway, not a test
DONE = "DONE"
MAX_REFUSALS = 2  # early ends refused in a row before the step errors

PROMPT = """You are role-playing the USER of an AI assistant, to test the assistant. You are not the assistant.

Who you are and what you want:
{persona}

How to play:
- Each time, write only the user's next message to the assistant: plain text, one message, no quotes, no labels, no explanation.
- Stay in character. Give details only as the persona above says. You see only the assistant's messages, not the tools it uses.
- If the assistant asks you a question, or asks you to confirm or choose something, answer it as the user would. A question or a request for confirmation is NOT the end of the conversation.
- When your goal has really been reached (the assistant has actually done or told you what you wanted), reply with exactly DONE and nothing else.
- If you cannot or do not want to go on without your goal being reached, reply with an empty message.
"""

OPENING = "(You are now talking to the assistant. Write your first message.)"
NO_ANSWER = "(the assistant gave no answer)"
GO_ON = (
    "(Not yet: this conversation must go on for at least {minimum} of your messages and you have written {written}. "
    "Do not reply DONE or an empty message yet; write your next message to the assistant.)"
)


class SimulatorError(Exception):
    """The simulated user could not go on (provider error, timeout, cassette miss, refusing to
    continue): the simulator's failure, not the agent's; a step error."""


class SimulatorThrottled(SimulatorError):
    """The provider kept refusing the simulated user's model (429) until ``timeout_s``: the
    step and the scenario are "throttled", as for a turn (docs/rate-limits.md)."""


class LimitsError(ValueError):
    """The step's turn limits are out of range (a user mistake, one line)."""


def check_limits(min_turns: int, max_turns: int) -> None:
    """1 <= max_turns <= 50 and 0 <= min_turns <= max_turns, said in one line."""
    if max_turns < 1:
        raise LimitsError(f"A simulated user needs at least 1 turn: 'at most {max_turns} turns' is too few.")
    if max_turns > MAX_TURNS:
        raise LimitsError(f"A simulated user may talk for at most {MAX_TURNS} turns: 'at most {max_turns} turns' is too many.")
    if min_turns < 0:
        raise LimitsError(f"'at least {min_turns}' turns: the minimum cannot be negative.")
    if min_turns > max_turns:
        raise LimitsError(f"'at least {min_turns} and at most {max_turns} turns': the minimum is larger than the maximum.")


def system_prompt(persona: str) -> str:
    return PROMPT.format(persona=persona.strip())


def user_view(persona: str, turns: Sequence[Turn]) -> list[dict[str, Any]]:
    """The conversation as the simulated user sees it: the persona and the rules, then every
    turn so far (scripted or simulated) with roles flipped, the agent's text answers only."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": system_prompt(persona)}, {"role": "user", "content": OPENING}]
    for turn in turns:
        messages.append({"role": "assistant", "content": turn.user_text})
        messages.append({"role": "user", "content": turn.response.strip() or NO_ANSWER})
    return messages


async def ask(complete: Completer, settings: TurnSettings, messages: list[dict[str, Any]]) -> tuple[ModelReply, int]:
    """One simulator answer with the agent's retry rules, within ``timeout_s``."""
    import anyio

    from ..model.adaptive import turn_scope

    deadline = time.monotonic() + settings.timeout_s
    # the limiter's deadline too: a provider that keeps refusing is Throttled before the timeout
    with turn_scope(deadline), anyio.fail_after(settings.timeout_s):
        return await _complete_with_retries(complete, {**settings.request, "messages": messages}, settings, deadline)


def failure_text(exc: BaseException, settings: TurnSettings) -> str:
    """What went wrong with a simulator call, in words."""
    if isinstance(exc, TimeoutError):
        return f"no answer within {settings.timeout_s:g} s (timeout_s)"
    kind = getattr(exc, "kind", None)
    return f"{kind}: {exc}" if kind else (str(exc) or type(exc).__name__)


def _fill(call: SimulatorCall, reply: ModelReply, attempts: int) -> None:
    call.input_tokens, call.output_tokens = reply.input_tokens, reply.output_tokens
    call.cost_usd, call.latency_s, call.attempts = reply.cost_usd, reply.latency_s, attempts
    call.replayed, call.recorded_cost_usd = reply.replayed, reply.recorded_cost_usd


def run(
    simulation: Simulation,
    ask_model: Callable[[list[dict[str, Any]]], tuple[ModelReply, int]],
    say: Callable[[str], Turn],
    turns: Callable[[], Sequence[Turn]],
) -> Simulation:
    """Talk to the agent as ``simulation.persona`` until DONE, an empty reply, or the maximum.

    ``ask_model`` asks the simulator (raises on provider trouble), ``say`` runs one agent turn
    (raises when the agent fails: that step error is the agent's), ``turns`` gives the
    conversation so far. The record is filled as it goes, so a failure still shows what happened.
    """
    written = refused = 0
    pending: list[dict[str, Any]] = []
    while True:
        call = SimulatorCall(model=simulation.model)
        simulation.calls.append(call)
        try:
            reply, attempts = ask_model(user_view(simulation.persona, turns()) + pending)
        except Exception as exc:
            throttled = isinstance(exc, SimulatorThrottled)
            call.outcome, call.error, call.cost_usd = ("throttled" if throttled else "error"), str(exc), 0.0
            simulation.ended = "throttled" if throttled else "error"
            raise
        _fill(call, reply, attempts)
        # a lone surrogate is the simulator's slip, not the agent's: it would break the agent's
        # own model request, and be reported as the agent's model error (issue 25, H8)
        text = json_safe((reply.content or "").strip())
        call.reply = text
        ends = text == DONE or not text
        # a DONE before any user message is no goal reached (H5): it must say something first
        minimum = max(simulation.min_turns, 1 if text == DONE and not turns() else 0)
        if written >= simulation.max_turns:  # the last look: was the goal reached on the last turn?
            call.outcome = "done" if text == DONE else "empty" if not text else "final"
            return _end(simulation, "done" if text == DONE else "empty" if not text else "max_turns")
        if ends and written < minimum:
            call.outcome = "refused"
            refused += 1
            if refused > MAX_REFUSALS:
                simulation.ended = "error"
                if minimum > simulation.min_turns:
                    raise SimulatorError(
                        f"it replied DONE before writing any message to the agent, also after being told {MAX_REFUSALS} "
                        "times to write one (a goal is not reached by saying nothing)"
                    )
                raise SimulatorError(
                    f"it ended the conversation after {written} of at least {simulation.min_turns} turns "
                    f"({'DONE' if text else 'an empty reply'}), also after being told {MAX_REFUSALS} times to go on"
                )
            pending = [
                {"role": "assistant", "content": text or "(an empty message)"},
                {"role": "user", "content": GO_ON.format(minimum=minimum, written=written)},
            ]
            continue
        if ends:
            call.outcome = "done" if text == DONE else "empty"
            return _end(simulation, call.outcome)
        call.outcome = "message"
        pending, refused = [], 0
        try:
            turn = say(text)
        except BaseException:
            simulation.ended = "error"
            raise
        simulation.turns.append(turn.index)
        written += 1


def _end(simulation: Simulation, how: str) -> Simulation:
    simulation.ended = how
    simulation.goal_reached = how == "done"
    return simulation


def outcome_text(simulation: Simulation) -> str:
    """How a simulated conversation ended, for failure messages and the report."""
    count = len(simulation.turns)
    turns = f"{count} turn{'' if count == 1 else 's'}"
    return {
        "done": f"it reached its goal (replied DONE) after {turns}",
        "empty": f"it ended the conversation with an empty reply after {turns}, without reaching its goal",
        "max_turns": f"it was still going after {turns} (the maximum) without replying DONE",
        "error": f"it stopped on an error after {turns}",
    }.get(simulation.ended, f"it has not finished ({turns})")


_STEP = re.compile(r"a simulated user talks to the agent for (?:at least (?P<min>.+?) and )?at most (?P<max>.+?) turns:")


def step_limits(step_name: str) -> tuple[int, int] | None:
    """(min, max) of a simulated-user step's text, None for any other step; out-of-range or
    non-numeric limits raise :class:`LimitsError` (checked before the first scenario)."""
    found = _STEP.fullmatch(step_name)
    if found is None:
        return None
    values = []
    for text in (found.group("min") or "0", found.group("max")):
        try:
            values.append(int(text.strip()))
        except ValueError:
            raise LimitsError(f"'{text}' is not a whole number of turns.") from None
    check_limits(values[0], values[1])
    return values[0], values[1]
