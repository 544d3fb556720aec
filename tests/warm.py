"""A warm interpreter for the tests' behave runs.

Every ``python -m behave`` that talks to a model imports litellm first: 4-7 s of CPU, most
of a short run, paid again by each of the suite's few hundred runs. This module keeps one
"zygote" per pytest worker: a Python process that has imported the heavy third-party
modules (litellm, the MCP client SDK, jsonschema, behave) and nothing of behave-aitest.
For each run it forks a child, which becomes exactly what ``python -m behave`` would be:
its own working directory, environment, ``sys.argv``, ``sys.path[0]``, stdin from
/dev/null, stdout and stderr to files; it then runs behave's ``__main__`` with ``runpy`` and
exits the normal way (atexit handlers, non-daemon threads). behave-aitest itself, the step
registry and the project's step files are imported fresh in every child, so nothing leaks
from one run to the next: each child starts from the same pristine zygote.

What a fork cannot give, a real subprocess still does: a run whose environment changes how
Python or litellm start (``PYTHON*``, ``LC_*``, ``LANG``, ``LITELLM_*``) and a run asked for
``fresh=True``; ``BEHAVE_AITEST_TESTS_COLD=1`` turns the zygote off for the whole suite.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

# Environment variables read when an interpreter or litellm starts: a forked child would
# not see a change, so a run that sets one gets a real subprocess.
_START_TIME_PREFIXES = ("PYTHON", "LC_", "LANG", "LITELLM_")

_ZYGOTE = r'''
import json, os, sys
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
import behave, jinja2, jsonschema.validators, anyio, httpx  # noqa
import litellm  # noqa
try:
    import litellm.proxy.openai_files_endpoints.common_utils  # noqa  (litellm's first call imports it)
except ImportError:
    pass
import mcp.client.stdio, mcp.client.streamable_http, mcp.client.sse  # noqa

def child(request):
    try:
        setup(request)
    except BaseException as exc:  # the run never started: say why in the zygote's log, exit at once
        print(f"warm child {request.get('id')}: {exc!r}", file=sys.stderr, flush=True)
        os._exit(127)
    import runpy
    runpy.run_module("behave", run_name="__main__", alter_sys=True)
    sys.exit(0)

def setup(request):
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for fd, path, flags in ((0, os.devnull, os.O_RDONLY), (1, request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC), (2, request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
        opened = os.open(path, flags, 0o600)
        os.dup2(opened, fd)
        os.close(opened)
    sys.path[0] = request["cwd"]
    sys.argv = ["behave", *request["args"]]

def serve():
    # Replies go to files named by the request (written whole, then renamed), never to a
    # shared pipe: nothing another process does with a pipe can mix two runs' answers.
    def reply(request, key, value):
        path = request["stdout"] + "." + key
        with open(path + ".tmp", "w") as f:
            f.write(str(value))
        os.rename(path + ".tmp", path)

    sys.stdout.buffer.write(b'{"ready": true}\n'); sys.stdout.buffer.flush()
    for line in sys.stdin.buffer:
        request = json.loads(line)
        sys.stdout.flush(); sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            child(request)  # raises SystemExit: the child never comes back here
        reply(request, "pid", pid)
        _, status = os.waitpid(pid, 0)
        reply(request, "rc", os.waitstatus_to_exitcode(status))

serve()
'''


class Zygote:
    """One warm interpreter, forking one child per behave run (runs are serial per worker)."""

    def __init__(self) -> None:
        self.owner = os.getpid()  # a forked copy of this process must not stop the zygote at its exit
        self.folder = Path(tempfile.mkdtemp(prefix="aitest-tests-warm-"))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _ZYGOTE],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(self.folder / "zygote.log", "wb"),
            cwd=self.folder, start_new_session=True,
        )
        if self._line(timeout=300) != {"ready": True}:
            raise RuntimeError(f"the warm interpreter did not start: {(self.folder / 'zygote.log').read_text()[-2000:]}")
        self.runs = 0

    def _reply(self, request: dict[str, Any], key: str, timeout: float | None) -> int | None:
        """The zygote's answer ``key`` ("pid", "rc") to ``request``, from the file it writes;
        None when ``timeout`` passes first. A zygote that died is an :class:`EOFError`."""
        path = Path(request["stdout"] + "." + key)
        deadline = None if timeout is None else time.monotonic() + timeout
        while not path.exists():
            if self.proc.poll() is not None:
                raise EOFError("the warm interpreter went away")
            if deadline is not None and time.monotonic() > deadline:
                return None
            time.sleep(0.02)
        value = int(path.read_text())
        path.unlink()
        return value

    def _line(self, timeout: float | None) -> Any:
        """The zygote's first line (it says it is ready) as JSON; None when ``timeout`` passes."""
        fd = self.proc.stdout.fileno()  # type: ignore[union-attr]
        pending = b""
        while b"\n" not in pending:
            ready, _, _ = select.select([fd], [], [], timeout)
            if not ready:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                raise EOFError("the warm interpreter went away")
            pending += chunk
        return json.loads(pending.partition(b"\n")[0])

    def run(self, args: list[str], cwd: Path, env: dict[str, str], timeout: float) -> tuple[int, str, str]:
        """``python -m behave *args`` in ``cwd`` with exactly ``env``; like ``subprocess.run``,
        a run that outlives ``timeout`` is killed and ``TimeoutExpired`` raised."""
        self.runs += 1
        out, err = self.folder / f"{self.runs}.out", self.folder / f"{self.runs}.err"
        request = {"id": self.runs, "args": args, "cwd": str(cwd), "env": env, "stdout": str(out), "stderr": str(err)}
        self.proc.stdin.write(json.dumps(request).encode() + b"\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        pid = self._reply(request, "pid", timeout=60)
        if pid is None:
            raise EOFError("the warm interpreter did not fork")
        try:
            rc = self._reply(request, "rc", timeout=timeout)
        except EOFError as exc:  # behave ran (part of) the test: running it again would not be the same run
            raise RuntimeError(f"tests/warm.py: {exc} while behave ran") from None
        if rc is None:
            os.kill(pid, signal.SIGKILL)
            self._reply(request, "rc", timeout=60)
            raise subprocess.TimeoutExpired(["python", "-m", "behave", *args], timeout)
        if not out.exists():  # the child could not even open its output: behave never started
            raise EOFError(f"the warm interpreter's child did not start (exit code {rc})")
        texts = [path.read_text(encoding="utf-8", errors="replace") for path in (out, err)]
        out.unlink()
        err.unlink()
        return rc, texts[0], texts[1]

    def close(self) -> None:
        if os.getpid() != self.owner:
            return
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


_zygote: Zygote | None = None


def warm_allowed(env_changes: dict[str, str]) -> bool:
    """Whether a run with these environment changes may use the warm interpreter."""
    if os.environ.get("BEHAVE_AITEST_TESTS_COLD") == "1" or not hasattr(os, "fork"):
        return False
    return not any(key.startswith(_START_TIME_PREFIXES) for key in env_changes)


def run_behave(args: list[str], cwd: Path, env: dict[str, str], timeout: float) -> tuple[int, str, str] | None:
    """Run behave in this worker's warm interpreter (started on first use, stopped at exit).
    A zygote in trouble before behave started (gone, could not fork) is replaced, and None
    returned: the caller then runs behave in a new interpreter."""
    global _zygote
    if _zygote is None or _zygote.proc.poll() is not None:
        _zygote = Zygote()
        atexit.register(_zygote.close)
    try:
        return _zygote.run(args, cwd, env, timeout)
    except (EOFError, BrokenPipeError, OSError, ValueError) as exc:
        print(f"tests/warm.py: {exc}; this run goes to a new interpreter", file=sys.stderr)
        _zygote.close()
        _zygote = None
        return None
