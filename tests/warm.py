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
    control_in, control_out = sys.stdin.buffer, sys.stdout.buffer
    control_out.write(b'{"ready": true}\n'); control_out.flush()
    for line in control_in:
        request = json.loads(line)
        sys.stdout.flush(); sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            child(request)  # raises SystemExit: the child never comes back here
        control_out.write(json.dumps({"id": request["id"], "pid": pid}).encode() + b"\n"); control_out.flush()
        _, status = os.waitpid(pid, 0)
        control_out.write(json.dumps({"id": request["id"], "rc": os.waitstatus_to_exitcode(status)}).encode() + b"\n"); control_out.flush()

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
        self._pending = b""
        if self._line(timeout=300) != {"ready": True}:
            raise RuntimeError(f"the warm interpreter did not start: {(self.folder / 'zygote.log').read_text()[-2000:]}")
        self.runs = 0

    def _reply(self, key: str, timeout: float | None) -> Any:
        """The value of ``key`` in the zygote's reply to the current request; None when
        ``timeout`` passes first. A reply to an earlier request is skipped; anything else is
        an :class:`EOFError` (the zygote is replaced)."""
        while True:
            line = self._line(timeout)
            if line is None:
                return None
            if not isinstance(line, dict) or key not in line and line.get("id") == self.runs:
                raise EOFError(f"the warm interpreter answered {line!r}")
            if line.get("id") == self.runs:
                return line[key]

    def _line(self, timeout: float | None) -> Any:
        """The next control line as JSON; None when ``timeout`` passes first."""
        fd = self.proc.stdout.fileno()  # type: ignore[union-attr]
        while b"\n" not in self._pending:
            ready, _, _ = select.select([fd], [], [], timeout)
            if not ready:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                raise EOFError("the warm interpreter went away")
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return json.loads(line)

    def run(self, args: list[str], cwd: Path, env: dict[str, str], timeout: float) -> tuple[int, str, str]:
        """``python -m behave *args`` in ``cwd`` with exactly ``env``; like ``subprocess.run``,
        a run that outlives ``timeout`` is killed and ``TimeoutExpired`` raised."""
        self.runs += 1
        out, err = self.folder / f"{self.runs}.out", self.folder / f"{self.runs}.err"
        request = {"id": self.runs, "args": args, "cwd": str(cwd), "env": env, "stdout": str(out), "stderr": str(err)}
        self.proc.stdin.write(json.dumps(request).encode() + b"\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        pid = self._reply("pid", timeout=60)
        if pid is None:
            raise EOFError("the warm interpreter did not fork")
        rc = self._reply("rc", timeout=timeout)
        if rc is None:
            os.kill(pid, signal.SIGKILL)
            self._reply("rc", timeout=60)
            raise subprocess.TimeoutExpired(["python", "-m", "behave", *args], timeout)
        if not out.exists():  # the child could not even open its output: not behave's doing
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
    A zygote in trouble (gone, or answering out of turn) is replaced, and None returned: the
    caller then runs behave in a new interpreter, so the test never pays for the zygote."""
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
