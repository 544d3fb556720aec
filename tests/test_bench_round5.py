"""The benchmark command runs this round's items at tiny size: 9 (offline similarity), 10 (rate
limits), 11 (external agents); items 1-8 are tests/test_bench.py. No timing is asserted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_tiny_items_of_round_five_write_their_rows(tmp_path: Path) -> None:
    output = tmp_path / "perf.md"
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE")}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--size", "tiny", "--repeat", "1", "--items", "9,10,11", "--output", str(output), "--quiet"],
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
    assert {row.split("|")[1].strip() for row in rows} >= {"9", "10", "11"}
    assert "not measured: the benchmark failed" not in text  # every benchmark ran (or says what it needs)
    assert "| # | measurement |" in done.stdout  # the table is printed too
