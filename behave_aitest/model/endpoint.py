"""The model endpoint: an OpenAI-compatible chat-completions service for an external agent.

An agent under test that is not behave-aitest's own loop (a framework, a service, a CLI)
gets this endpoint as its base URL (``OPENAI_BASE_URL``). Every request it sends is
answered by an injected async function (``serve``), which the runtime binds to the
conversation in flight: the same completer the built-in loop uses, so cassettes record and
replay, prices, tokens, retries, ``max_model_concurrency`` and budgets all apply, and the
model the agent *asks for* is mapped to the scenario's model, never trusted.

Served: ``POST /v1/chat/completions`` (non-streaming, and streaming: the answer, live or
replayed, is sent back as ``chat.completion.chunk`` events), ``POST /v1/responses`` (the
OpenAI Responses API, translated by :mod:`.responses`; a request that continues a stored
response is refused with one line), ``GET /v1/models``. The key check is the HTTP server's
(:mod:`behave_aitest.model.localhttp`).
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .fakellm import stream_chunks
from .llm import ModelReply
from .localhttp import LocalHTTPServer, Request, Response, json_response

THREAD_HEADER = "x-aitest-thread"  # a shared service forwards the thread it was asked about

# Body keys that decide the answer and go on to the model (and into the cassette's key).
# Everything else (stream, stream_options, store, metadata, user, ...) stays here: the
# answer is the same whether the agent streams it, and the model is the scenario's.
FORWARDED = (
    "messages", "tools", "tool_choice", "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop",
    "response_format", "parallel_tool_calls", "seed", "presence_penalty", "frequency_penalty", "reasoning_effort",
)

@dataclass
class ChatRequest:
    """One chat request of the agent, as ``serve`` receives it."""

    request: dict[str, Any]  # the forwarded keys (messages, tools, ...): the model request minus the model
    asked_model: str  # the model name the agent sent (recorded, never used to pick the model)
    thread: str | None  # the X-Aitest-Thread header, when the agent forwards it
    stream: bool


class ModelRefused(Exception):
    """``serve`` cannot answer: sent to the agent as an OpenAI error with ``status``."""

    def __init__(self, status: int, message: str, kind: str = "server_error") -> None:
        super().__init__(message)
        self.status, self.kind = status, kind


Serve = Callable[[ChatRequest], Awaitable[ModelReply]]


def error(status: int, message: str, kind: str) -> Response:
    return json_response(status, {"error": {"message": message, "type": kind, "code": status}})


def reply_message(reply: ModelReply) -> tuple[dict[str, Any], str]:
    """The assistant message and finish reason of ``reply`` on the OpenAI wire."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in reply.tool_calls
        ]
        finish = "tool_calls"
    else:
        message["content"] = reply.content or ""
        finish = "stop"
    if reply.finish_reason in ("length", "content_filter"):
        finish = reply.finish_reason
    return message, finish


class ModelEndpoint:
    """``/v1/chat/completions`` and ``/v1/models`` on a :class:`LocalHTTPServer`."""

    def __init__(self, http: LocalHTTPServer, serve: Serve, model_name: str = "aitest") -> None:
        self.http = http
        self.serve = serve
        self.model_name = model_name  # what /v1/models lists and answers name (the flow's model)
        self.requests = 0
        self._ids = itertools.count(1)
        http.route("/v1", self._handle)

    @property
    def url(self) -> str:
        """The base URL an OpenAI client takes (``OPENAI_BASE_URL``), ending in ``/v1``."""
        return f"{self.http.base}/v1"

    async def _handle(self, request: Request) -> Response:
        path = request.path.rstrip("/")
        if path == "/v1/models" and request.method == "GET":
            model = {"id": self.model_name, "object": "model", "created": 0, "owned_by": "behave-aitest"}
            return json_response(200, {"object": "list", "data": [model]})
        if path.startswith("/v1/models/") and request.method == "GET":
            return json_response(200, {"id": path[len("/v1/models/"):], "object": "model", "created": 0, "owned_by": "behave-aitest"})
        if path == "/v1/responses" and request.method == "POST":
            return await self._responses(request)
        if path != "/v1/chat/completions":
            return error(404, f"behave-aitest: the model endpoint serves /v1/chat/completions and /v1/models, not {request.path}", "not_found_error")
        if request.method != "POST":
            return error(405, "behave-aitest: POST /v1/chat/completions", "invalid_request_error")
        try:
            body = request.json()
        except ValueError as exc:
            return error(400, f"behave-aitest: the request body is not JSON: {exc}", "invalid_request_error")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return error(400, "behave-aitest: the request body must be a JSON object with a 'messages' list", "invalid_request_error")
        chat = ChatRequest(
            request={k: body[k] for k in FORWARDED if k in body and body[k] is not None},
            asked_model=str(body.get("model") or ""),
            thread=request.headers.get(THREAD_HEADER) or None,
            stream=bool(body.get("stream")),
        )
        self.requests += 1
        try:
            reply = await self.serve(chat)
        except ModelRefused as exc:
            return error(exc.status, str(exc), exc.kind)
        message, finish = reply_message(reply)
        usage = {"prompt_tokens": reply.input_tokens, "completion_tokens": reply.output_tokens,
                 "total_tokens": reply.input_tokens + reply.output_tokens}
        completion_id, created = f"chatcmpl-aitest-{next(self._ids)}", int(time.time())
        model = chat.asked_model or self.model_name
        if chat.stream:
            include = bool((body.get("stream_options") or {}).get("include_usage"))
            chunks = stream_chunks(completion_id, model, created, message, finish, usage if include else None)
            return Response(200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}, stream=_sse(chunks))
        answer = {
            "id": completion_id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}], "usage": usage,
        }
        return json_response(200, answer)


    async def _responses(self, request: Request) -> Response:
        """``POST /v1/responses``: translated to a chat request, the reply translated back."""
        from .responses import ResponsesRefusal, chat_request, response_object, sse, stream_events

        try:
            body = request.json()
            if not isinstance(body, dict):
                raise ResponsesRefusal("behave-aitest: the request body must be a JSON object")
            chat = ChatRequest(chat_request(body), str(body.get("model") or ""), request.headers.get(THREAD_HEADER) or None,
                               bool(body.get("stream")))
        except ValueError as exc:  # also ResponsesRefusal
            return error(400, str(exc), "invalid_request_error")
        self.requests += 1
        try:
            reply = await self.serve(chat)
        except ModelRefused as exc:
            return error(exc.status, str(exc), exc.kind)
        response = response_object(reply, chat.asked_model or self.model_name, body)
        if chat.stream:
            return Response(200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
                            stream=_each(sse(stream_events(response))))
        return json_response(200, response)


async def _each(pieces: Any) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


async def _sse(chunks: Any) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield b"data: " + json.dumps(chunk, ensure_ascii=False).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"
