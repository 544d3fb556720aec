"""Item 2, tool calls, measured in one process on one event loop (like the plugin's portal loop).

* One MCP call through the plugin's code path (``engine.run_tool`` -> ``ServerConnection.call``,
  on a connection opened by ``servers.connect``) against the raw SDK's
  ``ClientSession.call_tool`` on a session opened with the SDK alone; each on its own bank
  server process (same command). Each repetition is the mean of a block of calls per side.
* One turn in which the model asks for five tool calls at once, each taking 0.2 s on the
  server (the faulty server's ``slow`` tool, an async sleep), through ``engine.run_turn``
  with the real litellm path to the fake model, against one such call made with the raw SDK.
  Two extra rows show the two ends: five raw calls awaited one after the other, and five raw
  calls sent together (which shows that the server itself answers concurrently).
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from .common import FAKE_KEY, MODEL, Bench, Figure, Row, fmt_seconds

ITEM = 2
TITLE = "Tool calls"

BASE_ENV = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "TMPDIR", "TZ", "LANG", "LC_ALL", "LC_CTYPE")


@asynccontextmanager
async def raw_session(module: str):
    """A ClientSession on a stdio server, with the SDK only (the baseline)."""
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(command=sys.executable, args=["-m", module], env={k: os.environ[k] for k in BASE_ENV if k in os.environ})
    with open(os.devnull, "w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session


def run(bench: Bench) -> list[Row]:
    import anyio

    url = bench.llm()
    return anyio.run(_measure, bench, url)


async def _measure(bench: Bench, url: str) -> list[Row]:
    import anyio

    from behave_aitest.config import ServerConfig
    from behave_aitest.agent.toolbox import ToolBox, run_tool
    from behave_aitest.agent.loop import TurnSettings, run_turn
    from behave_aitest.model.llm import ToolRequest, complete
    from behave_aitest.mcp.connection import connect

    size = bench.size
    logs = bench.folder("tool-calls")
    async with AsyncExitStack() as stack:
        bank = await stack.enter_async_context(
            connect(ServerConfig("bank", command=("python", "-m", "behave_aitest.testing.bank_server")), logs / "bank.log")
        )
        faulty = await stack.enter_async_context(
            connect(ServerConfig("faulty", command=("python", "-m", "behave_aitest.testing.faulty_server")), logs / "faulty.log")
        )
        raw_bank = await stack.enter_async_context(raw_session("behave_aitest.testing.bank_server"))
        raw_faulty = await stack.enter_async_context(raw_session("behave_aitest.testing.faulty_server"))

        # -- one call: plugin path vs raw SDK
        toolbox = ToolBox([bank])
        request = ToolRequest("call_1", "get_balance", '{"account": "checking"}')

        async def plugin_block() -> float:
            started = time.perf_counter()
            for _ in range(size.tool_block):
                call = await run_tool(toolbox, request)
                if call.is_error:
                    raise RuntimeError(f"plugin tool call failed: {call.result}")
            return (time.perf_counter() - started) / size.tool_block

        async def raw_block() -> float:
            started = time.perf_counter()
            for _ in range(size.tool_block):
                result = await raw_bank.call_tool("get_balance", {"account": "checking"})
                if result.is_error:
                    raise RuntimeError("raw tool call failed")
            return (time.perf_counter() - started) / size.tool_block

        one = await _alternate(bench, {"plugin": plugin_block, "raw": raw_block}, "item 2, one call")

        # -- five slow calls in one turn
        seconds, count = size.slow_seconds, size.slow_calls
        slow_box = ToolBox([faulty], ["slow"])
        settings = TurnSettings(model=MODEL, request={"model": MODEL, "api_base": url, "api_key": FAKE_KEY, "temperature": 0}, timeout_s=60, retry_backoff_s=0)

        async def turn() -> float:
            history: list[dict[str, Any]] = []
            started = time.perf_counter()
            done = await run_turn(
                complete, slow_box, system_prompt="You call tools.", history=history,
                user_text=f"Make {count} slow calls of {seconds:g} s.", settings=settings, index=0,
            )
            elapsed = time.perf_counter() - started
            if done.error or len(done.tool_calls) != count or any(c.is_error for c in done.tool_calls):
                raise RuntimeError(f"the slow turn went wrong: {done.error or [c.result for c in done.tool_calls]}")
            return elapsed

        async def one_slow() -> float:
            started = time.perf_counter()
            await raw_faulty.call_tool("slow", {"seconds": seconds})
            return time.perf_counter() - started

        async def raw_sequential() -> float:
            started = time.perf_counter()
            for _ in range(count):
                await raw_faulty.call_tool("slow", {"seconds": seconds})
            return time.perf_counter() - started

        async def raw_together() -> float:
            started = time.perf_counter()
            async with anyio.create_task_group() as group:
                for _ in range(count):
                    group.start_soon(raw_faulty.call_tool, "slow", {"seconds": seconds})
            return time.perf_counter() - started

        slow = await _alternate(
            bench,
            {"turn": turn, "one call": one_slow, "sequential": raw_sequential, "together": raw_together},
            "item 2, slow calls",
        )

    note_one = (
        f"Mean of {size.tool_block} sequential `get_balance` calls per repetition and side, one bank server "
        "process per side, in one event loop. Plugin: `engine.run_tool` (name resolution, JSON arguments, "
        "`anyio.fail_after(tool_timeout_s)`, flattening the result to text) → `ServerConnection.call` → "
        "`ClientSession.call_tool`; baseline: `ClientSession.call_tool` alone."
    )
    note_turn = (
        f"One `engine.run_turn`: model call (litellm → fake model) asking for {count} `slow` calls of "
        f"{seconds:g} s, the {count} calls run concurrently by the engine, model call for the answer; against "
        f"one raw `call_tool(\"slow\")`. The faulty server's `slow` is an async sleep and the SDK's server "
        f"handles requests concurrently, so the server is not the limit (see the next two rows)."
    )
    return [
        Row(ITEM, "One MCP call: plugin path (`engine.run_tool` → `ServerConnection.call`) vs raw `ClientSession.call_tool`",
            Figure(one["plugin"]), Figure(one["raw"]), limit=1.2, note=note_one),
        Row(ITEM, f"One turn with {count} tool calls of {seconds:g} s each (through the engine) vs one such call",
            Figure(slow["turn"]), Figure(slow["one call"]), limit=1.3, note=note_turn),
        Row(ITEM, f"(for scale) {count} raw calls of {seconds:g} s awaited one after the other vs one call",
            Figure(slow["sequential"]), Figure(slow["one call"]),
            note="What the turn would cost if the tool calls were not concurrent: the ratio is about the number of calls."),
        Row(ITEM, f"(server check) {count} raw calls of {seconds:g} s sent together vs one call",
            Figure(slow["together"]), Figure(slow["one call"]),
            note="The stdio server overlaps the calls (the MCP SDK dispatches each request in its own task and `slow` "
                 "is an async sleep); with a tool that blocks the server this row, and the turn, would be about "
                 f"{count}× instead."),
    ]


async def _alternate(bench: Bench, sides: dict[str, Any], label: str) -> dict[str, list[float]]:
    """Like Bench.alternate, for coroutines: warm-up (always: first calls import and connect), then interleaved repetitions."""
    samples: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for name in names:
        await sides[name]()
    for rep in range(bench.repeat):
        for name in names if rep % 2 == 0 else list(reversed(names)):
            value = await sides[name]()
            samples[name].append(value)
            bench.loads.append(os.getloadavg()[0])
            bench.log(f"  {label}: {name} {rep + 1}/{bench.repeat}: {value:.4g}")
    return samples


def explain(row: Row) -> str:
    """What limits the plugin here, from the row's own figures (for a miss)."""
    if row.value is None or row.baseline is None:
        return ""
    extra = row.value.median - row.baseline.median
    if row.what.startswith("One MCP call"):
        return (
            f"The plugin's path adds {fmt_seconds(extra)} to a {fmt_seconds(row.baseline.median)} call: `run_tool` "
            "resolves the provider-safe name, parses the JSON arguments, and `ServerConnection.call` opens an "
            "`anyio.fail_after` scope (tool_timeout_s) and flattens the result blocks to text for the model."
        )
    if row.what.startswith("One turn"):
        return (
            f"The turn took {fmt_seconds(extra)} more than one call: two model calls through litellm to the fake "
            "model (request building, HTTP on 127.0.0.1, response parsing) come on top of the concurrent tool calls, "
            "plus the engine's bookkeeping."
        )
    return ""
