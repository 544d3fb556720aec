"""Exceptions that carry a message written for the reader of a feature file.

A step written wrongly (a missing table or doc string, a bad ``±`` value, regex, glob or
number of seconds, a tool the agent does not have) is the user's mistake, not a bug: the
step errors with our one-paragraph message and no Python traceback (behave_aitest.reasons
tells the two apart by type). ``ValueError`` is its base, so code that parses values can
keep catching ``ValueError``.
"""

from __future__ import annotations


class StepUsageError(ValueError):
    """A step written wrongly in the feature file (a missing table or doc string, a bad pattern
    or amount, an unknown tool): a step error whose message says what to write instead."""
