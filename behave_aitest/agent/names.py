"""Named things in steps: does the scenario's agent have the tool a step names?

A check on a name nobody offers cannot fail: ``Then the agent did not call tool "get_balanse"``
passes whatever the agent does. So every step that names a tool (positive and negative forms,
tables, patterns) asks :func:`check_tool` first, and a name the agent's servers do not offer is
the step's error with a did-you-mean and the agent's tools, as tool doubles and the test's own
tool calls say it. Pure: the runtime (or doctor) says what is known, as :class:`KnownTools`.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..config import did_you_mean
from ..errors import StepUsageError


@dataclass(frozen=True)
class KnownTools:
    """What one agent's steps may name: every tool its servers list (``(server, tool)``, also
    those its ``allowed_tools`` leave out: a check that the agent did not call one is a real
    check), the tools it may use (``offered``, as the model sees them), and other names that
    exist for it (the built-in ``read_resource``, tools called earlier in the conversation, an
    external agent's own tools that it reported calling)."""

    agent: str
    listed: tuple[tuple[str, str], ...]
    offered: tuple[str, ...]
    extra: tuple[str, ...] = ()
    task_only: tuple[tuple[str, str], ...] = ()  # (server, tool) listed as task-only: never offered

    def task_only_tool(self, name: str) -> tuple[str, str] | None:
        """``(server, tool)`` when ``name`` (``tool`` or ``server.tool``) is a tool its servers
        list as task-only (``execution.taskSupport = "required"``), else None."""
        return next(((s, t) for s, t in self.task_only if name in (t, f"{s}.{t}")), None)

    def names(self) -> list[str]:
        """Every spelling a step may use: ``tool`` and ``server.tool``."""
        found = [tool for _, tool in self.listed] + [f"{s}.{t}" for s, t in self.listed] + list(self.extra)
        return list(dict.fromkeys(found))

    def has(self, name: str) -> bool:
        """``tool``, or ``server.tool`` split at any dot (a tool ``ask.model`` of a server
        ``probe`` is ``probe.ask.model``), as ``allowed_tools`` entries are read."""
        if name in self.extra or any(name == tool for _, tool in self.listed):
            return True
        return any(name == f"{server}.{tool}" for server, tool in self.listed)

    def tools_text(self) -> str:
        names = sorted(self.offered)
        if not names:
            return "none (the agent has no tools)"
        hidden = sorted({t for _, t in self.listed} - {n.rpartition(".")[2] for n in self.offered})
        left_out = f"; its servers also list {', '.join(hidden)}, which its allowed_tools leave out" if hidden else ""
        return ", ".join(names) + left_out


def known_tools(toolbox: Any, agent: str, calls: Iterable[Any] = ()) -> KnownTools:
    """:class:`KnownTools` from a built ``ToolBox`` (its servers' listings) and the calls of
    the conversation so far (a tool a server listed when it was called still counts)."""
    listed = [(conn.name, spec.name) for conn in toolbox.connections for spec in conn.tools]
    extra = [toolbox.read_resource_name] if getattr(toolbox, "read_resource_name", None) else []
    for call in calls:
        if call.server and call.name:
            listed.append((call.server, call.name))
        elif getattr(call, "reported", False) and call.name:  # an external agent's own in-process tool (docs/agents.md)
            extra.append(call.name)
    task_only = tuple((conn.name, tool) for conn in toolbox.connections for tool in getattr(conn, "task_only", None) or ())
    return KnownTools(agent or "(unnamed)", tuple(dict.fromkeys(listed)), tuple(toolbox.offered()), tuple(extra), task_only)


def _maybe(name: str, candidates: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or nothing."""
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def task_only_text(server: str, tool: str) -> str:
    """Why a task-only tool is neither offered nor callable, in the words of its warning."""
    from ..mcp.connection import TASK_ONLY

    return f"the tool {tool!r} of MCP server {server!r} {TASK_ONLY}"


def unknown_tool(name: str, known: KnownTools, step: str) -> str | None:
    """The message for a step naming a tool the agent does not have, or None when it has it.
    A task-only tool is not unknown: the step says why no step can use it."""
    if known.has(name):
        return None
    task = known.task_only_tool(name)
    if task is not None:
        return (
            f"{step.rstrip(':')}: {task_only_text(*task)}, so it is not offered to the agent {known.agent!r}: "
            "no step can call, double or check it (docs/mcp.md)."
        )
    return f"{step.rstrip(':')}: the agent {known.agent!r} has no tool {name!r}.{did_you_mean(name, known.names())} Its tools: {known.tools_text()}."


def check_tool(names: Sequence[str] | str, known: KnownTools, step: str) -> None:
    """A :class:`StepUsageError` for the first name the agent does not have."""
    for name in [names] if isinstance(names, str) else names:
        problem = unknown_tool(name, known, step)
        if problem:
            raise StepUsageError(problem)


def check_pattern(pattern: str, known: KnownTools, step: str) -> None:
    """A tool-name pattern must match one of the agent's tools: one that matches none can
    never fail ("never called a tool matching 'delete_*'" on an agent with no such tool)."""
    if not any(fnmatch.fnmatchcase(name, pattern) for name in known.names()):
        raise StepUsageError(
            f"{step.rstrip(':')}: the pattern {pattern!r} matches none of the tools of the agent {known.agent!r}, so the check "
            f"could never fail. Its tools: {known.tools_text()}."
        )


def allowed_tools_problem(entries: Sequence[str], known: KnownTools, where: str) -> str | None:
    """The message for ``allowed_tools`` entries (config or step) no server of the agent lists:
    each with a did-you-mean, then the tools the servers offer. None when all are listed."""
    unknown = [e for e in entries if not known.has(e)]
    if not unknown:
        return None
    offered = sorted(f"{s}.{t}" for s, t in known.listed)
    each = "; ".join(
        f"{e!r} (it only runs as a task, which behave-aitest does not use)" if known.task_only_tool(e) else f"{e!r}{_maybe(e, known.names())}"
        for e in unknown
    )
    noun = "entry is" if len(unknown) == 1 else "entries are"
    return (
        f"{where.rstrip(':')}: allowed_tools {noun} not offered by the servers of the agent {known.agent!r}: {each}. "
        f"Its servers offer: {', '.join(offered) or 'no tools'}."
    )


def step_names(step: Any, match: Any) -> tuple[str, list[str]]:
    """What a step names, read from behave's match of it (for doctor, which runs no turn):
    ``("tool", names)``, ``("pattern", [glob])`` or ``("", [])``. The step functions say
    which argument (``aitest_names``), so the step patterns are written once."""
    func = getattr(match, "func", None)
    kind = getattr(getattr(func, "__wrapped__", func), "aitest_names", "")
    if kind == "table":
        table = getattr(step, "table", None)
        if table is None:
            return "", []
        names = [row.cells[0].strip() for row in table.rows]
        heading = table.headings[0].strip()
        return "tool", names if heading.lower() in ("tool", "tools", "name") else [heading, *names]
    arguments = {a.name: a.value for a in getattr(match, "arguments", None) or []}
    if kind == "name" and "name" in arguments:
        return "tool", [str(arguments["name"])]
    if kind == "pattern" and "pattern" in arguments:
        return "pattern", [str(arguments["pattern"])]
    return "", []


def step_problem(step: Any, match: Any, known: KnownTools) -> str | None:
    """The message :func:`check_tool` / :func:`check_pattern` would give when this step runs."""
    kind, names = step_names(step, match)
    text = f"{step.location}: {step.keyword} {step.name}"
    try:
        if kind == "tool":
            check_tool(names, known, text)
        elif kind == "pattern":
            check_pattern(names[0], known, text)
    except StepUsageError as exc:
        return str(exc)
    return None
