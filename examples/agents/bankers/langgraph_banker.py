"""A banking assistant built with LangGraph, served over HTTP from a virtualenv of its own.

A ReAct graph (``StateGraph`` with a model node and a ``ToolNode``, looping while the model
asks for tools) on ``ChatOpenAI`` (``langchain-openai``), its tools loaded from the bank's MCP
endpoint by ``langchain-mcp-adapters``. Those adapters require ``mcp<2`` while behave-aitest
requires ``mcp>=2``, so this agent cannot live in behave-aitest's virtualenv: it runs in
``.venv-langgraph`` (``examples/agents/langgraph/setup.sh`` makes it) as an agent service, the
way such a team would deploy it. behave-aitest starts it (``command``), waits for
``ready_url``, posts every turn to ``/v1/chat/completions`` and gives it in its environment
``OPENAI_BASE_URL``, ``OPENAI_API_KEY``, ``AITEST_MODEL`` (the model endpoint) and
``AITEST_MCP_BANK_URL``, ``AITEST_KEY`` (the bank's MCP endpoint and the per-run key).

Memory: with ``--stateful`` the graph keeps each conversation in a LangGraph checkpointer under
its thread id (the ``X-Aitest-Thread`` header, else the body's ``user``) and reads only the
new messages of each request: the agent's configuration then says ``stateful = true``.
Without it, every request carries the whole conversation and the graph keeps nothing.

    .venv-langgraph/bin/python bankers/langgraph_banker.py --port 8766
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_mcp_adapters.client import MultiServerMCPClient
from langchain_openai import ChatOpenAI
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: bankers.common importable
from bankers.common import INSTRUCTIONS, text_of, text_turns  # noqa: E402

THREAD_HEADER = "X-Aitest-Thread"
CHECKPOINTS = InMemorySaver()  # --stateful: every conversation's messages, by thread id


async def build_graph(thread: str | None, checkpointer: InMemorySaver | None) -> Any:
    """The ReAct graph for one request: the model and the bank's tools, with ``thread`` forwarded."""
    extra = {THREAD_HEADER: thread} if thread else {}
    bank = MultiServerMCPClient({
        "bank": {
            "transport": "streamable_http",
            "url": os.environ["AITEST_MCP_BANK_URL"],
            "headers": {"Authorization": f"Bearer {os.environ['AITEST_KEY']}", **extra},
        },
    })
    tools = await bank.get_tools()
    model = ChatOpenAI(
        model=os.environ.get("AITEST_MODEL", "gpt-4.1-mini"),
        base_url=os.environ["OPENAI_BASE_URL"],
        api_key=os.environ["OPENAI_API_KEY"],
        default_headers=extra or None,
        max_retries=0,
    ).bind_tools(tools)

    async def agent(state: MessagesState) -> dict[str, list[BaseMessage]]:
        reply = await model.ainvoke([{"role": "system", "content": INSTRUCTIONS}, *state["messages"]])
        return {"messages": [reply]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode(tools))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    return graph.compile(checkpointer=checkpointer)


async def reply(conversation: list[Mapping[str, Any]], thread: str | None, stateful: bool) -> str:
    """One turn: the whole conversation in, or (stateful) only its last user message on top of the thread's checkpoint."""
    turns = text_turns(conversation)
    if not turns or turns[-1]["role"] != "user":
        raise ValueError("the conversation must end with a user message")
    if stateful:
        if not thread:
            raise ValueError(f"a stateful request needs a thread id (the {THREAD_HEADER} header or the body's 'user')")
        graph = await build_graph(thread, CHECKPOINTS)
        result = await graph.ainvoke({"messages": turns[-1:]}, {"configurable": {"thread_id": thread}})
    else:
        graph = await build_graph(thread, None)
        result = await graph.ainvoke({"messages": turns})
    return text_of(result["messages"][-1].content)


class Service:
    """One event loop for the service's life, in its own thread (the model clients keep
    connections tied to it); every HTTP request thread hands its turn to it."""

    def __init__(self, stateful: bool) -> None:
        self.stateful = stateful
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    def answer(self, conversation: list[Mapping[str, Any]], thread: str | None) -> str:
        return asyncio.run_coroutine_threadsafe(reply(conversation, thread, self.stateful), self.loop).result()


def handler(service: Service) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        """``POST /v1/chat/completions`` answers a turn; ``GET /health`` says the service is up."""

        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
            self._send(200 if self.path == "/health" else 404, {"status": "ok"} if self.path == "/health" else {"error": {"message": "no such path"}})

        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/v1/chat/completions":
                self._send(404, {"error": {"message": f"no such path: {self.path}"}})
                return
            try:
                request = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                messages = list(request["messages"])
            except (ValueError, KeyError, TypeError):
                self._send(400, {"error": {"message": "the body must be a chat-completions request with messages"}})
                return
            thread = self.headers.get(THREAD_HEADER) or (str(request["user"]) if request.get("user") else None)
            try:
                text = service.answer(messages, thread)
            except ValueError as exc:
                self._send(400, {"error": {"message": str(exc)}})
                return
            except Exception as exc:  # the model or the bank failed: the caller gets the reason
                self._send(502, {"error": {"message": f"{type(exc).__name__}: {exc}"}})
                return
            self._send(200, {
                "id": "chatcmpl-langgraph-banker",
                "object": "chat.completion",
                "model": str(request.get("model") or "langgraph-banker"),
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
            pass

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="langgraph_banker.py", description="The example LangGraph banking agent service.")
    parser.add_argument("--port", type=int, default=8766, help="port on 127.0.0.1 (default: 8766)")
    parser.add_argument("--stateful", action="store_true", help="keep each thread's messages in a checkpointer; read only the new ones")
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler(Service(args.stateful)))
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
