"""The report document's schema: its name and version, the outcomes a scenario can have, the
error a report that cannot be read raises, and the time format (docs/report.md).
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

SCHEMA = "behave-aitest-report"
SCHEMA_VERSION = 1
DEFAULT_MAX_TEXT = 20_000

Doc = dict[str, Any]

# "throttled": could not finish because the provider kept refusing (429) until timeout_s: behave
# calls it an error; the report keeps it apart from the agent's failures (docs/rate-limits.md)
OUTCOMES = ("passed", "failed", "error", "throttled", "skipped", "untested")
TOP_LEVEL = ("schema", "schema_version", "title", "generated_at", "partial", "partial_reasons", "totals", "models", "runs", "features")
_FAILED = ("failed", "error", "throttled")


class ReportError(Exception):
    """A report file that cannot be read or merged, worded for the person running the CLI."""


# --------------------------------------------------------------------------- small helpers


def outcome(status: Any) -> str:
    """behave's status as one of :data:`OUTCOMES` (hook_error, undefined, pending... are errors)."""
    name = getattr(status, "name", None) or str(status or "untested")
    if name in ("passed", "failed", "skipped", "untested"):
        return name
    return "error"


def iso(epoch: float | None) -> str | None:
    if not epoch:
        return None
    return _dt.datetime.fromtimestamp(epoch, _dt.timezone.utc).isoformat(timespec="seconds")


def _epoch(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return _dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


# Keys whose values hold model, tool or user text (or errors quoting it), which can be huge.
