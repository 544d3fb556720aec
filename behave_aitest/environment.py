"""Ready-made hooks: ``from behave_aitest.environment import *`` is a whole features/environment.py.

Projects with hooks of their own call the functions of :mod:`behave_aitest.hooks`
from them instead (see that module's docstring).

Each hook here imports :mod:`behave_aitest.hooks` (and with it the config, the runtime and
the engine) on its first call, not when behave loads this file: ``behave --dry-run`` and
``--steps-catalog`` run no hooks and so never pay for them (``python -m bench``, item 4).
"""

from __future__ import annotations

from typing import Any


def before_all(context: Any) -> None:
    """Load and check the config and the feature files; start the run's event loop."""
    from .run import hooks

    hooks.before_all(context)


def after_all(context: Any) -> None:
    """Stop everything still running; fail the run when a model's pass rate is too low."""
    from .run import hooks

    hooks.after_all(context)


def before_feature(context: Any, feature: Any) -> None:
    """Begin the feature (its session, for ``@session``)."""
    from .run import hooks

    hooks.before_feature(context, feature)


def after_feature(context: Any, feature: Any) -> None:
    """Stop the servers of the feature's session and of ``scope = "feature"``."""
    from .run import hooks

    hooks.after_feature(context, feature)


def before_scenario(context: Any, scenario: Any) -> None:
    """Start a new conversation (or continue the feature's session)."""
    from .run import hooks

    hooks.before_scenario(context, scenario)


def after_scenario(context: Any, scenario: Any) -> None:
    """End the scenario's conversation and stop its servers (unless it is part of a session)."""
    from .run import hooks

    hooks.after_scenario(context, scenario)


def before_step(context: Any, step: Any) -> None:
    """Remember the running step, so a turn can be recorded on it."""
    from .run import hooks

    hooks.before_step(context, step)


__all__ = [
    "before_all",
    "after_all",
    "before_feature",
    "after_feature",
    "before_scenario",
    "after_scenario",
    "before_step",
]
