"""The adaptive limiter's algorithm (behave_aitest.model.adaptive): pure functions of its state,
no clock, no file, no model; and the fake provider's quotas it is tested against."""

from __future__ import annotations

import random

import pytest

from behave_aitest.model import adaptive
from behave_aitest.model.adaptive import Limits, ModelState, on_success, on_throttled, parse_duration, parse_hints, window_wait


def test_a_429_episode_cuts_once_to_a_share_of_what_was_in_flight() -> None:
    state = ModelState.initial(Limits())
    assert state.slots == adaptive.START_LIMIT
    cut = on_throttled(state, now=100.0, generation=0, in_flight=12, pause_s=1.0)
    assert cut.slots == 9  # 0.8 x the 12 really in flight, not 0.8 x the generous start
    assert (cut.generation, cut.episodes, cut.throttled) == (1, 1, 1)
    assert cut.pause_until == 101.0
    # the other 429s of the same burst were admitted under the old limit: counted, no new cut
    again = on_throttled(cut, now=100.1, generation=0, in_flight=11, pause_s=1.0)
    assert again.slots == 9 and again.episodes == 1 and again.throttled == 2
    # a 429 of a call admitted under the new limit is a new episode
    later = on_throttled(again, now=103.0, generation=1, in_flight=9, pause_s=None)
    assert later.slots == 7 and later.episodes == 2


def test_the_limit_never_falls_below_one() -> None:
    state = ModelState.initial(Limits(max_concurrency=1))
    for generation in range(5):
        state = on_throttled(state, now=float(generation), generation=generation, in_flight=1, pause_s=None)
    assert state.slots == 1 and state.lowest == 1


def test_growth_is_additive_after_a_round_of_successes_and_stops_at_the_ceiling() -> None:
    state = ModelState(limit=3.0, ceiling=5)
    for _ in range(2):
        state = on_success(state, now=50.0, generation=0)
    assert state.slots == 3  # not a whole round yet
    state = on_success(state, now=50.0, generation=0)
    assert state.slots == 4 and state.successes == 0
    for _ in range(40):
        state = on_success(state, now=50.0, generation=0)
    assert state.slots == 5  # max_model_concurrency is the ceiling


def test_no_growth_during_the_cooldown_nor_from_calls_admitted_before_a_cut() -> None:
    state = on_throttled(ModelState(limit=5.0, ceiling=10), now=10.0, generation=0, in_flight=5, pause_s=2.0)
    assert state.slots == 4
    for _ in range(8):
        state = on_success(state, now=11.0, generation=1)  # within pause + cooldown
    assert state.slots == 4
    stale = on_success(state, now=100.0, generation=0)
    assert stale.successes == state.successes  # a call of the old limit says nothing of the new one
    needed = 0
    while state.slots == 4:  # back to 5, where the 429s began: a probe, so rarer than a round
        state = on_success(state, now=100.0, generation=1)
        needed += 1
    assert state.slots == 5 and needed + 8 == 4 * adaptive.PROBE_ROUNDS  # the 8 of the cooldown counted


def test_aimd_settles_at_the_quota() -> None:
    """12 workers against a quota of 4: the limit comes down to the quota and oscillates
    just above it (one probe then one cut), never back to the workers' number."""
    state, now, seen = ModelState.initial(Limits()), 0.0, []
    for _ in range(200):
        now += 1.0
        in_flight = min(state.slots, 12)
        if in_flight > 4:
            state = on_throttled(state, now, state.generation, in_flight, pause_s=1.0)
        else:
            for _ in range(in_flight):
                state = on_success(state, now, state.generation)
        seen.append(state.slots)
    assert set(seen[-50:]) <= {4, 5}, seen[-50:]
    assert seen[-50:].count(5) <= 50 // adaptive.PROBE_ROUNDS  # probes above the quota are rare


def test_not_adaptive_keeps_the_limit_but_still_pauses() -> None:
    limits = Limits(max_concurrency=3, adaptive=False)
    state = on_throttled(ModelState.initial(limits), now=1.0, generation=0, in_flight=3, pause_s=2.0, adaptive=False)
    assert state.slots == 3 and state.pause_until == 3.0 and state.throttled == 1
    assert Limits(adaptive=False).start == adaptive.CEILING


def test_requests_per_minute_window() -> None:
    limits = Limits(requests_per_minute=2)
    state = ModelState.initial(limits)
    assert window_wait(state, 0.0, limits, 10) == 0
    state = adaptive.admit(adaptive.admit(state, 0.0, limits, 10), 5.0, limits, 10)
    assert window_wait(state, 6.0, limits, 10) == pytest.approx(54.0)  # the first call leaves the window at 60
    assert window_wait(state, 60.5, limits, 10) == 0


def test_tokens_per_minute_window() -> None:
    limits = Limits(tokens_per_minute=100)
    state = ModelState.initial(limits)
    state = adaptive.admit(state, 0.0, limits, 60)
    state = adaptive.admit(state, 10.0, limits, 30)
    assert window_wait(state, 11.0, limits, 10) == 0  # 100 fits
    assert window_wait(state, 11.0, limits, 20) == pytest.approx(49.0)  # the first 60 must leave
    assert window_wait(state, 11.0, limits, 500) == pytest.approx(59.0)  # bigger than a minute's: an empty window
    corrected = adaptive.spent(state, 0.0, 5)
    assert window_wait(corrected, 11.0, limits, 20) == 0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2", 2.0), ("1.5", 1.5), ("20ms", 0.02), ("6m0s", 300.0), ("1m30s", 90.0), ("-3", 0.0), ("nan", None), ("soon", None), ("", None), ("inf", 300.0)],
)
def test_durations(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_http_date_and_rfc3339_resets() -> None:
    assert parse_duration("Thu, 01 Jan 1970 00:00:10 GMT", now=4.0) == pytest.approx(6.0)
    assert parse_duration("1970-01-01T00:00:10Z", now=4.0) == pytest.approx(6.0)


def test_hints_from_headers() -> None:
    assert parse_hints({"Retry-After": "3"}).pause_s() == 3.0
    assert parse_hints({"retry-after-ms": "250", "retry-after": "9"}).pause_s() == 0.25  # the finer one wins
    spent = parse_hints({"llm_provider-x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1.5s"})
    assert spent.pause_s() == 1.5
    assert parse_hints({"x-ratelimit-remaining-requests": "7", "x-ratelimit-reset-requests": "1.5s"}).pause_s() is None
    tokens = parse_hints({"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "20ms"})
    assert tokens.pause_s() == pytest.approx(0.02)
    anthropic = parse_hints({"anthropic-ratelimit-requests-remaining": "0", "anthropic-ratelimit-requests-reset": "1970-01-01T00:00:10Z"}, now=8.0)
    assert anthropic.remaining_requests == 0 and anthropic.pause_s() == pytest.approx(2.0)
    assert parse_hints({}).pause_s() is None and parse_hints(None).pause_s() is None
    assert parse_hints({"retry-after": "nan"}).pause_s() is None


def test_every_wait_has_jitter_and_never_less_than_asked() -> None:
    rng = random.Random(7)
    waits = [adaptive.jittered(1.0, rng) for _ in range(50)]
    assert all(1.0 <= w <= 1.25 for w in waits)
    assert len(set(waits)) == 50
    assert adaptive.jittered(0.0, rng) > 0.0
    assert [adaptive.backoff(n) for n in (1, 2, 3)] == [1.0, 2.0, 4.0] and adaptive.backoff(20) == adaptive.MAX_BACKOFF_S


def test_a_429_is_recognised_by_class_or_status() -> None:
    class RateLimitError(Exception):
        pass

    class Other(Exception):
        status_code = 429

    assert adaptive.is_throttled(RateLimitError()) and adaptive.is_throttled(Other())
    assert not adaptive.is_throttled(ValueError("429"))
