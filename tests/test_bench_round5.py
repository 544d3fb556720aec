"""The benchmark command runs this round's items at tiny size: 9 (offline similarity), 10 (rate
limits), 11 (external agents); items 1-8 are tests/test_bench.py. No timing is asserted."""

from __future__ import annotations

from pathlib import Path

from test_bench import run_tiny


def test_bench_tiny_items_of_round_five_write_their_rows(tmp_path: Path) -> None:
    run_tiny(tmp_path, ["9", "10", "11"])
