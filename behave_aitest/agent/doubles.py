"""Tool doubles: a scenario replaces what a tool answers ("returns", "fails") or delays it.

A double lives on the live conversation from the Given step that sets it to the end of that
scenario (in a ``@session`` the next scenario has the real tool again). The engine asks
:meth:`Doubles.find` before every call the model asks for: a "returns" or "fails" double
answers instead of the server, so the call never reaches it; a "delay" double sleeps and
then calls the real tool, the whole within the server's ``tool_timeout_s`` (and the turn's
``timeout_s``), exactly as a slow upstream would.

Pure rules and one small async helper; nothing here knows behave or starts a server.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import StepUsageError
from ..record.records import ToolOutcome
from .checks import ArgumentCheck, arguments_hold

RETURNS, FAILS, DELAY = "returns", "fails", "delay"
KINDS = (RETURNS, FAILS, DELAY)


@dataclass(frozen=True)
class Double:
    """One rule: for calls of ``server.tool`` (only those passing ``when``, if given), answer
    ``text`` (returns), answer ``text`` as an MCP error result (fails), or wait ``seconds``
    before the real call (delay)."""

    server: str
    tool: str
    kind: str  # RETURNS, FAILS or DELAY
    text: str = ""
    seconds: float = 0.0
    when: tuple[ArgumentCheck, ...] | None = None  # None: every call of the tool
    timeout_s: float = 60.0  # the server's tool_timeout_s, which a delay counts against

    def applies(self, server: str, tool: str, arguments: Mapping[str, Any]) -> bool:
        if (server, tool) != (self.server, self.tool):
            return False
        return self.when is None or arguments_hold(self.when, arguments)

    def describe(self) -> str:
        """How the double reads in messages and reports: ``returns "…"``, ``takes 30 s``."""
        if self.kind == DELAY:
            return f"takes {self.seconds:g} s"
        return f"{self.kind} {self.text!r}"


@dataclass
class Doubles:
    """The doubles in force in one conversation, in the order they were set."""

    rules: list[Double] = field(default_factory=list)

    def add(self, double: Double) -> None:
        self.rules.append(double)

    def clear(self) -> None:
        self.rules.clear()

    def find(self, server: str, tool: str, arguments: Mapping[str, Any]) -> Double | None:
        """The double for this call: a conditional double (``when called with:``) before an
        unconditional one, and among those the one set last, so a scenario can narrow or
        override an earlier rule."""
        candidates = [d for d in self.rules if d.applies(server, tool, arguments)]
        if not candidates:
            return None
        conditional = [d for d in candidates if d.when is not None]
        return (conditional or candidates)[-1]

    def __bool__(self) -> bool:
        return bool(self.rules)


def answer(double: Double) -> ToolOutcome:
    """What a "returns" or "fails" double answers (instantly: no server is asked)."""
    return ToolOutcome(double.text, double.kind == FAILS, 0.0)


async def delayed(double: Double, tool: str, call: Callable[[], Awaitable[ToolOutcome]]) -> ToolOutcome:
    """Wait ``double.seconds``, then ``call()`` the real tool; both within the server's
    ``tool_timeout_s``. A timeout gives the same error result the server connection gives."""
    import anyio

    started = time.perf_counter()
    try:
        with anyio.fail_after(double.timeout_s):
            await anyio.sleep(double.seconds)
            outcome = await call()
    except TimeoutError:
        return ToolOutcome(
            f"Tool {tool!r} did not answer within {double.timeout_s:g} s (tool_timeout_s).",
            True,
            time.perf_counter() - started,
        )
    return ToolOutcome(outcome.text, outcome.is_error, time.perf_counter() - started)


def parse_seconds(text: str) -> float:
    """``"30"``, ``"0.5"`` -> seconds; a ValueError for anything negative or not a number."""
    try:
        seconds = float(text)
    except ValueError:
        raise StepUsageError(f"{text!r} is not a number of seconds") from None
    if not (0 <= seconds < float("inf")):
        raise StepUsageError(f"{text!r} is not a number of seconds (0 or more)")
    return seconds


def tool_list(names: Sequence[str]) -> str:
    return ", ".join(names) if names else "none (the agent has no tools)"
