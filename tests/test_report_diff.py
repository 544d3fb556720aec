"""Cheap pure-function tests for issue 17: authentication errors, tool coverage, report diff."""

from __future__ import annotations

import pytest

from behave_aitest.record import coverage, telemetry
from behave_aitest import report
from behave_aitest.report import diff
from behave_aitest.model import llm
from behave_aitest.record.records import JudgeCall, ModelCall, ScenarioRecord, ToolCall, Turn


def test_missing_credentials_are_an_auth_error_not_a_server_error() -> None:
    litellm = llm.litellm_module()
    refused = litellm.InternalServerError(
        message="OpenAIException - Missing credentials. Please pass an `api_key`", llm_provider="openai", model="gpt-4.1-mini"
    )
    assert llm.is_auth_error(refused) and not llm.is_retryable(refused)
    message = llm.auth_message(refused, "openai/gpt-4.1-mini", ["OPENAI_API_KEY"])
    assert "OPENAI_API_KEY is not set" in message and "InternalServerError" not in message
    assert llm.is_retryable(litellm.InternalServerError(message="boom", llm_provider="openai", model="m"))
    denied = litellm.PermissionDeniedError(message="no", llm_provider="openai", model="m", response=_response(403))
    assert llm.is_auth_error(denied)


def _response(status: int):  # litellm's errors want an httpx.Response
    import httpx

    return httpx.Response(status, request=httpx.Request("POST", "http://x"))


@pytest.mark.parametrize("model", ["anthropic/claude-sonnet-4-5"])
def test_missing_keys_names_the_variable(model: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "")
    assert llm.missing_keys(model) == ["ANTHROPIC_API_KEY"]
    assert llm.missing_keys("ollama/llama3", has_api_base=True) == []


# --------------------------------------------------------------------------- tool coverage



def _record(calls: list[ToolCall], offered: dict) -> ScenarioRecord:
    turn = Turn(index=0, user_text="x", model="m", history_before=0, tool_calls=calls)
    return ScenarioRecord(conversation_id="c1", turns=[turn], tools_offered=offered)


def _call(name: str, args: dict | None, error: bool = False, server: str | None = "bank") -> ToolCall:
    return ToolCall(id="1", name=name, server=server, provider_name=name, arguments=args, raw_arguments="", is_error=error)


def test_coverage_counts_successes_failures_doubles_and_unused_parameters() -> None:
    offered = {"bank": {"get_balance": ["account"], "transfer": ["amount", "memo"], "close": []}}
    doubled = _call("close", {})
    doubled.doubled = True  # type: ignore[attr-defined]  # a tool double (once they exist)
    record = _record([_call("transfer", {"amount": 1}), _call("get_balance", {}, error=True), doubled, _call("nope", {}, server=None)], offered)
    cov = coverage.section([record, None], minimum=0.5)
    assert (cov["offered"], cov["called"], cov["ratio"], cov["below_gate"]) == (3, 1, 0.3333, True)
    tools = {t["name"]: t for t in cov["servers"][0]["tools"]}
    assert tools["transfer"]["unused_params"] == ["memo"]
    assert (tools["get_balance"]["failed"], tools["close"]["doubled"], tools["close"]["ok"]) == (1, 1, 0)
    assert coverage.gate_message(cov) == (
        "tool coverage 33% (1 of 3 tools called successfully) is below min_tool_coverage 50%; never called: bank.close, bank.get_balance."
    )


def test_coverage_merge_adds_shards_up() -> None:
    offered = {"bank": {"get_balance": ["account"], "transfer": ["amount", "memo"]}}
    one = coverage.section([_record([_call("transfer", {"amount": 1})], offered)], minimum=1.0)
    two = coverage.section([_record([_call("get_balance", {"account": "a"}), _call("transfer", {"memo": "m"})], offered)])
    merged = coverage.merge([one, None, two])
    assert merged is not None
    assert (merged["called"], merged["ratio"], merged["below_gate"], merged["min_tool_coverage"]) == (2, 1.0, False, 1.0)
    assert {t["name"]: t["calls"] for t in merged["servers"][0]["tools"]} == {"get_balance": 1, "transfer": 2}
    assert merged["servers"][0]["tools"][1]["unused_params"] == []
    assert coverage.merge([None]) is None


def test_min_tool_coverage_outside_0_to_1_is_a_config_error(tmp_path) -> None:
    from behave_aitest.config import ConfigError, load_config

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "pyproject.toml").write_text("[tool.behave_aitest]\nmin_tool_coverage = 1.5\n")
    with pytest.raises(ConfigError, match=r"'min_tool_coverage' must be between 0 and 1"):
        load_config({}, cwd=tmp_path / "a")
    with pytest.raises(ConfigError, match=r"-D aitest.min_tool_coverage: must be between 0 and 1"):
        load_config({"aitest.min_tool_coverage": "80"}, cwd=tmp_path / "elsewhere")
    assert load_config({"aitest.min_tool_coverage": "0.8"}, cwd=tmp_path / "elsewhere").min_tool_coverage == 0.8


# --------------------------------------------------------------------------- report diff



def _scn(name: str, status: str = "passed", calls: list | None = None, cost: float = 0.01, repeat: tuple | None = None) -> dict:
    turns = [{"tool_calls": [{"name": n, "arguments": a} for n, a in (calls or [])]}]
    scenario = {"name": name, "status": status, "turns": turns,
                "stats": {"cost_usd": cost, "unknown_cost_calls": 0, "input_tokens": 100, "output_tokens": 10, "latency_s": 1.0}}
    if repeat:
        scenario["repeat"] = {"runs": repeat[1], "passed": repeat[0]}
    return scenario


def _doc(*scenarios: dict) -> dict:
    return {"title": "t", "features": [{"name": "F", "title": "F", "scenarios": list(scenarios)}], "totals": {}}


def test_diff_flags_pass_rate_drops_tool_changes_and_thresholds() -> None:
    base = _doc(_scn("a", repeat=(3, 3)), _scn("b", calls=[("x", {"k": 1}), ("y", {})]), _scn("c", calls=[("x", {}), ("y", {})]), _scn("d", "failed"))
    new = _doc(_scn("a", repeat=(2, 3), cost=0.02), _scn("b", calls=[("x", {"k": 2}), ("y", {})]), _scn("c", calls=[("y", {}), ("x", {})]), _scn("d"))
    result = diff.compare(base, new, {"cost_usd": 0.2, "tokens": 0.2})
    rows = {r["key"]: r for r in result["scenarios"]}
    assert rows["F › a"]["regression"] and rows["F › a"]["reasons"] == ["pass rate 3/3 → 2/3"]  # passed both times
    assert rows["F › b"]["tools"]["arguments_changed"] == [{"tool": "x", "base": '{"k": 1}', "new": '{"k": 2}'}]
    assert rows["F › c"]["tools"]["reordered"] and not rows["F › c"]["regression"]
    assert rows["F › d"]["improved"]
    cost = next(c for c in result["thresholds"] if c["metric"] == "cost_usd")
    assert cost["breached"] and cost["increase"] == 0.25  # 0.04 -> 0.05
    assert not next(c for c in result["thresholds"] if c["metric"] == "tokens")["breached"]
    assert result["regressions"] == 2  # the pass-rate drop and the cost threshold
    assert "| Cost | $0.0400 | $0.0500 | +25% ⛔ above +20% |" in diff.markdown(result)


def test_diff_markdown_fits_a_pull_request_comment() -> None:
    many = [_scn(f"scenario {i} " + "x" * 200, calls=[("tool", {"i": i})]) for i in range(600)]
    changed = [_scn(f"scenario {i} " + "x" * 200, "failed", calls=[("other", {})]) for i in range(600)]
    text = diff.markdown(diff.compare(_doc(*many), _doc(*changed)))
    assert len(text) < diff.COMMENT_LIMIT
    assert "… cut here:" in text and "more lines" in text


def test_diff_of_reports_with_different_schema_versions_names_the_file(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from behave_aitest.report import store

    monkeypatch.setattr(store, "SCHEMA_VERSION", 2)  # where load() reads it
    doc = {"schema": report.SCHEMA, "schema_version": 1, "title": "t", "runs": [], "features": [], "totals": {}}
    (tmp_path / "a.json").write_text(report.dumps(doc))
    (tmp_path / "b.json").write_text(report.dumps({**doc, "schema_version": 2}))
    with pytest.raises(report.ReportError, match=r"b.json: report schema version 2 differs from .*a.json's \(1\)"):
        diff.load_pair(str(tmp_path / "a.json"), str(tmp_path / "b.json"))


# --------------------------------------------------------------------------- OpenTelemetry export



def test_judge_verdicts_become_evaluation_events_and_content_is_opt_in() -> None:
    call = _call("transfer", {"amount": 1, "memo": "sk-secret-value-1234567890"})
    turn = Turn(index=0, user_text="x", model="anthropic/claude", history_before=0, tool_calls=[call], started_at=100.0, duration_s=2.0,
                model_calls=[ModelCall(model="anthropic/claude", tool_call_count=1, latency_s=0.5), ModelCall(model="anthropic/claude", latency_s=0.5)],
                judge_calls=[JudgeCall(kind="response", model="j", verdicts=[{"criterion": "polite", "passed": False, "reason": "rude"}])])
    record = ScenarioRecord(conversation_id="c1", turns=[turn], agent="banker")
    plain = telemetry.spans([record], run_id="r")
    assert [s.name for s in plain] == ["invoke_agent banker", "chat anthropic/claude", "execute_tool transfer", "chat anthropic/claude"]
    assert "gen_ai.tool.call.arguments" not in plain[2].attributes  # content only when asked
    assert plain[2].start_ns == plain[1].end_ns and plain[3].start_ns == plain[2].end_ns  # laid end to end
    name, _, event = plain[0].events[0]
    assert name == "gen_ai.evaluation.result" and event["gen_ai.evaluation.score.label"] == "fail" and "gen_ai.evaluation.explanation" not in event
    full = telemetry.spans([record], run_id="r", content=True, redact=lambda text: text.replace("sk-secret-value-1234567890", "[REDACTED]"))
    assert "[REDACTED]" in full[2].attributes["gen_ai.tool.call.arguments"]
    assert full[0].events[0][2]["gen_ai.evaluation.explanation"] == "rude"


def test_otel_target_must_be_otlp_or_a_json_file(tmp_path) -> None:
    from behave_aitest.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=r"-D aitest.otel: must be 'otlp' or a file name ending in .json"):
        load_config({"aitest.otel": "spans.txt"}, cwd=tmp_path)
    try:
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match=r"pip install 'behave-aitest\[otel\]'"):
            load_config({"aitest.otel": "otlp"}, cwd=tmp_path)


def test_otlp_sends_the_spans_to_the_configured_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    """Needs the optional extra (pip install 'behave-aitest[otel]'); a local receiver stands in for a collector."""
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http.trace_exporter", reason="the [otel] extra is not installed")
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    received: list[tuple[str, bytes]] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            received.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    turn = Turn(index=0, user_text="x", model="openai/m", history_before=0, tool_calls=[_call("transfer", {})], started_at=1e9, duration_s=1.0,
                model_calls=[ModelCall(model="openai/m", tool_call_count=1), ModelCall(model="openai/m")])
    try:
        telemetry.send_otlp(telemetry.spans([ScenarioRecord(conversation_id="c1", turns=[turn], agent="banker")], run_id="r"), {"service.name": "t"})
    finally:
        server.shutdown()
    request = ExportTraceServiceRequest()
    request.ParseFromString(received[0][1])
    spans = request.resource_spans[0].scope_spans[0].spans
    assert received[0][0] == "/v1/traces"
    assert sorted(s.name for s in spans) == ["chat openai/m", "chat openai/m", "execute_tool transfer", "invoke_agent banker"]
    root = next(s for s in spans if s.name == "invoke_agent banker")
    assert all(s.parent_span_id == root.span_id for s in spans if s is not root)
