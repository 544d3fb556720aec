"""The external agent kinds on their own (issue 23): each kind's turn against the bank MCP
server (a real process) and the project's fake model, over real HTTP on 127.0.0.1 — the
model endpoint, the MCP endpoints, and the test agents of behave_aitest/testing/agents."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from behave_aitest.model import llm
from behave_aitest.agent.external.command import CommandAgent
from behave_aitest.agent.external.python import PythonAgent
from behave_aitest.agent.external.service import ServiceAgent
from behave_aitest.agent.external.turn import NO_MODEL_CALL, run_external_turn
from behave_aitest.agent.external.wire import AgentWires
from behave_aitest.config import ServerConfig
from behave_aitest.agent.loop import TurnSettings
from behave_aitest.agent.toolbox import ToolBox
from behave_aitest.model.fakellm import FakeOpenAI
from behave_aitest.record.records import Turn
from behave_aitest.mcp.connection import connect

BANK = ServerConfig(name="bank", command=("python", "-m", "behave_aitest.testing.bank_server"))
SCRIPT = [{"tool_calls": [("get_balance", {"account": "checking"})]}, {"content": "Checking holds $1,500.00."}]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_turns(agent: Any, fake: FakeOpenAI, tmp: Path, texts: list[str], allowed: list[str] | None = None) -> tuple[list[Turn], AgentWires, list[dict[str, Any]]]:
    """Run ``texts`` as the turns of one conversation through ``agent``."""
    history: list[dict[str, Any]] = []
    turns: list[Turn] = []

    async def main() -> AgentWires:
        async with connect(BANK, tmp / "bank.log") as conn:
            toolbox = ToolBox([conn], allowed)
            wires = AgentWires(["bank"], "openai/fake-model", tmp)
            await wires.start()
            try:
                await agent.start(wires.endpoints)
                settings = TurnSettings(model="openai/fake-model", timeout_s=60, retries=0,
                                        request={"model": "openai/fake-model", "api_base": fake.base_url, "api_key": "sk-fake"})
                for i, text in enumerate(texts):
                    turns.append(await run_external_turn(agent, wires, thread="c1-test", complete=llm.complete, toolbox=toolbox,
                                                         history=history, user_text=text, settings=settings, index=i))
            finally:
                await agent.close()
                await wires.close()
            return wires

    return turns, anyio.run(main), history


def check_bank_turn(turn: Turn, fake: FakeOpenAI) -> None:
    assert turn.error is None, turn.error
    assert [c.name for c in turn.tool_calls] == ["get_balance"]
    call = turn.tool_calls[0]
    assert call.server == "bank" and not call.reported and "$1,500.00" in call.result
    assert call.arguments == {"account": "checking"}
    assert len(turn.model_calls) == 2 and turn.model_calls[0].input_tokens > 0
    assert turn.response == "Checking holds $1,500.00."
    offered = [t["function"]["name"] for t in fake.requests[0]["tools"]]
    assert "get_balance" in offered and "transfer" in offered


@pytest.mark.parametrize("callable_name", ["agent", "sync_agent", "streaming_agent"])
def test_python_kind_calls_the_model_and_the_tools_through_the_endpoints(tmp_path: Path, callable_name: str) -> None:
    with FakeOpenAI(SCRIPT) as fake:
        agent = PythonAgent(f"behave_aitest.testing.agents.python_agent:{callable_name}", tmp_path, "pyproject.toml [agents.x]")
        turns, wires, history = run_turns(agent, fake, tmp_path, ["What is in checking?"])
    check_bank_turn(turns[0], fake)
    assert history[0] == {"role": "user", "content": "What is in checking?"}
    assert history[-1]["content"] == "Checking holds $1,500.00."
    assert fake.requests[0]["model"] == "fake-model"  # the scenario's model, whatever the agent asked for


def test_a_second_turn_sends_the_whole_conversation(tmp_path: Path) -> None:
    with FakeOpenAI([*SCRIPT, {"content": "Still $1,500.00."}]) as fake:
        agent = PythonAgent("behave_aitest.testing.agents.python_agent:agent", tmp_path, "here")
        turns, _, history = run_turns(agent, fake, tmp_path, ["What is in checking?", "And now?"])
    assert turns[1].error is None and turns[1].response == "Still $1,500.00."
    sent = fake.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "assistant", "user"]
    assert len(history) == 6


def test_a_tool_the_agent_keeps_in_process_is_reported_by_the_agent(tmp_path: Path) -> None:
    script = [{"tool_calls": [("local_clock", {}), ("get_balance", {"account": "checking"})]}, {"content": "Noon; $1,500.00."}]
    with FakeOpenAI(script) as fake:
        agent = PythonAgent("behave_aitest.testing.agents.python_agent:local_tool_agent", tmp_path, "here")
        turns, _, _ = run_turns(agent, fake, tmp_path, ["Time and balance?"])
    turn = turns[0]
    assert turn.error is None, turn.error
    by_name = {c.name: c for c in turn.tool_calls}
    assert set(by_name) == {"local_clock", "get_balance"}
    assert by_name["local_clock"].reported and by_name["local_clock"].result == "12:00"
    assert not by_name["get_balance"].reported and by_name["get_balance"].server == "bank"


def test_allowed_tools_apply_to_the_mcp_endpoint(tmp_path: Path) -> None:
    script = [{"tool_calls": [("transfer", {"from_account": "checking", "to_account": "savings", "amount": 5})]}, {"content": "no"}]
    with FakeOpenAI(script) as fake:
        agent = PythonAgent("behave_aitest.testing.agents.python_agent:agent", tmp_path, "here")
        turns, _, _ = run_turns(agent, fake, tmp_path, ["Move $5"], allowed=["get_balance"])
    offered = [t["function"]["name"] for t in fake.requests[0]["tools"]]
    assert offered == ["get_balance"]
    assert fake.requests[1]["messages"][-1]["content"].startswith("Unknown tool")  # the agent never saw it listed


def test_an_agent_without_a_model_call_gets_a_warning(tmp_path: Path) -> None:
    with FakeOpenAI() as fake:
        agent = PythonAgent("behave_aitest.testing.agents.python_agent:no_model_agent", tmp_path, "here")
        turns, _, _ = run_turns(agent, fake, tmp_path, ["hello"])
    assert turns[0].error is None and turns[0].response == "You said: hello"
    assert turns[0].warnings == [NO_MODEL_CALL]
    assert "http://127.0.0.1:" in (turns[0].tools_unreached or "")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("number_agent", "returned a value of type int; allowed: a string, one assistant message"),
        ("crashing_agent", "raised RuntimeError: the agent fell over"),
    ],
)
def test_a_python_agent_that_fails_is_an_agent_error(tmp_path: Path, name: str, expected: str) -> None:
    with FakeOpenAI() as fake:
        agent = PythonAgent(f"behave_aitest.testing.agents.python_agent:{name}", tmp_path, "here")
        turns, _, _ = run_turns(agent, fake, tmp_path, ["hello"])
    assert turns[0].error is not None and turns[0].error.startswith("agent: ") and expected in turns[0].error


def test_a_model_error_through_the_endpoint_is_a_model_error(tmp_path: Path) -> None:
    with FakeOpenAI([{"status": 400, "message": "bad request from the provider"}]) as fake:
        agent = PythonAgent("behave_aitest.testing.agents.python_agent:agent", tmp_path, "here")
        turns, _, _ = run_turns(agent, fake, tmp_path, ["hello"])
    assert turns[0].error is not None and turns[0].error.startswith("model: "), turns[0].error


def test_service_kind_started_by_behave_aitest(tmp_path: Path) -> None:
    port = free_port()
    with FakeOpenAI(SCRIPT) as fake:
        agent = ServiceAgent(f"http://127.0.0.1:{port}/v1/chat/completions", "here",
                             command=("python", "-m", "behave_aitest.testing.agents.service", "--port", str(port)),
                             ready_url=f"http://127.0.0.1:{port}/health", log=tmp_path / "service.log", model="openai/fake-model")
        turns, _, _ = run_turns(agent, fake, tmp_path, ["What is in checking?"])
    check_bank_turn(turns[0], fake)
    with pytest.raises(httpx.ConnectError):  # stopped with the worker
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)


@pytest.mark.parametrize(
    ("args", "expected"),
    [(["--fail", "503"], "answered HTTP 503"), (["--malformed"], "not JSON")],
)
def test_a_service_that_fails_is_an_agent_error(tmp_path: Path, args: list[str], expected: str) -> None:
    port = free_port()
    with FakeOpenAI() as fake:
        agent = ServiceAgent(f"http://127.0.0.1:{port}/v1/chat/completions", "here",
                             command=("python", "-m", "behave_aitest.testing.agents.service", "--port", str(port), *args),
                             ready_url=f"http://127.0.0.1:{port}/health")
        turns, _, _ = run_turns(agent, fake, tmp_path, ["hello"])
    assert turns[0].error is not None and turns[0].error.startswith("agent: the agent service at ") and expected in turns[0].error


def test_a_service_that_is_down_is_an_agent_error(tmp_path: Path) -> None:
    with FakeOpenAI() as fake:
        agent = ServiceAgent(f"http://127.0.0.1:{free_port()}/v1/chat/completions", "here")
        turns, _, _ = run_turns(agent, fake, tmp_path, ["hello"])
    assert turns[0].error is not None and "is down" in turns[0].error


def test_command_kind_runs_a_cli_agent_per_turn(tmp_path: Path) -> None:
    with FakeOpenAI(SCRIPT) as fake:
        agent = CommandAgent(("python", "-m", "behave_aitest.testing.agents.cli"), "here")
        turns, _, _ = run_turns(agent, fake, tmp_path, ["What is in checking?"])
    check_bank_turn(turns[0], fake)


@pytest.mark.parametrize(("args", "expected"), [(["--exit", "3"], "exited with status 3: cli agent: failing on purpose"), (["--silent"], "wrote nothing on stdout")])
def test_a_cli_agent_that_fails_is_an_agent_error(tmp_path: Path, args: list[str], expected: str) -> None:
    with FakeOpenAI() as fake:
        agent = CommandAgent(("python", "-m", "behave_aitest.testing.agents.cli", *args), "here")
        turns, _, _ = run_turns(agent, fake, tmp_path, ["hello"])
    assert turns[0].error is not None and turns[0].error.startswith("agent: the CLI agent ") and expected in turns[0].error, turns[0].error


def test_requests_without_the_key_are_refused_and_logged(tmp_path: Path) -> None:
    async def main() -> tuple[int, int, list[str]]:
        wires = AgentWires(["bank"], "m", tmp_path)
        endpoints = await wires.start()
        try:
            async with httpx.AsyncClient() as client:
                model = await client.post(endpoints.model_url + "/chat/completions", json={"messages": []})
                mcp = await client.post(endpoints.mcp["bank"].url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                                        headers={"Authorization": "Bearer wrong"})
        finally:
            await wires.close()
        return model.status_code, mcp.status_code, wires.refusals, wires.key

    model, mcp, refusals, key = anyio.run(main)
    assert (model, mcp) == (401, 401)
    from behave_aitest.text.redact import Redactor

    assert Redactor.from_environment().text(f"the agent printed OPENAI_API_KEY={key} on stderr") == "the agent printed OPENAI_API_KEY=[REDACTED] on stderr"
    assert len(refusals) == 2 and "/mcp/bank" in refusals[1]


def test_a_stateful_agent_gets_only_the_new_message_and_the_thread(tmp_path: Path) -> None:
    with FakeOpenAI() as fake:
        agent = PythonAgent("behave_aitest.testing.agents.python_agent:stateful_agent", tmp_path, "here", stateful=True)
        turns, _, history = run_turns(agent, fake, tmp_path, ["one", "two"])
    assert turns[1].response == "I got 1 message(s) of thread c1-test: two"
    assert len(history) == 4  # behave-aitest still keeps the whole conversation


def test_a_service_that_is_too_slow_times_out_and_is_stopped(tmp_path: Path) -> None:
    port = free_port()
    with FakeOpenAI() as fake:
        agent = ServiceAgent(f"http://127.0.0.1:{port}/v1/chat/completions", "here",
                             command=("python", "-m", "behave_aitest.testing.agents.service", "--port", str(port), "--delay", "30"),
                             ready_url=f"http://127.0.0.1:{port}/health")
        history: list[dict[str, Any]] = []

        async def main() -> Turn:
            async with connect(BANK, tmp_path / "bank.log") as conn:
                wires = AgentWires(["bank"], "m", tmp_path)
                await wires.start()
                try:
                    await agent.start(wires.endpoints)
                    settings = TurnSettings(model="openai/fake-model", timeout_s=1, retries=0, request={"model": "openai/fake-model", "api_base": fake.base_url})
                    return await run_external_turn(agent, wires, thread="t", complete=llm.complete, toolbox=ToolBox([conn]),
                                                   history=history, user_text="hello", settings=settings, index=0)
                finally:
                    await agent.close()
                    await wires.close()

        turn = anyio.run(main)
    assert turn.error == "timeout: the agent did not answer within 1 s (timeout_s)."
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)


def test_a_tool_call_through_the_mcp_endpoint_is_recorded_with_its_images(tmp_path: Path) -> None:
    """The wire on its own: the studio server's image reaches the agent as an MCP image block,
    and the call is recorded on the turn like the built-in loop's."""
    from behave_aitest.agent.external.wire import TurnInFlight

    studio = ServerConfig(name="studio", command=("python", "-m", "behave_aitest.testing.studio_server"))

    async def main() -> tuple[dict[str, Any], Turn]:
        async with connect(studio, tmp_path / "studio.log") as conn:
            turn = Turn(index=0, user_text="sketch", model="m", history_before=0)
            flight = TurnInFlight("t", turn, llm.complete, TurnSettings(model="m"), ToolBox([conn]), deadline=0.0)
            listed = [t["name"] for t in await flight.list_tools("studio")]
            assert "sketch" in listed
            return await flight.call_tool("studio", "sketch", {"subject": "fox"}), turn

    result, turn = anyio.run(main)
    assert result["content"][0]["type"] == "text" and result["content"][0]["text"].startswith("A sketch of fox:")
    assert result["content"][1]["type"] == "image" and result["content"][1]["mimeType"] == "image/png"
    assert [c.name for c in turn.tool_calls] == ["sketch"] and turn.tool_calls[0].server == "studio"
    assert turn.tool_calls[0].arguments == {"subject": "fox"} and not turn.tool_calls[0].is_error
