"""The two endpoints an external agent talks to (issue 23), each on its own over real HTTP on
127.0.0.1: the model endpoint with the OpenAI SDK as its client (chat completions streamed and
not, the Responses API streamed and not, /v1/models, the key), the MCP endpoints with the MCP
SDK's client (the handshake, the auto mode's fallback, tools/list, tools/call) proxying to the
bank server, a real process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from behave_aitest.config import ServerConfig
from behave_aitest.mcp.connection import connect
from behave_aitest.mcp.endpoint import McpEndpoint
from behave_aitest.model.endpoint import ChatRequest, ModelEndpoint
from behave_aitest.model.llm import ModelReply, ToolRequest
from behave_aitest.model.localhttp import LocalHTTPServer

KEY = "test-key-123"
TOOLS = [{"type": "function", "name": "get_balance", "parameters": {"type": "object", "properties": {"account": {"type": "string"}}}}]


async def with_model_endpoint(body: Any) -> tuple[Any, list[ChatRequest], LocalHTTPServer]:
    """Run ``await body(endpoint)`` with a model endpoint whose model calls a tool, then answers."""
    http = LocalHTTPServer(KEY)
    await http.start()
    seen: list[ChatRequest] = []

    async def serve(chat: ChatRequest) -> ModelReply:
        seen.append(chat)
        if chat.request["messages"][-1]["role"] != "tool":
            return ModelReply(content=None, tool_calls=[ToolRequest("c1", "get_balance", '{"account": "checking"}')], input_tokens=5, output_tokens=3)
        return ModelReply(content="Checking holds $1,500.00. " * 8, input_tokens=9, output_tokens=4)

    try:
        return await body(ModelEndpoint(http, serve, "openai/gpt-test")), seen, http
    finally:
        await http.close()


def test_chat_completions_streamed_and_not_with_the_openai_sdk() -> None:
    async def body(endpoint: ModelEndpoint) -> Any:
        from openai import AsyncOpenAI

        client = AsyncOpenAI(base_url=endpoint.url, api_key=KEY, max_retries=0)
        first = await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "checking?"}])
        history = [{"role": "user", "content": "checking?"}, first.choices[0].message.model_dump(exclude_none=True),
                   {"role": "tool", "tool_call_id": "c1", "content": "checking: $1,500.00"}]
        stream = await client.chat.completions.create(model="gpt-4o", messages=history, stream=True, stream_options={"include_usage": True})
        text, usage = "", None
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
            usage = chunk.usage or usage
        models = await client.models.list()
        return first, text, usage, [m.id for m in models.data]

    (first, text, usage, models), seen, _ = anyio.run(with_model_endpoint, body)
    assert first.choices[0].finish_reason == "tool_calls"
    assert first.choices[0].message.tool_calls[0].function.name == "get_balance"
    assert (first.usage.prompt_tokens, first.usage.completion_tokens) == (5, 3)
    assert text == "Checking holds $1,500.00. " * 8 and (usage.prompt_tokens, usage.completion_tokens) == (9, 4)
    assert models == ["openai/gpt-test"]
    assert seen[0].asked_model == "gpt-4o" and "model" not in seen[0].request and "stream" not in seen[1].request
    assert seen[1].stream and [m["role"] for m in seen[1].request["messages"]] == ["user", "assistant", "tool"]


def test_the_responses_api_is_translated_both_ways() -> None:
    async def body(endpoint: ModelEndpoint) -> Any:
        from openai import AsyncOpenAI

        client = AsyncOpenAI(base_url=endpoint.url, api_key=KEY, max_retries=0)
        first = await client.responses.create(model="gpt-4o", input="checking?", instructions="Be brief.", tools=TOOLS)
        items = [{"role": "user", "content": "checking?"},
                 {"type": "function_call", "call_id": "c1", "name": "get_balance", "arguments": '{"account": "checking"}'},
                 {"type": "function_call_output", "call_id": "c1", "output": "checking: $1,500.00"}]
        final = None
        async for event in await client.responses.create(model="gpt-4o", input=items, tools=TOOLS, stream=True):
            if event.type == "response.completed":
                final = event.response
        try:
            await client.responses.create(model="gpt-4o", input="hi", previous_response_id="resp_1")
        except Exception as exc:  # the SDK's BadRequestError
            refused = str(exc)
        return first, final, refused

    (first, final, refused), seen, _ = anyio.run(with_model_endpoint, body)
    assert first.output[0].type == "function_call" and first.output[0].call_id == "c1" and first.usage.input_tokens == 5
    assert seen[0].request["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "checking?"}]
    assert seen[0].request["tools"][0]["function"]["name"] == "get_balance"
    assert final is not None and final.output_text == "Checking holds $1,500.00. " * 8
    assert [m["role"] for m in seen[1].request["messages"]] == ["user", "assistant", "tool"]
    assert "400" in refused and "keeps no stored responses" in refused


def test_a_request_without_the_key_is_refused() -> None:
    async def body(endpoint: ModelEndpoint) -> Any:
        from openai import AsyncOpenAI, AuthenticationError

        client = AsyncOpenAI(base_url=endpoint.url, api_key="wrong", max_retries=0)
        with pytest.raises(AuthenticationError):
            await client.chat.completions.create(model="x", messages=[{"role": "user", "content": "hi"}])

    _, seen, http = anyio.run(with_model_endpoint, body)
    assert seen == [] and http.refused == ["POST /v1/chat/completions"]


def test_the_mcp_endpoint_proxies_the_bank_server_to_the_sdk_client(tmp_path: Path) -> None:
    calls: list[tuple[str, str, dict[str, Any]]] = []

    async def main() -> Any:
        from mcp import Client, ClientSession
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        http = LocalHTTPServer(KEY)
        await http.start()
        bank = ServerConfig(name="bank", command=("python", "-m", "behave_aitest.testing.bank_server"))
        async with connect(bank, tmp_path / "bank.log") as conn:
            async def list_tools(server: str, thread: str | None) -> list[dict[str, Any]]:
                return [{"name": t.name, "description": t.description, "inputSchema": dict(t.input_schema)} for t in conn.tools]

            async def call_tool(server: str, name: str, arguments: dict[str, Any], thread: str | None) -> dict[str, Any]:
                calls.append((server, name, arguments))
                outcome = await conn.call(name, arguments)
                return {"content": [{"type": "text", "text": outcome.text}], "isError": outcome.is_error}

            endpoint = McpEndpoint(http, ["bank"], list_tools, call_tool)
            headers = {"Authorization": f"Bearer {KEY}"}
            async with create_mcp_http_client(headers=headers) as client, streamable_http_client(endpoint.url("bank"), http_client=client) as streams:
                async with ClientSession(streams[0], streams[1]) as session:
                    await session.initialize()
                    names = [t.name for t in (await session.list_tools()).tools]
                    ok = await session.call_tool("get_balance", {"account": "checking"})
                    bad = await session.call_tool("get_balance", {"account": "travel"})
            async with create_mcp_http_client(headers=headers) as client:  # mode="auto": discover, then the handshake
                async with Client(streamable_http_client(endpoint.url("bank"), http_client=client)) as auto:
                    again = await auto.call_tool("get_balance", {"account": "savings"})
        await http.close()
        return names, ok, bad, again

    names, ok, bad, again = anyio.run(main)
    assert names == ["get_balance", "get_all_balances", "transfer", "get_transactions"]
    assert ok.content[0].text == "checking: $1,500.00" and not ok.is_error
    assert bad.is_error and "travel" in bad.content[0].text
    assert again.content[0].text == "savings: $3,200.00"
    assert calls[0] == ("bank", "get_balance", {"account": "checking"})
