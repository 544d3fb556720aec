"""What every benchmark shares: sizes, figures and rows, timed processes, the fake model server.

A benchmark module defines ``ITEM`` (its number in issue 7), ``TITLE`` and
``run(bench: Bench) -> list[Row]``. A :class:`Row` is one line of the results table: a
measured :class:`Figure` (all samples kept, shown as min / median), optionally a baseline
figure and a target, from which the result (PASS / MISS / INFO) is computed. A row with no
figure says why it was not measured; it never holds a made-up number.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the repository
PYTHON = sys.executable

# Variables that would let a run reach a real provider (as in tests/conftest.py).
PROVIDER_ENV = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AZURE_API_KEY", "GEMINI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE")
FAKE_KEY = "sk-fake-key-for-the-local-fake-server"
MODEL = "openai/fake-model"
SYSTEM_PROMPT = "You are a careful banking assistant. Use the tools to look up balances."


# ----------------------------------------------------------------------------- sizes


@dataclass(frozen=True)
class Size:
    """How big each benchmark is. ``tiny`` only proves that the code runs."""

    name: str
    turn_scenarios: int  # item 1: scenarios x turns (one tool call + one answer per turn)
    turn_turns: int
    turn_scopes: tuple[str, ...]  # item 1 is measured with each of these server scopes
    scope_features: int  # item 3: the fixed suite
    scope_scenarios: int  # per feature
    scope_turns: int
    tool_block: int  # item 2: MCP calls per repetition and side
    slow_calls: int  # item 2: tool calls in the concurrent turn
    slow_seconds: float
    dry_runs: int  # item 4: runs per repetition and side
    replay_small: int  # item 6: scenarios of the small and the large run (memory)
    replay_large: int
    warmup: bool  # one untimed run of each side first (bytecode, page cache)
    default_repeat: int
    # item 8: conversations x turns in feature files, every model call answered after jobs_latency s,
    # run at each -j in jobs_levels (1 = plain behave, the sequential runner)
    jobs_conversations: int = 48
    jobs_turns: int = 2
    jobs_features: int = 4
    jobs_latency: float = 1.0
    jobs_levels: tuple[int, ...] = (1, 4, 8, 16)


SIZES = {
    # tiny only proves that every benchmark runs (tests/test_bench.py): one scope for item 1
    "tiny": Size("tiny", 2, 2, ("run",), 2, 2, 1, 10, 5, 0.2, 1, 4, 8, False, 1, 4, 2, 2, 0.05, (1, 2)),
    "full": Size("full", 50, 4, ("run", "conversation"), 3, 4, 2, 200, 5, 0.2, 5, 100, 1000, True, 5),
}


# ----------------------------------------------------------------------------- figures and rows


def fmt_seconds(value: float) -> str:
    if value >= 100:
        return f"{value:.0f} s"
    if value >= 1:
        return f"{value:.2f} s"
    if value >= 1e-3:
        return f"{value * 1e3:.3g} ms"
    return f"{value * 1e6:.3g} µs"


def fmt_bytes(value: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.0f} B"


@dataclass
class Figure:
    """Samples of one measured quantity; ``unit`` is "s", "bytes" or "count"."""

    samples: list[float]
    unit: str = "s"

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def fmt(self, value: float) -> str:
        if self.unit == "s":
            return fmt_seconds(value)
        if self.unit == "bytes":
            return fmt_bytes(value)
        return f"{value:g}"

    def show(self) -> str:
        if self.unit == "count" and len(set(self.samples)) == 1:
            return f"{self.samples[0]:g}"
        return f"{self.fmt(self.min)} / {self.fmt(self.median)}"


@dataclass
class Row:
    """One line of the results table."""

    item: int
    what: str
    value: Figure | None = None  # behave-aitest (or the only figure)
    baseline: Figure | None = None  # the no-plugin baseline, when there is one
    limit: float | None = None  # ratio target: value.median / baseline.median <= limit
    expected: float | None = None  # count target: every sample == expected
    at_most: float | None = None  # absolute target: value.median <= at_most
    target: str = ""  # shown; filled from limit / expected when empty
    note: str = ""  # how it was measured, and for a miss what limits it
    missing: str = ""  # "not measured yet: needs ..." (value is None)

    @property
    def ratio(self) -> float | None:
        if self.value is None or self.baseline is None or self.baseline.median == 0:
            return None
        return self.value.median / self.baseline.median

    @property
    def min_ratio(self) -> float | None:
        if self.value is None or self.baseline is None or self.baseline.min == 0:
            return None
        return self.value.min / self.baseline.min

    @property
    def result(self) -> str:
        if self.value is None:
            return "NOT MEASURED"
        if self.limit is not None and self.ratio is not None:
            return "PASS" if self.ratio <= self.limit else "MISS"
        if self.expected is not None:
            return "PASS" if all(s == self.expected for s in self.value.samples) else "MISS"
        if self.at_most is not None:
            return "PASS" if self.value.median <= self.at_most else "MISS"
        return "INFO"

    @property
    def target_text(self) -> str:
        if self.target:
            return self.target
        if self.limit is not None:
            return f"≤ {self.limit:.2f}×"
        if self.expected is not None:
            return f"= {self.expected:g}"
        if self.at_most is not None and self.value is not None:
            return f"≤ {self.value.fmt(self.at_most)}"
        return ""


# ----------------------------------------------------------------------------- processes


@dataclass
class Done:
    """A finished process: exit code, wall and CPU time, peak RSS (with its children), output."""

    returncode: int
    seconds: float
    cpu_seconds: float  # user + system, of the process and its waited-for children (servers)
    max_rss_bytes: int
    stdout: str
    stderr: str

    def tail(self, lines: int = 30) -> str:
        return "\n".join((self.stdout + self.stderr).rstrip().splitlines()[-lines:])


class BenchError(RuntimeError):
    """A benchmark could not produce a figure (a run failed); the row says so."""


def run_timed(cmd: Sequence[str], cwd: Path, env: dict[str, str], timeout: float = 900) -> Done:
    """Run ``cmd`` to the end and time it; output goes to files, so the parent does no work
    while it runs. Peak RSS comes from ``wait4`` (the child and its waited-for children)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(list(cmd), cwd=cwd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        killer = threading.Timer(timeout, lambda: _kill(proc.pid))
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:  # interrupted (Ctrl-C, SIGTERM): do not leave the run behind
            _kill(proc.pid)
            proc.wait()
            raise
        finally:
            killer.cancel()
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4: tell Popen
        out.seek(0)
        err.seek(0)
        return Done(
            proc.returncode,
            seconds,
            usage.ru_utime + usage.ru_stime,
            usage.ru_maxrss * 1024,  # Linux reports kilobytes
            out.read().decode("utf-8", "replace"),
            err.read().decode("utf-8", "replace"),
        )


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def check(done: Done, what: str) -> Done:
    if done.returncode != 0:
        raise BenchError(f"{what} exited with {done.returncode}:\n{done.tail()}")
    return done


# ----------------------------------------------------------------------------- the run


class Bench:
    """One ``python -m bench`` run: size, repetitions, a scratch folder, the fake model server."""

    def __init__(self, size: Size, repeat: int, workdir: Path, log: Callable[[str], None]) -> None:
        self.size = size
        self.repeat = repeat
        self.workdir = workdir
        self.log = log
        self._llm: subprocess.Popen[str] | None = None
        self.llm_url = ""
        self.loads: list[float] = [os.getloadavg()[0]]  # 1-minute load average, sampled as samples are taken

    # -- environment

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of every measured process: no provider keys or endpoints (a fake
        key for litellm), and bytecode caching on, as in any normal installation (some
        shells set PYTHONDONTWRITEBYTECODE, which would make every run compile the plugin)."""
        env = {k: v for k, v in os.environ.items() if k not in PROVIDER_ENV and k != "PYTHONDONTWRITEBYTECODE"}
        env["OPENAI_API_KEY"] = FAKE_KEY
        env.update(extra)
        return env

    def folder(self, name: str) -> Path:
        path = self.workdir / name
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return path

    # -- the fake model

    def llm(self) -> str:
        """Base URL of the fake model server (its own process, started on first use)."""
        if self._llm is None:
            self._llm = subprocess.Popen(
                [PYTHON, "-m", "bench.llm_server"], cwd=ROOT, env=self.env(), stdout=subprocess.PIPE, text=True
            )
            assert self._llm.stdout is not None
            self.llm_url = self._llm.stdout.readline().strip()
            if not self.llm_url.startswith("http"):
                raise BenchError("the fake model server did not start")
        return self.llm_url

    def close(self) -> None:
        if self._llm is not None:
            self._llm.terminate()
            try:
                self._llm.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._llm.kill()
            self._llm = None

    # -- repetitions

    def alternate(self, sides: dict[str, Callable[[], float]], label: str, warmup: bool = True) -> dict[str, list[float]]:
        """Run each side ``repeat`` times, interleaved, the order swapped every repetition
        (so drift on the machine hits both sides alike); an untimed warm-up first (full size)."""
        samples: dict[str, list[float]] = {name: [] for name in sides}
        names = list(sides)
        if self.size.warmup and warmup:
            for name in names:
                sides[name]()
        for rep in range(self.repeat):
            for name in names if rep % 2 == 0 else reversed(names):
                value = sides[name]()
                samples[name].append(value)
                self.loads.append(os.getloadavg()[0])
                self.log(f"  {label}: {name} {rep + 1}/{self.repeat}: {value:.4g}")
        return samples


# ----------------------------------------------------------------------------- projects


def write_project(root: Path, pyproject: str, features: dict[str, str], steps: str | None = None, environment: bool = True) -> Path:
    """A behave project: pyproject.toml, features/*.feature, the plugin's hooks and steps."""
    (root / "features" / "steps").mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(textwrap.dedent(pyproject), encoding="utf-8")
    if environment:
        (root / "features" / "environment.py").write_text("from behave_aitest.environment import *  # noqa\n", encoding="utf-8")
    (root / "features" / "steps" / "aitest.py").write_text(
        steps if steps is not None else "from behave_aitest.steps import *  # noqa\n", encoding="utf-8"
    )
    for name, text in features.items():
        (root / "features" / name).write_text(text, encoding="utf-8")
    return root


def banking_features(features: int, scenarios: int, turns: int, tag: str = "") -> dict[str, str]:
    """``features`` feature files of ``scenarios`` scenarios of ``turns`` turns; every turn is
    one ``get_balance`` call then an answer, checked by one Then step."""
    files = {}
    number = 0
    for f in range(features):
        lines = [f"{tag}\n" if tag else "", f"Feature: Banking benchmark {f + 1}\n"]
        for _ in range(scenarios):
            number += 1
            lines.append(f"\n  Scenario: Balance check {number}\n    Given the agent \"banker\"\n")
            for t in range(turns):
                lines.append(f'    When the user says "What is my checking balance? (turn {t + 1})"\n')
                lines.append('    Then the agent called tool "get_balance"\n')
        files[f"bench_{f + 1:03d}.feature"] = "".join(lines)
    return files


def split(total: int, per_feature: int = 10) -> tuple[int, int]:
    """(features, scenarios per feature) for ``total`` scenarios, at most ``per_feature`` a file."""
    per = min(per_feature, total)
    if total % per:
        raise ValueError(f"{total} scenarios do not split into files of {per}")
    return total // per, per


def bank_pyproject(api_base: str, *, scope: str, command: Sequence[str] | None = None, env: dict[str, str] | None = None, extra: str = "") -> str:
    """A [tool.behave_aitest] config: the fake model, one bank server with ``scope``, agent banker."""
    command = list(command or ["python", "-m", "behave_aitest.testing.bank_server"])
    env_line = ""
    if env:
        env_line = "env = { " + ", ".join(f'{k} = "{v}"' for k, v in env.items()) + " }\n"
    cmd = "[" + ", ".join(f'"{c}"' for c in command) + "]"
    return (
        "[tool.behave_aitest]\n"
        f'model = "{MODEL}"\n'
        f'api_base = "{api_base}"\n'
        "retry_backoff_s = 0\n"
        "timeout_s = 60\n"
        f"{extra}"
        "\n[tool.behave_aitest.servers.bank]\n"
        f"command = {cmd}\n"
        f'scope = "{scope}"\n'
        f"{env_line}"
        "\n[tool.behave_aitest.agents.banker]\n"
        'servers = ["bank"]\n'
        f'system_prompt = "{SYSTEM_PROMPT}"\n'
        "temperature = 0\n"
    )


BEHAVE = [PYTHON, "-m", "behave", "--no-color", "-f", "plain"]

_TOML_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


def example_config() -> str:
    """The repository's ``[tool.behave_aitest*]`` tables, without its other tables: in
    particular not ``[tool.behave]``, where this repository turns on the HTML report for its
    own runs (an optional formatter is not part of what these benchmarks compare)."""
    kept, keep = [], False
    for line in (ROOT / "pyproject.toml").read_text(encoding="utf-8").splitlines():
        header = _TOML_HEADER.match(line)
        if header:
            keep = header.group(1).startswith("tool.behave_aitest")
        if keep:
            kept.append(line)
    return "\n".join(kept) + "\n"


def not_measured(item: int, what: str, needs: str) -> Row:
    return Row(item, what, missing=f"not measured yet: needs {needs}")


__all__ = [
    "BEHAVE", "Bench", "BenchError", "Done", "FAKE_KEY", "Figure", "MODEL", "PYTHON", "ROOT", "Row", "SIZES",
    "SYSTEM_PROMPT", "Size", "bank_pyproject", "banking_features", "check", "not_measured", "run_timed", "split",
    "write_project",
]
