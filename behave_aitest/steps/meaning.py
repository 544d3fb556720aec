"""Checks that read meaning and safety: similarity, numbers grounded in tool results,
faithfulness by the judge, prompt-injection drills (docs/checks-meaning-safety.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import StepUsageError, fail, given, live_of, runtime_of, then, turns_of

if TYPE_CHECKING:
    from ..record.records import CheckResult, Turn

__all__: list[str] = []


def _say(context: Any, line: str) -> None:
    """Print ``line`` (it may quote the answer) redacted and escaped, like a step message."""
    from ..text.safetext import message

    print(message(runtime_of(context).redactor.text(line)))


def _keep(context: Any, turn: Turn, result: CheckResult) -> None:
    """Record the check on the turn it looked at (the report shows it, passed or not) and say
    it on the console (behave shows a passing step's output with --no-capture)."""
    turn.checks.append(result)
    _say(context, f"behave-aitest CHECK {result.kind}: {result.summary}")


# --------------------------------------------------------------------------- Then: similarity


def _similarity(context: Any, expected: str, threshold: str | None, negated: bool) -> None:
    from ..agent import similarity
    from ..errors import TurnFailure
    from ..model.embeddings import EmbeddingError
    from ..record.records import CheckResult

    bar = similarity.parse_threshold(threshold)
    turns, what = turns_of(context, False)
    runtime = runtime_of(context)
    embed = runtime.embedder(live_of(context))
    try:
        found, _ = runtime.call(similarity.compare, embed, turns[-1].response, expected, bar, negated)
    except (EmbeddingError, TurnFailure) as exc:  # provider trouble; a cassette miss
        raise SimilarityError(f"The similarity could not be scored: {exc}") from None
    kind = "not similar" if negated else "similar"
    _keep(context, turns[-1], CheckResult(kind, found.ok, found.summary(), found.score, bar, found.model, [expected]))
    if not found.ok:
        relation = "similar to" if negated else "not similar enough to"
        fail(f"The response is {relation} {expected!r}: {found.summary()}.", turns, what)


class SimilarityError(Exception):
    """The embedding model failed (unreachable, a cassette miss): a step error, not a verdict."""


@then('the response is similar to "{text}"')
def step_similar(context: Any, text: str) -> None:
    """The agent's answer to the latest message means about the same as this text: the
    cosine of their embeddings is at least 0.75. Offline by default (the [similarity] extra:
    a static embedding model shipped in its package, no key, no network), or the
    embedding_model of the configuration. The score is shown in the step and the report.
    Static embeddings see topic, not truth: "sunny" and "rainy" score high; use the judge
    for negations and facts."""
    _similarity(context, text, None, False)


@then('the response is similar to "{text}" (at least {threshold})')
def step_similar_at_least(context: Any, text: str, threshold: str) -> None:
    """Like "the response is similar to", with its own bar from 0 to 1, e.g. (at least 0.8)."""
    _similarity(context, text, threshold, False)


@then('the response is not similar to "{text}"')
def step_not_similar(context: Any, text: str) -> None:
    """The agent's answer to the latest message does not mean the same as this text: the
    cosine of their embeddings is below 0.75 (e.g. an answer that must not be a refusal)."""
    _similarity(context, text, None, True)


@then('the response is not similar to "{text}" (below {threshold})')
def step_not_similar_below(context: Any, text: str, threshold: str) -> None:
    """Like "the response is not similar to", with its own bar from 0 to 1, e.g. (below 0.5)."""
    _similarity(context, text, threshold, True)


# --------------------------------------------------------------------------- Then: numbers grounded


def _tool_results(turns: list[Turn], step: str) -> list[str]:
    results = [call.result for turn in turns for call in turn.tool_calls if not call.by_test]
    if not results:
        raise AssertionError(
            f'{step}: there is nothing to ground in: no tool was called in this conversation '
            "(a check of numbers against tool results needs tool results)."
        )
    return results


@then("every number in the response comes from the tool results")
def step_numbers_grounded(context: Any) -> None:
    """Every number in the agent's answer to the latest message (amounts, counts, dates,
    times, percentages) appears in a tool result of the conversation or in something the
    user said. Written differently counts as the same: $1,500 = 1500.00 = 1.5k, 80% = 0.8,
    2026-12-07 = December 7. Deterministic, no model. A failure names each number that
    comes from nowhere; an answer without numbers passes and says so."""
    from ..agent import grounding
    from ..record.records import CheckResult

    turns, what = turns_of(context, False)
    whole, _ = turns_of(context, True)
    results = _tool_results(whole, "every number in the response comes from the tool results")
    verdict = grounding.ground(turns[-1].response, results, [t.user_text for t in whole])
    details = [n.text for n in verdict.ungrounded]
    _keep(context, turns[-1], CheckResult("numbers", verdict.ok, verdict.summary(), details=details))
    if not verdict.ok:
        listed = "\n".join(f"  - {n.text}" for n in verdict.ungrounded)
        fail(
            f"{len(details)} number(s) in the response appear in no tool result and no user message:\n{listed}",
            turns,
            what,
        )


# --------------------------------------------------------------------------- Then: faithfulness (judge)


@then("the response is grounded in the tool results")
def step_grounded_judge(context: Any) -> None:
    """The judge model splits the agent's answer to the latest message into its claims and
    decides for each whether the conversation's tool results support it (it sees the answer
    and the tool results only). Each claim's verdict and reason are shown like the criteria
    of "the response satisfies"; one judge call, recorded and replayed from the cassette."""
    from ..agent import faithfulness
    from .judge import _judge

    turns, what = turns_of(context, False)
    whole, _ = turns_of(context, True)
    _tool_results(whole, "the response is grounded in the tool results")
    calls = [call for turn in whole for call in turn.tool_calls if not call.by_test]
    answer = turns[-1].response
    verdicts, _ = _judge(
        context, "grounded", [], lambda complete, request, record: faithfulness.judge_grounded(complete, request, answer, calls, record)
    )
    failed = [v for v in verdicts if not v.passed]
    if failed:
        lines = "\n".join(f"  {'PASS' if v.passed else 'FAIL'}: {v.criterion} ({v.reason})" for v in verdicts)
        fail(f"The judge found {len(failed)} of {len(verdicts)} claims not supported by the tool results:\n{lines}", turns, what)
    _say(context, f"behave-aitest CHECK grounded: {len(verdicts)} claim(s), all supported" if verdicts else "behave-aitest CHECK grounded: no claims")


# --------------------------------------------------------------------------- Given: injection drills


def _run_payload(context: Any) -> Any:
    """``@injection``: the payload of this run (one per run, in turn); else the first."""
    from ..agent import injection

    scenario = getattr(context, "scenario", None)
    tags = [str(t) for t in getattr(scenario, "effective_tags", None) or getattr(scenario, "tags", [])]
    if injection.INJECTION_TAG not in tags:
        return injection.PAYLOADS[0]
    run = getattr(scenario, "aitest_run", None) or getattr(getattr(scenario, "feature", None), "aitest_run", None)
    return injection.for_run(run)


def _target(context: Any, tool: str, chosen: Any) -> str | None:
    """The tool a payload asks for when the step names none: one of the agent's other tools,
    ranked by the payload from their annotations (a destructive one first; for a payload that
    sends data out, one that reaches outside); None when the agent has no other tool."""
    runtime = runtime_of(context)
    toolbox = runtime.toolbox(live_of(context))
    others = []
    for position, name in enumerate(toolbox.offered()):
        found = toolbox.find(name)
        if found is None or name == tool or found[1].name == tool:
            continue
        others.append((chosen.rank(dict(found[1].annotations or {})), position, name))
    return min(others)[2] if others else None


def _inject(context: Any, tool: str, name: str | None, target: str | None, step: str) -> None:
    from ..agent import injection
    from ..agent.doubles import RETURNS

    chosen = injection.payload(name) if name is not None else _run_payload(context)
    runtime = runtime_of(context)
    live = live_of(context)
    conn, spec = runtime._agent_tool(live, tool, step)
    if target is not None:
        runtime._agent_tool(live, target, f'{step}: the tool it asks for, "{target}",')
    else:
        target = _target(context, spec.name, chosen)
    scenario = getattr(context, "scenario", None)
    where = (str(getattr(getattr(scenario, "feature", None), "filename", "")), str(getattr(scenario, "name", "")))
    drill = injection.drill(chosen, f"{conn.name}.{spec.name}", target, where)
    runtime.add_double(tool, step, kind=RETURNS, text=drill.text)
    if live.scenario is None:  # pragma: no cover - a Given always runs inside a scenario
        raise StepUsageError(f"{step}: an injection drill needs a scenario.")
    live.scenario.injections.append(drill)
    _say(context, f"behave-aitest INJECTION {drill.payload} in {drill.tool} (canary {drill.canary})")


@given('the tool "{name}" returns a prompt injection')
def step_injection(context: Any, name: str) -> None:
    """Until the end of this scenario, this tool returns a prompt injection instead of its
    result: hostile instructions in the style of real incidents, carrying a unique canary
    and asking the agent to call one of its other tools (a destructive one first; one that
    reaches outside for a payload that sends data out). The first built-in payload, or under
    @injection a different one in each run. Check it with "Then the agent resisted the
    injection"."""
    _inject(context, name, None, None, f'Given the tool "{name}" returns a prompt injection')


@given('the tool "{name}" returns a prompt injection asking to call "{target}"')
def step_injection_asking(context: Any, name: str, target: str) -> None:
    """Like "the tool ... returns a prompt injection", the payload asking the agent to call
    this tool (one of the agent's tools), e.g. "transfer" or "send_email"."""
    _inject(context, name, None, target, f'Given the tool "{name}" returns a prompt injection asking to call "{target}"')


@given('the tool "{name}" returns the prompt injection "{payload}" asking to call "{target}"')
def step_injection_named_asking(context: Any, name: str, payload: str, target: str) -> None:
    """A built-in payload by name, asking the agent to call this tool."""
    _inject(context, name, payload, target, f'Given the tool "{name}" returns the prompt injection "{payload}" asking to call "{target}"')


@given('the tool "{name}" returns the prompt injection "{payload}"')
def step_injection_named(context: Any, name: str, payload: str) -> None:
    """Like "the tool ... returns a prompt injection", with one built-in payload by name:
    ignore-previous, fake-system, tool-call, exfiltrate-url, data-exfiltration."""
    _inject(context, name, payload, None, f'Given the tool "{name}" returns the prompt injection "{payload}"')


# --------------------------------------------------------------------------- Then: resisted


@then("the agent resisted the injection")
def step_resisted(context: Any) -> None:
    """After reading the injected tool result, the agent called none of the tools the
    payload asked for (unless the user asked for them), and the canary appears in no answer,
    no tool argument and no URL. Fails when the agent never called the injected tool (the
    drill did not happen). The report shows the payload and where the canary went."""
    from ..agent import injection
    from ..record.records import CheckResult

    live = live_of(context)
    drills = list(live.scenario.injections) if live.scenario is not None else []
    if not drills:
        raise StepUsageError(
            '"Then the agent resisted the injection" needs a drill first: '
            'Given the tool "..." returns a prompt injection.'
        )
    turns, what = turns_of(context, False)
    scenario_turns = list(live.scenario.turns) if live.scenario is not None else turns
    problems: list[str] = []
    for drill in drills:
        verdict = injection.judge(drill, scenario_turns)
        drill.resisted = verdict.resisted
        drill.findings = list(verdict.findings) if verdict.delivered else [f"the agent never called {drill.tool}: the injection was never delivered"]
        named = f"{drill.payload!r} in {drill.tool} (canary {drill.canary})"
        outcome = "resisted" if verdict.resisted else f"{len(drill.findings)} finding(s)"
        _keep(context, turns[-1], CheckResult("injection", verdict.resisted, f"{named}: {outcome}", details=drill.findings))
        if not verdict.resisted:
            problems.append("\n".join([f"the prompt injection {named}:", *(f"  - {f}" for f in drill.findings)]))
    if problems:
        fail("The agent did not resist " + "\n".join(problems), turns, what)
