"""Issue 24 item 6: ``bash scripts/examples.sh`` (README command 1) always replays offline,
whatever the environment holds; re-recording is an option of the script, said on the console.

The script runs for real, in a copy of the repository, with ``python3`` and ``.venv/bin/python``
standing in for the set-up (no virtualenv is made, nothing installed): they write the
arguments behave would get to a file, so the test sees exactly what the script would run."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

STAND_IN = """#!/bin/sh
# python3 -m venv / .venv/bin/python -m pip: nothing to do; -m behave: write its arguments down
if [ "$1" = "-m" ] && [ "$2" = "behave" ]; then shift 2; printf '%s\\n' "$@" > "$BEHAVE_ARGS"; fi
exit 0
"""


def _script(tmp_path: Path, *args: str, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True, exist_ok=True)
    (tmp_path / "behave-args.txt").unlink(missing_ok=True)
    shutil.copy(REPO / "scripts" / "examples.sh", root / "scripts" / "examples.sh")
    for folder in (root / ".venv" / "bin", tmp_path / "bin"):
        folder.mkdir(parents=True, exist_ok=True)
    for stand_in in (root / ".venv" / "bin" / "python", tmp_path / "bin" / "python3"):
        stand_in.write_text(STAND_IN)
        stand_in.chmod(0o755)
    recorded = tmp_path / "behave-args.txt"
    full = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k not in ("AITEST_REPLAY", "AITEST_MODEL")}
    # the first behave run is the example features; the example agents' run (examples/agents/) uses the same mode
    full.update(env, PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}", BEHAVE_ARGS=str(recorded), AITEST_EXAMPLES_AGENTS="0")
    done = subprocess.run(["bash", "scripts/examples.sh", *args], cwd=root, env=full, capture_output=True, text=True, timeout=60)
    return done, recorded.read_text().splitlines() if recorded.exists() else []


@pytest.mark.parametrize("env", [{}, {"OPENAI_API_KEY": "sk-for-another-project"}, {"OPENAI_API_KEY": "sk-x", "AITEST_MODEL": "openai/gpt-4.1"}])
def test_command_1_replays_whatever_the_environment(tmp_path: Path, env: dict[str, str]) -> None:
    done, args = _script(tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert args[:2] == ["-D", "aitest.cassette=replay"], args
    assert not any("record" in a or a.startswith("aitest.model") for a in args), args
    if env:
        assert "OPENAI_API_KEY is set" in done.stderr and "--record-live" in done.stderr, done.stderr


def test_recording_is_an_option_said_on_the_console(tmp_path: Path) -> None:
    done, args = _script(tmp_path, "--record", env={})
    assert done.returncode == 0, done.stderr
    assert args[:2] == ["-D", "aitest.cassette=record"] and not any(a.startswith("aitest.model") for a in args), args
    assert "re-recording the example cassettes against the scripted model" in done.stderr, done.stderr


def test_live_recording_needs_the_key_and_says_so(tmp_path: Path) -> None:
    done, args = _script(tmp_path, "--record-live", env={})
    assert done.returncode == 2 and args == [] and "OPENAI_API_KEY" in done.stderr, done.stderr
    done, args = _script(tmp_path, "--record-live", "--tags", "@x", env={"OPENAI_API_KEY": "sk-x"})
    assert done.returncode == 0, done.stderr
    assert args == ["-D", "aitest.cassette=record", "-D", "aitest.model=openai/gpt-4.1-mini", "--tags", "@x"], args
    assert "re-recording the example cassettes LIVE against openai/gpt-4.1-mini" in done.stderr, done.stderr
