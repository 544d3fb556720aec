"""The agent loop against the fake OpenAI-compatible server (real litellm HTTP) and a real
bank MCP server process."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from behave_aitest.model import llm
from behave_aitest.config import ServerConfig
from behave_aitest.agent.toolbox import AgentSetupError, ToolBox, provider_name
from behave_aitest.agent.loop import TurnSettings, run_turn
from behave_aitest.model.fakellm import FakeOpenAI
from behave_aitest.record.records import Turn
from behave_aitest.mcp.connection import ServerConnection, connect

os.environ.setdefault("OPENAI_API_KEY", "sk-fake-key-for-the-local-fake-server")

BANK = ServerConfig(name="bank", command=("python", "-m", "behave_aitest.testing.bank_server"))


def settings(server: FakeOpenAI, model: str = "openai/fake-model", **kw: Any) -> TurnSettings:
    return TurnSettings(model=model, request={"model": model, "api_base": server.base_url}, retry_backoff_s=0, **kw)


def with_bank(tmp_path: Path, body: Callable[[list[ServerConnection]], Awaitable[Any]], *names: str) -> Any:
    """Run ``body`` with live bank server connections (one per name) in one event loop."""

    async def main() -> Any:
        from contextlib import AsyncExitStack

        async with AsyncExitStack() as stack:
            conns = []
            for name in names or ("bank",):
                config = ServerConfig(name=name, command=BANK.command)
                conns.append(await stack.enter_async_context(connect(config, tmp_path / f"{name}.log")))
            return await body(conns)

    return anyio.run(main)


def turn(server: FakeOpenAI, toolbox: ToolBox, text: str = "hi", history: list | None = None, **kw: Any) -> Turn:
    async def go() -> Turn:
        return await run_turn(
            llm.complete, toolbox, system_prompt="sys", history=history if history is not None else [],
            user_text=text, settings=settings(server, **kw), index=0,
        )

    return anyio.run(go)


def test_plain_answer_records_usage_and_unknown_cost() -> None:
    with FakeOpenAI([{"content": "Hello!", "usage": {"prompt_tokens": 12, "completion_tokens": 3}}]) as server:
        history: list = []
        result = turn(server, ToolBox([]), history=history)
    assert result.error is None
    assert result.response == "Hello!"
    assert (result.input_tokens, result.output_tokens) == (12, 3)
    assert result.cost_usd is None and result.unknown_cost_calls == 1  # unknown stays unknown
    assert history == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello!"}]
    assert server.requests[0]["messages"][0] == {"role": "system", "content": "sys"}
    assert "tools" not in server.requests[0]


def test_known_model_gets_a_cost() -> None:
    with FakeOpenAI([{"content": "ok", "usage": {"prompt_tokens": 1000, "completion_tokens": 1000}}]) as server:
        result = turn(server, ToolBox([]), model="openai/gpt-4o-mini")
    assert result.cost_usd == pytest.approx(0.00075)


def test_retry_after_429_then_success() -> None:
    with FakeOpenAI([{"status": 429, "headers": {"retry-after": "0"}}, {"content": "ok"}]) as server:
        result = turn(server, ToolBox([]))
    assert result.error is None
    assert result.model_calls[0].attempts == 2
    assert len(server.requests) == 2


def test_retries_exhausted_is_a_model_error() -> None:
    with FakeOpenAI([{"status": 500}] * 3) as server:
        result = turn(server, ToolBox([]), retries=2)
    assert result.error is not None and result.error.startswith("model: InternalServerError after 3 attempts")
    assert len(server.requests) == 3


def test_non_retryable_error_is_not_retried() -> None:
    with FakeOpenAI([{"status": 400, "message": "bad request"}]) as server:
        result = turn(server, ToolBox([]))
    assert result.error is not None and "BadRequestError" in result.error
    assert len(server.requests) == 1


def test_timeout_keeps_the_history_valid() -> None:
    with FakeOpenAI([{"content": "late", "delay": 3}]) as server:
        history: list = []
        result = turn(server, ToolBox([]), history=history, timeout_s=0.5)
    assert result.error is not None and result.error.startswith("timeout:")
    assert history == [{"role": "user", "content": "hi"}]


def test_tool_calls_run_concurrently_and_errors_go_back_to_the_model(tmp_path: Path) -> None:
    replies = [
        {
            "tool_calls": [
                ("get_balance", {"account": "checking"}),
                ("get_balance", {"account": "nope"}),
                {"name": "get_balance", "arguments": "{not json"},
                ("launch_rockets", {}),
                ("transfer", {"from_account": "checking", "to_account": "savings", "amount": 1}),
            ]
        },
        {"content": "Done."},
    ]
    with FakeOpenAI(replies) as server:

        async def body(conns: list[ServerConnection]) -> Turn:
            toolbox = ToolBox(conns, ["get_balance", "get_all_balances"])
            return await run_turn(llm.complete, toolbox, system_prompt=None, history=[], user_text="go",
                                  settings=settings(server), index=0)

        result = with_bank(tmp_path, body)
    calls = result.tool_calls
    assert [c.name for c in calls] == ["get_balance", "get_balance", "get_balance", "launch_rockets", "transfer"]
    assert calls[0].result == "checking: $1,500.00" and not calls[0].is_error and calls[0].server == "bank"
    assert calls[1].is_error and "Unknown account 'nope'" in calls[1].result
    assert calls[2].is_error and "not valid JSON" in calls[2].result and calls[2].arguments is None
    assert calls[3].is_error and calls[3].result.startswith("Unknown tool 'launch_rockets'")
    assert calls[4].is_error and "not allowed" in calls[4].result
    # Every result went back to the model, in order, as tool messages.
    tool_messages = [m for m in server.requests[1]["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == [c.id for c in calls]
    assert {t["function"]["name"] for t in server.requests[0]["tools"]} == {"get_balance", "get_all_balances"}
    assert result.response == "Done." and len(result.model_calls) == 2


def test_max_turns(tmp_path: Path) -> None:
    with FakeOpenAI([{"tool_calls": [("get_all_balances", {})]}] * 2) as server:

        async def body(conns: list[ServerConnection]) -> Turn:
            return await run_turn(llm.complete, ToolBox(conns), system_prompt=None, history=[], user_text="go",
                                  settings=settings(server, max_turns=2), index=0)

        result = with_bank(tmp_path, body)
    assert result.error is not None and result.error.startswith("max_turns:")
    assert len(result.tool_calls) == 2


def test_same_tool_on_two_servers_is_a_clear_error(tmp_path: Path) -> None:
    async def body(conns: list[ServerConnection]) -> list[str]:
        with pytest.raises(AgentSetupError, match="Tool 'get_balance' is offered by servers 'a' and 'b'"):
            ToolBox(conns)
        chosen = ToolBox(conns, ["a.get_balance", "b.transfer"])
        with pytest.raises(AgentSetupError, match="Allowed tool 'nope' is not offered"):
            ToolBox(conns, ["nope"])
        return [s["function"]["name"] for s in chosen.schemas()]

    assert with_bank(tmp_path, body, "a", "b") == ["get_balance", "transfer"]


def test_provider_names_are_sanitised_and_unique() -> None:
    taken: set[str] = set()
    first = provider_name("order.create", taken)
    taken.add(first)
    second = provider_name("order create", taken)
    assert first == "order_create"
    assert second != first and second.startswith("order_create_")
    assert len(provider_name("x" * 100, set())) == 64


def test_sse_transport_through_connect(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "behave_aitest.testing.bank_server", "--transport", "sse", "--port", "0"],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 20
        url = ""
        while time.monotonic() < deadline and not url:
            line = proc.stderr.readline() if proc.stderr else ""
            if line.startswith("listening on "):
                url = line.split()[-1]
        assert url.endswith("/sse"), "the SSE server did not announce its URL"

        async def main() -> str:
            config = ServerConfig(name="bank", transport="sse", url=url)
            async with connect(config, tmp_path / "sse.log") as conn:
                assert {t.name for t in conn.tools} >= {"get_balance", "transfer"}
                return (await conn.call("get_balance", {"account": "savings"})).text

        assert anyio.run(main) == "savings: $3,200.00"
    finally:
        proc.kill()
        proc.wait()
