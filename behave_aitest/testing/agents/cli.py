"""A CLI agent for the tests: the user's message on stdin, the answer on stdout.

``python -m behave_aitest.testing.agents.cli`` reads the conversation from ``AITEST_MESSAGES``,
the model from ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` / ``AITEST_MODEL`` and its MCP servers
from ``AITEST_MCP_CONFIG`` (the file coding assistants read). ``--exit N`` fails with status N,
``--silent`` writes nothing. Standard library, httpx and the MCP client only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

from behave_aitest.testing.agents.react import react, servers_from_environment


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m behave_aitest.testing.agents.cli")
    parser.add_argument("--exit", type=int, default=0)
    parser.add_argument("--silent", action="store_true")
    options = parser.parse_args(argv)
    said = sys.stdin.read()
    if options.exit:
        print(f"cli agent: failing on purpose after reading {len(said)} characters", file=sys.stderr)
        return options.exit
    if options.silent:
        return 0
    with open(os.environ["AITEST_MESSAGES"], encoding="utf-8") as file:
        messages = json.load(file)
    new = asyncio.run(react(
        messages, model_url=os.environ["OPENAI_BASE_URL"], key=os.environ["OPENAI_API_KEY"],
        model=os.environ.get("AITEST_MODEL", "any"), mcp=servers_from_environment(),
        thread=os.environ.get("AITEST_THREAD_ID"),
    ))
    print(new[-1].get("content") or "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
