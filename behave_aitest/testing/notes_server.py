"""Notes kept in a JSON file, as an MCP server ("notes"): a server whose state outlives it.

Like ``@modelcontextprotocol/server-memory`` with ``MEMORY_FILE_PATH``, it keeps its state
on disk, in the file named by the environment variable ``NOTES_FILE`` (default
``notes.json`` in the working directory), read on every call and written after every change.
Two processes pointed at the same file share their notes; a new process sees what an
earlier one left. Configure it with ``env = { NOTES_FILE = "${AITEST_SERVER_DIR}/notes.json" }``
to give every server process a fresh, empty file (docs/sessions.md).

Run it with ``python -m behave_aitest.testing.notes_server [--transport stdio|streamable-http|sse]``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from behave_aitest.testing._serve import run, text_tool


def notes_file() -> Path:
    return Path(os.environ.get("NOTES_FILE") or "notes.json")


def load(path: Path) -> list[str]:
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ToolError(f"The notes file {path} cannot be read: {exc}") from None
    return [str(n) for n in data] if isinstance(data, list) else []


def save(path: Path, notes: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(json.dumps(notes, ensure_ascii=False), encoding="utf-8")
    temporary.replace(path)


def create_server() -> MCPServer:
    """A notes server reading and writing :func:`notes_file`."""
    server = MCPServer("notes", instructions="Remember short notes for the user, in a file.")
    tool = text_tool(server)

    @tool
    def add_note(text: str) -> str:
        """Remember a note.

        Args:
            text: The note, e.g. "Buy milk".
        """
        if not text.strip():
            raise ToolError("The note is empty.")
        path = notes_file()
        notes = load(path)
        notes.append(text.strip())
        save(path, notes)
        return f"Noted ({len(notes)} note(s) in all)."

    @tool
    def list_notes() -> str:
        """List every note, oldest first, with the file they are kept in."""
        path = notes_file()
        notes = load(path)
        lines = [f"{i}. {n}" for i, n in enumerate(notes, start=1)] or ["No notes."]
        return "\n".join([*lines, f"(file: {path})"])

    return server


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``python -m behave_aitest.testing.notes_server --help``."""
    return run(create_server(), argv, prog="python -m behave_aitest.testing.notes_server")


if __name__ == "__main__":
    sys.exit(main())
