"""The baseline of the turn-overhead benchmark: a plain Python script, no behave, no plugin.

It makes the same litellm calls (``litellm.acompletion`` with the same model, api_base,
messages, tools, temperature, ``max_retries=0`` and timeout) and the same MCP calls
(official SDK ``ClientSession`` over stdio: initialize, list_tools, call_tool) on the same
bank server as the plugin, with the same server lifetime:

    python bench/baseline_turns.py --api-base URL --scenarios 50 --turns 4 --scope conversation

``--scope conversation`` starts one bank server per scenario (what the plugin does with
``scope = "conversation"``); ``--scope run`` one for the whole run. Like the plugin it
imports litellm offline (``LITELLM_LOCAL_MODEL_COST_MAP``), quiets its logs, sends the
system prompt fresh on every call, builds the assistant message by hand and checks that
every turn called ``get_balance`` (the plugin's Then step).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
from contextlib import asynccontextmanager
from pathlib import Path

SYSTEM_PROMPT = "You are a careful banking assistant. Use the tools to look up balances."
BASE_ENV = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "TMPDIR", "TZ", "LANG", "LC_ALL", "LC_CTYPE")


@asynccontextmanager
async def bank(log_dir: Path, number: int):
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "behave_aitest.testing.bank_server"],
        env={k: os.environ[k] for k in BASE_ENV if k in os.environ},
    )
    with open(log_dir / f"bank-{number}.stderr.log", "a", encoding="utf-8") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                listed = await session.list_tools()
                tools = [
                    {"type": "function", "function": {"name": t.name, "description": t.description or "", "parameters": dict(t.input_schema)}}
                    for t in listed.tools
                ]
                yield session, tools


async def turn(litellm, session, tools, history, text: str, api_base: str) -> None:
    history.append({"role": "user", "content": text})
    called = []
    for _ in range(10):
        response = await litellm.acompletion(
            model="openai/fake-model",
            api_base=api_base,
            messages=[{"role": "system", "content": SYSTEM_PROMPT}, *history],
            tools=tools,
            temperature=0,
            max_retries=0,
            timeout=60,
        )
        message = response.choices[0].message
        if not message.tool_calls:
            history.append({"role": "assistant", "content": message.content})
            break
        history.append(
            {
                "role": "assistant",
                "content": message.content,
                "tool_calls": [
                    {"id": c.id, "type": "function", "function": {"name": c.function.name, "arguments": c.function.arguments}}
                    for c in message.tool_calls
                ],
            }
        )
        for call in message.tool_calls:
            result = await session.call_tool(call.function.name, json.loads(call.function.arguments or "{}"))
            text_out = "\n".join(b.text for b in result.content if getattr(b, "type", "") == "text")
            history.append({"role": "tool", "tool_call_id": call.id, "content": text_out})
            called.append(call.function.name)
    if "get_balance" not in called:
        raise AssertionError(f"the turn did not call get_balance: {called}")


async def main(args: argparse.Namespace) -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import logging

    import litellm

    litellm.suppress_debug_info = True
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "litellm"):
        logging.getLogger(name).setLevel(logging.WARNING)
    log_dir = Path(tempfile.mkdtemp(prefix="bench-baseline-"))

    async def scenario(session, tools, number: int) -> None:
        history: list[dict] = []
        for t in range(args.turns):
            await turn(litellm, session, tools, history, f"What is my checking balance? (turn {t + 1})", args.api_base)

    try:
        if args.scope == "run":
            async with bank(log_dir, 0) as (session, tools):
                for s in range(args.scenarios):
                    await scenario(session, tools, s)
        else:
            for s in range(args.scenarios):
                async with bank(log_dir, s) as (session, tools):
                    await scenario(session, tools, s)
    finally:
        shutil.rmtree(log_dir, ignore_errors=True)  # as the plugin removes its server logs
    print(f"{args.scenarios} scenarios x {args.turns} turns passed")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--api-base", required=True)
    parser.add_argument("--scenarios", type=int, default=50)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--scope", choices=("conversation", "run"), default="conversation")
    asyncio.run(main(parser.parse_args()))
