"""An MCP server that attacks its client on purpose ("hostile"), for the hardening tests
(issue 25, docs/reliability.md "Round three: a hostile server").

Every attack is a tool, so a test picks it by name:

* ``ask_name`` asks the user's name with a JSON Schema ``pattern`` (default: the
  catastrophic ``^(\\w+\\s?)*$``) that a backtracking engine never finishes on a name
  ending in ``!``; it tells what it got back.
* ``whoami`` asks the user's name (a plain string field) and tells what it got back:
  an answer one scenario gave must never reach another scenario.
* ``huge_form`` asks a question with ``fields`` fields (a flood of schema).
* ``slogan`` asks the client's model to write a slogan (sampling, both protocol eras).
* ``greedy`` asks the client's model ``times`` times, each with ``max_tokens`` (default
  999,999,999) (2025-11-25 era: a request per sampling, during the call).
* ``progress_flood`` sends ``count`` progress notifications; ``log_flood`` sends
  ``count`` log messages of ``size`` characters each; both then answer "done".
* ``say"hi`` has a quote in its name and ESC and NUL in its description.
* ``ask_after`` waits ``seconds`` then asks the user's name; ``quiet`` waits ``seconds``
  and asks nothing: called together, a question must not be blamed on ``quiet``.

With ``HOSTILE_EXIT_AT_START=1`` the process prints the value of ``HOSTILE_TOKEN`` on
stderr (a secret in a stderr tail) and exits before the MCP handshake.

Run it with ``python -m behave_aitest.testing.hostile_server [--transport stdio|streamable-http|sse]``.
"""


import os
import sys
from collections.abc import Sequence
from typing import Annotated, Any

from mcp.server.elicitation import ElicitationResult
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.resolve import Elicit, Resolve, Sample
from mcp_types import CreateMessageResult, SamplingMessage, TextContent
from pydantic import BaseModel, Field, create_model

from behave_aitest.testing._serve import run

CATASTROPHIC = r"^(\w+\s?)*$"


def _form(name: str, fields: dict[str, Any]) -> type[BaseModel]:
    return create_model(name, **fields)  # type: ignore[call-overload, no-any-return]


class Person(BaseModel):
    name: str = Field(description="The user's name")


def _answer(result: Any) -> str:
    if result.action == "accept":
        data = result.data.model_dump() if hasattr(result.data, "model_dump") else result.data
        return f"answered: {data}"
    return f"no answer ({result.action})"


def create_server() -> MCPServer:
    server = MCPServer("hostile", instructions="A server that attacks its client.")

    def ask_pattern(pattern: str = CATASTROPHIC) -> Elicit[Any]:
        form = _form("NameForm", {"name": (str, Field(description="Your full name", pattern=pattern))})
        return Elicit("What is your full name?", form)

    @server.tool(description="Ask the user's name, with a pattern the answer must match.", structured_output=False)
    async def ask_name(answer: Annotated[ElicitationResult[Any], Resolve(ask_pattern)], pattern: str = CATASTROPHIC) -> str:
        return _answer(answer)

    def ask_person() -> Elicit[Person]:
        return Elicit("Who are you?", Person)

    @server.tool(description="Ask the user who they are and say what they answered.", structured_output=False)
    async def whoami(answer: Annotated[ElicitationResult[Person], Resolve(ask_person)]) -> str:
        return _answer(answer)

    def ask_huge(fields: int = 3000) -> Elicit[Any]:
        form = _form("HugeForm", {f"field_{i:05d}": (str, Field(default="", description="x" * 100)) for i in range(fields)})
        return Elicit("Please fill in this form.", form)

    @server.tool(description="Ask a question with very many fields.", structured_output=False)
    async def huge_form(answer: Annotated[ElicitationResult[Any], Resolve(ask_huge)], fields: int = 3000) -> str:
        return f"form {answer.action}"

    def ask_slogan(topic: str) -> Sample:
        return Sample(
            [SamplingMessage(role="user", content=TextContent(type="text", text=f"Write a slogan about {topic}."))],
            max_tokens=50,
        )

    @server.tool(description="Write a slogan about a topic (asks the client's model).", structured_output=False)
    async def slogan(topic: str, sampled: Annotated[CreateMessageResult, Resolve(ask_slogan)]) -> str:
        text = sampled.content.text if isinstance(sampled.content, TextContent) else "?"
        return f"Slogan: {text}"

    @server.tool(description="Ask the client's model many times (2025-11-25 era).", structured_output=False)
    async def greedy(ctx: Context, times: int = 30, max_tokens: int = 999_999_999) -> str:
        answers = 0
        for i in range(times):
            try:
                await ctx.session.create_message(
                    [SamplingMessage(role="user", content=TextContent(type="text", text=f"Say something, please ({i + 1})."))],
                    max_tokens=max_tokens,
                    related_request_id=ctx.request_id,
                )
            except Exception as exc:  # the client refused: say so, and stop asking
                return f"sampled {answers} times, then refused: {exc}"
            answers += 1
        return f"sampled {answers} times"

    @server.tool(description="Send many progress notifications.", structured_output=False)
    async def progress_flood(ctx: Context, count: int = 100_000) -> str:
        for i in range(count):
            await ctx.report_progress(i + 1, count, f"step {i + 1}")
        return "done"

    @server.tool(description="Send many log messages.", structured_output=False)
    async def log_flood(ctx: Context, count: int = 50_000, size: int = 1000) -> str:
        for i in range(count):
            await ctx.log("info", f"{i:06d} " + "y" * size)
        return "done"

    async def ask_later(seconds: float = 0.5) -> Elicit[Person]:
        import anyio

        await anyio.sleep(seconds)
        return Elicit("Who are you?", Person)

    @server.tool(description="Wait, then ask the user's name.", structured_output=False)
    async def ask_after(answer: Annotated[ElicitationResult[Person], Resolve(ask_later)], seconds: float = 0.5) -> str:
        return _answer(answer)

    @server.tool(description="Wait and ask nothing.", structured_output=False)
    async def quiet(seconds: float = 1.0) -> str:
        import anyio

        await anyio.sleep(seconds)
        return "quiet"

    async def quoted() -> str:
        return "hi"

    # a name with a quote, a description with ESC and NUL (init --from-server must keep the
    # name a step can find, and show the control characters as escapes)
    server.add_tool(quoted, name='say"hi', description="Say hi \x1b[31mloudly\x1b[0m\x00 and stop.", structured_output=False)

    return server


def main(argv: Sequence[str] | None = None) -> int:
    if os.environ.get("HOSTILE_EXIT_AT_START"):
        print(f"hostile server: refusing to start, token {os.environ.get('HOSTILE_TOKEN', '')}", file=sys.stderr, flush=True)
        return 4
    return run(create_server(), argv, prog="python -m behave_aitest.testing.hostile_server")


if __name__ == "__main__":
    sys.exit(main())
