"""Elicitation: a server asks the user a question; the scenario answers on the user's behalf.

The scenario says beforehand how the user will answer (accept with values, decline,
cancel); when it says nothing the question is declined, and recorded, so a test never
hangs on a question nobody answers. Values are checked against the schema the server
sent: a missing required field or a wrong type is a mistake in the scenario, reported
as a failure of the step naming the field (the server gets a decline meanwhile).
URL-mode questions (open a web page) are always declined: no browser is driven.

The schema is the server's, so it is untrusted (issue 25, H3): a ``pattern`` is matched
with the ``regex`` engine under a time bound (``PATTERN_TIME_S`` for the whole question),
never with ``re``, whose backtracking can run for ever while holding the interpreter lock
(no other thread, no signal handler runs meanwhile). A pattern that cannot be decided in
time declines the question with a problem naming the field. ``patternProperties`` (no
place in an elicitation's flat schema) is ignored. The runtime calls :func:`answer` off the
event loop's thread, so the turn's ``timeout_s`` still holds.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from ..text import patterns

ACTIONS = ("accept", "decline", "cancel")

# The time every ``pattern`` of one question may take together (H3): far more than any
# sane pattern needs on a scenario's answer, far less than a turn.
PATTERN_TIME_S = 1.0
# A question's record keeps at most this many fields (a flood of fields, H6) and this much message.
MAX_RECORDED_FIELDS = 50
MAX_RECORDED_MESSAGE = 10_000
# Deeper than this, a schema is not checked by jsonschema (its recursion would be the limit).
MAX_SCHEMA_DEPTH = 32


class PatternTimeout(Exception):
    """A server's ``pattern`` could not be decided within :data:`PATTERN_TIME_S`."""


@dataclass
class ElicitationPlan:
    """How the user answers the server's questions in this conversation."""

    action: str = "decline"
    values: dict[str, Any] = field(default_factory=dict)
    given: bool = False  # False: the default (decline), nothing was said in the scenario


def parse_value(text: str) -> Any:
    """A table cell: JSON where it parses (``true``, ``42``, ``["a"]``), else the text itself."""
    try:
        return json.loads(text)
    except (ValueError, TypeError):
        return text


def schema_problems(values: dict[str, Any], schema: dict[str, Any], time_s: float = PATTERN_TIME_S) -> list[str]:
    """Why ``values`` do not answer ``schema`` (missing required fields, wrong types, patterns)."""
    problems = [f"the required field {name!r} has no answer" for name in _names(schema.get("required")) if name not in values]
    properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    usable = _checkable(schema, MAX_SCHEMA_DEPTH)
    if usable is not None:
        try:
            validator = _bounded_validator(usable, time.monotonic() + time_s)
            for error in validator.iter_errors(values):
                if error.validator == "required":
                    continue  # said above, by name
                where = "/".join(str(p) for p in error.absolute_path)
                problems.append(f"the field {where!r}: {error.message}" if where else error.message)
        except PatternTimeout as exc:
            problems.append(str(exc))
        except Exception:  # a schema jsonschema cannot use: the required check above still holds
            pass
    if properties:
        asked = _shown_names(list(properties))
        problems += [f"the field {name!r} is not asked for (asked: {asked})" for name in values if name not in properties]
    return problems


def _names(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _shown_names(names: list[str], keep: int = 20) -> str:
    """A list of field names for a message: at most ``keep`` of them, then how many more."""
    if len(names) <= keep:
        return ", ".join(names)
    return f"{', '.join(names[:keep])}, ... ({len(names) - keep} more)"


def _checkable(schema: Any, depth: int) -> Any:
    """``schema`` without ``patternProperties`` (jsonschema would match them with ``re``),
    or None when it is nested deeper than ``depth``."""
    if depth < 0:
        return None
    if isinstance(schema, dict):
        found = {}
        for key, value in schema.items():
            if key == "patternProperties":
                continue
            inner = _checkable(value, depth - 1)
            if inner is None and value is not None:
                return None
            found[key] = inner
        return found
    if isinstance(schema, list):
        items = [_checkable(v, depth - 1) for v in schema]
        return None if any(i is None and v is not None for i, v in zip(items, schema)) else items
    return schema


def _bounded_validator(schema: dict[str, Any], deadline: float) -> Any:
    """A jsonschema validator for ``schema`` whose ``pattern`` keyword runs under ``deadline``."""
    from jsonschema import ValidationError
    from jsonschema.validators import extend, validator_for

    def pattern(validator: Any, patrn: Any, instance: Any, schema: Any) -> Any:
        if validator.is_type(instance, "string") and not bounded_search(str(patrn), instance, deadline):
            yield ValidationError(f"{instance!r} does not match {patrn!r}")

    base = validator_for(schema)
    return extend(base, {"pattern": pattern})(schema)


def bounded_search(pattern: str, text: str, deadline: float) -> bool:
    """``re.search(pattern, text)`` that cannot run away (``text.patterns``: the ``regex``
    engine, which releases the interpreter lock and stops at ``deadline``)."""
    try:
        return patterns.compile_pattern(pattern, flags=0).search(text, time_s=deadline - time.monotonic()) is not None
    except patterns.PatternTimeout:
        raise PatternTimeout(_too_slow(pattern)) from None


def _too_slow(pattern: str) -> str:
    shown = pattern if len(pattern) <= 80 else pattern[:80] + "..."
    return (
        f"the server's pattern {shown!r} could not be checked within {PATTERN_TIME_S:g} s "
        "(it backtracks without end on this answer): the question is declined; fix the pattern in the server"
    )


def answer(plan: ElicitationPlan, params: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the ``ElicitResult`` fields to send, the record of the question and its answer)."""
    mode = getattr(params, "mode", "form") or "form"
    message = str(getattr(params, "message", "") or "")
    if len(message) > MAX_RECORDED_MESSAGE:
        message = f"{message[:MAX_RECORDED_MESSAGE]}... [{len(message) - MAX_RECORDED_MESSAGE} more characters not kept]"
    record: dict[str, Any] = {"mode": mode, "message": message}
    if mode == "url":
        record.update(url=getattr(params, "url", None), action="decline", reason="URL-mode questions are always declined")
        return {"action": "decline"}, record
    schema = _plain(getattr(params, "requested_schema", None)) or {}
    record.update(_recorded_schema(schema))
    if plan.action != "accept":
        record["action"] = plan.action
        if not plan.given:
            record["reason"] = "the scenario gave no answers: declined by default"
        return {"action": plan.action}, record
    problems = schema_problems(plan.values, schema)
    if problems:
        record.update(action="decline", problems=problems, reason="the scenario's answers do not fit the question")
        return {"action": "decline"}, record
    record.update(action="accept", content=dict(plan.values))
    return {"action": "accept", "content": dict(plan.values)}, record


def _recorded_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The question's schema and field names for the record: at most ``MAX_RECORDED_FIELDS``
    fields (the rest counted in ``fields_not_kept``)."""
    properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    names = list(properties)
    if len(names) <= MAX_RECORDED_FIELDS:
        return {"schema": schema, "fields": names}
    kept = names[:MAX_RECORDED_FIELDS]
    shown = {**schema, "properties": {n: properties[n] for n in kept}}
    return {"schema": shown, "fields": kept, "fields_not_kept": len(names) - len(kept)}


def asked_for(record: dict[str, Any], wanted: str) -> bool:
    """A question asked for ``wanted``: one of its fields, or words of its message."""
    if wanted in (record.get("fields") or []):
        return True
    properties = (record.get("schema") or {}).get("properties") or {}
    titles = [str(p.get("title", "")).lower() for p in properties.values() if isinstance(p, dict)]
    return wanted.lower() in titles or wanted.lower() in str(record.get("message", "")).lower()


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, dict):
        return value
    dump = getattr(value, "model_dump", None)
    return dump(by_alias=True, exclude_none=True, mode="json") if dump else value
