"""Item 3, server lifetime: how many bank server processes one run starts, and how long the
run takes, for ``scope = "run"``, ``"feature"`` and ``"conversation"``, on one fixed suite.

The server command is the bank server behind ``bench/counted_server.py``, which appends one
line per process start to a count file; the count is read after each run.
"""

from __future__ import annotations

from .common import BEHAVE, ROOT, Bench, Figure, Row, bank_pyproject, banking_features, check, run_timed, write_project

ITEM = 3
TITLE = "Server lifetime (scope)"
SCOPES = ("run", "feature", "conversation")


def run(bench: Bench) -> list[Row]:
    size = bench.size
    url = bench.llm()
    features, per_feature, turns = size.scope_features, size.scope_scenarios, size.scope_turns
    scenarios = features * per_feature
    expected = {"run": 1, "feature": features, "conversation": scenarios}
    count_file = bench.workdir / "scope-starts.txt"
    command = ["python", str(ROOT / "bench" / "counted_server.py"), "behave_aitest.testing.bank_server"]
    projects = {
        scope: write_project(
            bench.folder(f"scope-{scope}"),
            bank_pyproject(url, scope=scope, command=command, env={"BENCH_COUNT_FILE": str(count_file)}),
            banking_features(features, per_feature, turns),
        )
        for scope in SCOPES
    }
    starts: dict[str, list[float]] = {scope: [] for scope in SCOPES}
    env = bench.env()

    def side(scope: str):
        def one() -> float:
            count_file.write_text("")
            done = check(run_timed(BEHAVE, projects[scope], env), f"behave, scope {scope}")
            if f"{scenarios} scenarios passed, 0 failed" not in done.stdout + done.stderr:
                raise RuntimeError(f"behave did not pass {scenarios} scenarios:\n{done.tail()}")
            starts[scope].append(len(count_file.read_text().split()))
            return done.seconds

        return one

    times = bench.alternate({scope: side(scope) for scope in SCOPES}, "item 3", warmup=False)
    suite = f"{features} features × {per_feature} scenarios × {turns} turns"
    rows = []
    for scope in SCOPES:
        rows.append(
            Row(
                ITEM,
                f'scope = "{scope}": bank server processes started per run ({suite})',
                Figure(starts[scope], "count"),
                expected=expected[scope],
                note={
                    "run": "One process for the whole run, shared by every feature and scenario (state carries over).",
                    "feature": "One process per feature file, shared by its scenarios.",
                    "conversation": "One process per scenario (per @session feature): the default, every conversation starts clean.",
                }[scope] + " Counted by a wrapper that appends a line per process start to a file.",
            )
        )
        rows.append(
            Row(
                ITEM,
                f'scope = "{scope}": run time' + ("" if scope == "run" else ' vs scope = "run"') + f" ({suite})",
                Figure(times[scope]),
                None if scope == "run" else Figure(times["run"]),
                note="Whole `python -m behave` process. What a server start costs (about half a second each: "
                "spawning Python, importing mcp, the handshake, and the stop) is what `scope` buys back.",
            )
        )
    return rows


def explain(row: Row) -> str:
    if row.expected is None or row.value is None:
        return ""
    return (
        f"The run started {row.value.show()} server processes instead of {row.expected:g}: the scope is not honoured "
        "(runtime.Runtime.connections / _scope_for), or a server died and was started again (see its stderr log)."
    )
