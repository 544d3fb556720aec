"""Shared fixtures: a temporary behave project run as ``python -m behave`` in a subprocess,
and the project's fake OpenAI-compatible server for litellm to talk HTTP to."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from behave_aitest.model.fakellm import FakeOpenAI

from warm import run_behave, warm_allowed

# Variables that would let a test reach a real provider; removed from every subprocess.
_PROVIDER_ENV = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AZURE_API_KEY", "GEMINI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE")


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class Project:
    """A throw-away behave project using behave-aitest, in a temporary directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "features" / "steps").mkdir(parents=True)
        (root / "features" / "environment.py").write_text("from behave_aitest.environment import *\n")
        (root / "features" / "steps" / "aitest.py").write_text("from behave_aitest.steps import *\n")

    def config(self, text: str) -> None:
        """Write pyproject.toml (dedented)."""
        (self.root / "pyproject.toml").write_text(textwrap.dedent(text), encoding="utf-8")

    def feature(self, name: str, text: str) -> Path:
        path = self.root / "features" / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 180, fresh: bool = False) -> Result:
        """Run ``python -m behave`` with no provider keys in its environment: a child forked
        from this worker's warm interpreter (tests/warm.py), or with ``fresh=True`` (and for
        environments that change how Python or litellm start) a new interpreter."""
        clean = {k: v for k, v in os.environ.items() if k not in _PROVIDER_ENV}
        clean["OPENAI_API_KEY"] = "sk-fake-key-for-the-local-fake-server"
        clean.update(env or {})
        behave_args = ["--no-color", "--no-capture", *args]
        if not fresh and warm_allowed(env or {}):
            warm = run_behave(behave_args, self.root, clean, timeout)
            if warm is not None:
                return Result(*warm)
        done = subprocess.run(
            [sys.executable, "-m", "behave", *behave_args],
            cwd=self.root,
            env=clean,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=timeout,
        )
        return Result(done.returncode, done.stdout, done.stderr)


def processes_in(root: Path) -> list[str]:
    """Command lines of live processes whose working directory is ``root`` (servers a run
    started there); specific to one test, so it stays right when tests run in parallel."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if Path(os.readlink(proc / "cwd")) == root.resolve():
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return found


def wait_for_server_log(temp: Path, text: str, timeout: float, pause: float = 0.05) -> bool:
    """Wait until a server's stderr log of a run whose TMPDIR is ``temp`` holds ``text`` (e.g.
    the test server saying it is inside a tool); False when ``timeout`` passes first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(text in log.read_text(errors="replace") for log in temp.glob("behave-aitest-*/*.stderr.log")):
            return True
        time.sleep(pause)
    return False


REPO = Path(__file__).resolve().parents[1]


def example_project(where: Path) -> Path:
    """A copy of the repository's example project (pyproject.toml and features/) in ``where``.

    Its [tool.behave] writes reports/aitest.html on every run, and a ``-o`` given on the
    command line only adds a report beside that one: run behave in the repository itself and
    the user's own report is overwritten. Tests run the examples in this copy instead."""
    root = where / "examples"
    root.mkdir()
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    shutil.copytree(REPO / "features", root / "features", ignore=shutil.ignore_patterns("__pycache__"))
    return root


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


@pytest.fixture
def fake_llm() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def llm_config(server: FakeOpenAI, extra: str = "", **top: object) -> str:
    """A [tool.behave_aitest] header pointing litellm at the fake server."""
    lines = ["[tool.behave_aitest]", 'model = "openai/fake-model"', f'api_base = "{server.base_url}"', "retry_backoff_s = 0"]
    lines += [f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {v}" for k, v in top.items()]
    return "\n".join(lines) + "\n" + textwrap.dedent(extra)


BANK = '[tool.behave_aitest.servers.bank]\ncommand = ["python", "-m", "behave_aitest.testing.bank_server"]\n'
WEATHER = '[tool.behave_aitest.servers.weather]\ncommand = ["python", "-m", "behave_aitest.testing.weather_server"]\n'
TODO = '[tool.behave_aitest.servers.todo]\ncommand = ["python", "-m", "behave_aitest.testing.todo_server"]\n'


# Files that take minutes (many behave runs each). pytest-xdist's --dist loadfile gives each
# file to one worker in collection order; started last, they would run alone at the end of
# the suite. Started first, the short files fill the other worker meanwhile.
_SLOW_FIRST = ("test_bench.py", "test_bench_round5.py", "test_parallel_faults.py", "test_parallel.py", "test_load.py", "test_hardening_lifecycle.py", "test_agents_frameworks.py", "test_meaning_safety.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return _SLOW_FIRST.index(name) if name in _SLOW_FIRST else len(_SLOW_FIRST)

    items.sort(key=rank)  # stable: the order within a file, and among the others, is kept
