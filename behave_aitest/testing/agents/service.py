"""An agent service for the tests: OpenAI chat completions in, the agent's answer out.

``python -m behave_aitest.testing.agents.service --port N`` serves ``POST /v1/chat/completions``
(the conversation in the body, the thread in ``X-Aitest-Thread``) and ``GET /health``. It
reaches the model and the MCP servers through the variables behave-aitest gives a service
it starts (``OPENAI_BASE_URL``, ``OPENAI_API_KEY``, ``AITEST_MODEL``, ``AITEST_MCP_CONFIG``),
and forwards the thread header into its own requests, as a shared service must.
``--fail STATUS`` answers every chat request with that status; ``--malformed`` with a body
that is not JSON; ``--delay S`` waits S seconds first. Standard library, httpx and the MCP client only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from behave_aitest.testing.agents.react import react, servers_from_environment


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    options: argparse.Namespace

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _send(self, status: int, data: bytes, kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._send(200 if self.path == "/health" else 404, b'{"ok": true}')

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if self.options.delay:
            time.sleep(self.options.delay)
        if self.options.fail:
            self._send(self.options.fail, b'{"error": "the service is failing on purpose"}')
            return
        if self.options.malformed:
            self._send(200, b"<html>not json</html>", "text/html")
            return
        new = asyncio.run(react(
            body["messages"], model_url=os.environ["OPENAI_BASE_URL"], key=os.environ["OPENAI_API_KEY"],
            model=os.environ.get("AITEST_MODEL", "any"), mcp=servers_from_environment(),
            thread=self.headers.get("X-Aitest-Thread"),
        ))
        answer = {"id": "chatcmpl-service", "object": "chat.completion", "model": body.get("model"),
                  "choices": [{"index": 0, "message": new[-1], "finish_reason": "stop"}]}
        self._send(200, json.dumps(answer).encode())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m behave_aitest.testing.agents.service")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fail", type=int, default=0)
    parser.add_argument("--malformed", action="store_true")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait before answering a chat request")
    Handler.options = parser.parse_args(argv)
    server = ThreadingHTTPServer(("127.0.0.1", Handler.options.port), Handler)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", file=sys.stderr, flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
