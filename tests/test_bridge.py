"""``python -m behave_aitest.bridge NAME``: a real stdio MCP client (the SDK's) starts the bridge,
which connects to a real MCP server over streamable HTTP (the bank server) — found through
AITEST_MCP_CONFIG or AITEST_MCP_<NAME>_URL + AITEST_KEY, as an agent started by behave-aitest
finds its endpoints — and every tool call crosses to that server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from behave_aitest.bridge import BridgeError, env_name, find_endpoint

BANK = [sys.executable, "-m", "behave_aitest.testing.bank_server", "--transport", "streamable-http", "--port", "0"]


@pytest.fixture(scope="module")
def bank_url() -> Iterator[str]:
    """A bank server over streamable HTTP (a real process), its URL."""
    process = subprocess.Popen(BANK, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        url = ""
        for line in process.stderr:
            found = re.search(r"(http://\S+/mcp)", line)
            if found:
                url = found.group(1)
                break
        assert url, "the bank server did not announce its URL"
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def bridge_session(env: dict[str, str], calls: Any) -> Any:
    """Start the bridge with the SDK's stdio client and run ``calls(session)``."""
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    async def main() -> Any:
        params = StdioServerParameters(command=sys.executable, args=["-m", "behave_aitest.bridge", "bank"], env=env)
        with open(os.devnull, "w") as errlog:
            async with stdio_client(params, errlog=errlog) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    return await calls(session)

    return anyio.run(main)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AITEST_")}
    env.update(extra)
    return env


async def balance_then_transfer(session: Any) -> tuple[list[str], str, str, bool]:
    tools = [tool.name for tool in (await session.list_tools()).tools]
    done = await session.call_tool("transfer", {"from_account": "checking", "to_account": "savings", "amount": 25})
    after = await session.call_tool("get_balance", {"account": "savings"})
    bad = await session.call_tool("get_balance", {"account": "no-such-account"})
    return tools, done.content[0].text, after.content[0].text, bool(bad.is_error)


def test_the_bridge_serves_the_endpoint_named_in_the_mcp_config_file(bank_url: str, tmp_path: Path) -> None:
    config = tmp_path / "aitest-mcp.json"
    config.write_text(json.dumps({"mcpServers": {"bank": {"type": "http", "url": bank_url, "headers": {"Authorization": "Bearer k1"}}}}))
    tools, done, after, bad_is_error = bridge_session(clean_env(AITEST_MCP_CONFIG=str(config)), balance_then_transfer)
    assert set(tools) >= {"get_balance", "get_all_balances", "transfer"}
    assert "Transferred $25.00 from checking to savings" in done
    assert after == "savings: $3,225.00"  # the transfer reached the server behind the endpoint
    assert bad_is_error  # a tool error stays a tool error the agent can read


def test_the_bridge_finds_the_endpoint_in_the_environment_without_a_config_file(bank_url: str) -> None:
    async def names(session: Any) -> list[str]:
        return [tool.name for tool in (await session.list_tools()).tools]

    tools = bridge_session(clean_env(AITEST_MCP_BANK_URL=bank_url, AITEST_KEY="k2"), names)
    assert "get_balance" in tools


def test_the_bridge_passes_resources_and_prompts_through() -> None:
    """A server that offers resources and prompts (the studio, over streamable HTTP): the
    bridge serves them too, as the MCP endpoint does for an agent that speaks HTTP."""
    studio = [sys.executable, "-m", "behave_aitest.testing.studio_server", "--transport", "streamable-http", "--port", "0"]
    process = subprocess.Popen(studio, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        url = next((m.group(1) for m in (re.search(r"(http://\S+/mcp)", line) for line in process.stderr) if m), "")
        assert url, "the studio server did not announce its URL"

        async def read(session: Any) -> tuple[list[str], str, str]:
            listed = [str(r.uri) for r in (await session.list_resources()).resources]
            guide = (await session.read_resource("studio://brand-guide")).contents[0].text
            prompt = (await session.get_prompt("critique", {"design": "fox logo"})).messages[0].content.text
            return listed, guide, prompt

        listed, guide, prompt = bridge_session(clean_env(AITEST_MCP_BANK_URL=url, AITEST_KEY="k3"), read)
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert listed == ["studio://brand-guide"] and "Never use pink" in guide, (listed, guide)
    assert prompt == "Please critique the design 'fox logo' against the brand guide.", prompt


def test_the_endpoint_is_found_with_its_key_and_the_thread(tmp_path: Path) -> None:
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"mcpServers": {"bank": {"type": "http", "url": "http://127.0.0.1:1/mcp/bank", "headers": {"Authorization": "Bearer k"}}}}))
    found = find_endpoint("bank", {"AITEST_MCP_CONFIG": str(config), "AITEST_THREAD_ID": "c7"})
    assert found.url == "http://127.0.0.1:1/mcp/bank"
    assert found.headers == {"Authorization": "Bearer k", "X-Aitest-Thread": "c7"}
    from_env = find_endpoint("my-bank.eu", {"AITEST_MCP_MY_BANK_EU_URL": "http://127.0.0.1:2/mcp", "AITEST_KEY": "k9"})
    assert env_name("my-bank.eu") == "AITEST_MCP_MY_BANK_EU_URL"
    assert from_env.headers == {"Authorization": "Bearer k9"}


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "no MCP endpoint named 'bank': AITEST_MCP_CONFIG is not set, and AITEST_MCP_BANK_URL is not set"),
        ({"AITEST_MCP_BANK_URL": "http://127.0.0.1:1/mcp"}, "AITEST_MCP_BANK_URL is set but AITEST_KEY is not"),
    ],
)
def test_a_missing_endpoint_is_one_line(environ: dict[str, str], expected: str) -> None:
    with pytest.raises(BridgeError, match=re.escape(expected)):
        find_endpoint("bank", environ)


def test_a_name_the_config_file_does_not_hold_lists_the_names_it_holds(tmp_path: Path) -> None:
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"mcpServers": {"weather": {"type": "http", "url": "http://127.0.0.1:1/mcp/weather"}}}))
    with pytest.raises(BridgeError, match=r"AITEST_MCP_CONFIG \(.*c\.json\) has weather, and AITEST_MCP_BANK_URL is not set"):
        find_endpoint("bank", {"AITEST_MCP_CONFIG": str(config)})
    config.write_text("not json")
    with pytest.raises(BridgeError, match=r"is not JSON"):
        find_endpoint("bank", {"AITEST_MCP_CONFIG": str(config)})


@pytest.mark.parametrize(
    ("environ", "status", "expected"),
    [
        ({}, 2, "behave_aitest.bridge: no MCP endpoint named 'bank'"),
        ({"AITEST_MCP_BANK_URL": "http://127.0.0.1:9/mcp", "AITEST_KEY": "k"}, 1,
         "behave_aitest.bridge: the MCP endpoint 'bank' at http://127.0.0.1:9/mcp cannot be reached: "),
    ],
)
def test_the_command_fails_in_one_line_without_a_traceback(environ: dict[str, str], status: int, expected: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "behave_aitest.bridge", "bank"], env=clean_env(**environ),
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == status
    assert done.stderr.startswith(expected), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr
    assert done.stdout == ""  # stdout is the MCP wire: nothing else goes there


# ----------------------------------------------------------------------------- through behave

STDIO_AGENT = '''
"""A CLI agent that only starts MCP servers as commands: the bank from AITEST_MCP_STDIO_CONFIG."""
import asyncio, json, os, sys
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

async def main() -> None:
    entry = json.load(open(os.environ["AITEST_MCP_STDIO_CONFIG"]))["mcpServers"]["bank"]
    params = StdioServerParameters(command=entry["command"], args=entry["args"], env={**os.environ, **entry["env"]})
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            result = await session.call_tool("get_balance", {"account": "checking"})
            print(result.content[0].text)

sys.stdin.read()
asyncio.run(main())
'''

STDIO_FEATURE = """
Feature: An agent that reaches the bank through the stdio bridge
  Scenario: The bank answers through the bridge
    When the user says "What is in checking?"
    Then the agent called tool "get_balance" with:
      | argument | value    |
      | account  | checking |
    And the response mentions "1,500.00"

  Scenario: A double answers through the bridge
    Given the tool "get_balance" returns "checking: $9.99"
    When the user says "What is in checking?"
    Then the agent called tool "get_balance"
    And the response mentions "9.99"
"""


def test_a_cli_agent_reaches_the_endpoint_through_the_bridge_of_the_stdio_config(project: Any, fake_llm: Any) -> None:
    from conftest import BANK, llm_config

    (project.root / "stdio_agent.py").write_text(STDIO_AGENT, encoding="utf-8")
    project.config(llm_config(fake_llm) + BANK + '[tool.behave_aitest.agents.banker]\nservers = ["bank"]\ncommand = ["python", "stdio_agent.py"]\n')
    project.feature("bridge.feature", STDIO_FEATURE)
    result = project.run("-f", "plain")
    assert result.returncode == 0, result.output
    assert "2 scenarios passed, 0 failed" in result.output  # the real bank, then the double: every call crossed the endpoint
