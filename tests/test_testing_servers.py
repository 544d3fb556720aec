"""The example MCP servers in ``behave_aitest.testing``, run as real subprocesses.

Each server is started the way behave-aitest starts it (``python -m ...`` over stdio, or
over streamable HTTP / SSE on 127.0.0.1) and driven with the official mcp client.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import IO, Any

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.sse import sse_client
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from behave_aitest.testing import bank_server, weather_server

REPO = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT_S = 20.0
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def errlog(tmp_path: Path) -> Iterator[IO[str]]:
    """A real file for the server's stderr (``stdio_client`` needs a ``fileno()``)."""
    with open(tmp_path / "server-stderr.log", "w+", encoding="utf-8") as f:
        yield f


def server_env(**extra: str) -> dict[str, str]:
    """An explicit environment for a server subprocess (the SDK passes only a whitelist)."""
    env = {k: os.environ[k] for k in ("PATH", "HOME", "SYSTEMROOT", "TMP", "TEMP") if k in os.environ}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@asynccontextmanager
async def stdio_session(module: str, errlog: IO[str], *args: str, **env: str) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(command=sys.executable, args=["-m", module, *args], env=server_env(**env), cwd=str(REPO))
    with anyio.fail_after(STARTUP_TIMEOUT_S):
        async with stdio_client(params, errlog=errlog) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session


def text_of(result: Any) -> str:
    return "\n".join(block.text for block in result.content if getattr(block, "type", None) == "text")


async def call_ok(session: ClientSession, tool: str, arguments: dict[str, Any] | None = None) -> str:
    result = await session.call_tool(tool, arguments or {})
    assert not result.is_error, f"{tool}({arguments}) failed: {text_of(result)}"
    return text_of(result)


async def call_error(session: ClientSession, tool: str, arguments: dict[str, Any]) -> str:
    result = await session.call_tool(tool, arguments)
    assert result.is_error, f"{tool}({arguments}) should have failed but returned: {text_of(result)}"
    return text_of(result)


async def tool_schemas(session: ClientSession) -> dict[str, dict[str, Any]]:
    tools = (await session.list_tools()).tools
    for tool in tools:
        assert tool.description and not tool.description.startswith(" "), f"{tool.name}: needs a dedented description"
    return {t.name: t.input_schema for t in tools}


def props(schema: dict[str, Any]) -> dict[str, str]:
    return {name: spec.get("type") for name, spec in schema["properties"].items()}


# --- bank --------------------------------------------------------------------------------


async def test_bank_over_stdio_keeps_state_and_reports_errors(errlog: IO[str]) -> None:
    async with stdio_session("behave_aitest.testing.bank_server", errlog) as bank:
        schemas = await tool_schemas(bank)
        assert set(schemas) == {"get_balance", "get_all_balances", "transfer", "get_transactions"}
        assert props(schemas["get_balance"]) == {"account": "string"}
        assert schemas["get_balance"]["required"] == ["account"]
        assert props(schemas["get_all_balances"]) == {}
        assert props(schemas["transfer"]) == {
            "from_account": "string",
            "to_account": "string",
            "amount": "number",
            "memo": "string",
        }
        assert sorted(schemas["transfer"]["required"]) == ["amount", "from_account", "to_account"]
        assert props(schemas["get_transactions"]) == {"limit": "integer"}
        assert schemas["get_transactions"]["properties"]["limit"]["default"] == 10

        assert await call_ok(bank, "get_balance", {"account": "checking"}) == "checking: $1,500.00"
        assert await call_ok(bank, "get_transactions") == "No transactions yet."

        done = await call_ok(bank, "transfer", {"from_account": "checking", "to_account": "savings", "amount": 500, "memo": "trip to Paris"})
        assert "$500.00" in done and "checking: $1,000.00" in done and "savings: $3,700.00" in done
        # The state persists across calls on the same process.
        assert await call_ok(bank, "get_balance", {"account": "savings"}) == "savings: $3,700.00"
        await call_ok(bank, "transfer", {"from_account": "Savings", "to_account": "checking", "amount": 0.25})
        balances = await call_ok(bank, "get_all_balances")
        assert "checking: $1,000.25" in balances and "savings: $3,699.75" in balances

        history = (await call_ok(bank, "get_transactions", {"limit": 5})).splitlines()
        assert "$0.25 from savings to checking" in history[1]  # newest first
        assert "$500.00 from checking to savings" in history[2] and "trip to Paris" in history[2]
        assert len((await call_ok(bank, "get_transactions", {"limit": 1})).splitlines()) == 2

        assert "Unknown account 'x'. Known accounts: checking, savings" in await call_error(bank, "get_balance", {"account": "x"})
        move = {"from_account": "checking", "to_account": "savings"}
        assert "Insufficient funds" in await call_error(bank, "transfer", {**move, "amount": 5000})
        assert "positive" in await call_error(bank, "transfer", {**move, "amount": -5})
        assert "positive" in await call_error(bank, "transfer", {**move, "amount": 0})
        assert "whole cents" in await call_error(bank, "transfer", {**move, "amount": 0.005})
        assert "different accounts" in await call_error(bank, "transfer", {**move, "to_account": "checking", "amount": 5})
        assert "Unknown account 'bogus'" in await call_error(bank, "transfer", {**move, "to_account": "bogus", "amount": 5})
        # Failed transfers changed nothing.
        assert await call_ok(bank, "get_balance", {"account": "checking"}) == "checking: $1,000.25"


async def test_bank_initial_balances_from_env(errlog: IO[str]) -> None:
    initial = json.dumps({"checking": 10, "travel": "250.5"})
    async with stdio_session("behave_aitest.testing.bank_server", errlog, BANK_INITIAL=initial) as bank:
        assert await call_ok(bank, "get_all_balances") == "checking: $10.00\ntravel: $250.50\ntotal: $260.50"
        error = await call_error(bank, "get_balance", {"account": "savings"})
        assert "Unknown account 'savings'. Known accounts: checking, travel" in error


def test_bank_rejects_bad_initial_env(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="not valid JSON"):
        bank_server.parse_initial("{nope")
    with pytest.raises(ValueError, match="non-empty JSON object"):
        bank_server.parse_initial("[1, 2]")
    with pytest.raises(ValueError, match="must be a number"):
        bank_server.parse_initial('{"checking": "lots"}')
    # main() reports it and exits with 2 before serving anything.
    monkeypatch.setenv("BANK_INITIAL", "{nope")
    assert bank_server.main([]) == 2
    assert "bank_server: BANK_INITIAL is not valid JSON" in capsys.readouterr().err


# --- todo --------------------------------------------------------------------------------


async def test_todo_over_stdio(errlog: IO[str]) -> None:
    async with stdio_session("behave_aitest.testing.todo_server", errlog) as todo:
        schemas = await tool_schemas(todo)
        assert set(schemas) == {"add_task", "list_tasks", "complete_task", "delete_task"}
        assert props(schemas["add_task"]) == {"title": "string", "list": "string", "priority": "string"}
        assert schemas["add_task"]["required"] == ["title"]
        assert props(schemas["list_tasks"]) == {"list": "string", "include_done": "boolean"}
        assert props(schemas["complete_task"]) == props(schemas["delete_task"]) == {"task_id": "string"}

        assert await call_ok(todo, "list_tasks") == "No open tasks in list 'inbox'."
        added = await call_ok(todo, "add_task", {"title": "Buy milk"})
        first = re.search(r"task-\d+", added)
        assert first, added
        await call_ok(todo, "add_task", {"title": "Pack bags", "list": "trip", "priority": "high"})
        await call_ok(todo, "add_task", {"title": "Call mum", "priority": "low"})

        inbox = await call_ok(todo, "list_tasks")
        assert "Buy milk" in inbox and "Call mum" in inbox and "Pack bags" not in inbox
        assert "Pack bags (priority: high)" in await call_ok(todo, "list_tasks", {"list": "trip"})

        assert "Completed" in await call_ok(todo, "complete_task", {"task_id": first.group(0)})
        assert "Buy milk" not in await call_ok(todo, "list_tasks")
        assert "[x] " + first.group(0) in await call_ok(todo, "list_tasks", {"include_done": True})

        assert "Deleted" in await call_ok(todo, "delete_task", {"task_id": first.group(0)})
        assert "Buy milk" not in await call_ok(todo, "list_tasks", {"include_done": True})

        assert "Unknown task id 'task-99'" in await call_error(todo, "complete_task", {"task_id": "task-99"})
        assert "Unknown task id" in await call_error(todo, "delete_task", {"task_id": first.group(0)})
        assert "Unknown priority 'urgent'" in await call_error(todo, "add_task", {"title": "x", "priority": "urgent"})
        assert "title must not be empty" in await call_error(todo, "add_task", {"title": "  "})


# --- weather -----------------------------------------------------------------------------


async def test_weather_over_stdio(errlog: IO[str]) -> None:
    async with stdio_session("behave_aitest.testing.weather_server", errlog) as weather:
        schemas = await tool_schemas(weather)
        assert set(schemas) == {"get_weather", "get_forecast"}
        assert props(schemas["get_weather"]) == {"city": "string"}
        assert props(schemas["get_forecast"]) == {"city": "string", "days": "integer"}
        assert schemas["get_forecast"]["required"] == ["city"]

        now = await call_ok(weather, "get_weather", {"city": "Paris"})
        assert "Paris" in now and "18°C" in now and "partly cloudy" in now
        assert "chance of rain" not in now  # only forecasts talk about rain chances
        assert await call_ok(weather, "get_weather", {"city": "paris, France"}) == now

        tomorrow = (await call_ok(weather, "get_forecast", {"city": "Paris"})).splitlines()
        assert len(tomorrow) == 2 and tomorrow[1].startswith("Tomorrow:") and "80% chance of rain" in tomorrow[1]
        week = (await call_ok(weather, "get_forecast", {"city": "Paris", "days": 7})).splitlines()
        assert len(week) == 8 and week[1] == tomorrow[1]
        assert all(re.search(r"\d+% chance of rain$", line) for line in week[1:])
        # Deterministic: the same question gives the same answer.
        assert await call_ok(weather, "get_forecast", {"city": "Paris", "days": 7}) == "\n".join(week)

        error = await call_error(weather, "get_weather", {"city": "Atlantis"})
        assert "Unknown city 'Atlantis'. Known cities: " in error and "Paris" in error and "London" in error
        assert "between 1 and 7" in await call_error(weather, "get_forecast", {"city": "Paris", "days": 30})


def test_weather_cities_have_full_forecasts() -> None:
    for city in weather_server.CITIES.values():
        assert len(city.forecast) == weather_server.MAX_FORECAST_DAYS, city.name


# --- HTTP transports -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def http_server(module: str, log_path: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``python -m module *args`` with stderr to ``log_path``; always killed on exit."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            env=server_env(),
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


def server_log(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def wait_for_port(proc: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with code {proc.returncode} before listening on port {port}:\n{server_log(log_path)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"server did not accept connections on 127.0.0.1:{port} within {STARTUP_TIMEOUT_S}s:\n{server_log(log_path)}")


def wait_for_announcement(proc: subprocess.Popen[bytes], log_path: Path) -> str:
    """The URL from the server's ``listening on <url>`` stderr line."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        found = re.search(r"^listening on (http://\S+)$", server_log(log_path), re.MULTILINE)
        if found:
            return found.group(1)
        if proc.poll() is not None:
            pytest.fail(f"server exited with code {proc.returncode} before announcing its URL:\n{server_log(log_path)}")
        time.sleep(0.05)
    pytest.fail(f"server printed no 'listening on <url>' line within {STARTUP_TIMEOUT_S}s:\n{server_log(log_path)}")


async def exercise_bank(session: ClientSession) -> None:
    await session.initialize()
    assert "transfer" in await tool_schemas(session)
    await call_ok(session, "transfer", {"from_account": "savings", "to_account": "checking", "amount": 200})
    assert await call_ok(session, "get_balance", {"account": "checking"}) == "checking: $1,700.00"
    assert "Unknown account" in await call_error(session, "get_balance", {"account": "nope"})


async def test_bank_over_streamable_http(tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "bank-http.log"
    module = "behave_aitest.testing.bank_server"
    with http_server(module, log_path, "--transport", "streamable-http", "--port", str(port)) as proc:
        wait_for_port(proc, port, log_path)
        url = f"http://127.0.0.1:{port}/mcp"
        assert wait_for_announcement(proc, log_path) == url
        with anyio.fail_after(STARTUP_TIMEOUT_S):
            async with streamable_http_client(url) as streams:
                async with ClientSession(streams[0], streams[1]) as session:
                    await exercise_bank(session)
            # A second connection to the same process sees the first one's transfer.
            async with streamable_http_client(url) as streams:
                async with ClientSession(streams[0], streams[1]) as session:
                    await session.initialize()
                    assert await call_ok(session, "get_balance", {"account": "savings"}) == "savings: $3,000.00"


async def test_bank_over_sse_on_a_port_chosen_by_the_os(tmp_path: Path) -> None:
    log_path = tmp_path / "bank-sse.log"
    module = "behave_aitest.testing.bank_server"
    with http_server(module, log_path, "--transport", "sse", "--port", "0") as proc:
        url = wait_for_announcement(proc, log_path)
        found = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/sse", url)
        assert found and int(found.group(1)) > 0, url
        wait_for_port(proc, int(found.group(1)), log_path)
        with anyio.fail_after(STARTUP_TIMEOUT_S):
            async with sse_client(url, timeout=5) as (read, write):
                async with ClientSession(read, write) as session:
                    await exercise_bank(session)


def test_http_port_in_use_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        # Fails while binding, before serving anything, so it can run in-process.
        root_level = logging.getLogger().level  # main() sets the root level (--log-level)
        try:
            assert weather_server.main(["--transport", "sse", "--port", str(port)]) == 1
        finally:
            logging.getLogger().setLevel(root_level)
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


# --- a third-party server ----------------------------------------------------------------


@pytest.mark.skipif(importlib.util.find_spec("mcp_server_time") is None, reason="mcp-server-time is not installed (pip install mcp-server-time)")
async def test_third_party_time_server(errlog: IO[str]) -> None:
    async with stdio_session("mcp_server_time", errlog, "--local-timezone", "UTC") as session:
        assert "get_current_time" in await tool_schemas(session)
        text = await call_ok(session, "get_current_time", {"timezone": "Europe/Paris"})
        assert "Europe/Paris" in text
        assert re.search(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}", text), text
