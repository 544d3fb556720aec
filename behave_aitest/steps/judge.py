"""Then steps that ask a judge model for a verdict on the answer or the conversation."""

from __future__ import annotations

from typing import Any

from .base import StepUsageError, ThrottledError, fail, live_of, runtime_of, then, turns_of

__all__: list[str] = []


# --------------------------------------------------------------------------- Then: judge


def _judge(context: Any, kind: str, criteria: list[str], run: Any) -> Any:
    """Record a judge call on the latest turn, run it, and turn judge trouble into a step error."""
    from ..agent.judge import JudgeError, JudgeThrottled
    from ..record.records import JudgeCall

    runtime = runtime_of(context)
    live = live_of(context)
    turns, _ = turns_of(context, False)
    settings = runtime.judge_settings(live, runtime.current_scenario)
    step = getattr(runtime, "current_step", None)
    record = JudgeCall(kind=kind, model=settings.model, criteria=criteria, step=str(step.location) if step is not None else None)
    turns[-1].judge_calls.append(record)
    try:
        return runtime.run_judge(settings, lambda complete, request: run(complete, request, record)), turns
    except JudgeThrottled as exc:  # the outcome "throttled", not a failure of the agent
        raise ThrottledError(f"The judge could not give a verdict (throttled by the provider's rate limit): {exc}") from None
    except JudgeError as exc:
        raise JudgeStepError(f"The judge could not give a verdict: {exc}{_no_judge_hint(runtime, live, settings.model)}") from None


def _no_judge_hint(runtime: Any, live: Any, model: str) -> str:
    """How to set a judge, when none is set and the scripted agent model stood in for it."""
    from ..config import is_scripted

    if not is_scripted(model) or model != runtime.model_for(live) or runtime.config.judge_model:
        return ""
    scenario = runtime.current_scenario
    tags = [str(t) for t in [*getattr(scenario, "tags", []), *getattr(getattr(scenario, "feature", None), "tags", [])]]
    if any(t.startswith("judge:") for t in tags):
        return ""
    return (
        f"\nno judge model is set, so the agent's own model {model!r} judged. Set one with a @judge:<model> tag, "
        "judge_model in [tool.behave_aitest] (or -D aitest.judge_model=<provider/model>), or give a scripted "
        "judge its rules (docs/scripted-model.md#a-judge)."
    )


class JudgeStepError(Exception):
    """The judge model failed (unreachable, or no valid JSON after a retry): a step error, not a verdict."""


def _criteria_verdicts(context: Any, criteria: list[str], whole: bool) -> None:
    from ..agent import judge

    if not criteria:
        raise StepUsageError("No criteria given: write one criterion per line.")
    turns, what = turns_of(context, whole)
    evidence = judge.conversation_evidence(turns) if whole else turns[-1].response
    kind = "conversation" if whole else "response"
    verdicts, _ = _judge(
        context, kind, criteria, lambda complete, request, record: judge.judge_criteria(complete, request, criteria, evidence, record)
    )
    failed = [v for v in verdicts if not v.passed]
    if failed:
        lines = "\n".join(f"  {'PASS' if v.passed else 'FAIL'}: {v.criterion} ({v.reason})" for v in verdicts)
        fail(f"The judge found {len(failed)} of {len(verdicts)} criteria not met:\n{lines}", turns, what)


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
    from ..agent import judge

    if not 1 <= minimum <= scale:
        raise StepUsageError(f"The minimum must be between 1 and {scale}.")
    turns, _ = turns_of(context, False)
    (score, reason), _ = _judge(
        context, "score", [criterion],
        lambda complete, request, record: judge.judge_score(complete, request, criterion, turns[-1].response, scale, record),
    )
    if score < minimum:
        fail(f"The judge scored {score} out of {scale} on {criterion!r} (at least {minimum} needed): {reason}", turns, "this turn")


def _clarification(context: Any, expected: bool) -> None:
    from ..agent import judge

    turns, _ = turns_of(context, False)
    (asks, reason), _ = _judge(
        context, "clarification", ["asks for clarification"],
        lambda complete, request, record: judge.judge_clarification(complete, request, turns[-1].response, record),
    )
    if asks != expected:
        did = "asked for clarification" if asks else "did not ask for clarification"
        fail(f"The judge found the agent {did}: {reason}", turns, "this turn")


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
