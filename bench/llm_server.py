"""The project's fake OpenAI server (behave_aitest.fakellm.FakeOpenAI) with a benchmark brain,
in its own process so that its CPU time counts against neither side of a comparison.

    python -m bench.llm_server [--port N]      # prints the base URL on stdout, serves until SIGTERM

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
from typing import Any

from behave_aitest.fakellm import FakeOpenAI, serve_until_stopped

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.llm_server")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    return serve_until_stopped(FakeOpenAI(brain=brain, model_name="fake-model", port=args.port))


if __name__ == "__main__":
    sys.exit(main())
