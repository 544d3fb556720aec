"""Item 7, parallel: the 200-turn suite of item 1 (50 scenarios x 4 turns, ``scope =
"conversation"``) as 10 feature files, run as two shards of 5 files in two behave processes at
once, each writing its JSON report, merged into one HTML report with
``behave-aitest report merge``; against one behave process writing the HTML report itself.
Sharding is by feature file, so a @session feature is never split. Wall time from the start to
the merged report.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from .common import BEHAVE, PYTHON, ROOT, Bench, BenchError, Figure, Row, bank_pyproject, banking_features, check, not_measured, run_timed, write_project

ITEM = 7
TITLE = "Parallel shards"
FILES = 10


def run(bench: Bench) -> list[Row]:
    size = bench.size
    scenarios, turns = size.turn_scenarios, size.turn_turns
    what = f"{scenarios * turns} turns ({scenarios} scenarios × {turns}, scope \"conversation\") in 2 shards + `behave-aitest report merge` vs 1 process"
    cli = ROOT / "behave_aitest" / "cli.py"
    if not cli.exists() or "merge" not in cli.read_text(encoding="utf-8"):
        return [not_measured(ITEM, what, "`behave-aitest report merge` (behave_aitest/cli.py), with the report formatter")]
    files = FILES if scenarios % FILES == 0 else 2
    project = write_project(
        bench.folder("parallel"),
        bank_pyproject(bench.llm(), scope="conversation"),
        banking_features(files, scenarios // files, turns),
    )
    names = sorted(p.name for p in (project / "features").glob("*.feature"))
    shards = [names[: files // 2], names[files // 2:]]
    env = bench.env()
    html_formatter = ["-f", "behave_aitest.formatter:HTMLFormatter"]
    json_formatter = ["-f", "behave_aitest.formatter:JSONFormatter"]

    def single() -> float:
        out = project / "single.html"
        done = check(run_timed(BEHAVE[:4] + html_formatter + ["-o", str(out)], project, env), "behave, one process")
        _verify(project / "single.json", scenarios, done.tail())
        return done.seconds

    def sharded() -> float:
        started = time.perf_counter()
        procs = []
        for i, shard in enumerate(shards):
            log = open(project / f"shard-{i + 1}.log", "w", encoding="utf-8")
            cmd = BEHAVE[:4] + json_formatter + ["-o", f"shard-{i + 1}.json"] + [f"features/{n}" for n in shard]
            procs.append((subprocess.Popen(cmd, cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT), log))
        for proc, log in procs:
            proc.wait()
            log.close()
            if proc.returncode != 0:
                raise BenchError(f"a shard exited with {proc.returncode}: see {log.name}")
        merge = [PYTHON, "-m", "behave_aitest.cli", "report", "merge", "shard-1.json", "shard-2.json", "-o", "merged.html"]
        done = check(run_timed(merge, project, env), "behave-aitest report merge")
        merge_json = [PYTHON, "-m", "behave_aitest.cli", "report", "merge", "shard-1.json", "shard-2.json", "-o", "merged.json"]
        elapsed = time.perf_counter() - started  # the JSON copy below is only for checking the totals
        check(run_timed(merge_json, project, env), "behave-aitest report merge (JSON, for the check)")
        _verify(project / "merged.json", scenarios, done.tail())
        merges.append(done.seconds)
        return elapsed

    merges: list[float] = []
    times = bench.alternate({"2 shards": sharded, "1 process": single}, "item 7", warmup=False)
    speedup = Figure(times["1 process"]).median / Figure(times["2 shards"]).median
    return [
        Row(
            ITEM,
            what + f": speed-up {speedup:.2f}× on {_cores()} cores",
            Figure(times["2 shards"]),
            Figure(times["1 process"]),
            note=(
                f"Shards by feature file ({len(shards[0])} + {len(shards[1])} files), run at once, each with the JSON "
                f"formatter; then `behave-aitest report merge` to one HTML report (merge alone: "
                f"{Figure(merges).show()}). One process: the HTML formatter (which also writes the JSON). The merged "
                "report is checked to hold every scenario, passed. Each process imports litellm and starts its own "
                "servers, and the machine's cores are shared with the server processes and the fake model."
            ),
        )
    ]


def _verify(path: Path, scenarios: int, tail: str) -> None:
    import json

    if not path.exists():
        raise BenchError(f"{path.name} was not written:\n{tail}")
    totals = json.loads(path.read_text(encoding="utf-8")).get("totals", {})
    if totals.get("scenarios") != scenarios or totals.get("passed") != scenarios:
        raise BenchError(f"{path.name} does not show {scenarios} passed scenarios: {totals}")


def _cores() -> int:
    import os

    return os.cpu_count() or 1
