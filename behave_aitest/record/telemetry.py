"""OpenTelemetry export of a run, opt-in: ``-D aitest.otel=otlp`` or ``-D aitest.otel=PATH.json``.

Nothing is sent unless asked. After the run (``after_all``; in a parallel run, the parent),
the records become spans that follow the OpenTelemetry GenAI semantic conventions
(:data:`SEMCONV_VERSION`; still "Development" upstream, so the version is pinned here):

- one ``invoke_agent {agent}`` span per conversation (``gen_ai.conversation.id``), the
  root of its own trace;
- a ``chat {model}`` span per model call, with ``gen_ai.usage.input_tokens`` and
  ``gen_ai.usage.output_tokens``;
- an ``execute_tool {tool}`` span per tool call, with ``gen_ai.tool.name`` and
  ``gen_ai.tool.call.id`` (arguments and results only with ``aitest.otel_content=on``,
  redacted like the reports);
- judge verdicts as ``gen_ai.evaluation.result`` events on the conversation's span.

The spans are rebuilt from the records, not traced live: durations are the measured ones,
and within a turn the calls are laid end to end from the turn's start (the tool calls of
one model answer side by side, as they ran). ``PATH.json`` is written as OTLP/JSON (what the
OpenTelemetry Collector's ``otlpjsonfile`` receiver reads) and needs nothing installed;
``otlp`` sends them with the OpenTelemetry SDK's OTLP/HTTP exporter, configured by the
standard ``OTEL_EXPORTER_OTLP_*`` variables (``pip install 'behave-aitest[otel]'``),
imported only then.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import OTEL_EXPORT

SEMCONV_VERSION = "1.42.0"  # the GenAI semantic conventions these names follow
SCHEMA_URL = f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"
OTLP = OTEL_EXPORT
KIND_INTERNAL, KIND_CLIENT = 1, 3
STATUS_ERROR = 2


@dataclass
class Span:
    """One span, as OTLP/JSON holds it (ids in hex, times in nanoseconds since the epoch)."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, int, dict[str, Any]]] = field(default_factory=list)
    error: str | None = None


# A content attribute (tool arguments, a tool result, a judge's reason) keeps at most this many
# characters: a 3 MB tool result must not become a 3 MB span attribute (collectors drop or
# refuse such spans; issue 25, H18). The report keeps the whole text.
MAX_CONTENT_CHARS = 8_000


def _bounded(text: str, limit: int = MAX_CONTENT_CHARS) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} more characters not exported; the JSON report has the full text]"


def _ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


def _provider(model: str) -> str | None:
    if model == "scripted":
        return "behave_aitest.scripted"
    return model.split("/", 1)[0] if "/" in model else None


def spans(records: Iterable[Any], *, run_id: str, content: bool = False, redact: Any = None) -> list[Span]:
    """The spans of every conversation in ``records`` (``scenario.aitest``, in run order)."""
    clean = redact or (lambda value: value)
    conversations: dict[str, list[Any]] = {}
    for record in records:
        if record is not None and record.turns:
            conversations.setdefault(record.conversation_id, []).append(record)
    out: list[Span] = []
    for conversation_id, parts in conversations.items():
        out += conversation_spans(conversation_id, parts, run_id=run_id, content=content, clean=clean)
    return out


def conversation_spans(conversation_id: str, parts: list[Any], *, run_id: str, content: bool, clean: Any) -> list[Span]:
    turns = [t for part in parts for t in part.turns]
    agent = next((p.agent for p in parts if p.agent), None) or "agent"
    model = next((p.model for p in parts if p.model), None) or turns[0].model
    trace = secrets.token_hex(16)
    root = Span(trace, secrets.token_hex(8), None, f"invoke_agent {agent}", KIND_INTERNAL, _ns(turns[0].started_at),
                _ns(max(t.started_at + t.duration_s for t in turns)))
    root.attributes = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": agent,
        "gen_ai.conversation.id": f"{run_id}:{conversation_id}",
        "gen_ai.request.model": model,
        "behave_aitest.turns": len(turns),
    }
    provider = _provider(model)
    if provider:
        root.attributes["gen_ai.provider.name"] = provider
    errors = [t.error for t in turns if t.error]
    if errors:
        root.error = str(clean(errors[0]))
    children: list[Span] = []
    for turn in turns:
        children += turn_spans(turn, root, content=content, clean=clean)
        for judge in turn.judge_calls:
            root.events += judge_events(judge, _ns(turn.started_at + turn.duration_s), content=content, clean=clean)
    return [root, *children]


def turn_spans(turn: Any, root: Span, *, content: bool, clean: Any) -> list[Span]:
    out = []
    at = turn.started_at
    calls = list(turn.tool_calls)
    for model_call in turn.model_calls:
        chat = Span(root.trace_id, secrets.token_hex(8), root.span_id, f"chat {model_call.model}", KIND_CLIENT, _ns(at), _ns(at + model_call.latency_s))
        chat.attributes = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": model_call.model,
            "gen_ai.usage.input_tokens": model_call.input_tokens,
            "gen_ai.usage.output_tokens": model_call.output_tokens,
            "behave_aitest.attempts": model_call.attempts,
            "behave_aitest.replayed": model_call.replayed,
        }
        if model_call.finish_reason:
            chat.attributes["gen_ai.response.finish_reasons"] = [model_call.finish_reason]
        if model_call.cost_usd is not None:
            chat.attributes["behave_aitest.cost_usd"] = model_call.cost_usd
        provider = _provider(model_call.model)
        if provider:
            chat.attributes["gen_ai.provider.name"] = provider
        out.append(chat)
        at += model_call.latency_s
        asked, calls = calls[: model_call.tool_call_count], calls[model_call.tool_call_count:]
        for call in asked:
            out.append(tool_span(call, root, at, content=content, clean=clean))
        at += max((c.duration_s for c in asked), default=0.0)
    return out


def tool_span(call: Any, root: Span, at: float, *, content: bool, clean: Any) -> Span:
    name = call.name or call.provider_name
    span = Span(root.trace_id, secrets.token_hex(8), root.span_id, f"execute_tool {name}", KIND_INTERNAL, _ns(at), _ns(at + call.duration_s))
    span.attributes = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name, "gen_ai.tool.call.id": call.id, "gen_ai.tool.type": "function"}
    if call.server:
        span.attributes["behave_aitest.mcp_server"] = call.server
    if content:  # opt-in: what the model sent and what the server answered, redacted
        arguments = json.dumps(call.arguments, ensure_ascii=False) if call.arguments is not None else call.raw_arguments
        span.attributes["gen_ai.tool.call.arguments"] = _bounded(str(clean(_bounded(str(arguments), 4 * MAX_CONTENT_CHARS))))
        span.attributes["gen_ai.tool.call.result"] = _bounded(str(clean(_bounded(str(call.result), 4 * MAX_CONTENT_CHARS))))
    if call.is_error:
        span.error = "tool_error"
        span.attributes["error.type"] = "tool_error"
    return span


def judge_events(judge: Any, at_ns: int, *, content: bool, clean: Any) -> list[tuple[str, int, dict[str, Any]]]:
    events = []
    for verdict in judge.verdicts or []:
        attributes: dict[str, Any] = {
            "gen_ai.evaluation.name": str(verdict.get("criterion") or judge.kind),
            "gen_ai.evaluation.score.label": "pass" if verdict.get("passed") else "fail",
            "gen_ai.evaluation.score.value": 1.0 if verdict.get("passed") else 0.0,
            "gen_ai.request.model": judge.model,
        }
        if content and verdict.get("reason"):
            attributes["gen_ai.evaluation.explanation"] = _bounded(str(clean(verdict["reason"])))
        events.append(("gen_ai.evaluation.result", at_ns, attributes))
    if judge.score is not None:
        events.append(("gen_ai.evaluation.result", at_ns, {
            "gen_ai.evaluation.name": judge.kind, "gen_ai.evaluation.score.value": float(judge.score), "gen_ai.request.model": judge.model,
        }))
    return events


# --------------------------------------------------------------------------- OTLP/JSON


def _value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, (list, tuple)):
        return {"arrayValue": {"values": [_value(v) for v in value]}}
    return {"stringValue": str(value)}


def _attributes(values: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": _value(v)} for k, v in values.items() if v is not None]


def otlp_json(items: list[Span], resource: Mapping[str, Any]) -> dict[str, Any]:
    """The OTLP/JSON document (``ExportTraceServiceRequest``) of ``items``."""
    from .. import __version__

    def one(span: Span) -> dict[str, Any]:
        out: dict[str, Any] = {
            "traceId": span.trace_id, "spanId": span.span_id, "name": span.name, "kind": span.kind,
            "startTimeUnixNano": str(span.start_ns), "endTimeUnixNano": str(span.end_ns),
            "attributes": _attributes(span.attributes),
            "events": [{"name": n, "timeUnixNano": str(t), "attributes": _attributes(a)} for n, t, a in span.events],
        }
        if span.parent_id:
            out["parentSpanId"] = span.parent_id
        if span.error:
            out["status"] = {"code": STATUS_ERROR, "message": span.error}
        return out

    return {"resourceSpans": [{
        "resource": {"attributes": _attributes(resource)},
        "scopeSpans": [{"scope": {"name": "behave_aitest", "version": __version__}, "schemaUrl": SCHEMA_URL, "spans": [one(s) for s in items]}],
        "schemaUrl": SCHEMA_URL,
    }]}


def send_otlp(items: list[Span], resource: Mapping[str, Any]) -> None:
    """Send with the SDK's OTLP/HTTP exporter (endpoint, headers: ``OTEL_EXPORTER_OTLP_*``)."""
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from .. import __version__

    provider = TracerProvider(resource=Resource.create(dict(resource)))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    tracer = provider.get_tracer("behave_aitest", __version__, schema_url=SCHEMA_URL)
    live: dict[str, Any] = {}
    for item in items:  # parents come before their children
        parent = live.get(item.parent_id or "")
        context = trace.set_span_in_context(parent) if parent is not None else None
        kind = trace.SpanKind.CLIENT if item.kind == KIND_CLIENT else trace.SpanKind.INTERNAL
        span = tracer.start_span(item.name, context=context, kind=kind, attributes=item.attributes, start_time=item.start_ns)
        for name, at, attributes in item.events:
            span.add_event(name, attributes, timestamp=at)
        if item.error:
            span.set_status(trace.Status(trace.StatusCode.ERROR, item.error))
        live[item.span_id] = span
    for item in reversed(items):
        live[item.span_id].end(end_time=item.end_ns)
    provider.shutdown()  # flushes


def export_run(features: Iterable[Any], config: Any) -> str | None:
    """Export the run's spans when ``otel`` is set; the line to print (where they went), or None."""
    target = getattr(config, "otel", None)
    if not target:
        return None
    from ..text.redact import Redactor
    from .coverage import scenario_records

    redactor = Redactor.from_environment(config)
    run_id = secrets.token_hex(8)
    items = spans(scenario_records(features), run_id=run_id, content=getattr(config, "otel_content", "off") == "on", redact=redactor.text)
    resource = {"service.name": os.environ.get("OTEL_SERVICE_NAME") or "behave-aitest", "behave_aitest.run.id": run_id}
    if target == OTLP:
        send_otlp(items, resource)
        return f"behave-aitest: {len(items)} OpenTelemetry spans sent over OTLP"
    from ..text.files import write_atomic

    write_atomic(Path(target), json.dumps(otlp_json(items, resource), ensure_ascii=False) + "\n")
    return f"behave-aitest: {len(items)} OpenTelemetry spans written to {target}"
