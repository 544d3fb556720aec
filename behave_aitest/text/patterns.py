"""Regular expressions matched against untrusted text, with a time bound.

The ``matches`` checks, the scripted model's rules and an MCP server's elicitation ``pattern``
all search text the project does not control (an agent's answer, a tool's result, a user
message). Python's ``re`` backtracks without end on a pattern such as ``^(\\w+\\s?)*$`` and an
unlucky text, and it holds the interpreter lock while it does: no other thread runs, no signal
handler runs, ``timeout_s`` and Ctrl-C are powerless (issue 25, H3). The ``regex`` engine (a
dependency of litellm already) accepts the same syntax, releases the lock
(``concurrent=True``) and stops at a ``timeout``: every search of untrusted text goes through
:class:`Pattern` here.

Only ``regex`` is imported, lazily (a pattern is compiled only when one is used).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

MATCH_TIME_S = 1.0  # one search; a sane pattern takes microseconds on any answer
FLAGS = re.IGNORECASE | re.DOTALL  # what the steps and the scripted rules have always used


class PatternError(ValueError):
    """Not a valid regular expression (the message says why)."""


class PatternTimeout(ValueError):
    """A search that could not be decided within its time bound (the message names the pattern)."""


def _timeout(pattern: str, time_s: float) -> PatternTimeout:
    shown = pattern if len(pattern) <= 80 else pattern[:80] + "..."
    return PatternTimeout(
        f"the pattern {shown!r} could not be matched within {time_s:g} s (it backtracks without end on this "
        "text, e.g. a repetition inside a repetition like (\\w+\\s?)*): write it without nested repetition"
    )


@dataclass(frozen=True)
class Pattern:
    """A compiled pattern whose searches end within ``time_s``."""

    pattern: str
    compiled: Any  # regex.Pattern
    time_s: float = MATCH_TIME_S

    def search(self, text: str, time_s: float | None = None) -> Any:
        """The first match in ``text`` (a ``regex`` match, used like ``re``'s) or None;
        :class:`PatternTimeout` past the bound."""
        bound = self.time_s if time_s is None else time_s
        if bound <= 0:
            raise _timeout(self.pattern, self.time_s)
        try:
            return self.compiled.search(text, timeout=bound, concurrent=True)
        except TimeoutError:
            raise _timeout(self.pattern, bound) from None


def compile_pattern(pattern: str, flags: int = FLAGS, time_s: float = MATCH_TIME_S) -> Pattern:
    """``pattern`` compiled by the ``regex`` engine (``re``'s syntax); :class:`PatternError`
    when it is not a valid expression."""
    import regex

    try:
        compiled = regex.compile(pattern, _regex_flags(regex, flags))
    except (regex.error, TypeError, ValueError) as exc:
        raise PatternError(str(exc)) from None
    return Pattern(pattern, compiled, time_s)


def _regex_flags(regex: Any, flags: int) -> int:
    value = 0
    for name in ("IGNORECASE", "DOTALL", "MULTILINE", "VERBOSE", "ASCII"):
        if flags & getattr(re, name):
            value |= getattr(regex, name)
    return value
