"""Errors that read as reasons: a step error of ours shows our message, first and alone; a
genuine bug (in the plugin, or in the project's own step code) shows its message, then the
Python traceback.

Why this is needed: behave 1.3.3's ``Step.run`` keeps only the message of an
``AssertionError``, but for any other exception it stores ``traceback.format_exc()`` as the
step's ``error_message``: ~11 lines of ``behave/model.py … matchers.py …`` frames before the
reason ("replay: model call 1 … matches no recorded request …", "MCP server 'bank' failed to
start …"). It assigns that text after the ``after_step`` hook, right before it calls each
formatter's ``result(step)``, so no hook can correct it. :class:`ReasonFirst` is a formatter
that behave calls first (it is put at the front of the runner's formatter list) and rewrites
``step.error_message`` there; every formatter, behave's JUnit reporter, the summary and our
reports then read the rewritten text. The exception itself (``step.exception``), its type and
the step's status (error, not failed) are left as they are.
"""

from __future__ import annotations

import io
import traceback
from pathlib import Path
from types import TracebackType
from typing import Any

# The attribute the step decorators (steps/base.py) put on the exception they raise: True for
# a reason of ours, False for an unexpected exception (a bug).
MARK = "aitest_reason"

# Our exception types that are bugs, not reasons: the decorators' wrapper for an exception
# whose type could not carry the redacted message.
_NOT_REASONS = {"StepError"}

_BEHAVE_DIR = None  # set on first use: behave's package folder (its frames are left out)


def is_reason(exc: BaseException | None) -> bool:
    """Whether ``exc`` is one of our own errors with a message written for the reader (agent,
    model, server, cassette, judge, budget, config, a step used wrongly), not a bug.

    The step decorators decide it for what they raise (:data:`MARK`); otherwise the type
    decides: an exception class defined in behave-aitest is raised on purpose with a message;
    a built-in one (``KeyError``, ``TypeError`` ...) is a bug."""
    if exc is None:
        return False
    marked = getattr(exc, MARK, None)
    if isinstance(marked, bool):
        return marked
    kind = type(exc)
    return kind.__module__.startswith("behave_aitest.") and kind.__name__ not in _NOT_REASONS


def _behave_dir() -> str:
    global _BEHAVE_DIR
    if _BEHAVE_DIR is None:
        import behave

        _BEHAVE_DIR = str(Path(behave.__file__).resolve().parent)
    return _BEHAVE_DIR


def _own_frames(tb: TracebackType | None) -> list[str]:
    """The traceback's frames without behave's own (model.py, matchers.py ...) and without
    our step decorators' wrapper: what is left is the code that raised."""
    behave_dir = _behave_dir()
    kept = []
    for frame, line in traceback.walk_tb(tb):
        filename = str(Path(frame.f_code.co_filename).resolve())
        if filename.startswith(behave_dir + "/"):
            continue
        if frame.f_code.co_name == "run" and filename.endswith(str(Path("steps", "base.py"))):
            continue
        kept.append((frame, line))
    return traceback.StackSummary.extract(iter(kept)).format()


def step_message(step: Any) -> str | None:
    """The text ``step.error_message`` should hold for a step error, or None to keep behave's.

    A reason: its message alone. A bug: ``Type: message``, then the traceback (behave's
    frames left out). Failed steps (``AssertionError``) and undefined/pending steps keep
    behave's text, which is already the message alone."""
    exc = getattr(step, "exception", None)
    status = getattr(getattr(step, "status", None), "name", None)
    if exc is None or status != "error" or isinstance(exc, (AssertionError, KeyboardInterrupt)):
        return None
    text = str(exc).strip()
    if is_reason(exc):
        return text or type(exc).__name__
    head = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    frames = _own_frames(getattr(step, "exc_traceback", None) or exc.__traceback__)
    if not frames:
        return head
    return f"{head}\n\nTraceback (most recent call last), an unexpected error:\n{''.join(frames).rstrip()}\n{head}"


def _formatter_base() -> type:
    from behave.formatter.base import Formatter

    return Formatter


class _Sink:
    """A stream opener for a formatter that writes nothing."""

    name = None

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def open(self) -> Any:
        return self.stream

    def close(self) -> None:
        pass


def undefined_message(step: Any, registry: Any) -> str:
    """What an undefined step says (behave gives it no message, so reports showed none): that
    it is undefined, the nearest step of the runner's catalogue, and a snippet to define it."""
    import difflib

    try:
        patterns = [str(d.pattern) for definitions in registry.steps.values() for d in definitions]
    except Exception:  # no registry, or another layout: no suggestion, the rest still helps
        patterns = []
    close = difflib.get_close_matches(str(step.name), patterns, n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}? (behave --steps-catalog lists every step.)" if close else " behave --steps-catalog lists every step."
    keyword = str(getattr(step, "step_type", "") or "step").lower()
    snippet = f"@{keyword}({str(step.name)!r})\ndef step_impl(context):\n    raise NotImplementedError"
    return f"Undefined step: no step definition matches {f'{step.keyword} {step.name}'!r}.{hint} To define it:\n{snippet}"


def _make_formatter(config: Any, registry: Any = None) -> Any:
    class ReasonFirst(_formatter_base()):  # type: ignore[misc]
        """The first formatter behave calls: puts the reason first in a step error's message."""

        name = "aitest-reason-first"
        description = "behave-aitest: a step error's reason first, a traceback only for a bug"

        def result(self, step: Any) -> None:
            text = step_message(step)
            if text is not None:
                step.error_message = text
            elif getattr(getattr(step, "status", None), "name", "") == "undefined" and not getattr(step, "error_message", None):
                step.error_message = undefined_message(step, registry)

        def close(self) -> None:
            pass

    return ReasonFirst(_Sink(), config)


def install(runner: Any) -> None:
    """Put :class:`ReasonFirst` at the front of ``runner.formatters`` (once). Called by
    ``before_all`` and, for a project whose hooks are missing, by the first step error."""
    formatters = getattr(runner, "formatters", None)
    if not isinstance(formatters, list):
        return
    if any(getattr(f, "name", None) == "aitest-reason-first" for f in formatters):
        return
    formatters.insert(0, _make_formatter(getattr(runner, "config", None), getattr(runner, "step_registry", None)))
