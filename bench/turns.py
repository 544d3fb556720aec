"""Item 1, turn overhead: N scenarios x T turns through behave with the plugin, against a plain
Python script making the same litellm and MCP calls (bench/baseline_turns.py).

Whole processes, timed from spawn to exit, on the same fake model server (its own process)
and the same bank server command, in the same repetitions (interleaved). Measured twice:
with ``scope = "run"`` (one bank process for the whole run on both sides), where only the
plugin's own cost separates the two, and with ``scope = "conversation"`` (one bank process
per scenario, the plugin's default; the script starts one per scenario too). CPU time
(user + system of the process and its server processes) is reported beside the wall time:
it is far less sensitive to other load on the machine.
"""

from __future__ import annotations

from .common import BEHAVE, PYTHON, ROOT, Bench, Figure, Row, bank_pyproject, banking_features, check, fmt_seconds, run_timed, split, write_project

ITEM = 1
TITLE = "Turn overhead"
LIMIT = 1.05  # issue 12 asks for at most 1.05x (issue 7 asked for 1.10x)


def run(bench: Bench) -> list[Row]:
    size = bench.size
    url = bench.llm()
    scenarios, turns = size.turn_scenarios, size.turn_turns
    features, per_feature = split(scenarios)
    rows = []
    for scope in size.turn_scopes:
        project = write_project(
            bench.folder(f"turns-{scope}"),
            bank_pyproject(url, scope=scope),
            banking_features(features, per_feature, turns),
        )
        env = bench.env()
        cpu: dict[str, list[float]] = {"behave-aitest": [], "plain script": []}

        def plugin() -> float:
            done = check(run_timed(BEHAVE, project, env), "behave with the plugin")
            if f"{scenarios} scenarios passed, 0 failed" not in done.stdout + done.stderr:
                raise RuntimeError(f"behave did not pass {scenarios} scenarios:\n{done.tail()}")
            cpu["behave-aitest"].append(done.cpu_seconds)
            return done.seconds

        def script() -> float:
            cmd = [PYTHON, str(ROOT / "bench" / "baseline_turns.py"), "--api-base", url,
                   "--scenarios", str(scenarios), "--turns", str(turns), "--scope", scope]
            done = check(run_timed(cmd, project, env), "the plain script")
            cpu["plain script"].append(done.cpu_seconds)
            return done.seconds

        # One warm-up (bytecode, page cache) before the first variant is enough for both.
        wall = bench.alternate({"behave-aitest": plugin, "plain script": script}, f"item 1, scope {scope}", warmup=scope == "run")
        servers = f"{scenarios} bank processes, one per scenario" if scope == "conversation" else "1 bank process for the run"
        cpu_plugin, cpu_script = Figure(cpu["behave-aitest"][-bench.repeat:]), Figure(cpu["plain script"][-bench.repeat:])
        what = f'{scenarios * turns} turns ({scenarios} scenarios × {turns}), scope = "{scope}" ({servers})'
        rows.append(
            Row(
                ITEM,
                f"{what}: wall time of `python -m behave` with the plugin vs a plain litellm + mcp script",
                Figure(wall["behave-aitest"]),
                Figure(wall["plain script"]),
                limit=LIMIT,
                note=(
                    "Whole processes, spawn to exit: both import litellm and mcp, start the same bank server "
                    f"command ({servers}), make {2 * scenarios * turns} `litellm.acompletion` calls and "
                    f"{scenarios * turns} `call_tool` calls against the same fake model process, and check each turn. "
                    f"CPU time ratio (next row): {cpu_plugin.median / cpu_script.median:.2f}×."
                ),
            )
        )
        rows.append(
            Row(
                ITEM,
                f"{what}: CPU time (user + system, with the server processes), plugin vs script",
                cpu_plugin,
                cpu_script,
                note="From `wait4` of each run: the process and the MCP server processes it started (not the fake model).",
            )
        )
    return rows


def explain(row: Row) -> str:
    """What limits the plugin here, from the row's own figures (for a miss)."""
    if row.baseline is None or row.value is None or "wall time" not in row.what:
        return ""
    turns = int(row.what.split(" turns", 1)[0])
    extra = row.value.median - row.baseline.median
    return (
        f"The behave run took {fmt_seconds(extra)} longer than the script (medians), {fmt_seconds(extra / turns)} a turn. "
        "Beyond the script's litellm and MCP calls the plugin runs behave itself (parsing the features, matching "
        "steps, the formatter, hooks per scenario and step), loads and checks its configuration, passes every turn "
        "from behave's thread to its event-loop thread and back, and records every model and tool call for the "
        "reports. The CPU-time row beside it is the steadier measure of that extra work on a busy machine. A "
        "py-spy profile of the behave run (on-CPU samples, git e93da5c) found no hot spot of ours: the self time "
        "of behave-aitest's and behave's own functions is about 2% of the samples outside imports; the rest is "
        "litellm, httpx, pydantic and asyncio, which the script runs too. Where the CPU ratio is well below the wall "
        "ratio, the rest of the gap is waiting rather than work: each turn crosses from behave's thread to the "
        "plugin's event-loop thread and back, and on a machine busier than its cores every such hand-over waits "
        "for the scheduler, while the script stays on one thread."
    )
