"""A banking assistant built with PydanticAI (``pydantic-ai-slim[openai,mcp]``), as the agent under test.

``[tool.behave_aitest.agents.pydantic_banker] python = "bankers.pydantic_ai_banker:banker"``:
behave-aitest calls :func:`banker` once per turn in the test process. The model is
``OpenAIChatModel`` on an ``OpenAIProvider`` whose base URL and key are behave-aitest's model
endpoint; the bank is an ``MCPToolset`` on behave-aitest's MCP endpoint for ``bank`` (its
headers carry the per-run key). In production the same code gets the real URLs and keys.

The conversation so far comes from behave-aitest (``turn.messages``) and is handed to
PydanticAI as its message history, so the agent keeps no state between turns.
"""

from __future__ import annotations

from typing import Any

from pydantic_ai import Agent
from pydantic_ai.mcp import MCPToolset
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, UserPromptPart
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from bankers.common import INSTRUCTIONS, text_turns


def history(turns: list[dict[str, str]]) -> list[ModelMessage]:
    """User and assistant text turns as PydanticAI's message history."""
    messages: list[ModelMessage] = []
    for turn in turns:
        if turn["role"] == "user":
            messages.append(ModelRequest(parts=[UserPromptPart(content=turn["content"])]))
        else:
            messages.append(ModelResponse(parts=[TextPart(content=turn["content"])]))
    return messages


async def banker(turn: Any) -> str:
    """Answer the conversation's latest user message; PydanticAI runs the tool loop."""
    turns = text_turns(turn.messages)
    if not turns or turns[-1]["role"] != "user":
        raise ValueError("the conversation does not end with a user message")
    bank = turn.mcp["bank"]
    model = OpenAIChatModel(turn.model, provider=OpenAIProvider(base_url=turn.model_url, api_key=turn.model_key))
    toolset = MCPToolset(bank.url, id="bank", headers=dict(bank.headers), read_timeout=60)
    agent = Agent(model, instructions=INSTRUCTIONS, toolsets=[toolset])
    async with agent:
        result = await agent.run(turns[-1]["content"], message_history=history(turns[:-1]))
    return str(result.output)
