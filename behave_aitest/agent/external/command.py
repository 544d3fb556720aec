"""The command kind: a CLI agent run once per turn (``command = [...]`` without ``url``).

The new user message goes on its stdin, its answer is read from its stdout. It also gets
``AITEST_MESSAGES`` (a JSON file with the conversation; with ``stateful = true`` only the
new messages), ``AITEST_THREAD_ID`` and the endpoints' variables (docs/agents.md). A
stdout that is a JSON object with a ``messages`` list is read as the turn's messages (so
a CLI agent can report tool calls it made itself); anything else is the answer's text.
Its process group is stopped when the turn ends, times out or the run is interrupted.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .base import AgentError, AgentInput, Endpoints, agent_environment
from .service import resolve_program


class CommandAgent:
    """A CLI agent, one process per turn."""

    kind = "command"

    def __init__(self, command: tuple[str, ...], where: str, *, env: Mapping[str, str] | None = None,
                 cwd: Path | None = None, stateful: bool = False) -> None:
        self.command, self.where, self.env, self.cwd, self.stateful = tuple(command), where, dict(env or {}), cwd, stateful
        self.describe = f"the CLI agent {' '.join(command)}"
        self.endpoints: Endpoints | None = None
        self.folder = Path(tempfile.mkdtemp(prefix="aitest-cli-agent-"))

    async def start(self, endpoints: Endpoints) -> None:
        self.endpoints = endpoints

    async def call(self, given: AgentInput) -> Any:
        assert self.endpoints is not None
        messages_file = self.folder / f"messages-{given.thread_id}.json"
        messages_file.write_text(json.dumps(given.messages, ensure_ascii=False), encoding="utf-8")
        env = agent_environment(self.endpoints, given.model, self.env)
        env.update({"AITEST_MESSAGES": str(messages_file), "AITEST_THREAD_ID": given.thread_id})
        try:
            process = await asyncio.create_subprocess_exec(
                *resolve_program(self.command), env=env, cwd=str(self.cwd) if self.cwd else None,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise AgentError(f"{self.describe} cannot start: {exc.strerror or exc} ({self.where}).") from None
        try:
            out, err = await process.communicate(given.text.encode())
        except BaseException:  # timeout or interruption: stop its whole process group
            _kill(process)
            await process.wait()
            raise
        finally:
            _kill(process)  # helpers it left behind
        if process.returncode != 0:
            tail = " | ".join(err.decode(errors="replace").strip().splitlines()[-3:])[-300:]
            raise AgentError(f"{self.describe} exited with status {process.returncode}" + (f": {tail}" if tail else " (nothing on stderr)."))
        text = out.decode(errors="replace").strip()
        if not text:
            raise AgentError(f"{self.describe} wrote nothing on stdout (its answer goes there).")
        if text.startswith("{"):
            try:
                data = json.loads(text)
            except ValueError:
                return text
            if isinstance(data, dict) and isinstance(data.get("messages"), list):
                return data["messages"]
        return text

    async def close(self) -> None:
        import shutil

        shutil.rmtree(self.folder, ignore_errors=True)


def _kill(process: asyncio.subprocess.Process) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
