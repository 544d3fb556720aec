"""The LLM judge: the model's own judgement of an answer, one verdict per criterion.

The judge sees the criteria and the evidence (the answer, or the whole conversation with
its tool calls), never an expected verdict. It must answer JSON; unparsable output gets
one retry with the parse error, then the step *errors* (a judge that cannot judge is not
an agent that failed). Every judge call is recorded with its tokens, cost and latency,
separately from the agent's own calls.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import TurnFailure
from ..model.llm import ModelReply
from ..model.adaptive import Throttled
from ..record.records import THROTTLED_PREFIX, JudgeCall, Turn

Completer = Callable[..., Awaitable[ModelReply]]


class JudgeError(Exception):
    """The judge could not give a verdict (provider trouble, or no valid JSON after a retry)."""


class JudgeThrottled(JudgeError):
    """The provider kept refusing the judge's calls (429) until the deadline: the scenario's
    outcome is "throttled", as for a turn (docs/rate-limits.md)."""


CRITERIA_PROMPT = """You are a strict, impartial evaluator of an AI assistant's work.
You get numbered criteria and the evidence. Decide for EACH criterion, independently,
whether the evidence clearly satisfies it. Judge only what the evidence shows; when in
doubt, the criterion is not met.

Answer with JSON only, no prose, in exactly this shape:
{"verdicts": [{"criterion": 1, "pass": true, "reason": "one short sentence"}, ...]}
with one entry per criterion, in order."""

SCORE_PROMPT = """You are a strict, impartial evaluator of an AI assistant's answer.
Rate how well the evidence meets the criterion on a scale from 1 (not at all) to {scale}
(completely). Judge only what the evidence shows.

Answer with JSON only, no prose, in exactly this shape:
{{"score": 3, "reason": "one short sentence"}}"""

CLARIFICATION_PROMPT = """You classify the last message of an AI assistant.
Does it ask the user for clarification, confirmation or more information INSTEAD of
completing the request (for example "Would you like me to ...?", "Which account do you
mean?", "Shall I proceed?")? Giving the requested result, reporting what it did, or
offering optional extra help after completing the task is NOT asking for clarification.

Answer with JSON only, no prose, in exactly this shape:
{"asks_for_clarification": true, "reason": "one short sentence"}"""


@dataclass
class Verdict:
    criterion: str
    passed: bool
    reason: str


def conversation_evidence(turns: Sequence[Turn]) -> str:
    """The whole conversation as text: user, assistant, and every tool call with its result."""
    lines: list[str] = []
    for turn in turns:
        lines.append(f"USER: {turn.user_text}")
        for call in turn.tool_calls:
            status = "ERROR" if call.is_error else "result"
            lines.append(f"TOOL CALL {call.name}({call.raw_arguments}) -> {status}: {call.result}")
        lines.append(f"ASSISTANT: {turn.response}")
    return "\n".join(lines)


def parse_json_object(text: str) -> dict[str, Any]:
    """The JSON object in a model's answer (tolerates code fences and prose around it)."""
    match = re.search(r"\{.*\}", text or "", re.DOTALL)
    if not match:
        raise ValueError("no JSON object in the answer")
    value = json.loads(match.group(0))
    if not isinstance(value, dict):
        raise ValueError("the answer is not a JSON object")
    return value


async def ask(
    complete: Completer,
    request: dict[str, Any],
    system: str,
    user: str,
    validate: Callable[[dict[str, Any]], Any],
    record: JudgeCall,
) -> Any:
    """Ask the judge; validate its JSON; retry once with the error; fill ``record``."""
    messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    started = time.perf_counter()
    try:
        for attempt in (1, 2):
            reply = await complete({**request, "messages": messages, "temperature": 0}, timeout_s=120)
            record.attempts = attempt
            record.input_tokens += reply.input_tokens
            record.output_tokens += reply.output_tokens
            if reply.cost_usd is None:
                record.cost_known = False
            else:
                record.cost_usd = (record.cost_usd or 0.0) + reply.cost_usd
            if reply.replayed:
                record.replayed = True
                if reply.recorded_cost_usd is not None:
                    record.recorded_cost_usd = (record.recorded_cost_usd or 0.0) + reply.recorded_cost_usd
            try:
                data = parse_json_object(reply.content or "")
            except ValueError as exc:
                problem = str(exc)  # not JSON (worded as before: recorded judge retries still match)
            else:
                try:
                    return validate(data)
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    # {"verdicts": ["yes"]}: JSON, but not what was asked for
                    problem = f"judge answer of the wrong shape: {_shape_problem(exc)}"
            if attempt == 2:
                raise JudgeError(
                    f"the judge model {record.model!r} gave no valid answer after a retry ({problem}); "
                    f"its last answer was: {(reply.content or '')[:300]!r}"
                ) from None
            messages += [
                {"role": "assistant", "content": reply.content or ""},
                {"role": "user", "content": f"That was not valid ({problem}). Answer again with the JSON only."},
            ]
    except JudgeError as exc:
        record.error = str(exc)
        raise
    except TurnFailure as exc:  # a cassette miss: say that, not "could not be reached"
        record.error = f"{exc.kind}: {exc}"
        raise JudgeError(str(exc)) from None
    except Throttled as exc:  # the provider's rate limit until the deadline: not a verdict, not the agent
        record.error = f"{THROTTLED_PREFIX} {exc}"
        raise JudgeThrottled(f"the judge model {record.model!r} was throttled by the provider's rate limit: {exc}") from None
    except Exception as exc:  # provider trouble
        record.error = f"{type(exc).__name__}: {exc}"
        raise JudgeError(f"the judge model {record.model!r} could not be reached: {record.error}") from None
    finally:
        record.latency_s = time.perf_counter() - started
    raise AssertionError("unreachable")  # pragma: no cover


def _shape_problem(exc: Exception) -> str:
    """What was wrong with a JSON answer, in words ("missing 'verdicts'", not "KeyError")."""
    if isinstance(exc, KeyError):
        return f"missing {exc.args[0]!r}"
    if isinstance(exc, ValueError):
        return str(exc)
    return "an entry is not an object with the expected fields"


def _verdicts(criteria: Sequence[str]) -> Callable[[dict[str, Any]], list[Verdict]]:
    def validate(data: dict[str, Any]) -> list[Verdict]:
        items = data["verdicts"]
        if not isinstance(items, list) or len(items) != len(criteria):
            raise ValueError(f"expected {len(criteria)} verdicts, got {len(items) if isinstance(items, list) else items!r}")
        out = []
        for criterion, item in zip(criteria, items):
            if not isinstance(item, dict):
                raise ValueError(f"each verdict must be an object like {{\"criterion\": 1, \"pass\": true}}, got {item!r}")
            if not isinstance(item.get("pass"), bool):
                raise ValueError("each verdict needs a boolean 'pass'")
            out.append(Verdict(criterion, item["pass"], str(item.get("reason", ""))))
        return out

    return validate


async def judge_criteria(
    complete: Completer, request: dict[str, Any], criteria: Sequence[str], evidence: str, record: JudgeCall
) -> list[Verdict]:
    numbered = "\n".join(f"{i}. {c}" for i, c in enumerate(criteria, start=1))
    user = f"CRITERIA:\n{numbered}\n\nEVIDENCE:\n{evidence}"
    verdicts: list[Verdict] = await ask(complete, request, CRITERIA_PROMPT, user, _verdicts(criteria), record)
    record.verdicts = [{"criterion": v.criterion, "passed": v.passed, "reason": v.reason} for v in verdicts]
    return verdicts


async def judge_score(
    complete: Completer, request: dict[str, Any], criterion: str, evidence: str, scale: int, record: JudgeCall
) -> tuple[int, str]:
    def validate(data: dict[str, Any]) -> tuple[int, str]:
        score = data["score"]
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not 1 <= score <= scale:
            raise ValueError(f"'score' must be a number from 1 to {scale}")
        return int(round(score)), str(data.get("reason", ""))

    user = f"CRITERION: {criterion}\n\nEVIDENCE:\n{evidence}"
    score, reason = await ask(complete, request, SCORE_PROMPT.format(scale=scale), user, validate, record)
    record.score, record.verdicts = score, [{"criterion": criterion, "passed": None, "reason": reason}]
    return score, reason


async def judge_clarification(complete: Completer, request: dict[str, Any], answer: str, record: JudgeCall) -> tuple[bool, str]:
    def validate(data: dict[str, Any]) -> tuple[bool, str]:
        value = data["asks_for_clarification"]
        if not isinstance(value, bool):
            raise ValueError("'asks_for_clarification' must be true or false")
        return value, str(data.get("reason", ""))

    asks, reason = await ask(complete, request, CLARIFICATION_PROMPT, f"ASSISTANT MESSAGE:\n{answer}", validate, record)
    record.verdicts = [{"criterion": "asks for clarification", "passed": asks, "reason": reason}]
    return asks, reason
