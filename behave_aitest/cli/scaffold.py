"""``behave-aitest init [DIR]``: a project that passes at once, offline.

It writes the two one-line behave files, a ``[tool.behave_aitest]`` table (appended to an
existing pyproject.toml, byte for byte otherwise unchanged, or a new file), an example
feature and the scripted model's rules for it, using the example bank server shipped with
behave-aitest. It never overwrites a file: what exists is left alone and said so.

``behave-aitest init --from-server NAME`` drafts ``features/<NAME>_tools.feature`` with one
scenario per tool of a configured server (started once, within its ``startup_timeout_s``),
for a product owner to rewrite in the user's words. The template files are package data
(``behave_aitest/cli/templates/``).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

# file in the project -> template in behave_aitest/cli/templates/
FILES = (
    ("features/environment.py", "environment.py.txt"),
    ("features/steps/aitest.py", "steps.py.txt"),
    ("features/example.feature", "example.feature.txt"),
    ("features/scripted_model.toml", "scripted_model.toml.txt"),
)


class InitError(Exception):
    """Something ``init`` cannot do, said in one line."""


@dataclass
class Outcome:
    path: str
    action: str  # "wrote", "added", "left alone"
    why: str = ""

    def line(self) -> str:
        return f"{self.action:<10} {self.path}{f' ({self.why})' if self.why else ''}"


def template(name: str) -> str:
    return resources.files("behave_aitest.cli").joinpath("templates", name).read_text(encoding="utf-8")


def init(root: Path) -> list[Outcome]:
    """Write the project into ``root``; return what was done to each file."""
    outcomes = [_write_new(root, relative, template(name)) for relative, name in FILES]
    outcomes.insert(2, _add_table(root / "pyproject.toml"))
    return outcomes


def _outside(root: Path, target: Path) -> bool:
    """``target`` (or a folder on its way) is a link that leads out of ``root``: never written
    through (issue 25, H12)."""
    try:
        return not target.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError):  # a link loop
        return True


def _write_new(root: Path, relative: str, text: str) -> Outcome:
    target = root / relative
    if target.is_symlink() or _outside(root, target):
        return Outcome(relative, "left alone", "it is a link that leads out of the folder; nothing written through it")
    if target.exists():
        return Outcome(relative, "left alone", "it exists")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("x", encoding="utf-8", newline="\n") as out:  # "x": never overwrite, even in a race
            out.write(text)
    except FileExistsError:
        return Outcome(relative, "left alone", "it exists")
    except OSError as exc:
        raise InitError(f"{target}: cannot write it ({exc.strerror or exc}).") from None
    return Outcome(relative, "wrote")


REPORT_HINT = (
    'it has its own [tool.behave]: add format = ["behave_aitest.formatter:HTMLFormatter"] and '
    'outfiles = ["reports/aitest.html"] to it for the HTML report'
)


def _add_table(path: Path) -> Outcome:
    """The ``[tool.behave_aitest]`` table and, unless the file has its own, a ``[tool.behave]``
    that writes the HTML report: appended to pyproject.toml, or a new file."""
    table = template("table.toml.txt")
    if path.is_symlink() and _outside(path.parent, path):
        return Outcome(path.name, "left alone", f"it is a link to {path.resolve()}, outside the folder; add the table there by hand if you mean to")
    behave_table = template("behave_table.toml.txt")
    if not path.exists():
        return _write_new(path.parent, path.name, (table + behave_table).lstrip("\n"))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InitError(f"{path}: cannot read it ({getattr(exc, 'strerror', None) or exc}).") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return Outcome(path.name, "left alone", f"it is not valid TOML ({exc}); add the table by hand")
    if "behave_aitest" in data.get("tool", {}):
        return Outcome(path.name, "left alone", "it already has [tool.behave_aitest]")
    own_behave = "behave" in data.get("tool", {})
    joined = text + ("" if text.endswith("\n") or not text else "\n") + table + ("" if own_behave else behave_table)
    try:
        tomllib.loads(joined)
    except tomllib.TOMLDecodeError:
        return Outcome(path.name, "left alone", "the table cannot be appended to it as it is; add it by hand")
    try:
        with path.open("a", encoding="utf-8", newline="\n") as out:  # append: every existing byte kept
            out.write(joined[len(text):])
    except OSError as exc:
        raise InitError(f"{path}: cannot write it ({exc.strerror or exc}).") from None
    if own_behave:
        return Outcome(path.name, "added", f"[tool.behave_aitest] at its end; nothing else changed; {REPORT_HINT}")
    return Outcome(path.name, "added", "[tool.behave_aitest] and [tool.behave] (the HTML report) at its end; nothing else changed")


# --------------------------------------------------------------------------- --from-server


def _gherkin_text(text: str, limit: int = 200) -> str:
    """A server's text on one Gherkin line: no line breaks, control characters (ESC, NUL) shown
    as escapes (issue 25, H20). Quotes stay: a step's ``"{name}"`` takes a name holding one."""
    from ..text.safetext import escape

    one = escape(" ".join(str(text).split()))
    return one if len(one) <= limit else one[: limit - 1] + "…"


def draft(server: str, tools: list[Any], agent: str | None, left_out: list[str] | None = None) -> str:
    """A feature with one scenario per tool (``tools``: servers.ToolSpec), to be rewritten.
    ``agent``: the agent that uses the server (its ``allowed_tools`` already applied to
    ``tools``; ``left_out`` names the others); None: no agent uses it, so each scenario gives
    the server to the scenario's agent with ``Given the MCP server``."""
    lines = [
        "@draft",
        f"Feature: What the {_gherkin_text(server)} tools are for (a draft written by behave-aitest init --from-server)",
        "  One scenario per tool. Rewrite each request as a user would say it and add what must hold",
        "  (the steps: behave --steps-catalog). Drop the @draft tag when it is done; until then",
        '  leave it out of a run with --tags="not @draft".',
    ]
    if left_out:
        lines.append(f"  The agent {agent}'s allowed_tools leave out {', '.join(_gherkin_text(t, 80) for t in left_out)}: no scenario for them.")
    if agent is None:
        lines.append(f"  No agent uses the server {_gherkin_text(server)}: each scenario adds it with Given the MCP server")
        lines.append("  (or add it to an agent's servers and use Given the agent).")
    lines.append("")
    for tool in tools:
        name = _gherkin_text(tool.name, 1000)
        lines.append(f"  Scenario: {name}")
        if name != tool.name:
            lines.append("    # The tool's name holds characters a step cannot hold (line breaks, control characters): the steps below name it as shown, not as the server spells it.")
        if tool.description:
            lines.append(f"    # What the server says it does: {_gherkin_text(tool.description)}")
        params = _parameters(tool.input_schema)
        if params:
            lines.append(f"    # Parameters: {_gherkin_text(params)}")
        if agent:
            lines.append(f'    Given the agent "{agent}"')
        else:
            lines.append(f'    Given the MCP server "{_gherkin_text(server, 80)}"')
        lines.append(f'    When the user says "TODO: ask for something that needs {name}"')
        lines.append(f'    Then the agent called tool "{name}"')
        lines.append("")
    return "\n".join(lines)


def _parameters(schema: Any) -> str:
    props = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(props, dict):
        return ""
    required = set(schema.get("required") or [])
    parts = []
    for key, spec in props.items():
        kind = spec.get("type") if isinstance(spec, dict) else None
        parts.append(f"{key}{f' ({kind})' if isinstance(kind, str) else ''}{' required' if key in required else ''}")
    return ", ".join(parts)


def from_server(root: Path, name: str) -> Outcome:
    """Draft ``features/<name>_tools.feature`` from the tools the configured server lists."""
    import tempfile

    import anyio

    from ..config import ConfigError, load_config, unknown_name

    try:
        config = load_config({}, cwd=root)
        if name not in config.servers:
            raise unknown_name("MCP server", name, config.servers, "servers", str(config.path or root / "pyproject.toml"))
    except ConfigError as exc:
        raise InitError(str(exc)) from None
    server = config.servers[name]
    with tempfile.TemporaryDirectory(prefix="aitest-init-") as folder:
        tools = anyio.run(_list_tools, server, Path(folder) / "server.log")
    user = next((a for a in config.agents.values() if name in a.servers), None)
    left_out: list[str] = []
    if user is not None and user.allowed_tools is not None:
        from ..agent.names import KnownTools

        allowed = [t for t in tools if any(KnownTools(user.name, ((name, t.name),), ()).has(e) for e in user.allowed_tools)]
        left_out = [t.name for t in tools if t not in allowed]
        tools = allowed
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-") or "server"
    return _write_new(root, f"features/{slug}_tools.feature", draft(name, tools, user.name if user else None, left_out))


async def _list_tools(server: Any, errlog: Path) -> list[Any]:
    import anyio

    from ..errors import ServerError
    from ..mcp.connection import connect

    try:
        with anyio.fail_after(server.startup_timeout_s + 5):
            async with connect(server, errlog) as connection:
                return list(connection.tools)
    except TimeoutError:
        raise InitError(f"MCP server {server.name!r} did not start within {server.startup_timeout_s:g} s (startup_timeout_s).") from None
    except ServerError as exc:
        raise InitError(" ".join(str(exc).split())) from None


def add_init_command(subparsers: Any) -> None:
    """``behave-aitest init [DIR] [--from-server NAME]``."""
    parser = subparsers.add_parser(
        "init", help="start a behave-aitest project that passes at once, offline",
        description="Write features/environment.py, features/steps/aitest.py, a [tool.behave_aitest] table, an example "
        "feature and scripted-model rules into DIR (default: here). Never overwrites a file.",
    )
    parser.add_argument("directory", nargs="?", default=".", metavar="DIR")
    parser.add_argument("--from-server", metavar="NAME", help="draft a feature with one scenario per tool of this configured server")
    parser.set_defaults(func=_main)


def _main(args: Any) -> int:
    root = Path(args.directory)
    try:
        if root.exists() and not root.is_dir():
            raise InitError(f"{root}: not a folder.")
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InitError(f"{root}: cannot create the folder ({exc.strerror or exc}).") from None
        outcomes = [from_server(root, args.from_server)] if args.from_server else init(root)
    except InitError as exc:
        print(f"behave-aitest init: {exc}", file=sys.stderr)
        return 1
    for outcome in outcomes:
        print(outcome.line())
    if not args.from_server:
        where = "" if root.resolve() == Path.cwd().resolve() else f"cd {args.directory} && "
        print(f"Next: {where}behave   (offline: the scripted model and the example bank server); then behave-aitest doctor")
    return 0
