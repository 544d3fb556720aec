"""The fake OpenAI server, driven through real litellm HTTP calls (127.0.0.1 only)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before the import: no network
import litellm  # noqa: E402

from behave_aitest.model.fakellm import FakeOpenAI  # noqa: E402

litellm.suppress_debug_info = True

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Add two integers.",
            "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}},
        },
    }
]
QUESTION = [{"role": "user", "content": "What is 2 + 3?"}]  # 14 characters -> 14 // 4 + 1 = 4 tokens


def ask(srv: FakeOpenAI, messages: list[dict[str, Any]] = QUESTION, **kwargs: Any) -> Any:
    """One real litellm call to the fake server, with no retries."""
    kwargs.setdefault("max_retries", 0)
    return litellm.completion(
        model="openai/fake-model", api_base=srv.base_url, api_key="sk-fake", messages=messages, **kwargs
    )


def http(srv: FakeOpenAI, path: str, body: Any = None) -> tuple[int, dict[str, str], bytes]:
    """A plain urllib request, to see exactly what the server sends."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{srv.port}{path}", data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


# ----------------------------------------------------------------------------- plain replies


def test_plain_content_with_estimated_usage() -> None:
    with FakeOpenAI([{"content": "hi there"}]) as srv:
        r = ask(srv)
    assert r.choices[0].message.content == "hi there"
    assert r.choices[0].message.tool_calls is None
    assert r.choices[0].finish_reason == "stop"
    assert r.model == "fake-model"
    assert r.id == "chatcmpl-1"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (4, 3, 7)
    assert srv.requests == [{"messages": QUESTION, "model": "fake-model"}]


def test_given_usage_and_model_name() -> None:
    with FakeOpenAI([{"content": "ok", "usage": {"prompt_tokens": 42, "completion_tokens": 7}}], model_name="scripted") as srv:
        r = ask(srv)
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (42, 7, 49)
    assert r.model == "scripted"


def test_tool_call_round_trip() -> None:
    with FakeOpenAI([{"tool_calls": [("add", {"a": 2, "b": 3})]}, {"content": "The answer is 5"}]) as srv:
        first = ask(srv, tools=TOOLS)
        assert first.choices[0].finish_reason == "tool_calls"
        assert first.choices[0].message.content is None
        (call,) = first.choices[0].message.tool_calls
        assert (call.id, call.type, call.function.name) == ("call_1", "function", "add")
        assert json.loads(call.function.arguments) == {"a": 2, "b": 3}

        history = QUESTION + [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": call.id, "type": "function", "function": {"name": "add", "arguments": call.function.arguments}}],
            },
            {"role": "tool", "tool_call_id": call.id, "content": "5"},
        ]
        second = ask(srv, messages=history, tools=TOOLS)
    assert second.choices[0].message.content == "The answer is 5"
    assert [req["tools"] for req in srv.requests] == [TOOLS, TOOLS]
    sent = srv.requests[1]["messages"]
    assert sent[1]["tool_calls"][0]["function"] == {"name": "add", "arguments": '{"a": 2, "b": 3}'}
    assert sent[2] == {"role": "tool", "tool_call_id": "call_1", "content": "5"}


def test_tool_call_forms_ids_and_raw_arguments() -> None:
    script = [
        {
            "content": "Let me add.",
            "tool_calls": [
                {"name": "add", "arguments": '{"a": 2, "b": oops'},  # invalid JSON, sent verbatim
                {"name": "add", "arguments": {"a": 1}, "id": "mine"},
                ["add", "{}"],  # a list works too (JSON replies files have no tuples)
            ],
        },
        {"tool_calls": [("add", {})]},
    ]
    with FakeOpenAI(script) as srv:
        first = ask(srv, tools=TOOLS).choices[0].message
        second = ask(srv, tools=TOOLS).choices[0].message
    assert first.content == "Let me add."
    assert [(c.id, c.function.arguments) for c in first.tool_calls] == [
        ("call_1", '{"a": 2, "b": oops'),
        ("mine", '{"a": 1}'),
        ("call_2", "{}"),
    ]
    assert second.tool_calls[0].id == "call_3"  # unique across the server's replies


# ----------------------------------------------------------------------------- errors


def test_429_is_a_rate_limit_error_with_retry_after() -> None:
    with FakeOpenAI([{"status": 429, "message": "slow down", "headers": {"retry-after": "0"}}]) as srv:
        with pytest.raises(litellm.RateLimitError, match="slow down") as caught:
            ask(srv)
    assert caught.value.status_code == 429
    # litellm's own exception.response is synthetic (no headers); the real ones are kept here:
    assert caught.value.litellm_response_headers["retry-after"] == "0"
    assert len(srv.requests) == 1


def test_500_is_an_internal_server_error() -> None:
    with FakeOpenAI([{"status": 500, "message": "boom"}]) as srv:
        with pytest.raises(litellm.InternalServerError, match="boom"):
            ask(srv)
    assert len(srv.requests) == 1


def test_other_statuses_keep_their_natural_exception() -> None:
    script = [{"status": 401}, {"status": 404}, {"status": 503}, {"status": 400, "message": "This model's maximum context length is 8"}]
    with FakeOpenAI(script) as srv:
        for expected in (litellm.AuthenticationError, litellm.NotFoundError, litellm.ServiceUnavailableError, litellm.ContextWindowExceededError):
            with pytest.raises(expected):
                ask(srv)


def test_error_body_is_openai_shaped() -> None:
    with FakeOpenAI([{"status": 429, "message": "slow down", "headers": {"retry-after": "1"}}]) as srv:
        status, headers, body = http(srv, "/v1/chat/completions", {"model": "m", "messages": []})
    assert status == 429
    assert headers["retry-after"] == "1"
    assert json.loads(body) == {"error": {"message": "slow down", "type": "rate_limit_error", "code": 429}}


def test_exhausted_script_says_so() -> None:
    with FakeOpenAI([{"content": "only one"}]) as srv:
        ask(srv)
        with pytest.raises(litellm.InternalServerError, match="fake server: script exhausted after 1 requests"):
            ask(srv)
        srv.add({"content": "more"})
        assert srv.remaining == 1
        assert ask(srv).choices[0].message.content == "more"
        assert srv.remaining == 0


def test_not_json_and_disconnect_fail_the_call() -> None:
    with FakeOpenAI([{"raw": "<html>not json</html>"}, {"disconnect": True}, {"content": "still alive"}]) as srv:
        with pytest.raises(litellm.InternalServerError, match="Expecting value"):
            ask(srv)
        with pytest.raises(litellm.InternalServerError, match="Connection error"):
            ask(srv)
        assert ask(srv).choices[0].message.content == "still alive"
    assert len(srv.requests) == 3


# ----------------------------------------------------------------------------- brain, delay, records


def test_brain_answers_after_the_queue() -> None:
    def brain(request: dict[str, Any]) -> dict[str, Any]:
        return {"content": "you said: " + request["messages"][-1]["content"]}

    with FakeOpenAI([{"content": "queued first"}], brain=brain) as srv:
        assert ask(srv).choices[0].message.content == "queued first"
        assert ask(srv).choices[0].message.content == "you said: What is 2 + 3?"


def test_a_failing_brain_is_reported() -> None:
    def brain(request: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("no rule")

    with FakeOpenAI(brain=brain) as srv:
        with pytest.raises(litellm.InternalServerError, match="the brain raised KeyError"):
            ask(srv)


def test_delay_and_client_timeout() -> None:
    with FakeOpenAI([{"delay": 0.15, "content": "late"}, {"delay": 2, "content": "too late"}, {"content": "next"}]) as srv:
        started = time.perf_counter()
        assert ask(srv).choices[0].message.content == "late"
        assert time.perf_counter() - started >= 0.15
        with pytest.raises(litellm.Timeout):
            ask(srv, timeout=0.1)
        assert ask(srv).choices[0].message.content == "next"
        stopping = time.perf_counter()
    assert time.perf_counter() - stopping < 1  # stop() does not wait for the sleeping handler


def test_concurrent_requests_are_all_recorded() -> None:
    with FakeOpenAI(brain=lambda request: {"content": request["messages"][0]["content"]}) as srv:
        answers: list[str] = []

        def one(n: int) -> None:
            _, _, body = http(srv, "/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": str(n)}]})
            answers.append(json.loads(body)["choices"][0]["message"]["content"])

        threads = [threading.Thread(target=one, args=(n,)) for n in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sorted(answers, key=int) == [str(n) for n in range(20)]
    assert sorted(r["messages"][0]["content"] for r in srv.requests) == sorted(str(n) for n in range(20))


# ----------------------------------------------------------------------------- streaming


def test_stream_rebuilds_content_tool_calls_and_usage() -> None:
    text = "I will add these two numbers for you, carefully and step by step, now."  # several deltas
    script = [{"content": text, "tool_calls": [("add", {"a": 2, "b": 3}), ("add", '{"a": "x"')], "usage": {"prompt_tokens": 42, "completion_tokens": 7}}]
    with FakeOpenAI(script) as srv:
        chunks = list(ask(srv, tools=TOOLS, stream=True, stream_options={"include_usage": True}))
    r = litellm.stream_chunk_builder(chunks, messages=QUESTION)
    message = r.choices[0].message
    assert message.content == text
    assert [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls] == [
        ("call_1", "add", '{"a": 2, "b": 3}'),
        ("call_2", "add", '{"a": "x"'),
    ]
    assert r.choices[0].finish_reason == "tool_calls"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (42, 7, 49)
    assert srv.requests[0]["stream"] is True


def test_stream_wire_format() -> None:
    with FakeOpenAI([{"content": "hi"}, {"content": "hi"}]) as srv:
        with_usage = http(srv, "/v1/chat/completions", {"model": "m", "messages": [], "stream": True, "stream_options": {"include_usage": True}})
        without = http(srv, "/v1/chat/completions", {"model": "m", "messages": [], "stream": True})
    status, headers, body = with_usage
    assert status == 200 and headers["Content-Type"] == "text/event-stream"
    events = [line[len("data: "):] for line in body.decode().split("\n\n") if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 2
    plain = [json.loads(e[len("data: "):]) for e in without[2].decode().split("\n\n") if e.startswith("data: {")]
    assert plain and not any("usage" in c for c in plain)  # no usage chunk unless include_usage


# ----------------------------------------------------------------------------- HTTP and lifecycle


def test_models_list_and_unknown_paths() -> None:
    with FakeOpenAI(model_name="scripted") as srv:
        status, _, body = http(srv, "/v1/models")
        assert status == 200 and [m["id"] for m in json.loads(body)["data"]] == ["scripted"]
        status, _, body = http(srv, "/v1/audio/speech", {"input": "x"})
        assert status == 404 and "no route" in json.loads(body)["error"]["message"]
        status, _, body = http(srv, "/nope")
        assert status == 404
    assert srv.requests == []  # only chat requests are recorded


def test_lifecycle_and_stop_closes_pooled_connections() -> None:
    srv = FakeOpenAI([{"content": "old"}])
    with pytest.raises(RuntimeError, match="not running"):
        _ = srv.base_url
    with srv:
        port = srv.port
        assert srv.base_url == f"http://127.0.0.1:{port}/v1"
        assert ask(srv).choices[0].message.content == "old"  # litellm now pools a keep-alive connection
    srv.stop()  # idempotent
    # A new server on the same port must answer, not the stopped one's lingering handler.
    with FakeOpenAI([{"content": "new"}], port=port) as again:
        assert ask(again).choices[0].message.content == "new"
    assert len(srv.requests) == 1 and len(again.requests) == 1


def test_command_line(tmp_path: Path) -> None:
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps([{"content": "from the file"}]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "behave_aitest.model.fakellm", "--replies", str(replies)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        request = urllib.request.Request(
            base_url + "/chat/completions", data=json.dumps({"model": "m", "messages": []}).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.loads(response.read())["choices"][0]["message"]["content"] == "from the file"
    finally:
        proc.terminate()
        proc.wait(timeout=5)
