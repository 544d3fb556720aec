"""Exceptions that carry a message written for the reader of a feature file.

A step written wrongly (a missing table or doc string, a bad ``±`` value, regex, glob or
number of seconds, a tool the agent does not have) is the user's mistake, not a bug: the
step errors with our one-paragraph message and no Python traceback (behave_aitest.run.reasons
tells the two apart by type). ``ValueError`` is its base, so code that parses values can
keep catching ``ValueError``.

The other exceptions here are raised by several layers (the agent loop, the MCP client, the
cassettes), so they live at the bottom of the house, where each of them can import them.
"""

from __future__ import annotations


class StepUsageError(ValueError):
    """A step written wrongly in the feature file (a missing table or doc string, a bad pattern
    or amount, an unknown tool): a step error whose message says what to write instead."""


class TurnFailure(Exception):
    """A turn could not finish; ``kind`` is "max_turns", "timeout", "model" or "server".

    Raised inside the agent loop and by what it calls (a cassette miss, a server that died),
    so it lives here, below all of them."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class ServerError(Exception):
    """An MCP server could not be started, or died; carries the tail of its stderr."""
