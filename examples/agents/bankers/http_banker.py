"""A banking agent as a plain HTTP service, written with the standard library only.

It stands for an agent service in any language: it speaks the OpenAI chat-completions wire on
``POST /v1/chat/completions`` (the conversation in, the answer out), calls its model over HTTP
and its bank over MCP's streamable HTTP transport (JSON-RPC in a POST), with no framework and
no SDK. behave-aitest starts it once per worker (``command``), waits for ``ready_url``, posts
every turn to it, and gives it in its environment:

* ``OPENAI_BASE_URL``, ``OPENAI_API_KEY``, ``AITEST_MODEL``: the model endpoint, its key, the model name;
* ``AITEST_MCP_BANK_URL`` and ``AITEST_KEY``: the bank's MCP endpoint and the per-run key.

A request's ``X-Aitest-Thread`` header is forwarded into its model and MCP requests, so one
service shared by several behave-aitest workers stays correct.

    python bankers/http_banker.py --port 8765     # serves http://127.0.0.1:8765/v1/chat/completions
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: bankers.common importable
from bankers.plain import AgentError, McpClient, Model, answer  # noqa: E402

THREAD_HEADER = "X-Aitest-Thread"


def reply(conversation: list[Mapping[str, Any]], thread: str | None) -> str:
    """One turn, with the model and the bank named in the environment (``thread``: forwarded)."""
    extra = {THREAD_HEADER: thread} if thread else {}
    model = Model(os.environ["OPENAI_BASE_URL"], os.environ["OPENAI_API_KEY"], os.environ.get("AITEST_MODEL", "gpt-4.1-mini"), extra)
    bank = McpClient(os.environ["AITEST_MCP_BANK_URL"], {"Authorization": f"Bearer {os.environ['AITEST_KEY']}", **extra})
    return answer(conversation, model, [bank])


class Handler(BaseHTTPRequestHandler):
    """``POST /v1/chat/completions`` answers a turn; ``GET /health`` says the service is up."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        if self.path == "/health":
            self._send(200, {"status": "ok"})
        else:
            self._send(404, {"error": {"message": f"no such path: {self.path}"}})

    def do_POST(self) -> None:  # noqa: N802
        if self.path != "/v1/chat/completions":
            self._send(404, {"error": {"message": f"no such path: {self.path}"}})
            return
        try:
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            messages = request["messages"]
        except (ValueError, KeyError, TypeError):
            self._send(400, {"error": {"message": "the body must be a chat-completions request with messages"}})
            return
        try:
            text = reply(messages, self.headers.get(THREAD_HEADER))
        except AgentError as exc:
            self._send(502, {"error": {"message": str(exc)}})
            return
        self._send(200, {
            "id": "chatcmpl-http-banker",
            "object": "chat.completion",
            "model": str(request.get("model") or "http-banker"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        })

    def _send(self, status: int, body: Mapping[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # quiet: behave-aitest keeps the service's stderr for when something goes wrong


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="http_banker.py", description="The example banking agent service.")
    parser.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default: 8765)")
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"serving http://127.0.0.1:{server.server_address[1]}/v1/chat/completions", file=sys.stderr, flush=True)
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
