"""The project's fake OpenAI server (behave_aitest.fakellm.FakeOpenAI) with a benchmark brain,
in its own process so that its CPU time counts against neither side of a comparison.

    python -m bench.llm_server [--port N] [--latency S] [--stamps FILE]
    # prints the base URL on stdout, serves until SIGTERM

``--latency S`` answers every chat completion after S seconds, like a real model: the reply
carries a ``delay`` (the fake server sleeps in the request's own thread, so concurrent
requests overlap rather than queue). ``--stamps FILE`` appends the arrival time of every
chat request (``time.time()``, one per line) to FILE, so a benchmark can tell when a run
made its first model call (the file may be truncated between runs).

The brain answers from the request alone, so any number of conversations can share it:

* the last message is a tool result  -> a text answer;
* the user asks for "N slow calls of S s" and a ``slow`` tool is offered -> N ``slow`` calls at once;
* a ``get_balance`` tool is offered  -> one ``get_balance`` call;
* otherwise                          -> a text answer.

Usage is given explicitly, so the server does no token estimating.
"""

from __future__ import annotations

import argparse
import re
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from behave_aitest.model.fakellm import FakeOpenAI, serve_until_stopped

_SLOW = re.compile(r"(\d+) slow calls? of ([\d.]+) s")
_USAGE = {"prompt_tokens": 120, "completion_tokens": 12}


def brain(request: dict[str, Any]) -> dict[str, Any]:
    messages = request.get("messages") or [{}]
    last = messages[-1]
    if last.get("role") == "tool":
        return {"content": f"Done. {str(last.get('content', ''))[:60]}", "usage": _USAGE}
    tools = {t.get("function", {}).get("name") for t in request.get("tools") or ()}
    text = str(last.get("content") or "")
    slow = _SLOW.search(text)
    if slow and "slow" in tools:
        count, seconds = int(slow.group(1)), float(slow.group(2))
        return {"tool_calls": [("slow", {"seconds": seconds})] * count, "usage": _USAGE}
    if "get_balance" in tools:
        return {"tool_calls": [("get_balance", {"account": "checking"})], "usage": _USAGE}
    return {"content": "Hello.", "usage": _USAGE}


def slow_brain(latency: float, stamps: str | None = None) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """:func:`brain` with every reply delayed by ``latency`` seconds and, with ``stamps``,
    each request's arrival time appended to that file (opened per request: the bench may
    truncate it between runs)."""
    lock = threading.Lock()

    def answer(request: dict[str, Any]) -> dict[str, Any]:
        if stamps:
            arrived = time.time()
            with lock, open(stamps, "a", encoding="utf-8") as out:
                out.write(f"{arrived:.6f}\n")
        reply = brain(request)
        return {**reply, "delay": latency} if latency > 0 else reply

    return answer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.llm_server")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before every chat completion is answered (default: 0)")
    parser.add_argument("--stamps", metavar="FILE", help="append each chat request's arrival time (time.time()) to FILE")
    args = parser.parse_args(argv)
    if args.latency < 0:
        parser.error("--latency must be 0 or more seconds")
    answer = slow_brain(args.latency, args.stamps) if args.latency or args.stamps else brain
    return serve_until_stopped(FakeOpenAI(brain=answer, model_name="fake-model", port=args.port))


if __name__ == "__main__":
    sys.exit(main())
