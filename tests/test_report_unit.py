"""The report document, its rendering, redaction and merging, from behave's own model objects
(parsed from Gherkin) and the records the engine fills: fast, no subprocess."""

from __future__ import annotations

import base64
import hashlib
import html
import html.parser
import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from behave.model_type import Status
from behave.parser import parse_feature

from behave_aitest import report
from behave_aitest.report import render
from behave_aitest.record.records import Conversation, ModelCall, ScenarioRecord, ToolCall, Turn
from behave_aitest.text.redact import Redactor

XSS = "</script><img src=x onerror=alert(1)>"

SESSION = """\
@session
Feature: Bank {suffix}
  Background:
    Given the agent "banker"

  Scenario: Check balances
    When the user says "What are my balances?"
    Then the agent called tool "get_all_balances"

  @slow
  Scenario: Transfer
    When the user says "Move $500"
    Then the agent called tool "transfer"
    And the response mentions "done"
"""


def make_turn(index: int, history: int, text: str, *, costs: tuple[float | None, ...] = (0.001, 0.002), tool_error: bool = False, answer: str = "Done.") -> Turn:
    call = ToolCall(
        id=f"call_{index}", name="get_balance", server="bank", provider_name="get_balance",
        arguments={"account": "checking"}, raw_arguments='{"account": "checking"}',
        result="checking: $1,500.00" if not tool_error else "Error: no such account", is_error=tool_error, duration_s=0.004,
    )
    turn = Turn(index=index, user_text=text, model="openai/gpt-test", history_before=history, started_at=1_700_000_000.0, duration_s=0.5)
    turn.messages = [
        {"role": "user", "content": text},
        {"role": "assistant", "content": None, "tool_calls": [{"id": call.id, "type": "function", "function": {"name": "get_balance", "arguments": call.raw_arguments}}]},
        {"role": "tool", "tool_call_id": call.id, "content": call.result},
        {"role": "assistant", "content": answer},
    ]
    turn.tool_calls = [call]
    turn.model_calls = [ModelCall(model="openai/gpt-test", input_tokens=100, output_tokens=20, cost_usd=c, latency_s=0.2) for c in costs]
    turn.response = answer
    return turn


def session_feature(suffix: str = "", *, fail: bool = True, costs: tuple[float | None, ...] = (0.001, 0.002), answer: str = "Done.") -> Any:
    """A parsed @session feature that 'ran': statuses set, records hung where the hooks hang them."""
    feature = parse_feature(SESSION.format(suffix=suffix), filename="features/bank.feature")
    conversation = Conversation(id="c1", title=feature.name, session=True, model="openai/gpt-test")
    history = 0
    for number, scenario in enumerate(feature.scenarios):
        steps = list(scenario.all_steps)
        turn = make_turn(number, history, steps[1].name, costs=costs, answer=answer)
        record = ScenarioRecord(conversation_id="c1", turns=[turn], history_at_start=history, model="openai/gpt-test", agent="banker")
        scenario.aitest = record
        steps[1].aitest_turn = turn
        for step in steps:
            step.status = Status.passed
            step.duration = 0.01
        if fail and number == 1:
            steps[2].status = Status.failed
            steps[2].error_message = f"Assertion Failed: Expected the agent to call tool 'transfer'. It said {XSS}"
            steps[3].status = Status.skipped
        conversation.turns.append(turn)
        conversation.messages.extend(turn.messages)
        history += len(turn.messages)
    feature.aitest_conversation = conversation
    return feature


def build(*features: Any, **kwargs: Any) -> report.Doc:
    return report.build_document(list(features), started_at=1_700_000_000.0, finished_at=1_700_000_012.5, redactor=Redactor({}), **kwargs)


def test_document_from_behave_objects_and_records() -> None:
    doc = build(session_feature())
    assert doc["schema"] == report.SCHEMA and doc["schema_version"] == 1
    assert json.loads(report.dumps(doc)) == doc, "plain JSON"
    feature = doc["features"][0]
    assert feature["session"] and feature["messages"] == 8 and feature["title"] == "Bank"
    first, second = feature["scenarios"]
    assert (first["status"], second["status"]) == ("passed", "failed")
    assert (first["history_at_start"], first["history_at_end"], second["history_at_start"]) == (0, 4, 4)
    assert second["tags"] == ["slow"] and second["model"] == "openai/gpt-test" and second["agent"] == "banker"
    assert second["first_failure"] == {
        "step": 'Then the agent called tool "transfer"',
        "location": "features/bank.feature:13",
        "status": "failed",
        "message": f"Assertion Failed: Expected the agent to call tool 'transfer'. It said {XSS}",
    }
    assert [s["status"] for s in second["steps"]] == ["passed", "passed", "failed", "skipped"]
    assert second["steps"][0]["background"] and not second["steps"][1]["background"]
    assert second["steps"][1]["turn"] == 0 and second["steps"][2]["turn"] is None
    turn = second["turns"][0]
    assert turn["timeline"] == [
        {"kind": "user", "text": "the user says \"Move $500\""},
        {"kind": "tool", "tool_call": 0, "model_call": 0},
        {"kind": "assistant", "text": "Done.", "model_call": 1},
    ]
    assert turn["stats"]["cost_usd"] == pytest.approx(0.003) and turn["stats"]["input_tokens"] == 200
    t = doc["totals"]
    assert (t["scenarios"], t["passed"], t["failed"], t["turns"], t["model_calls"], t["tool_calls"]) == (2, 1, 1, 2, 4, 2)
    assert t["wall_time_s"] == 12.5 and t["models"] == ["openai/gpt-test"]
    assert doc["models"][0]["pass_rate"] == 0.5


def test_session_warnings_show_on_the_container() -> None:
    feature = session_feature()
    warning = "Scenario 'Transfer' runs without the earlier scenarios of its session (filtered out)."
    feature.scenarios[1].aitest.warnings.append(warning)
    doc = build(feature)
    assert doc["features"][0]["warnings"] == [warning] and doc["features"][0]["scenarios"][1]["warnings"] == [warning]
    assert '<title>warning</title><use href="#i-error"/></svg> Scenario &#39;Transfer&#39; runs without the earlier scenarios' in render.html(doc)
    assert "## Warnings" in render.markdown(doc)


def test_the_markdown_summary_counts_the_checks_of_meaning_and_safety() -> None:
    """The offline checks of a run (similarity, numbers, drills) are counted per kind in the
    Markdown summary, escaped like every text there; a run without any has no such section."""
    from behave_aitest.record.records import CheckResult

    feature = session_feature()
    assert "Checks of meaning and safety" not in render.markdown(build(feature))
    first, second = (s.aitest.turns[0] for s in feature.scenarios)
    first.checks += [CheckResult("similar", True, "similarity 0.91 (at least 0.80)"), CheckResult("numbers", False, "1 number not grounded")]
    second.checks += [CheckResult("injection", True, "resisted"), CheckResult("similar", False, "similarity 0.41"), CheckResult("<b>odd</b>", True, "x")]
    md = render.markdown(build(feature))
    section = md.split("## Checks of meaning and safety", 1)[1].split("\n## ", 1)[0]
    assert "| similar to the expected answer | 1 | ❌ 1 |" in section, section
    assert "| numbers grounded in tool results | 0 | ❌ 1 |" in section and "| prompt-injection drills resisted | 1 | 0 |" in section, section
    assert "<b>" not in section, section


def test_unknown_cost_is_counted_and_never_shown_as_zero() -> None:
    assert render.cost({"cost_usd": 0.0, "unknown_cost_calls": 3, "model_calls": 3}) == "unknown (3 calls)"
    assert render.cost({"cost_usd": 0.012, "unknown_cost_calls": 1, "model_calls": 3}) == "≥ $0.0120 + 1 unknown"
    assert render.cost({"cost_usd": 0.0, "unknown_cost_calls": 0, "model_calls": 2}) == "$0"
    assert render.cost({"cost_usd": 0.0, "unknown_cost_calls": 0, "model_calls": 0}) == "–"
    doc = build(session_feature(costs=(None, None)))
    assert doc["totals"]["unknown_cost_calls"] == 4 and doc["totals"]["cost_usd"] == 0.0
    page = render.html(doc)
    assert "unknown (4 calls)" in page and "4 calls of unknown price" in page
    assert ">$0<" not in page
    assert "4 model calls have no known price" in render.markdown(doc)


class Elements(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def links(page: str) -> list[str]:
    """Every src/href attribute value of the page's real elements."""
    parsed = Elements()
    parsed.feed(page)
    return [v or "" for _, attrs in parsed.tags for k, v in attrs.items() if k in ("src", "href", "srcset", "action", "data")]


def test_every_text_is_escaped_in_html_and_markdown() -> None:
    feature = session_feature(suffix=XSS, answer=XSS)
    feature.tags.append(f"tag-{XSS}")
    doc = build(feature, title=f"Title {XSS}")
    page = render.html(doc)
    parsed = Elements()
    parsed.feed(page)
    assert [t for t, _ in parsed.tags if t in ("img", "iframe", "object", "embed")] == []
    scripts = [a for t, a in parsed.tags if t == "script"]
    assert scripts == [{"type": "application/json", "id": "aitest-data"}, {}], "only our two scripts"
    assert not [a for _, a in parsed.tags for k in a if k.startswith("on")], "no inline event handlers"
    assert XSS not in page
    data = page.split('<script type="application/json" id="aitest-data">')[1].split("</script>")[0]
    assert "<" not in data and ">" not in data and "&" not in data
    assert json.loads(data)["features"][0]["scenarios"][1]["turns"][0]["response"] == XSS
    md = render.markdown(doc)
    outside = re.sub(r"(?ms)^(`{3,}).*?^\1", "", md)
    assert "<img" not in outside and "</script>" not in outside and "&lt;img" in outside


def test_markdown_fences_and_escapes() -> None:
    assert render.md("a | b *c* [x](y) <b>") == r"a \| b \*c\* \[x\](y) &lt;b&gt;"
    assert render.fenced("x\n```\ny") == "````text\nx\n```\ny\n````"


def test_the_page_is_self_contained_and_its_script_allowed_by_hash() -> None:
    doc = build(session_feature(answer="see https://example.com/x and <a href='https://evil.example'>"))
    page = render.html(doc)
    urls = links(page)
    assert urls and all(u.startswith("#") for u in urls), urls
    assert "https://evil.example" in page, "the user's text is kept, as text"
    assert "<link" not in page and "url(" not in page and "@import" not in page
    script = page.split("<script>")[1].split("</script>")[0]
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    policy = html.unescape(re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page).group(1))
    assert f"script-src 'sha256-{digest}'" in policy and "default-src 'none'" in policy


def test_redactor_covers_env_config_and_header_shapes() -> None:
    server = SimpleNamespace(
        name="crm", env={"CRM_DB": "${CRM_DB_URL}", "LEVEL": "verbose-mode"}, headers={"Authorization": "Bearer ${CRM_TOKEN}"}
    )
    environ = {"CRM_DB_URL": "postgres://u:pw@db/crm", "CRM_TOKEN": "tok_1234567890", "GITHUB_TOKEN": "ghx_abcdefghijkl", "HOME": "/root", "SHORT_KEY": "abc"}
    redactor = Redactor.from_environment(SimpleNamespace(servers={"crm": server}), environ)
    text = redactor.text(
        "db postgres://u:pw@db/crm token tok_1234567890 gh ghx_abcdefghijkl level verbose-mode home /root abc "
        "Authorization: Basic dXNlcjpwYXNzd29yZA== key sk-proj-abcdefghijklmnopqrstu"
    )
    for secret in ("postgres://u:pw@db/crm", "tok_1234567890", "ghx_abcdefghijkl", "verbose-mode", "dXNlcjpwYXNzd29yZA==", "sk-proj-abcdefghijklmnopqrstu"):
        assert secret not in text
    assert "[REDACTED:crm.env.CRM_DB]" in text and "[REDACTED:crm.headers.Authorization]" in text and "[REDACTED:GITHUB_TOKEN]" in text
    assert "home /root abc" in text, "paths and short values are left alone"
    assert redactor({"tok_1234567890": ["tok_1234567890", 3]}) == {"[REDACTED:crm.headers.Authorization]": ["[REDACTED:crm.headers.Authorization]", 3]}
    assert Redactor().text("the basic settings of the api key rotation") == "the basic settings of the api key rotation"


def test_merge_keeps_sessions_whole_and_drops_copies_that_did_not_run() -> None:
    ran = build(session_feature())
    skipped_copy = build(session_feature())
    for scenario in skipped_copy["features"][0]["scenarios"]:
        scenario["status"] = "skipped"
    other = build(session_feature(suffix="two", fail=False))
    merged = report.merge([ran, skipped_copy, other])
    assert [f["name"] for f in merged["features"]] == ["Bank", "Bank two"]
    assert [f["run"] for f in merged["features"]] == ["r1", "r3"] and len(merged["runs"]) == 3
    assert merged["totals"]["scenarios"] == 4 and merged["totals"]["failed"] == 1
    twice = report.merge([ran, build(session_feature())])
    assert len(twice["features"]) == 2 and "ran in 2 shards" in twice["features"][0]["warnings"][-1]
    assert report.merge([ran])["totals"] == ran["totals"], "merging one report changes nothing"


def test_load_rejects_what_it_cannot_read(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"x": 1}', encoding="utf-8")
    with pytest.raises(report.ReportError, match="not a behave-aitest report"):
        report.load(tmp_path / "a.json")
    with pytest.raises(report.ReportError, match="cannot read"):
        report.load(tmp_path / "missing.json")


def test_long_text_is_cut_with_a_note_in_html_and_markdown_but_kept_in_json() -> None:
    feature = session_feature(answer="x" * 50)
    doc = build(feature)
    assert doc["features"][0]["scenarios"][0]["turns"][0]["response"] == "x" * 50
    assert '"response":"' + "x" * 50 + '"' in report.dumps(doc)
    page = render.html(doc, max_text=20)
    assert "x" * 21 not in page and "30 more characters not shown" in page
    summary = render.markdown(doc, max_text=20)  # the failing step's message is cut, its location is not
    assert "more characters not shown" in summary and "features/bank.feature:" in summary
    assert "x" * 50 in render.html(doc, max_text=0)
    assert doc["features"][0]["scenarios"][0]["turns"][0]["response"] == "x" * 50, "rendering does not change the document"


def big_document(scenarios: int) -> report.Doc:
    """A run of ``scenarios`` scenarios (10 features, 2 turns each, one in ten failing)."""
    per_feature = scenarios // 10
    body = "".join(
        f"\n  @t{i % 7}\n  Scenario: scenario {i}\n    When the user says \"question {i}\"\n    And the user says \"follow-up {i}\"\n"
        f"    Then the response mentions \"answer\"\n"
        for i in range(per_feature)
    )
    features = []
    for f in range(10):
        feature = parse_feature(f"Feature: Area {f}\n{body}", filename=f"features/area_{f}.feature")
        for i, scenario in enumerate(feature.scenarios):
            steps = list(scenario.all_steps)
            turns = [make_turn(0, 0, f"question {i}", answer=f"answer {i} " + "lorem ipsum " * 20), make_turn(1, 4, f"follow-up {i}")]
            scenario.aitest = ScenarioRecord(conversation_id=f"c{f}-{i}", turns=turns, model="openai/gpt-test")
            steps[0].aitest_turn, steps[1].aitest_turn = turns
            for step in steps:
                step.status = Status.passed
            if i % 10 == 3:
                steps[2].status = Status.failed
                steps[2].error_message = "Assertion Failed: the response does not mention 'answer'"
        features.append(feature)
    return build(*features)


def test_a_thousand_scenarios_build_and_render() -> None:
    """Their speed is measured by the benchmarks (python -m bench, item 5), not here."""
    doc = big_document(1000)
    page = render.html(doc)
    assert doc["totals"]["scenarios"] == 1000 and doc["totals"]["failed"] == 100
    assert page.count('<article class="scn') == 1000
