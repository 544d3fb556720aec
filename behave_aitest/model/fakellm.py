"""A fake OpenAI-compatible chat-completions server (stdlib only).

Why it exists: the project's tests, and the built-in scripted model, must drive litellm
through its *real* HTTP path (request building, retries, error mapping, streaming) with
no network and no API key. litellm talks to it like to any OpenAI endpoint::

    with FakeOpenAI([{"tool_calls": [("add", {"a": 2, "b": 3})]}, {"content": "5"}]) as srv:
        litellm.completion(model="openai/fake-model", api_base=srv.base_url, api_key="sk-fake", ...)
        srv.requests  # every JSON request body received, in order

Each ``POST /v1/chat/completions`` takes the next queued reply; when the queue is empty
the ``brain`` (if any) is asked with the request body; with neither, the server answers
HTTP 500 "fake server: script exhausted after N requests". Replies queued for one model
(``add(..., model="fake-user")``) answer only requests naming that model, so one server can
play two models at once (an agent and its simulated user, two agents compared); a model
with such a queue never takes the shared queue's replies. Reply dicts:

``{"content": "text"}``
    An assistant message, finish_reason ``"stop"``.
``{"tool_calls": [...], "content": "optional text"}``
    finish_reason ``"tool_calls"``. Each call is a tuple/list ``(name, arguments)`` or a dict
    ``{"name", "arguments", "id"?}``. Dict arguments are ``json.dumps``-ed; a str is sent
    verbatim (so tests can send invalid JSON). Ids default to ``call_<n>``, unique per server.
``"usage": {"prompt_tokens": int, "completion_tokens": int}``
    Optional on any reply. The default is a deterministic estimate (characters // 4 + 1
    of the request's message contents and of the reply); total_tokens is filled in.
``"finish_reason": "length"``
    Optional on any reply: overrides the finish reason.
``{"status": 429, "message": "...", "type"?: ..., "code"?: ..., "headers": {"retry-after": "0"}}``
    An error response (any status >= 400) with an OpenAI error body
    ``{"error": {"message", "type", "code"}}``.
``{"status": 429, "echo_auth": True, ...}``
    An error whose message also quotes the request's ``Authorization`` header, as careless
    providers and proxies do (a secret in an exception's text); combine with
    ``"headers": {"retry-after": "nan"}`` for a nonsensical wait.
``{"delay": seconds, ...}``
    Sleep before responding; combines with any other form.
``{"raw": "text or bytes", "status": 200}``
    Send this body verbatim (Content-Type application/json unless "headers" say otherwise).
``{"disconnect": True}``
    Reset the connection without responding.
``"headers": {...}``
    Extra response headers on any form.

**Quotas** (``FakeOpenAI(quota=Quota(...))``) make the server act like a provider account with
limits, before any script is consulted (a refused request takes no reply from the queue):
``Quota(concurrent=4)`` answers 429 to a request that arrives while 4 are being answered;
``Quota(requests=10, window_s=60)`` and ``Quota(tokens=..., window_s=...)`` answer 429 above N
requests (or estimated tokens) in a sliding window; ``headers`` picks what a 429 says:
``"retry-after"`` (``Retry-After: <retry_after_s>``, the default), ``"retry-after-ms"``,
``"ratelimit"`` (``x-ratelimit-remaining-requests: 0`` and ``x-ratelimit-reset-requests``) or
``"none"``. ``Quota(concurrent=0)`` refuses every request, forever. ``srv.refused`` counts the
429s sent, ``srv.peak`` the most requests answered at once.

A request with ``"stream": true`` gets Server-Sent Events (``chat.completion.chunk``
objects, a usage chunk only when ``stream_options.include_usage``, then ``data: [DONE]``)
and the connection is closed. ``GET /v1/models`` lists one model. ``POST /v1/embeddings``
answers every input with a deterministic bag-of-words vector (:func:`embed_words`: the same
words give cosine 1, no shared word 0), recorded in ``embedding_requests``; other paths get a 404.

Run ``python -m behave_aitest.model.fakellm --replies FILE.json`` to serve a JSON list of
replies in the foreground; the base URL is printed on stdout.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import signal
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

Reply = Mapping[str, Any]
Brain = Callable[[dict[str, Any]], Reply]

DEFAULT_MODEL = "fake-model"
CHAT_PATHS = ("/v1/chat/completions", "/chat/completions")
EMBEDDING_PATHS = ("/v1/embeddings", "/embeddings")
EMBEDDING_SIZE = 256
MODELS_PATHS = ("/v1/models", "/models")

# Error "type" per status. litellm maps errors partly by *text*: any body containing
# "invalid_request_error" becomes BadRequestError whatever the status, and "rate limit"
# becomes RateLimitError, so each status gets a type that keeps its natural mapping.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}

# Characters per streamed content/arguments delta: small enough that clients must reassemble.
_PIECE = 64


@dataclass(frozen=True)
class Quota:
    """A provider account's limits, enforced by the fake server with 429 answers."""

    concurrent: int | None = None  # requests answered at once; None: no limit, 0: refuse all
    requests: int | None = None  # requests per window_s
    tokens: int | None = None  # estimated prompt tokens per window_s
    window_s: float = 60.0
    retry_after_s: float = 1.0  # what the 429 asks (see headers)
    headers: str = "retry-after"  # retry-after | retry-after-ms | ratelimit | none

    def refusal_headers(self, reset_s: float) -> dict[str, str]:
        """The headers of a 429 (``reset_s``: when the window lets a request in again)."""
        if self.headers == "retry-after":
            return {"retry-after": f"{self.retry_after_s:g}"}
        if self.headers == "retry-after-ms":
            return {"retry-after-ms": str(int(self.retry_after_s * 1000))}
        if self.headers == "ratelimit":
            return {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": f"{max(reset_s, 0.001):.3f}s"}
        return {}


class FakeServerError(ValueError):
    """A reply dict the fake server cannot understand (a bug in the test's script)."""


# ----------------------------------------------------------------------------- pure helpers


def embed_words(text: str) -> list[float]:
    """A deterministic stand-in for an embedding: each lower-cased word counted in one of
    :data:`EMBEDDING_SIZE` slots (by a stable hash), so the cosine of two texts measures the
    words they share."""
    import hashlib

    vector = [0.0] * EMBEDDING_SIZE
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % EMBEDDING_SIZE] += 1.0
    return vector


def estimate_tokens(text: str) -> int:
    """A deterministic, tokenizer-free token count (about 4 characters a token)."""
    return len(text) // 4 + 1


def _text_of(content: Any) -> str:
    """The text of a message ``content`` (a string, content parts, or None)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def prompt_text(request: Mapping[str, Any]) -> str:
    """All message contents of a request, concatenated (the basis of the usage estimate)."""
    messages = request.get("messages") or []
    return "".join(_text_of(m.get("content")) for m in messages if isinstance(m, dict))


def normalize_tool_calls(calls: Iterable[Any], next_id: Callable[[], str]) -> list[dict[str, Any]]:
    """Turn the script's tool calls (tuples or dicts) into OpenAI ``tool_calls`` entries."""
    normalized = []
    for call in calls:
        if isinstance(call, (tuple, list)) and len(call) == 2:
            name, arguments, call_id = call[0], call[1], None
        elif isinstance(call, Mapping) and "name" in call:
            name, arguments, call_id = call["name"], call.get("arguments", {}), call.get("id")
        else:
            raise FakeServerError(f"fake server: a tool call must be (name, arguments) or {{'name', 'arguments'}}, got {call!r}")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        normalized.append(
            {"id": call_id or next_id(), "type": "function", "function": {"name": str(name), "arguments": arguments}}
        )
    return normalized


def build_message(reply: Reply, next_id: Callable[[], str]) -> tuple[dict[str, Any], str]:
    """The assistant message and finish reason for a content/tool-call reply."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.get("content")}
    calls = normalize_tool_calls(reply.get("tool_calls") or (), next_id)
    if calls:
        message["tool_calls"] = calls
        finish = "tool_calls"
    else:
        message["content"] = message["content"] or ""
        finish = "stop"
    return message, str(reply.get("finish_reason") or finish)


def build_usage(reply: Reply, request: Mapping[str, Any], message: Mapping[str, Any]) -> dict[str, int]:
    """Usage from the reply, with missing counts estimated and total_tokens filled in."""
    given = dict(reply.get("usage") or {})
    reply_text = _text_of(message.get("content")) + "".join(
        c["function"]["name"] + c["function"]["arguments"] for c in message.get("tool_calls", ())
    )
    prompt = int(given.get("prompt_tokens", estimate_tokens(prompt_text(request))))
    completion = int(given.get("completion_tokens", estimate_tokens(reply_text)))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def error_body(status: int, message: str, type_: str | None = None, code: Any = None) -> dict[str, Any]:
    """An OpenAI-style error body whose type keeps litellm's status-based mapping."""
    default_type = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "api_error")
    return {"error": {"message": message, "type": type_ or default_type, "code": code if code is not None else status}}


def _pieces(text: str, size: int = _PIECE) -> list[str]:
    """Split text into stream deltas (at least one, possibly empty)."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def stream_chunks(
    completion_id: str,
    model: str,
    created: int,
    message: Mapping[str, Any],
    finish: str,
    usage: Mapping[str, int] | None,
) -> Iterator[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects that stream ``message`` the way OpenAI does."""

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [choice]}

    yield chunk({"role": "assistant", "content": ""})
    if message.get("content"):
        for piece in _pieces(message["content"]):
            yield chunk({"content": piece})
    for index, call in enumerate(message.get("tool_calls", ())):
        head = {"index": index, "id": call["id"], "type": "function", "function": {"name": call["function"]["name"], "arguments": ""}}
        yield chunk({"tool_calls": [head]})
        if call["function"]["arguments"]:
            for piece in _pieces(call["function"]["arguments"]):
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield chunk({}, finish)
    if usage is not None:
        yield {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [], "usage": dict(usage)}


# ----------------------------------------------------------------------------- HTTP plumbing


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its FakeOpenAI and can drop its open connections."""

    daemon_threads = True
    request_queue_size = 128  # the default backlog of 5 drops bursts of connects (1 s SYN retry)

    def __init__(self, address: tuple[str, int], fake: FakeOpenAI) -> None:
        self.fake = fake
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def close_connections(self) -> None:
        """Shut every open (keep-alive) connection, so no handler thread outlives stop()
        and a pooled client connection cannot reach a stopped server's script."""
        with self.connections_lock:
            open_now = list(self.connections)
        for sock in open_now:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about clients that went away; report real bugs."""
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """One HTTP connection; the decisions are made by FakeOpenAI.answer."""

    protocol_version = "HTTP/1.1"  # keep-alive, like a real provider
    disable_nagle_algorithm = True  # without it each response waits ~40 ms for a delayed ACK
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silent: test output and behave reports must not fill with access logs."""

    # -- responses

    def send_json(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        self.send_bytes(status, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})})

    def send_bytes(self, status: int, data: bytes, headers: Mapping[str, str]) -> None:
        """One response with Content-Length, so the connection can be kept alive."""
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, str(value))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_stream(self, chunks: Iterable[Mapping[str, Any]], headers: Mapping[str, str]) -> None:
        """Server-Sent Events ending in ``[DONE]``; the body ends when the connection closes."""
        self.close_connection = True
        self.send_response(200)
        for name, value in {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", **headers}.items():
            self.send_header(name, str(value))
        self.send_header("Connection", "close")
        self.end_headers()
        for chunk in chunks:
            self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        self.wfile.write(b"data: [DONE]\n\n")

    def reset(self) -> None:
        """Abort the connection (RST) without a response: the client sees a connection reset."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()

    # -- verbs

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path in MODELS_PATHS:
            model = {"id": self.server.fake.model_name or DEFAULT_MODEL, "object": "model", "created": 0, "owned_by": "behave-aitest"}
            self.send_json(200, {"object": "list", "data": [model]})
        else:
            self.send_json(404, error_body(404, f"fake server: no route GET {path}"))

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if path not in CHAT_PATHS + EMBEDDING_PATHS:
            self.send_json(404, error_body(404, f"fake server: no route POST {path}"))
            return
        try:
            request = json.loads(data)
        except ValueError as exc:
            self.send_json(400, error_body(400, f"fake server: the request body is not JSON: {exc}"))
            return
        if not isinstance(request, dict):
            self.send_json(400, error_body(400, "fake server: the request body is not a JSON object"))
            return
        if path in EMBEDDING_PATHS:
            self.server.fake.answer_embeddings(self, request)
            return
        self.server.fake.answer(self, request)


# ----------------------------------------------------------------------------- the server


class FakeOpenAI:
    """A scripted OpenAI-compatible server on 127.0.0.1, served from a daemon thread.

    ``replies`` are answered in order; ``brain`` (called with the request body) answers
    once they run out. ``model_name``, when given, is reported as the model in every
    response and in ``GET /v1/models``; otherwise the request's own model is echoed.
    """

    def __init__(
        self,
        replies: Iterable[Reply] = (),
        *,
        brain: Brain | None = None,
        model_name: str | None = None,
        port: int = 0,
        quota: Quota | None = None,
    ) -> None:
        self.brain = brain
        self.quota = quota
        self.refused = 0  # 429s sent for the quota
        self.peak = 0  # most requests answered at once
        self._in_flight = 0
        self._window: deque[tuple[float, int]] = deque()  # (arrived, estimated tokens) of admitted requests
        self.model_name = model_name
        self.requests: list[dict[str, Any]] = []
        self.embedding_requests: list[dict[str, Any]] = []
        self._wanted_port = port
        self._queue: deque[Reply] = deque(replies)
        self._model_queues: dict[str, deque[Reply]] = {}  # replies for one model (the request's "model")
        self._lock = threading.Lock()
        self._served = 0  # chat requests answered by the queue or the brain
        self._chat_count = itertools.count(1)
        self._call_count = itertools.count(1)
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> FakeOpenAI:
        """Bind and serve in a daemon thread; a no-op when already running."""
        if self._server is None:
            self._stopping.clear()
            self._server = _Server(("127.0.0.1", self._wanted_port), self)
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"fakellm-{self.port}", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop open connections and free the port; safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # wakes handlers sleeping in a "delay"
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeOpenAI is not running: call start() or use it as a context manager first.")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """What to pass to litellm as ``api_base`` (it appends ``/chat/completions``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    # -- script

    def add(self, *replies: Reply, model: str | None = None) -> None:
        """Queue more replies (after the ones still waiting); with ``model``, for requests
        naming that model only (as litellm sends it: ``openai/fake-user`` arrives as ``fake-user``)."""
        with self._lock:
            if model is None:
                self._queue.extend(replies)
            else:
                self._model_queues.setdefault(model, deque()).extend(replies)

    @property
    def remaining(self) -> int:
        """Queued replies not yet used, all models' included (a test can assert its script was consumed)."""
        with self._lock:
            return len(self._queue) + sum(len(q) for q in self._model_queues.values())

    def _next_call_id(self) -> str:
        return f"call_{next(self._call_count)}"

    def _take(self, request: dict[str, Any]) -> tuple[int, Reply]:
        """Record the request and pick its reply: the queue, then the brain, else an error."""
        with self._lock:
            self.requests.append(request)
            number = next(self._chat_count)
            queue = self._model_queues.get(str(request.get("model") or ""), self._queue)
            reply = queue.popleft() if queue else None
            served = self._served
            if reply is not None or self.brain is not None:
                self._served += 1
        if reply is not None:
            return number, reply
        if self.brain is None:
            message = (
                f"fake server: script exhausted after {served} requests "
                f"(request {number} has no scripted reply; queue more with add() or give a brain)"
            )
            return number, {"status": 500, "message": message}
        try:
            return number, self.brain(request)
        except Exception as exc:  # the brain is test code: report its failure to the caller
            return number, {"status": 500, "message": f"fake server: the brain raised {type(exc).__name__}: {exc}"}

    # -- answering

    def _over_quota(self, request: dict[str, Any]) -> dict[str, str] | None:
        """The 429's headers when ``request`` is above the quota; else admit it (None)."""
        quota = self.quota
        if quota is None:
            return None
        now = time.monotonic()
        tokens = estimate_tokens(prompt_text(request))
        with self._lock:
            while self._window and self._window[0][0] <= now - quota.window_s:
                self._window.popleft()
            reset = (self._window[0][0] + quota.window_s - now) if self._window else 0.0
            over = quota.concurrent is not None and self._in_flight >= quota.concurrent
            over = over or (quota.requests is not None and len(self._window) >= quota.requests)
            over = over or (quota.tokens is not None and sum(t for _, t in self._window) + tokens > quota.tokens)
            if over:
                self.refused += 1
                return quota.refusal_headers(reset if quota.requests or quota.tokens else quota.retry_after_s)
            self._in_flight += 1
            self.peak = max(self.peak, self._in_flight)
            self._window.append((now, tokens))
        return None

    def answer(self, handler: _Handler, request: dict[str, Any]) -> None:
        """Answer one chat-completions request on ``handler``: the quota, then the script."""
        refusal = self._over_quota(request)
        if refusal is not None:
            handler.send_json(429, error_body(429, "fake server: rate limit reached for requests (quota)"), refusal)
            return
        if self.quota is None:
            self._answer(handler, request)
            return
        try:
            self._answer(handler, request)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _answer(self, handler: _Handler, request: dict[str, Any]) -> None:
        number, reply = self._take(request)
        delay = float(reply.get("delay") or 0)
        if delay and self._stopping.wait(delay):
            handler.reset()  # stopped while sleeping
            return
        headers = dict(reply.get("headers") or {})
        status = int(reply.get("status") or 200)
        if reply.get("disconnect"):
            handler.reset()
        elif "raw" in reply:
            raw = reply["raw"]
            data = raw if isinstance(raw, bytes) else str(raw).encode()
            handler.send_bytes(status, data, {"Content-Type": "application/json", **headers})
        elif status >= 400:
            message = str(reply.get("message") or f"fake server: scripted error {status}")
            if reply.get("echo_auth"):
                message += f" (request header Authorization: {handler.headers.get('Authorization')})"
            handler.send_json(status, error_body(status, message, reply.get("type"), reply.get("code")), headers)
        else:
            self._send_completion(handler, number, reply, request, headers)

    def answer_embeddings(self, handler: _Handler, request: dict[str, Any]) -> None:
        """``POST /v1/embeddings``: one :func:`embed_words` vector per input."""
        with self._lock:
            self.embedding_requests.append(request)
        texts = request.get("input")
        texts = [texts] if isinstance(texts, str) else list(texts or [])
        data = [{"object": "embedding", "index": i, "embedding": embed_words(str(t))} for i, t in enumerate(texts)]
        tokens = sum(estimate_tokens(str(t)) for t in texts)
        body = {"object": "list", "model": self.model_name or request.get("model") or DEFAULT_MODEL, "data": data,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
        handler.send_json(200, body)

    def _send_completion(
        self, handler: _Handler, number: int, reply: Reply, request: Mapping[str, Any], headers: Mapping[str, str]
    ) -> None:
        try:
            message, finish = build_message(reply, self._next_call_id)
        except FakeServerError as exc:
            handler.send_json(500, error_body(500, str(exc)))
            return
        usage = build_usage(reply, request, message)
        completion_id = f"chatcmpl-{number}"
        model = self.model_name or str(request.get("model") or DEFAULT_MODEL)
        created = int(time.time())
        if request.get("stream"):
            include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
            handler.send_stream(stream_chunks(completion_id, model, created, message, finish, usage if include_usage else None), headers)
            return
        body = {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": usage,
        }
        handler.send_json(200, body, headers)


# ----------------------------------------------------------------------------- command line


class _Cycle:
    """A brain that repeats a list of replies forever (for benchmarks)."""

    def __init__(self, replies: Sequence[Reply]) -> None:
        self._replies = itertools.cycle(list(replies))
        self._lock = threading.Lock()

    def __call__(self, request: dict[str, Any]) -> Reply:
        with self._lock:
            return next(self._replies)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a replies file in the foreground until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m behave_aitest.model.fakellm", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--replies", metavar="FILE.json", help="a JSON list of reply dicts, answered in order")
    parser.add_argument("--loop", action="store_true", help="repeat the replies forever instead of running out")
    parser.add_argument("--model-name", help="the model name to report (default: echo the request's model)")
    parser.add_argument("--quota", type=int, metavar="N", help="answer 429 (Retry-After: 1) above N requests at once")
    args = parser.parse_args(argv)
    replies: list[Reply] = []
    if args.replies:
        with open(args.replies, encoding="utf-8") as file:
            replies = json.load(file)
        if not isinstance(replies, list) or not all(isinstance(r, dict) for r in replies):
            parser.error(f"{args.replies}: must hold a JSON list of reply objects")
    if args.loop and not replies:
        parser.error("--loop needs --replies")
    quota = Quota(concurrent=args.quota) if args.quota is not None else None
    server = FakeOpenAI(brain=_Cycle(replies), model_name=args.model_name, port=args.port, quota=quota) if args.loop else FakeOpenAI(
        replies, model_name=args.model_name, port=args.port, quota=quota
    )
    return serve_until_stopped(server)


def serve_until_stopped(server: FakeOpenAI) -> int:
    """Start ``server``, print its base URL on stdout, serve until SIGTERM or Ctrl-C, stop it."""
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: done.set())  # `kill` stops it cleanly too
    with server:
        print(server.base_url, flush=True)
        try:
            while not done.wait(0.5):  # a timed wait keeps Ctrl-C responsive
                pass
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
