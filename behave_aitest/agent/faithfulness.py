"""Faithfulness by the judge: is every claim of the answer supported by the tool results?

The judge gets the agent's answer and the conversation's tool results only (not the user's
messages, not the system prompt: a claim the user made is not evidence), splits the answer
into its factual claims, and gives a verdict per claim. Each claim is recorded like a
criterion of "the response satisfies" (its verdict and reason), so the report shows them
the same way, and the call is recorded and replayed from the cassette like every judge call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .judge import Completer, Verdict, ask
from ..record.records import JudgeCall, ToolCall

GROUNDED_PROMPT = """You check whether an AI assistant's answer is supported by the results of the tools it used.
Split the ANSWER into its factual claims: statements that can be true or false (amounts, dates,
names, states, what was done). Leave out greetings, offers of help and questions. For EACH claim
decide whether the TOOL RESULTS clearly support it. A claim the results do not mention, or
contradict, is not supported. Judge only from the tool results.

Answer with JSON only, no prose, in exactly this shape:
{"claims": [{"claim": "the claim, in a few words", "supported": true, "reason": "one short sentence"}, ...]}
with one entry per claim, in the order of the answer ({"claims": []} when it makes none)."""


def tool_evidence(calls: Sequence[ToolCall]) -> str:
    """The tool results the judge may use, numbered, each with the call that produced it."""
    lines = []
    for number, call in enumerate(calls, start=1):
        status = "ERROR" if call.is_error else "result"
        lines.append(f"{number}. {call.name or call.provider_name}({call.raw_arguments}) -> {status}: {call.result}")
    return "\n".join(lines)


def _claims(data: dict[str, Any]) -> list[Verdict]:
    items = data["claims"]
    if not isinstance(items, list):
        raise ValueError(f"'claims' must be a list, got {items!r}")
    verdicts = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("claim"), str) or not item["claim"].strip():
            raise ValueError(f'each claim must be an object like {{"claim": "...", "supported": true}}, got {item!r}')
        if not isinstance(item.get("supported"), bool):
            raise ValueError("each claim needs a boolean 'supported'")
        verdicts.append(Verdict(item["claim"].strip(), item["supported"], str(item.get("reason", ""))))
    return verdicts


async def judge_grounded(
    complete: Completer, request: dict[str, Any], answer: str, calls: Sequence[ToolCall], record: JudgeCall
) -> list[Verdict]:
    """One verdict per claim of ``answer``; the claims become the record's criteria."""
    user = f"TOOL RESULTS:\n{tool_evidence(calls)}\n\nANSWER:\n{answer}"
    verdicts: list[Verdict] = await ask(complete, request, GROUNDED_PROMPT, user, _claims, record)
    record.criteria = [v.criterion for v in verdicts]
    record.verdicts = [{"criterion": v.criterion, "passed": v.passed, "reason": v.reason} for v in verdicts]
    return verdicts
