"""A small design studio as an MCP server ("studio") that uses the rest of the protocol:
it asks the user (elicitation), asks the client's model (sampling), reads the client's
roots, returns images, resource links and structured content, reports progress and logs,
marks its tools with annotations, offers a resource and a prompt, and changes its own
tool list. A test bed for behave-aitest's MCP client (docs/mcp.md).

Questions, sampling and roots are asked through the SDK's resolvers, so the same tool
works for both protocol eras: a 2025-11-25 client gets a request during the call, a
2026-07-28 client an ``input_required`` result that it answers by retrying.

Run it with ``python -m behave_aitest.testing.studio_server [--transport stdio|streamable-http|sse]``.
It speaks both protocol eras; a client that pins the 2025-11-25 handshake (behave-aitest's
``protocol = "legacy"``) gets a stateful session, in which the tool list can change.
``--era 2025`` or ``--era 2026`` makes it speak one era only (``_serve.py``). With
``STUDIO_TASK_ONLY=1`` in its environment it also lists ``research``, a tool that only runs
as a task (``execution.taskSupport = "required"``, in 2025-11-25 listings).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Annotated, Any

from mcp.server.elicitation import ElicitationResult
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.resolve import Elicit, ListRoots, Resolve, Sample
from mcp_types import (
    CreateMessageResult,
    ImageContent,
    ListRootsResult,
    ResourceLink,
    SamplingMessage,
    TextContent,
    ToolAnnotations,
    ToolExecution,
)
from pydantic import BaseModel, Field

from behave_aitest.testing._serve import run

# A 1x1 red PNG.
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="

server = MCPServer("studio", instructions="A design studio: briefs, sketches, a brand guide.")


class Brief(BaseModel):
    client: str = Field(description="Who the design is for")
    colours: int = Field(default=2, description="How many colours")


def ask_brief() -> Elicit[Brief]:
    return Elicit("Who is the client of this design, and how many colours?", Brief)


@server.tool(description="Start a design: asks the user for the brief.", structured_output=False)
async def start_design(brief: Annotated[ElicitationResult[Brief], Resolve(ask_brief)]) -> str:
    if brief.action == "accept":
        return f"Design started for {brief.data.client} in {brief.data.colours} colours."
    return f"The user did not give a brief ({brief.action}); nothing started."


def ask_slogan(topic: str) -> Sample:
    return Sample(
        [SamplingMessage(role="user", content=TextContent(type="text", text=f"Write a slogan about {topic}."))],
        max_tokens=50,
        system_prompt="You write short slogans.",
    )


@server.tool(description="Write a slogan about a topic (asks the client's model).", structured_output=False)
async def slogan(topic: str, sampled: Annotated[CreateMessageResult, Resolve(ask_slogan)]) -> str:
    text = sampled.content.text if isinstance(sampled.content, TextContent) else "?"
    return f"Slogan: {text}"


def get_roots() -> ListRoots:
    return ListRoots()


@server.tool(description="List the folders the client shares with the studio.", structured_output=False)
async def shared_folders(roots: Annotated[ListRootsResult, Resolve(get_roots)]) -> str:
    return "Roots: " + ", ".join(str(r.uri) for r in roots.roots) if roots.roots else "Roots: none"


@server.tool(description="Sketch a logo; returns a picture.", annotations=ToolAnnotations(readOnlyHint=True), structured_output=False)
async def sketch(subject: str) -> list[TextContent | ImageContent]:
    return [TextContent(type="text", text=f"A sketch of {subject}:"), ImageContent(type="image", data=PIXEL, mimeType="image/png")]


@server.tool(description="Render the final artwork, reporting progress and logging.", structured_output=False)
async def render(ctx: Context, steps: int = 3) -> str:
    for step in range(1, steps + 1):
        await ctx.report_progress(step, steps, f"layer {step}")
    await ctx.info("render finished")
    return f"Rendered in {steps} steps."


@server.tool(description="Where the brand guide is.", annotations=ToolAnnotations(readOnlyHint=True), structured_output=False)
async def brand_guide_link() -> list[ResourceLink]:
    return [ResourceLink(type="resource_link", uri="studio://brand-guide", name="brand guide", mimeType="text/markdown")]


class Palette(BaseModel):
    name: str
    colours: list[str]


@server.tool(description="The studio's palette as data.", annotations=ToolAnnotations(readOnlyHint=True))
async def palette() -> Palette:
    return Palette(name="autumn", colours=["#aa3300", "#ffcc00"])


@server.tool(
    description="Delete every draft.", annotations=ToolAnnotations(destructiveHint=True, readOnlyHint=False), structured_output=False
)
async def delete_drafts() -> str:
    return "All drafts deleted."


@server.tool(description="Unlock the admin tools (the tool list changes).", structured_output=False)
async def unlock_admin(ctx: Context) -> str:
    if "archive" not in [t.name for t in await server.list_tools()]:
        server.add_tool(_archive, name="archive", description="Archive a project.", structured_output=False)
        server.remove_tool("unlock_admin")
        # 2025 clients get notifications/tools/list_changed; 2026-07-28 ones (which drop that
        # notification) get the event on the subscriptions/listen stream they opened.
        await ctx.session.send_tool_list_changed()
        await ctx.notify_tools_changed()
    return "Admin tools unlocked: archive."


async def _archive(project: str) -> str:
    return f"Archived {project}."


@server.resource("studio://brand-guide", name="brand guide", mime_type="text/markdown")
def brand_guide() -> str:
    return "# Brand guide\nUse autumn colours. Never use pink."


@server.resource("studio://projects/{name}", name="project brief", mime_type="text/plain")
def project_brief(name: str) -> str:
    """A resource template: its URIs are not in resources/list, only the template is."""
    return f"Project {name}: a logo in autumn colours."


@server.prompt(description="Ask for a critique of a design.")
def critique(design: str) -> str:
    return f"Please critique the design {design!r} against the brand guide."


async def _research(topic: str) -> str:
    return f"A long study of {topic}."


def offer_a_task_only_tool() -> None:
    """List ``research`` as a tool that only runs as a task (``taskSupport = "required"``)."""
    server.add_tool(_research, name="research", description="Research a topic at length (runs as a task).", structured_output=False)
    listed = server.list_tools

    async def list_tools() -> list[Any]:
        required = ToolExecution(task_support="required")
        return [t.model_copy(update={"execution": required}) if t.name == "research" else t for t in await listed()]

    server.list_tools = list_tools  # type: ignore[method-assign]


def main(argv: Sequence[str] | None = None) -> int:
    if os.environ.get("STUDIO_TASK_ONLY"):
        offer_a_task_only_tool()
    return run(server, argv, prog="python -m behave_aitest.testing.studio_server")


if __name__ == "__main__":
    sys.exit(main())
