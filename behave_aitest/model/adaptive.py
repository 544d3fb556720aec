"""A provider's rate limit, found by the run itself: adaptive concurrency and per-minute windows.

Why: a provider with a quota (requests in flight, requests or tokens per minute) answers 429
above it, and the user rarely knows the numbers. A parallel run that sends what its workers
want loses conversations to those 429s. Here every real model call of a run (agent, judge,
simulated user, sampling; never a replayed one) goes through one limiter per model, shared by
every worker:

- **Concurrency, AIMD.** The limit starts generous (:data:`START_LIMIT`, or
  ``max_model_concurrency`` when that is set, which is then also the ceiling). A 429 *episode*
  cuts it once, multiplicatively, to :data:`DECREASE` × the calls that were in flight; the
  other 429s of the same episode (calls admitted before the cut) do not cut it again. After
  as many successes in a row as the limit (one "round"), and outside a cooldown, it grows by
  one, never above the ceiling.
- **The provider's word.** ``Retry-After`` (seconds or an HTTP date), ``retry-after-ms``, and
  ``x-ratelimit-remaining-*`` / ``x-ratelimit-reset-*`` (also on successful answers: a
  remaining count of 0 pauses new calls until the reset) set a pause that every worker
  honours before it sends the model's next call.
- **Per-minute windows.** ``requests_per_minute`` and ``tokens_per_minute``: a log of the last
  minute's calls (start time, tokens) decides when the next one may start.
- **Jitter on every wait**, so that the workers woken by one pause do not all call at once.
- **A throttled call waits and is sent again until the turn's own deadline**, not a fixed
  number of times: a 429 is the provider asking to wait, not an error of the agent. When the
  deadline comes first the call raises :class:`Throttled`, which the agent loop reports as
  the outcome "throttled" (5xx and connection errors keep their bounded retries there).

Across processes the state is one small JSON file per model, read and written under an
exclusive ``flock``, and a call in flight holds an ``flock`` on one slot file (the mechanism of
:mod:`behave_aitest.model.limits`): the kernel frees both when a process dies. Outside a
parallel run the folder is a temporary one of this process.

The algorithm is pure functions of :class:`ModelState` (:func:`on_throttled`,
:func:`on_success`, :func:`window_wait`, :func:`admit`) so that it can be tested without
a clock, a file or a model.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import dataclasses
import email.utils
import hashlib
import json
import math
import os
import random
import re
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .limits import SLOTS_ENV, try_lock

START_LIMIT = 20  # calls in flight before the provider has said anything
CEILING = 100  # the most calls in flight without max_model_concurrency
DECREASE = 0.8  # a 429 episode leaves this share of the calls that were in flight
BACKOFF_S = 1.0  # the first wait after a 429 that names no wait; doubles per 429 of the same call
MAX_BACKOFF_S = 30.0
MAX_PAUSE_S = 300.0  # a longer wait asked for is cut here (the turn's timeout_s cuts it anyway)
PROBE_ROUNDS = 8  # rounds of successes before the limit grows back to where a 429 episode began
COOLDOWN_S = 2.0  # no growth for this long after a pause ends
WINDOW_S = 60.0  # the "minute" of requests_per_minute and tokens_per_minute
POLL_S = 0.05  # how often a call waiting for a slot looks again (plus jitter)
MARGIN_S = 0.05  # give up this long before the deadline, so the turn's own timeout does not win


# --------------------------------------------------------------------------- settings and state


@dataclass(frozen=True)
class Limits:
    """What the configuration says for one model (None: not set)."""

    max_concurrency: int | None = None  # the ceiling; also where the limit starts
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    adaptive: bool = True  # False: the limit stays at max_concurrency (or none); 429s still wait

    @property
    def ceiling(self) -> int:
        return self.max_concurrency or CEILING

    @property
    def start(self) -> int:
        if not self.adaptive:
            return self.ceiling  # a fixed limit: max_concurrency, or (nearly) none
        return self.max_concurrency or min(START_LIMIT, CEILING)


@dataclass
class ModelState:
    """One model's shared state (the JSON file): the limit and what the run has seen so far."""

    limit: float
    ceiling: int
    generation: int = 0  # cuts so far: a 429 of a call admitted before the last cut is the same episode
    successes: int = 0  # successes since the limit last changed
    pause_until: float = 0.0  # epoch seconds: no call starts before (Retry-After, a reset)
    grow_after: float = 0.0  # epoch seconds: no growth before (the cooldown after a pause)
    throttled: int = 0  # 429 answers
    episodes: int = 0  # cuts
    lowest: int = 0  # the lowest limit the run has used (0: never cut)
    refused_at: int = 0  # the calls in flight when the last episode began: growing back there is a probe
    window: list[list[float]] = field(default_factory=list)  # [started_at, tokens] of the last minute's calls

    @classmethod
    def initial(cls, limits: Limits) -> ModelState:
        return cls(limit=float(limits.start), ceiling=limits.ceiling)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], limits: Limits) -> ModelState:
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in names})
        except TypeError:  # a file from another version: start again
            return cls.initial(limits)

    @property
    def slots(self) -> int:
        """Calls that may be in flight now."""
        return max(1, min(int(self.limit), self.ceiling))


def on_throttled(state: ModelState, now: float, generation: int, in_flight: int, pause_s: float | None, adaptive: bool = True) -> ModelState:
    """A 429 for a call admitted at ``generation``, with ``in_flight`` calls in flight (itself
    included); ``pause_s``: how long the provider asked every call to wait (None: it did not say).

    The first 429 of an episode (its call was admitted under the current limit) cuts the limit
    to :data:`DECREASE` × what was really in flight (the limit may be far above what the
    workers used); later 429s of the same episode only count.
    """
    new = dataclasses.replace(state, throttled=state.throttled + 1, successes=0)
    if adaptive and generation == state.generation:
        base = min(state.limit, float(max(in_flight, 1)))
        new.limit = float(max(1, math.floor(base * DECREASE)))
        new.generation = state.generation + 1
        new.episodes = state.episodes + 1
        new.lowest = int(new.limit) if not state.lowest else min(state.lowest, int(new.limit))
        new.refused_at = int(base)
    if pause_s is not None and pause_s > 0:
        new.pause_until = max(state.pause_until, now + pause_s)
    new.grow_after = max(state.grow_after, new.pause_until + COOLDOWN_S, now + COOLDOWN_S)
    return new


def on_success(state: ModelState, now: float, generation: int, pause_s: float | None = None, adaptive: bool = True) -> ModelState:
    """A call admitted at ``generation`` was answered; ``pause_s``: the answer's headers said no
    more calls are left before a reset that far away.

    One round of successes (as many as the limit) outside the cooldown grows the limit by one;
    growing back to where the last episode began takes :data:`PROBE_ROUNDS` rounds, because
    each such probe costs a 429 and the provider's pause for every worker.
    Successes of calls admitted before the last cut say nothing about the new limit.
    """
    new = dataclasses.replace(state)
    if pause_s is not None and pause_s > 0:
        new.pause_until = max(state.pause_until, now + pause_s)
    if not adaptive or generation != state.generation:
        return new
    new.successes = state.successes + 1
    rounds = PROBE_ROUNDS if state.refused_at and state.slots + 1 >= state.refused_at else 1
    if new.successes >= state.slots * rounds and now >= state.grow_after and state.limit < state.ceiling:
        new.limit = min(float(state.ceiling), math.floor(state.limit) + 1.0)
        new.successes = 0
    return new


def _recent(state: ModelState, now: float) -> list[list[float]]:
    return [entry for entry in state.window if entry[0] > now - WINDOW_S]


def window_wait(state: ModelState, now: float, limits: Limits, tokens: int) -> float:
    """Seconds until a call of ``tokens`` fits the per-minute windows (0: it fits now).

    A single call bigger than ``tokens_per_minute`` waits for an empty window and then goes:
    it could never fit otherwise."""
    recent = sorted(_recent(state, now))
    wait = 0.0
    rpm, tpm = limits.requests_per_minute, limits.tokens_per_minute
    if rpm is not None and len(recent) >= rpm:
        wait = max(wait, recent[len(recent) - rpm][0] + WINDOW_S - now)
    if tpm is not None and recent:
        used = sum(entry[1] for entry in recent)
        if used + tokens > tpm:
            # the oldest calls must leave the window until the rest leaves room
            for started, spent in recent:
                used -= spent
                if used + tokens <= tpm or used <= 0:
                    wait = max(wait, started + WINDOW_S - now)
                    break
    return max(wait, 0.0)


def admit(state: ModelState, now: float, limits: Limits, tokens: int) -> ModelState:
    """The state once a call of ``tokens`` started (the window keeps only what limits need)."""
    if limits.requests_per_minute is None and limits.tokens_per_minute is None:
        return state
    return dataclasses.replace(state, window=_recent(state, now) + [[now, float(tokens)]])


def spent(state: ModelState, started: float, tokens: int) -> ModelState:
    """Correct the estimate of the call that started at ``started`` with what it really used."""
    window = [[s, float(tokens)] if s == started else [s, t] for s, t in state.window]
    return dataclasses.replace(state, window=window)


# --------------------------------------------------------------------------- the provider's headers


@dataclass(frozen=True)
class Hints:
    """What a provider's answer said about its limits (None: not said)."""

    retry_after_s: float | None = None
    remaining_requests: int | None = None
    reset_requests_s: float | None = None
    remaining_tokens: int | None = None
    reset_tokens_s: float | None = None

    def pause_s(self) -> float | None:
        """How long every call should wait before the next one, from these hints alone."""
        waits = []
        if self.retry_after_s is not None:
            waits.append(self.retry_after_s)
        if self.remaining_requests == 0 and self.reset_requests_s is not None:
            waits.append(self.reset_requests_s)
        if self.remaining_tokens == 0 and self.reset_tokens_s is not None:
            waits.append(self.reset_tokens_s)
        return min(max(waits), MAX_PAUSE_S) if waits else None


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_duration(text: Any, now: float | None = None) -> float | None:
    """Seconds from a header value: ``"2"``, ``"1.5"``, OpenAI's ``"6m0s"`` / ``"20ms"``, an
    HTTP date or an RFC 3339 time (Anthropic's resets). None for anything else (``nan``, junk)."""
    if text is None:
        return None
    value = str(text).strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return min(max(seconds, 0.0), MAX_PAUSE_S) if math.isfinite(seconds) else (MAX_PAUSE_S if seconds > 0 else None)
    parts = _DURATION_PART.findall(value)
    if parts and "".join(n + u for n, u in parts) == value.replace(" ", ""):
        scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
        return min(sum(float(n) * scale[u] for n, u in parts), MAX_PAUSE_S)
    moment = _moment(value)
    if moment is not None:
        return min(max(moment - (time.time() if now is None else now), 0.0), MAX_PAUSE_S)
    return None


def _moment(value: str) -> float | None:
    """Epoch seconds of an HTTP date or an RFC 3339 time, or None."""
    try:
        parsed = email.utils.parsedate_to_datetime(value)
        if parsed is not None:
            return parsed.timestamp()
    except (TypeError, ValueError, IndexError):
        pass
    import datetime

    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


def _count(text: Any) -> int | None:
    try:
        number = int(float(str(text).strip()))
    except (TypeError, ValueError, OverflowError):
        return None
    return max(number, 0)


def parse_hints(headers: Mapping[str, Any] | None, now: float | None = None) -> Hints:
    """The rate-limit headers of one answer (names in any case; litellm's ``llm_provider-``
    prefix and Anthropic's ``anthropic-ratelimit-*`` names understood too)."""
    if not headers:
        return Hints()
    found: dict[str, Any] = {}
    for name, value in headers.items():
        key = str(name).lower()
        key = key.removeprefix("llm_provider-")
        if key.startswith("anthropic-ratelimit-"):  # anthropic-ratelimit-requests-remaining -> x-ratelimit-remaining-requests
            kind, _, what = key.removeprefix("anthropic-ratelimit-").rpartition("-")
            key = f"x-ratelimit-{what}-{kind}"
        found.setdefault(key, value)
    retry = None
    if "retry-after-ms" in found:
        ms = parse_duration(found["retry-after-ms"])
        retry = None if ms is None else min(ms / 1000.0, MAX_PAUSE_S)
    if retry is None and "retry-after" in found:
        retry = parse_duration(found["retry-after"], now)
    return Hints(
        retry_after_s=retry,
        remaining_requests=_count(found["x-ratelimit-remaining-requests"]) if "x-ratelimit-remaining-requests" in found else None,
        reset_requests_s=parse_duration(found.get("x-ratelimit-reset-requests"), now),
        remaining_tokens=_count(found["x-ratelimit-remaining-tokens"]) if "x-ratelimit-remaining-tokens" in found else None,
        reset_tokens_s=parse_duration(found.get("x-ratelimit-reset-tokens"), now),
    )


def error_headers(exc: BaseException) -> dict[str, Any]:
    """The provider's response headers carried by a litellm exception (empty when none)."""
    for headers in (getattr(exc, "litellm_response_headers", None), getattr(getattr(exc, "response", None), "headers", None)):
        try:
            if headers:
                return {str(k): v for k, v in dict(headers).items()}
        except (TypeError, ValueError, AttributeError):
            continue
    return {}


def is_throttled(exc: BaseException) -> bool:
    """A 429: litellm's RateLimitError, or any error whose status code is 429."""
    if any(c.__name__ == "RateLimitError" for c in type(exc).__mro__):
        return True
    return getattr(exc, "status_code", None) == 429


# --------------------------------------------------------------------------- waits


def jittered(wait: float, rng: random.Random | None = None) -> float:
    """``wait`` plus up to a quarter of it (at least 10 ms more): never less than asked, so a
    provider's Retry-After is honoured, and never the same instant for every waiting worker."""
    pick = (rng or random).random()
    return wait + pick * max(wait * 0.25, 0.01)


def backoff(attempt: int) -> float:
    """Our own wait after the ``attempt``-th 429 in a row of one call that named no wait."""
    return min(BACKOFF_S * (2 ** max(attempt - 1, 0)), MAX_BACKOFF_S)


def estimate_tokens(request: Mapping[str, Any]) -> int:
    """A call's tokens before it is sent: its messages' characters / 4, plus its max_tokens."""
    size = len(json.dumps(request.get("messages") or [], ensure_ascii=False, default=str))
    return size // 4 + 1 + int(request.get("max_tokens") or 0)


# --------------------------------------------------------------------------- what a turn saw


@dataclass
class Waits:
    """What the limiter did for the calls of one turn (or one judgement): kept by the agent loop
    so that a turn cut off while it waited is reported as throttled, not as a timeout."""

    throttled: int = 0  # 429 answers
    wait_s: float = 0.0  # time spent waiting for the limits (pauses, slots, windows)
    waiting: str | None = None  # what it is waiting for right now ("a slot", "the provider's pause", ...)
    limit: int | None = None  # the model's limit when the last call was admitted


WAITS: contextvars.ContextVar[Waits | None] = contextvars.ContextVar("behave_aitest_limiter_waits", default=None)
DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("behave_aitest_turn_deadline", default=None)


@contextlib.contextmanager
def turn_scope(deadline_monotonic: float) -> Iterator[Waits]:
    """Around one turn: its deadline (``time.monotonic()``) and what its calls waited for."""
    waits = Waits()
    tokens = (WAITS.set(waits), DEADLINE.set(deadline_monotonic))
    try:
        yield waits
    finally:
        WAITS.reset(tokens[0])
        DEADLINE.reset(tokens[1])


class Throttled(Exception):
    """The provider kept refusing (or the run's per-minute limits kept a call waiting) until the
    turn's deadline: the conversation could not finish for the provider's limit, not the agent's fault."""

    def __init__(self, message: str, throttled: int = 0, wait_s: float = 0.0) -> None:
        super().__init__(message)
        self.throttled = throttled
        self.wait_s = wait_s


@dataclass
class Usage:
    """One model's limiter use in a scenario (added up per model for the run totals)."""

    throttled: int = 0
    wait_s: float = 0.0
    limit: int | None = None  # the limit when the model was last called
    at: float = 0.0  # when (epoch seconds): the run's settled limit is the latest one

    def add(self, throttled: int, wait_s: float, limit: int | None) -> None:
        self.throttled += throttled
        self.wait_s += wait_s
        if limit is not None:
            self.limit, self.at = limit, time.time()


# --------------------------------------------------------------------------- the shared store


class _Store:
    """One model's state file and slot files, in the run's folder, under ``flock``."""

    def __init__(self, folder: Path, limits: Limits) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.limits = limits
        self._lock_path = folder / "state.lock"
        self._path = folder / "state.json"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        import fcntl

        fd = os.open(self._lock_path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing frees the lock

    def _read(self) -> ModelState:
        try:
            return ModelState.from_json(json.loads(self._path.read_text(encoding="utf-8")), self.limits)
        except (OSError, ValueError):
            return ModelState.initial(self.limits)

    def read(self) -> ModelState:
        with self._locked():
            return self._read()

    def update(self, change: Callable[[ModelState], ModelState]) -> tuple[ModelState, ModelState]:
        """Apply ``change`` atomically across processes; (before, after)."""
        with self._locked():
            before = self._read()
            after = change(before)
            if after != before:
                temporary = self._path.with_suffix(f".{os.getpid()}.tmp")
                temporary.write_text(json.dumps(dataclasses.asdict(after)), encoding="utf-8")
                os.replace(temporary, self._path)
            return before, after

    def try_slot(self, slots: int) -> int | None:
        """An exclusive lock on one of the first ``slots`` slot files (its fd), or None."""
        return try_lock(self.folder / f"slot-{index}" for index in range(slots))

    def in_flight(self) -> int:
        """Slot files locked right now (by any process, this one included)."""
        import fcntl

        busy = 0
        for path in self.folder.glob("slot-*"):
            try:
                fd = os.open(path, os.O_RDWR)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                busy += 1
            finally:
                os.close(fd)
        return busy


def _release(fd: int) -> None:
    os.close(fd)  # closing the descriptor frees its flock


_OWN_FOLDER: list[Path] = []


def _own_folder() -> Path:
    """This process's folder when no parallel runner made one for the run (removed at exit)."""
    if not _OWN_FOLDER:
        folder = Path(tempfile.mkdtemp(prefix="behave-aitest-limits-"))
        atexit.register(shutil.rmtree, folder, True)
        _OWN_FOLDER.append(folder)
    return _OWN_FOLDER[0]


def model_key(model: str, api_base: str | None = None) -> str:
    """Which limit a call counts against: the model at its endpoint (never the key itself)."""
    return f"{model}@{api_base}" if api_base else model


# --------------------------------------------------------------------------- the limiter


Send = Callable[..., Awaitable[Any]]


class AdaptiveLimiter:
    """The run's limits for every model; one instance per process, state shared through files."""

    def __init__(self, limits: Callable[[str], Limits], directory: Path | None = None, rng: random.Random | None = None) -> None:
        self._limits = limits
        self._directory = directory
        self._stores: dict[str, _Store] = {}
        self._rng = rng or random.Random()

    @classmethod
    def for_run(cls, limits: Callable[[str], Limits], alone: Path | None = None) -> AdaptiveLimiter:
        """The run's limiter: in the parallel runner's folder for the run (every worker), else in
        ``alone`` (a folder the caller removes, e.g. the runtime's own), else a temporary one."""
        folder = os.environ.get(SLOTS_ENV)
        return cls(limits, Path(folder) / "adaptive" if folder else alone)

    def store(self, key: str, model: str) -> _Store:
        store = self._stores.get(key)
        if store is None:
            directory = self._directory or _own_folder()
            store = _Store(directory / hashlib.sha256(key.encode("utf-8")).hexdigest()[:16], self._limits(model))
            self._stores[key] = store
        return store

    def state(self, model: str, api_base: str | None = None) -> ModelState:
        """The model's shared state now (for the report's totals and tests)."""
        return self.store(model_key(model, api_base), model).read()

    async def call(
        self, send: Send, request: dict[str, Any], *, model: str, timeout_s: float | None = None, usage: Usage | None = None
    ) -> Any:
        """``send(request, timeout_s=...)`` within the model's limits; a 429 waits and is sent
        again until the turn's deadline (then :class:`Throttled`). Other errors go up unchanged.

        The reply's ``input_tokens``/``output_tokens`` (when it has them) correct the window's
        estimate, and its ``headers`` (when it has them) are read for the provider's hints."""
        limits = self._limits(model)
        store = self.store(model_key(model, request.get("api_base")), model)
        waits = WAITS.get() or Waits()
        spent_here = {"throttled": 0, "wait_s": 0.0}
        try:
            return await self._call(send, request, model, timeout_s, limits, store, waits, spent_here)
        finally:
            waits.throttled += spent_here["throttled"]
            waits.wait_s += spent_here["wait_s"]
            if usage is not None:
                usage.add(int(spent_here["throttled"]), float(spent_here["wait_s"]), waits.limit)

    async def _call(
        self,
        send: Send,
        request: dict[str, Any],
        model: str,
        timeout_s: float | None,
        limits: Limits,
        store: _Store,
        waits: Waits,
        spent_here: dict[str, Any],
    ) -> Any:
        import anyio

        deadline = _deadline(timeout_s)
        tokens = estimate_tokens(request)
        refusals = 0  # 429s in a row for this call
        while True:
            try:
                fd, generation, started, waited = await self._admit(store, limits, tokens, deadline, waits)
            except Throttled as exc:
                spent_here["wait_s"] += exc.wait_s
                raise Throttled(
                    _gave_up(model, spent_here["throttled"], spent_here["wait_s"], getattr(exc, "reason", ""), getattr(exc, "next_in", None)),
                    throttled=spent_here["throttled"],
                    wait_s=spent_here["wait_s"],
                ) from None
            spent_here["wait_s"] += waited
            try:
                try:
                    reply = await send(request, timeout_s=timeout_s)
                except Exception as exc:
                    if not is_throttled(exc):
                        raise
                    hints = parse_hints(error_headers(exc))
                    in_flight = store.in_flight()
                    _, state = store.update(
                        lambda s: on_throttled(s, time.time(), generation, in_flight, hints.pause_s(), limits.adaptive)
                    )
                else:
                    hints = parse_hints(getattr(reply, "headers", None))
                    real = int(getattr(reply, "input_tokens", 0) or 0) + int(getattr(reply, "output_tokens", 0) or 0)
                    store.update(
                        lambda s: on_success(
                            spent(s, started, real) if real and s.window else s, time.time(), generation, hints.pause_s(), limits.adaptive
                        )
                    )
                    if hasattr(reply, "throttled"):
                        reply.throttled = int(spent_here["throttled"])  # counted in the call's attempts
                    return reply
            finally:
                _release(fd)
            refusals += 1
            spent_here["throttled"] += 1
            pause = hints.pause_s()
            wait = max(pause if pause is not None else backoff(refusals), state.pause_until - time.time())
            left = deadline - time.monotonic() - MARGIN_S
            if wait > left:
                raise Throttled(
                    _gave_up(model, spent_here["throttled"], spent_here["wait_s"], "the provider's pause after a 429", wait),
                    throttled=spent_here["throttled"],
                    wait_s=spent_here["wait_s"],
                )
            slept = min(jittered(wait, self._rng), max(left, 0.0))
            waits.waiting = "the provider's pause after a 429"
            began = time.monotonic()
            try:
                await anyio.sleep(slept)
            finally:
                waits.waiting = None
                spent_here["wait_s"] += time.monotonic() - began

    async def _admit(
        self, store: _Store, limits: Limits, tokens: int, deadline: float, waits: Waits
    ) -> tuple[int, int, float, float]:
        """Wait for the model's pause, its per-minute windows and a free slot: (slot fd, the
        limit's generation at admission, the start time in the window, seconds waited)."""
        import anyio

        began = time.monotonic()
        while True:
            reason = "a free slot"
            state = store.read()
            now = time.time()
            wait = max(state.pause_until - now, window_wait(state, now, limits, tokens))
            if wait <= 0:
                fd = store.try_slot(state.slots)
                if fd is not None and store.in_flight() > state.slots:  # calls admitted before a cut still run
                    _release(fd)
                    fd = None
                if fd is not None:
                    admitted: dict[str, Any] = {}

                    def take(s: ModelState) -> ModelState:
                        moment = time.time()
                        late = max(s.pause_until - moment, window_wait(s, moment, limits, tokens))
                        admitted["late"] = late
                        if late > 0:  # another worker took the room meanwhile
                            return s
                        admitted["generation"], admitted["at"] = s.generation, moment
                        return admit(s, moment, limits, tokens)

                    _, after = store.update(take)
                    if admitted["late"] <= 0:
                        waits.limit = after.slots
                        return fd, int(admitted["generation"]), float(admitted["at"]), time.monotonic() - began
                    _release(fd)
                    wait = admitted["late"]
                else:
                    wait = POLL_S
                    reason = f"a free slot (limit {state.slots} at once)"
            left = deadline - time.monotonic() - MARGIN_S
            if wait > POLL_S:
                reason = "the provider's pause" if state.pause_until > now else "the per-minute limits"
                if wait > left:
                    raise _waiting(reason, wait, time.monotonic() - began)
            elif left <= 0:
                raise _waiting(reason, None, time.monotonic() - began)
            waits.waiting = reason
            try:
                await anyio.sleep(jittered(min(wait, max(left, 0.0)), self._rng))
            finally:
                waits.waiting = None


def _deadline(timeout_s: float | None) -> float:
    """The turn's deadline (``time.monotonic()``), or this call's own when it is in no turn."""
    deadline = DEADLINE.get()
    if deadline is not None:
        return deadline
    return time.monotonic() + (timeout_s if timeout_s is not None else 600.0)


def _waiting(reason: str, next_in: float | None, waited: float) -> Throttled:
    """What :meth:`AdaptiveLimiter._admit` raises; :meth:`AdaptiveLimiter._call` words it."""
    exc = Throttled(f"still waiting for {reason}", wait_s=waited)
    exc.reason, exc.next_in = reason, next_in  # type: ignore[attr-defined]
    return exc


def _gave_up(model: str, refusals: int, waited: float, reason: str, next_in: float | None) -> str:
    """The message of a call the limits kept from the model until the turn's deadline."""
    if refusals:
        head = f"the provider kept refusing model {model!r} with 429 (rate limit): {refusals} refusal{'s' * (refusals != 1)}"
    else:
        head = f"model {model!r} could not be called"
    later = f"; the next call could start in {next_in:.1f} s" if next_in is not None else ""
    return (
        f"{head} before the turn's timeout_s ran out, {waited:.1f} s spent waiting for its rate limits "
        f"(last waiting for {reason or 'a free slot'}{later})."
    )
