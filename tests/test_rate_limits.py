"""Real providers at scale (issue 26), end to end: ``python -m behave`` (sequential and ``-j``)
against the project's fake provider with a quota (requests in flight, requests per minute),
429s with and without headers, a provider that never stops refusing; the outcome "throttled"
in every report and in ``report diff``; the spend cap; bad values of the new keys.

Sizes are small (a few conversations, short model delays): every run is seconds of CPU.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from conftest import Project, processes_in

from behave_aitest.model.fakellm import FakeOpenAI, Quota

RUNNER = ("--runner", "behave_aitest.parallel:ParallelRunner")
REPORTS = (
    "-f", "behave_aitest.formatter:JSONFormatter", "-o", "r.json",
    "-f", "behave_aitest.formatter:MarkdownFormatter", "-o", "r.md",
    "-f", "behave_aitest.formatter:HTMLFormatter", "-o", "r.html",
    "-f", "plain",
    "--junit", "--junit-directory", "junit",
)
MODEL = "openai/fake-model"


def conversations(count: int, turns: int = 2) -> str:
    lines = ["Feature: Busy provider"]
    for i in range(count):
        lines.append(f"  Scenario: Ask {i}")
        for t in range(turns):
            lines += [f'    When the user says "question {t} of conversation {i}"', "    Then the agent answered"]
    return "\n".join(lines) + "\n"


def configure(project: Project, server: FakeOpenAI, extra: str = "") -> None:
    project.config(
        f'[tool.behave_aitest]\nmodel = "{MODEL}"\napi_base = "{server.base_url}"\nretry_backoff_s = 0\n{extra}'
    )


def report(project: Project, name: str = "r.json") -> dict[str, Any]:
    return json.loads((project.root / name).read_text(encoding="utf-8"))


def statuses(doc: dict[str, Any]) -> list[str]:
    return [s["status"] for f in doc["features"] for s in f["scenarios"]]


def answer_after(seconds: float) -> Any:
    return lambda request: {"content": "fine", "delay": seconds}


def test_parallel_run_against_a_small_quota_with_nothing_tuned_loses_no_conversation(project: Project) -> None:
    """The issue's scenario, smaller: 12 conversations x 2 turns, -j 6, a provider allowing 2
    calls in flight (429 + Retry-After: 1 above), no limit configured: every conversation passes,
    and the report says the provider throttled and which limit the run settled on. (A quota of
    2 rather than 4: on a busy machine six workers do not always have five calls in flight.)"""
    project.feature("busy.feature", conversations(12))
    with FakeOpenAI(brain=answer_after(0.6), quota=Quota(concurrent=2, retry_after_s=1)) as server:
        configure(project, server)
        result = project.run(*RUNNER, "-j", "6", *REPORTS)
        refused, peak = server.refused, server.peak
    assert result.returncode == 0, result.output
    doc = report(project)
    assert statuses(doc) == ["passed"] * 12
    assert refused > 0 and peak <= 2  # the provider did refuse; the run found its limit by itself
    limits = doc["totals"]["rate_limits"][MODEL]
    assert limits["throttled"] == refused
    assert 1 <= limits["limit"] <= 3 and limits["wait_s"] > 0
    markdown = (project.root / "r.md").read_text(encoding="utf-8")
    assert "## 🚦 Rate limits" in markdown and MODEL in markdown
    html = (project.root / "r.html").read_text(encoding="utf-8")
    assert 'id="rate-limits"' in html and f"{refused} throttled" in html


def test_a_429_waits_and_is_sent_again_beyond_the_retries_honouring_retry_after(project: Project, fake_llm: FakeOpenAI) -> None:
    """retries = 0, three 429s in a row asking for 0.5 s: the turn still passes (a 429 is not an
    error of the agent, so it is not counted against the retries) and every retry came after
    the wait the provider asked for."""
    arrivals: list[float] = []
    refusals = [{"status": 429, "message": "rate limit", "headers": {"retry-after": "0.5"}}] * 3

    def brain(request: dict[str, Any]) -> dict[str, Any]:
        arrivals.append(time.monotonic())
        return refusals.pop() if refusals else {"content": "fine"}

    fake_llm.brain = brain
    configure(project, fake_llm, "retries = 0\n")
    project.feature("one.feature", conversations(1, turns=1))
    result = project.run(*REPORTS)
    assert result.returncode == 0, result.output
    assert len(arrivals) == 4
    assert all(b - a >= 0.5 for a, b in zip(arrivals, arrivals[1:])), arrivals
    assert report(project)["totals"]["rate_limits"][MODEL]["throttled"] == 3


@pytest.mark.parametrize("headers", ["none", "ratelimit"])
def test_without_retry_after_the_backoff_still_converges(project: Project, headers: str) -> None:
    project.feature("busy.feature", conversations(4, turns=1))
    with FakeOpenAI(brain=answer_after(0.3), quota=Quota(concurrent=1, retry_after_s=0.3, headers=headers)) as server:
        configure(project, server)
        result = project.run(*RUNNER, "-j", "4", *REPORTS)
        refused = server.refused
    assert result.returncode == 0, result.output
    assert statuses(report(project)) == ["passed"] * 4 and refused > 0


def test_a_provider_that_never_stops_refusing_gives_throttled_in_every_report(project: Project) -> None:
    project.feature("busy.feature", conversations(2, turns=1))
    with FakeOpenAI(brain=answer_after(0), quota=Quota(concurrent=0, retry_after_s=0.3)) as server:
        configure(project, server, "timeout_s = 2\n")
        result = project.run(*RUNNER, "-j", "2", *REPORTS)
    assert result.returncode == 1, result.output
    assert "throttled" in result.output
    doc = report(project)
    assert statuses(doc) == ["throttled", "throttled"]
    assert doc["totals"]["throttled"] == 2 and doc["totals"]["failed"] == 0 and doc["totals"]["error"] == 0
    first = doc["features"][0]["scenarios"][0]["first_failure"]
    assert first["status"] == "throttled" and "429" in first["message"]
    assert doc["totals"]["rate_limits"][MODEL]["throttled"] >= 2
    markdown = (project.root / "r.md").read_text(encoding="utf-8")
    assert "2 throttled by the provider" in markdown and "## 🚦 Rate limits" in markdown and "### 🚦 Busy provider" in markdown
    html = (project.root / "r.html").read_text(encoding="utf-8")
    assert 'data-status="throttled"' in html
    (junit,) = (project.root / "junit").glob("*.xml")
    tree = ET.parse(junit)
    errors = tree.findall(".//testcase/error")
    assert len(errors) == 2 and not tree.findall(".//testcase/failure")
    assert all(e.get("type") == "ThrottledError" and "throttled" in (e.get("message") or "") for e in errors)
    assert processes_in(project.root) == []


def test_report_diff_never_calls_throttling_a_regression(project: Project, fake_llm: FakeOpenAI) -> None:
    project.feature("one.feature", conversations(1, turns=1))
    fake_llm.brain = answer_after(0)
    configure(project, fake_llm)
    assert project.run("-f", "behave_aitest.formatter:JSONFormatter", "-o", "base.json").returncode == 0
    with FakeOpenAI(brain=answer_after(0), quota=Quota(concurrent=0, retry_after_s=0.2)) as refusing:
        configure(project, refusing, "timeout_s = 1\n")
        assert project.run("-f", "behave_aitest.formatter:JSONFormatter", "-o", "new.json").returncode == 1
    diff = subprocess.run(
        [sys.executable, "-m", "behave_aitest.cli", "report", "diff", "base.json", "new.json"],
        cwd=project.root, capture_output=True, text=True, timeout=60,
    )
    assert diff.returncode == 0, diff.stdout + diff.stderr
    text = diff.stdout
    assert "0 regressions" in text and "throttled by the provider" in text


def test_max_model_concurrency_pins_the_limit(project: Project) -> None:
    project.feature("busy.feature", conversations(4, turns=1))
    with FakeOpenAI(brain=answer_after(0.3), quota=Quota(concurrent=4)) as server:
        configure(project, server)
        result = project.run(*RUNNER, "-j", "4", "-D", "aitest.max_model_concurrency=2", *REPORTS)
        refused, peak = server.refused, server.peak
    assert result.returncode == 0, result.output
    assert refused == 0 and peak == 2
    assert report(project)["totals"]["rate_limits"][MODEL]["limit"] == 2


def test_requests_per_minute_hold_across_workers(project: Project) -> None:
    """3 requests a minute, 4 one-call conversations on 4 workers, timeout_s = 3: three pass, the
    fourth cannot start within its minute and ends throttled, never sent to the provider."""
    project.feature("busy.feature", conversations(4, turns=1))
    with FakeOpenAI(brain=answer_after(0)) as server:
        configure(project, server, "timeout_s = 3\n")
        result = project.run(*RUNNER, "-j", "4", "-D", "aitest.requests_per_minute=3", *REPORTS)
        sent = len(server.requests)
    assert result.returncode == 1, result.output
    assert sorted(statuses(report(project))) == ["passed", "passed", "passed", "throttled"]
    assert sent == 3


def test_per_model_tables(project: Project) -> None:
    project.feature("busy.feature", conversations(3, turns=1))
    with FakeOpenAI(brain=answer_after(0)) as server:
        configure(project, server, f'timeout_s = 3\n[tool.behave_aitest.rate_limits."{MODEL}"]\nrequests_per_minute = 2\n')
        result = project.run(*REPORTS)
    assert sorted(statuses(report(project))) == ["passed", "passed", "throttled"], result.output


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("max_model_concurrency", "0"),
        ("requests_per_minute", "-5"),
        ("tokens_per_minute", "inf"),
        ("max_run_cost_usd", "nan"),
        ("max_run_cost_usd", "0"),
        ("requests_per_minute", "lots"),
    ],
)
def test_bad_values_stop_the_run_with_one_line(project: Project, fake_llm: FakeOpenAI, key: str, value: str) -> None:
    configure(project, fake_llm)
    project.feature("one.feature", conversations(1, turns=1))
    result = project.run("-D", f"aitest.{key}={value}")
    assert result.returncode != 0
    assert f"aitest.{key}" in result.output and "Traceback" not in result.output
    assert fake_llm.requests == []


def test_a_spend_cap_stops_starting_conversations(project: Project, fake_llm: FakeOpenAI) -> None:
    """Each call costs 0.01 USD (a configured price); the cap of 0.015 is passed after the
    second conversation: the rest are skipped with the reason and the run fails."""
    fake_llm.brain = lambda request: {"content": "fine", "usage": {"prompt_tokens": 10000, "completion_tokens": 0}}
    configure(
        project, fake_llm,
        f'max_run_cost_usd = 0.015\n[tool.behave_aitest.prices."{MODEL}"]\ninput_per_million = 1.0\noutput_per_million = 1.0\n',
    )
    project.feature("busy.feature", conversations(4, turns=1))
    result = project.run(*REPORTS)
    assert result.returncode == 1, result.output
    doc = report(project)
    assert statuses(doc) == ["passed", "passed", "skipped", "skipped"]
    assert "max_run_cost_usd" in result.output
    assert len(fake_llm.requests) == 2
    skipped = [s for s in doc["features"][0]["scenarios"] if s["status"] == "skipped"]
    assert all("max_run_cost_usd" in s["skip_reason"] for s in skipped)
    assert "## Skipped: the spend cap was reached (2)" in (project.root / "r.md").read_text(encoding="utf-8")


def test_a_spend_cap_holds_across_workers(project: Project, fake_llm: FakeOpenAI) -> None:
    """-j 2: the spend is shared by the workers; once it passes the cap no worker starts another
    conversation (those already running may finish), and the run fails."""
    fake_llm.brain = lambda request: {"content": "fine", "usage": {"prompt_tokens": 10000, "completion_tokens": 0}}
    configure(
        project, fake_llm,
        f'max_run_cost_usd = 0.015\n[tool.behave_aitest.prices."{MODEL}"]\ninput_per_million = 1.0\noutput_per_million = 1.0\n',
    )
    project.feature("busy.feature", conversations(6, turns=1))
    result = project.run(*RUNNER, "-j", "2", *REPORTS)
    assert result.returncode == 1, result.output
    found = statuses(report(project))
    assert found.count("skipped") >= 3 and found.count("passed") == len(fake_llm.requests) <= 3, found


def test_a_spend_cap_with_unknown_prices_says_it_cannot_be_enforced(project: Project, fake_llm: FakeOpenAI) -> None:
    fake_llm.brain = answer_after(0)
    configure(project, fake_llm, "max_run_cost_usd = 5\n")
    project.feature("one.feature", conversations(1, turns=1))
    result = project.run()
    assert result.returncode != 0
    assert "max_run_cost_usd" in result.output and "cannot be enforced" in result.output and MODEL in result.output
    assert fake_llm.requests == []


def test_a_judge_or_simulated_user_the_provider_keeps_refusing_is_throttled_not_an_error(project: Project) -> None:
    """The judge's and the simulated user's models are rate limited too: a judgement, or a
    simulated user's message, the provider keeps refusing until ``timeout_s`` makes its step and
    the scenario "throttled" in every report (JUnit ThrottledError, JSON, -j's console line),
    not an error of the agent (before: an error, after the judge's own 120 s)."""

    def brain(request: dict[str, Any]) -> dict[str, Any]:
        if any(word in str(request.get("model")) for word in ("judge", "user")):
            return {"status": 429, "message": "Rate limit reached", "headers": {"retry-after": "0.2"}}
        return {"content": "Hello! How can I help?"}

    project.feature("judged.feature", """Feature: Judged
  Scenario: A verdict the provider never gives
    When the user says "hello"
    Then the agent answered
    And the response satisfies "it is polite"

  @user_model:openai/fake-user
  Scenario: A simulated user the provider never answers
    When a simulated user talks to the agent for at most 2 turns:
      \"\"\"
      You want to know your balance.
      \"\"\"
""")
    with FakeOpenAI(brain=brain) as server:
        configure(project, server, 'timeout_s = 2\njudge_model = "openai/fake-judge"\n')
        result = project.run(*RUNNER, "-j", "2", *REPORTS)
    assert result.returncode == 1, result.output
    assert result.output.count("THROTTLED") == 2, result.output
    doc = report(project)
    assert statuses(doc) == ["throttled", "throttled"], result.output
    judged, simulated = (s["first_failure"] for s in doc["features"][0]["scenarios"])
    assert judged["status"] == "throttled" and judged["step"].startswith("And the response satisfies"), judged
    assert "throttled by the provider's rate limit" in judged["message"] and "fake-judge" in judged["message"], judged
    assert simulated["status"] == "throttled" and simulated["step"].startswith("When a simulated user"), simulated
    assert "throttled by the provider's rate limit" in simulated["message"] and "fake-user" in simulated["message"], simulated
    assert doc["totals"]["error"] == 0 and doc["totals"]["throttled"] == 2
    (junit,) = (project.root / "junit").glob("*.xml")
    errors = ET.parse(junit).findall(".//testcase/error")
    assert [e.get("type") for e in errors] == ["ThrottledError", "ThrottledError"], [e.attrib for e in errors]
