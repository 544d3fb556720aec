"""The service kind: an agent behind an OpenAI chat-completions URL (``url``), optionally
started by behave-aitest (``command``, once per worker, stopped with it, like a server) and
waited for (``ready_url``).

Each turn posts ``{"model", "messages", "thread_id"}`` (the whole conversation; with
``stateful = true`` only the new messages) with the headers ``Authorization: Bearer <key>``
and ``X-Aitest-Thread``, and reads a chat completion (``choices[0].message``) — or
``{"messages": [...]}``, the turn's messages with the tool calls the agent made itself.
``${AITEST_PORT}`` in ``url``, ``command`` and ``ready_url`` is a free port picked for each
worker (also given as ``AITEST_PORT``), so the service of each worker of ``-j N`` has its own.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .base import AgentError, AgentInput, Endpoints, agent_environment

STARTUP_TIMEOUT_S = 30.0
PORT_VAR = "${AITEST_PORT}"  # in url, command, ready_url: a free port picked per worker (so -j N works)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def resolve_program(command: tuple[str, ...]) -> list[str]:
    """``python``/``python3`` mean the interpreter running behave (as for servers)."""
    import sys

    program, *args = command
    return [sys.executable if program in ("python", "python3") else program, *args]


class ServiceAgent:
    """An HTTP agent service."""

    kind = "service"

    def __init__(self, url: str, where: str, *, command: tuple[str, ...] = (), ready_url: str | None = None,
                 env: Mapping[str, str] | None = None, cwd: Path | None = None, stateful: bool = False,
                 model: str = "", log: Path | None = None, startup_timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        self.url, self.where, self.command, self.ready_url = url, where, tuple(command), ready_url
        self.env, self.cwd, self.stateful, self.model, self.log = dict(env or {}), cwd, stateful, model, log
        self.startup_timeout_s = startup_timeout_s
        self.describe = f"the agent service at {url}"
        self.process: asyncio.subprocess.Process | None = None
        self._client: Any = None
        self._key = ""

    async def start(self, endpoints: Endpoints) -> None:
        import httpx

        self._key = endpoints.key
        if PORT_VAR in self.url and self.command:  # each worker's own service on its own port
            port = str(free_port())
            self.env["AITEST_PORT"] = port
            self.url = self.url.replace(PORT_VAR, port)
            self.ready_url = self.ready_url.replace(PORT_VAR, port) if self.ready_url else None
            self.command = tuple(part.replace(PORT_VAR, port) for part in self.command)
            self.describe = f"the agent service at {self.url}"
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=None)
        if self.command and (self.process is None or self.process.returncode is not None):
            await self._start_process(endpoints)

    async def _start_process(self, endpoints: Endpoints) -> None:
        env = agent_environment(endpoints, self.model, self.env)
        errlog = open(self.log, "ab") if self.log else asyncio.subprocess.DEVNULL  # noqa: SIM115 - closed below
        try:
            self.process = await asyncio.create_subprocess_exec(
                *resolve_program(self.command), env=env, cwd=str(self.cwd) if self.cwd else None,
                stdin=asyncio.subprocess.DEVNULL, stdout=errlog, stderr=errlog, start_new_session=True,
            )
        except OSError as exc:
            raise AgentError(f"{self.where}: the agent service's command {list(self.command)} cannot start: {exc.strerror or exc}.") from None
        finally:
            if self.log:
                errlog.close()  # type: ignore[union-attr]
        await self._wait_ready()

    async def _wait_ready(self) -> None:
        """Until ``ready_url`` answers below 500 (else until ``url`` accepts connections)."""
        import httpx

        deadline = time.monotonic() + self.startup_timeout_s
        probe = self.ready_url or self.url
        while True:
            if self.process is not None and self.process.returncode is not None:
                raise AgentError(f"{self.where}: the agent service exited with status {self.process.returncode} before it was ready{self._tail()}.")
            try:
                if self.ready_url:
                    response = await self._client.get(probe, timeout=2)
                    if response.status_code < 500:
                        return
                else:
                    await self._client.request("OPTIONS", probe, timeout=2)
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                await self.close()
                raise AgentError(f"{self.where}: the agent service was not ready at {probe} within {self.startup_timeout_s:g} s{self._tail()}.")
            await asyncio.sleep(0.05)

    def _tail(self) -> str:
        if not self.log or not self.log.exists():
            return ""
        lines = self.log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
        return f" (its output ends: {' | '.join(lines)[-300:]})" if lines else ""

    async def call(self, given: AgentInput) -> Any:
        import httpx

        if self.process is not None and self.process.returncode is not None:
            raise AgentError(f"{self.describe} has exited (status {self.process.returncode}){self._tail()}.")
        body = {"model": given.model, "messages": given.messages, "thread_id": given.thread_id}
        headers = {"Authorization": f"Bearer {self._key}", "X-Aitest-Thread": given.thread_id}
        try:
            response = await self._client.post(self.url, json=body, headers=headers)
        except httpx.ConnectError as exc:
            raise AgentError(f"{self.describe} is down ({exc or 'connection refused'}); start it, or give 'command' to let behave-aitest start it.") from None
        except httpx.TransportError as exc:
            raise AgentError(f"{self.describe} failed: {type(exc).__name__}: {exc}.") from None
        if response.status_code >= 400:
            text = " ".join(response.text.split())[:300]
            raise AgentError(f"{self.describe} answered HTTP {response.status_code}: {text or '(empty body)'}")
        try:
            data = response.json()
        except ValueError:
            raise AgentError(f"{self.describe} answered with a body that is not JSON: {response.text[:200]!r}") from None
        return read_answer(data, self.describe)

    async def close(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.returncode is None:
            for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
                try:
                    os.killpg(process.pid, sig)
                except (ProcessLookupError, PermissionError):
                    break
                try:
                    await asyncio.wait_for(process.wait(), wait)
                    break
                except asyncio.TimeoutError:
                    continue
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


def read_answer(data: Any, who: str) -> Any:
    """The messages of a service's answer: ``{"messages": [...]}`` or a chat completion."""
    if isinstance(data, dict) and isinstance(data.get("messages"), list):
        return data["messages"]
    try:
        return data["choices"][0]["message"]
    except (KeyError, IndexError, TypeError):
        shown = json.dumps(data, ensure_ascii=False)[:200] if not isinstance(data, str) else data[:200]
        raise AgentError(f"{who} answered JSON that is not a chat completion (no choices[0].message): {shown}") from None
