"""The adaptive limiter (behave_aitest.model.adaptive) driving real litellm calls over HTTP to the
project's fake provider with a quota: it finds the quota, honours the headers, gives up as
Throttled at the deadline, and its state is shared through files like the workers share it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from behave_aitest.model import adaptive, llm
from behave_aitest.model.adaptive import AdaptiveLimiter, Limits, Throttled
from behave_aitest.model.fakellm import FakeOpenAI, Quota


def _request(server: FakeOpenAI, text: str = "hello") -> dict[str, Any]:
    return {"model": "openai/fake-model", "api_base": server.base_url, "api_key": "sk-fake", "messages": [{"role": "user", "content": text}]}


def _calls(limiter: AdaptiveLimiter, server: FakeOpenAI, count: int, *, timeout_s: float = 60.0) -> list[Any]:
    results: list[Any] = [None] * count

    async def one(i: int) -> None:
        try:
            results[i] = await limiter.call(llm.complete, _request(server, f"hello {i}"), model="openai/fake-model", timeout_s=timeout_s)
        except Exception as exc:  # noqa: BLE001 - the test looks at what each call ended with
            results[i] = exc

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for i in range(count):
                group.start_soon(one, i)

    anyio.run(main)
    return results


def test_twelve_calls_at_once_against_a_quota_of_four_all_succeed(tmp_path: Path) -> None:
    quota = Quota(concurrent=4, retry_after_s=0.2)
    with FakeOpenAI(brain=lambda r: {"content": "fine", "delay": 0.3}, quota=quota) as server:
        limiter = AdaptiveLimiter(lambda model: Limits(), tmp_path)
        results = _calls(limiter, server, 12)
        state = limiter.state("openai/fake-model", server.base_url)
    assert all(isinstance(r, llm.ModelReply) for r in results), results
    assert server.refused > 0  # it had to find the quota...
    assert state.throttled == server.refused and state.episodes >= 1
    assert state.slots < 12  # ...and came down towards it


def test_max_concurrency_pins_the_limit_and_no_429_follows(tmp_path: Path) -> None:
    with FakeOpenAI(brain=lambda r: {"content": "fine", "delay": 0.1}, quota=Quota(concurrent=2)) as server:
        limiter = AdaptiveLimiter(lambda model: Limits(max_concurrency=2), tmp_path)
        results = _calls(limiter, server, 6)
    assert all(isinstance(r, llm.ModelReply) for r in results), results
    assert server.refused == 0 and server.peak == 2


@pytest.mark.parametrize("headers", ["none", "retry-after-ms", "ratelimit"])
def test_the_backoff_converges_with_and_without_headers(tmp_path: Path, headers: str) -> None:
    quota = Quota(concurrent=2, retry_after_s=0.1, headers=headers)
    with FakeOpenAI(brain=lambda r: {"content": "fine", "delay": 0.1}, quota=quota) as server:
        limiter = AdaptiveLimiter(lambda model: Limits(), tmp_path)
        results = _calls(limiter, server, 6)
    assert all(isinstance(r, llm.ModelReply) for r in results), results


def test_retry_after_is_honoured_by_every_call(tmp_path: Path) -> None:
    """A 429 asking for 1 s: no request reaches the provider again before that second is over."""
    arrivals: list[float] = []
    replies = iter([{"status": 429, "message": "slow down", "headers": {"retry-after": "1"}}])

    def brain(request: dict[str, Any]) -> dict[str, Any]:
        arrivals.append(time.monotonic())
        return next(replies, {"content": "fine"})

    with FakeOpenAI(brain=brain) as server:
        limiter = AdaptiveLimiter(lambda model: Limits(), tmp_path)
        results = _calls(limiter, server, 1)
        later = _calls(limiter, server, 1)
    assert isinstance(results[0], llm.ModelReply) and isinstance(later[0], llm.ModelReply)
    assert arrivals[1] - arrivals[0] >= 1.0


def test_a_provider_that_never_stops_refusing_ends_throttled_at_the_deadline(tmp_path: Path) -> None:
    with FakeOpenAI(brain=lambda r: {"content": "never"}, quota=Quota(concurrent=0, retry_after_s=0.2)) as server:
        limiter = AdaptiveLimiter(lambda model: Limits(), tmp_path)
        waits = adaptive.Waits()
        llm.litellm_module()  # imported before the clock starts (seconds on a busy machine)
        started = time.monotonic()

        async def main() -> Any:
            with adaptive.turn_scope(time.monotonic() + 2.0) as scope:
                try:
                    return await limiter.call(llm.complete, _request(server), model="openai/fake-model", timeout_s=2.0)
                except Throttled as exc:
                    waits.throttled, waits.wait_s = scope.throttled, scope.wait_s
                    return exc

        outcome = anyio.run(main)
    assert isinstance(outcome, Throttled), outcome
    assert "kept refusing model 'openai/fake-model' with 429" in str(outcome), outcome
    assert outcome.throttled == server.refused >= 1
    assert waits.throttled == outcome.throttled and waits.wait_s > 0
    assert time.monotonic() - started < 10  # it ended (the deadline was 2 s)


def test_a_requests_per_minute_limit_holds_a_call_it_cannot_fit(tmp_path: Path) -> None:
    """3 requests a minute: the 4th call of the minute cannot start before its deadline, so it
    ends throttled at once, never sent (the provider would have refused it)."""
    with FakeOpenAI(brain=lambda r: {"content": "fine"}) as server:
        limiter = AdaptiveLimiter(lambda model: Limits(requests_per_minute=3), tmp_path)
        results = _calls(limiter, server, 4, timeout_s=5.0)
        sent = len(server.requests)
    assert sum(isinstance(r, llm.ModelReply) for r in results) == 3
    (held,) = [r for r in results if isinstance(r, Throttled)]
    assert "per-minute" in str(held)
    assert sent == 3


def test_two_limiters_on_one_folder_share_the_state(tmp_path: Path) -> None:
    """Workers are processes with their own limiter: the folder is what they share."""
    with FakeOpenAI(brain=lambda r: {"content": "fine", "delay": 0.2}, quota=Quota(concurrent=1, retry_after_s=0.1)) as server:
        first, second = AdaptiveLimiter(lambda m: Limits(), tmp_path), AdaptiveLimiter(lambda m: Limits(), tmp_path)
        _calls(first, server, 4)
        assert second.state("openai/fake-model", server.base_url).throttled == first.state("openai/fake-model", server.base_url).throttled > 0
        refused = server.refused
        _calls(second, server, 3)  # starts from the limit the first one found
        assert server.refused - refused <= 1
