"""The benchmark command runs (tiny size), items 1-8 here and this round's items 9-11 in
tests/test_bench_round5.py (two files, so the two workers share them). Benchmarks, not timed tests:
no timing is asserted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_tiny(tmp_path: Path, items: list[str]) -> None:
    """``python -m bench --size tiny --items ...``: it exits 0, writes and prints the table, and
    every item asked for has its rows (or says what it needs)."""
    output = tmp_path / "perf.md"
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE")}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--size", "tiny", "--repeat", "1", "--items", ",".join(items), "--output", str(output), "--quiet"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = output.read_text(encoding="utf-8")
    assert "| # | measurement |" in text
    assert "## Machine" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and line[2:3].isdigit()]
    assert {row.split("|")[1].strip() for row in rows} >= set(items)
    assert "not measured: the benchmark failed" not in text  # every benchmark ran (or says what it needs)
    assert "| # | measurement |" in done.stdout  # the table is printed too


def test_bench_tiny_writes_a_table(tmp_path: Path) -> None:
    run_tiny(tmp_path, ["1", "2", "3", "4", "5", "6", "7", "8"])
