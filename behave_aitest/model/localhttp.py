"""A minimal HTTP/1.1 server on 127.0.0.1 for the endpoints an external agent talks to.

Why not uvicorn or ``http.server``: the model endpoint and the MCP endpoints must call the
run's own completer and tool connections, which live on the run's event loop; a server on
that same loop calls them directly (no thread hops, no second loop), and a hand-written
keep-alive loop with ``TCP_NODELAY`` adds well under a millisecond per request.

Every request must carry the run's key (``Authorization: Bearer <key>``, or ``api-key`` /
``x-api-key`` as some clients send it); without it the answer is 401 and the refusal is
logged (:attr:`LocalHTTPServer.refused`, and the ``on_refused`` callback), never served.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_BODY = 64 * 1024 * 1024  # a request body above this is refused (413)
MAX_HEAD = 64 * 1024
REASONS = {200: "OK", 202: "Accepted", 204: "No Content", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
           405: "Method Not Allowed", 413: "Payload Too Large", 500: "Internal Server Error", 502: "Bad Gateway",
           503: "Service Unavailable", 504: "Gateway Timeout"}


@dataclass
class Request:
    """One HTTP request as the handlers see it (header names in lower case)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Response:
    """An answer: a whole body, or ``stream`` (an async iterator of bytes, sent chunked)."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    stream: AsyncIterator[bytes] | None = None


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
    data = json.dumps(body, ensure_ascii=False).encode()
    return Response(status, data, {"Content-Type": "application/json", **(headers or {})})


Handler = Callable[[Request], Awaitable[Response]]


class LocalHTTPServer:
    """Routes by path prefix to handlers; checks the key on every request.

    Started and stopped on the event loop that runs the handlers (``await start()``)."""

    def __init__(self, key: str, on_refused: Callable[[Request], None] | None = None) -> None:
        self.key = key
        self.routes: list[tuple[str, Handler]] = []
        self.refused: list[str] = []  # "METHOD path" of every request refused for want of the key
        self.on_refused = on_refused
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def route(self, prefix: str, handler: Handler) -> None:
        self.routes.append((prefix, handler))
        self.routes.sort(key=lambda r: -len(r[0]))  # the longest prefix wins

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0, backlog=128)

    @property
    def port(self) -> int:
        assert self._server is not None, "the server is not started"
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for writer in list(self._writers):
            writer.close()
        try:
            await asyncio.wait_for(server.wait_closed(), 2)
        except (asyncio.TimeoutError, Exception):
            pass

    def authorised(self, request: Request) -> bool:
        given = request.headers.get("authorization", "")
        token = given[7:].strip() if given[:7].lower() == "bearer " else ""
        token = token or request.headers.get("x-api-key", "") or request.headers.get("api-key", "")
        return bool(token) and hmac.compare_digest(token.encode(), self.key.encode())

    # ----------------------------------------------------------------- the connection loop

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._writers.add(writer)
        try:
            while True:
                request = await self._read(reader, writer)
                if request is None:
                    return
                response = await self._dispatch(request)
                keep = request.headers.get("connection", "").lower() != "close"
                await self._write(writer, response, keep)
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.CancelledError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Request | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        if len(head) > MAX_HEAD:
            return None
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) < 2:
            return None
        method, target = parts[0].upper(), parts[1]
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        path, _, query = target.partition("?")
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                if len(body) + size > MAX_BODY:
                    return None
                body += await reader.readexactly(size)
                await reader.readexactly(2)
        else:
            length = int(headers.get("content-length") or 0)
            if length > MAX_BODY:
                await self._write(writer, json_response(413, {"error": {"message": "request body too large"}}), False)
                return None
            body = await reader.readexactly(length) if length else b""
        return Request(method, path, query, headers, body)

    async def _dispatch(self, request: Request) -> Response:
        if not self.authorised(request):
            self.refused.append(f"{request.method} {request.path}")
            if self.on_refused is not None:
                self.on_refused(request)
            message = "behave-aitest: missing or wrong key; send the per-run key as 'Authorization: Bearer <AITEST_KEY>'"
            return json_response(401, {"error": {"message": message, "type": "authentication_error", "code": 401}})
        for prefix, handler in self.routes:
            if request.path == prefix or request.path.startswith(prefix.rstrip("/") + "/"):
                try:
                    return await handler(request)
                except Exception as exc:  # a bug in a handler: the agent gets a 500, the run goes on
                    return json_response(500, {"error": {"message": f"behave-aitest: {type(exc).__name__}: {exc}", "type": "server_error"}})
        return json_response(404, {"error": {"message": f"behave-aitest: no route {request.method} {request.path}", "type": "not_found_error"}})

    async def _write(self, writer: asyncio.StreamWriter, response: Response, keep: bool) -> None:
        status = response.status
        head = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}"]
        headers = dict(response.headers)
        if response.stream is None:
            headers["Content-Length"] = str(len(response.body))
        else:
            headers["Transfer-Encoding"] = "chunked"
        headers["Connection"] = "keep-alive" if keep else "close"
        head += [f"{k}: {v}" for k, v in headers.items()]
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        if response.stream is None:
            writer.write(data + response.body)  # one write: a head sent alone waits for a delayed ACK
        else:
            writer.write(data)
            async for piece in response.stream:
                if piece:
                    writer.write(b"%x\r\n%b\r\n" % (len(piece), piece))
                    await writer.drain()
            writer.write(b"0\r\n\r\n")
        await writer.drain()
