"""A banking assistant built with the OpenAI Agents SDK (``openai-agents``), as the agent under test.

``[tool.behave_aitest.agents.openai_banker] python = "bankers.openai_agents_banker:banker"``:
behave-aitest calls :func:`banker` once per turn, in the test process, with the turn as its
argument. Two lines make it testable, and they are the same in production with a real base
URL and key:

* the model is ``OpenAIChatCompletionsModel`` on an ``AsyncOpenAI`` client whose base URL and
  key are behave-aitest's model endpoint (chat completions, which the endpoint records and
  replays; the SDK's default model class speaks the Responses API);
* the bank is ``MCPServerStreamableHttp`` on behave-aitest's MCP endpoint for the server
  ``bank`` (its URL and headers carry the per-run key), so every tool call is seen, recorded,
  and can be answered by a tool double.

Tracing is off: the SDK would otherwise export traces to OpenAI's servers.
"""

from __future__ import annotations

from typing import Any

from agents import Agent, OpenAIChatCompletionsModel, Runner, set_tracing_disabled
from agents.mcp import MCPServerStreamableHttp
from openai import AsyncOpenAI

from bankers.common import INSTRUCTIONS, text_turns

set_tracing_disabled(True)


async def banker(turn: Any) -> str:
    """Answer the conversation's latest user message; the SDK runs the tool loop."""
    bank = turn.mcp["bank"]
    client = AsyncOpenAI(base_url=turn.model_url, api_key=turn.model_key, max_retries=0)
    server = MCPServerStreamableHttp(
        params={"url": bank.url, "headers": dict(bank.headers), "timeout": 60},
        name="bank",
        cache_tools_list=True,
        client_session_timeout_seconds=60,  # the default 5 s is short for a slow tool (or a tool double's delay)
    )
    try:
        async with server:
            agent = Agent(
                name="banker",
                instructions=INSTRUCTIONS,
                model=OpenAIChatCompletionsModel(model=turn.model, openai_client=client),
                mcp_servers=[server],
            )
            result = await Runner.run(agent, text_turns(turn.messages))
            return str(result.final_output)
    finally:
        await client.close()
