"""The report: one document, several renderings.

``schema`` names the document's version and outcomes; ``document`` builds it from behave's model
and the records; ``stats`` adds up its numbers (totals, per model, the matrix); ``store`` writes,
reads and checks a JSON report; ``merge`` joins shards; ``render`` turns a document into HTML
(``templates/``) and Markdown; ``diff`` compares a run with a baseline. The behave formatters that
write them are ``behave_aitest.formatter``. ``from behave_aitest import report`` is the document's
public face (``report.build_document``, ``report.load``, ``report.merge`` ...).

May import every lower package, through ``run``. Never ``parallel`` or ``cli``.
"""

from __future__ import annotations

from .document import (
    CLIPPED_KEYS,
    MCP_CALL_KEYS,
    build_document,
    clip_texts,
    feature_dict,
    mcp_extras,
    scenario_dict,
    simulation_dict,
    tool_call_dict,
    turn_dict,
    versions,
)
from .merge import merge
from .schema import (
    DEFAULT_MAX_TEXT,
    OUTCOMES,
    SCHEMA,
    SCHEMA_VERSION,
    TOP_LEVEL,
    Doc,
    ReportError,
    iso,
    outcome,
)
from .stats import add_stats, base_title, empty_stats, matrix, summarize, turn_stats
from .store import dumps, load, shape_problem

__all__ = [
    "CLIPPED_KEYS",
    "DEFAULT_MAX_TEXT",
    "Doc",
    "MCP_CALL_KEYS",
    "OUTCOMES",
    "ReportError",
    "SCHEMA",
    "SCHEMA_VERSION",
    "TOP_LEVEL",
    "add_stats",
    "base_title",
    "build_document",
    "clip_texts",
    "dumps",
    "empty_stats",
    "feature_dict",
    "iso",
    "load",
    "matrix",
    "mcp_extras",
    "merge",
    "outcome",
    "scenario_dict",
    "shape_problem",
    "simulation_dict",
    "summarize",
    "tool_call_dict",
    "turn_dict",
    "turn_stats",
    "versions",
]
