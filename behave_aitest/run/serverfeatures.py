"""What a scenario asks of its agent's MCP servers besides tools: a resource attached to the
next user message (``Given the resource "…" is attached``) and a prompt's messages sent as a
turn (``When the user runs the prompt "…"``), docs/mcp.md. A mixin of
:class:`~behave_aitest.run.runtime.Runtime`; it imports nothing above ``run``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..config import ConfigError

if TYPE_CHECKING:
    from .conversation import LiveConversation


class ServerFeatures:
    """Resources and prompts of the agent's servers, for the steps (a mixin of Runtime, whose
    ``live``, ``connections`` (ServerScopes) and ``call`` it uses)."""

    live: Callable[[], LiveConversation]
    connections: Callable[[LiveConversation], list[Any]]
    call: Callable[..., Any]

    def _with_attachments(self, live: LiveConversation, text: str, user_messages: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        """Resources attached with ``Given the resource … is attached`` join the next user message."""
        if not live.attachments:
            return user_messages
        attached, live.attachments = "\n\n".join(live.attachments), []
        messages = [dict(m) for m in user_messages] if user_messages else [{"role": "user", "content": text}]
        last = messages[-1]
        if last.get("role") == "user" and isinstance(last.get("content"), str):
            last["content"] = f"{last['content']}\n\n{attached}"
        else:
            messages.append({"role": "user", "content": attached})
        return messages

    def attach_resource(self, uri: str) -> None:
        """Read ``uri`` from the agent's servers (the one that lists it first) for the next user message."""
        from ..mcp.content import resource_contents_text

        live = self.live()
        connections = self.connections(live)

        async def read() -> str:
            from ..config import did_you_mean
            from ..mcp.connection import template_matches

            problems: list[str] = []
            known: list[str] = []
            offering, others = [], []
            for conn in connections:
                try:
                    listed = [str(r.uri) for r in await conn.list_resources()]
                    templates = [str(t.uri_template) for t in await conn.list_resource_templates()]
                except Exception:
                    listed, templates = [], []
                known += listed
                offers = uri in listed or any(template_matches(t, uri) for t in templates)
                (offering if offers else others).append(conn)
            # the servers that list it (or a template it fits) first; any other may still read it
            for conn in [*offering, *others]:
                try:
                    return resource_contents_text((await conn.read_resource(uri)).contents)
                except Exception as exc:
                    problems.append(f"{conn.name}: {type(exc).__name__}: {exc}")
            raise ConfigError(
                f"The resource {uri!r} cannot be read from the agent's servers "
                f"({'; '.join(problems) or 'the agent has no servers'}).{did_you_mean(uri, known)}"
            )

        live.attachments.append(self.call(read))

    def prompt_messages(self, name: str, arguments: dict[str, str]) -> list[dict[str, Any]]:
        """The messages of the prompt ``name`` (``prompts/get``) of the agent's servers, in order."""
        from ..mcp.content import blocks_view

        live = self.live()
        connections = self.connections(live)

        async def get() -> list[dict[str, Any]]:
            known = []
            for conn in connections:
                prompts = await conn.list_prompts()
                known += [f"{conn.name}.{p.name}" for p in prompts]
                if any(p.name == name for p in prompts):
                    try:
                        result = await conn.get_prompt(name, arguments)
                    except Exception as exc:  # e.g. a missing argument: the server's own words
                        raise ConfigError(
                            f"MCP server {conn.name!r} refused the prompt {name!r} with arguments {sorted(arguments)}: "
                            f"{type(exc).__name__}: {exc}"
                        ) from None
                    return [{"role": m.role, "content": blocks_view([m.content]).text} for m in result.messages]
            from ..config import did_you_mean

            bare = [k.partition(".")[2] for k in known]
            raise ConfigError(
                f"Unknown prompt {name!r}: the agent's servers offer {', '.join(known) or 'no prompts'}.{did_you_mean(name, bare)}"
            )

        return self.call(get)
