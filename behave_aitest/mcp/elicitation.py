"""Elicitation: a server asks the user a question; the scenario answers on the user's behalf.

The scenario says beforehand how the user will answer (accept with values, decline,
cancel); when it says nothing the question is declined, and recorded, so a test never
hangs on a question nobody answers. Values are checked against the schema the server
sent: a missing required field or a wrong type is a mistake in the scenario, reported
as a failure of the step naming the field (the server gets a decline meanwhile).
URL-mode questions (open a web page) are always declined: no browser is driven.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

ACTIONS = ("accept", "decline", "cancel")


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


def schema_problems(values: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """Why ``values`` do not answer ``schema`` (missing required fields, wrong types)."""
    problems = [f"the required field {name!r} has no answer" for name in schema.get("required") or [] if name not in values]
    properties = schema.get("properties") or {}
    try:
        from jsonschema.validators import validator_for

        validator = validator_for(schema)(schema)
        for error in validator.iter_errors(values):
            if error.validator == "required":
                continue  # said above, by name
            where = "/".join(str(p) for p in error.absolute_path)
            problems.append(f"the field {where!r}: {error.message}" if where else error.message)
    except Exception:  # a schema jsonschema cannot use: the required check above still holds
        pass
    if properties:
        problems += [f"the field {name!r} is not asked for (asked: {', '.join(properties)})" for name in values if name not in properties]
    return problems


def answer(plan: ElicitationPlan, params: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the ``ElicitResult`` fields to send, the record of the question and its answer)."""
    mode = getattr(params, "mode", "form") or "form"
    record: dict[str, Any] = {"mode": mode, "message": getattr(params, "message", "")}
    if mode == "url":
        record.update(url=getattr(params, "url", None), action="decline", reason="URL-mode questions are always declined")
        return {"action": "decline"}, record
    schema = _plain(getattr(params, "requested_schema", None)) or {}
    record["schema"] = schema
    record["fields"] = list((schema.get("properties") or {}).keys())
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
