"""A banking agent as a command-line program (standard library only).

It stands for a CLI agent (a coding assistant, an internal tool): run once per turn, the
user's new message on stdin, the answer on stdout, its settings where such programs look for
them:

* the model from ``OPENAI_BASE_URL``, ``OPENAI_API_KEY`` and ``AITEST_MODEL``;
* its MCP servers from the file named by ``AITEST_MCP_CONFIG``, in the ``{"mcpServers": {...}}``
  shape CLI agents read (an ``http`` entry has a ``url`` and ``headers``); every HTTP server in
  it is used;
* the conversation so far from the JSON file named by ``AITEST_MESSAGES`` (the whole
  conversation in the OpenAI format, the new message last); without it, stdin alone.

Exit status 0 with the answer on stdout; anything else is an agent error that behave-aitest
reports with the program's stderr.

    echo "What are my balances?" | python bankers/cli_banker.py
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: bankers.* importable
from bankers.common import text_turns  # noqa: E402
from bankers.plain import AgentError, McpClient, Model, answer  # noqa: E402


def mcp_servers() -> list[McpClient]:
    """A client for every HTTP server of the config file named by ``AITEST_MCP_CONFIG``."""
    path = os.environ.get("AITEST_MCP_CONFIG")
    if not path:
        return []
    servers: dict[str, dict[str, Any]] = json.loads(Path(path).read_text(encoding="utf-8")).get("mcpServers", {})
    return [
        McpClient(entry["url"], dict(entry.get("headers") or {}))
        for entry in servers.values()
        if entry.get("type") in ("http", "streamable-http") and entry.get("url")
    ]


def conversation(new_message: str) -> list[dict[str, str]]:
    """The conversation to answer: ``AITEST_MESSAGES`` when it ends with a user message, else stdin alone."""
    path = os.environ.get("AITEST_MESSAGES")
    if path:
        turns = text_turns(json.loads(Path(path).read_text(encoding="utf-8")))
        if turns and turns[-1]["role"] == "user":
            return turns
    return [{"role": "user", "content": new_message}]


def main() -> int:
    new_message = sys.stdin.read().strip()
    if not new_message:
        print("cli_banker: no message on stdin", file=sys.stderr)
        return 2
    model = Model(
        os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1"),
        os.environ.get("OPENAI_API_KEY", ""),
        os.environ.get("AITEST_MODEL", "gpt-4.1-mini"),
    )
    try:
        print(answer(conversation(new_message), model, mcp_servers()))
    except AgentError as exc:
        print(f"cli_banker: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
