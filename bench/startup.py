"""Item 4, start-up: ``behave --dry-run`` of the example features with the plugin, against plain
behave on the same feature files.

Plugin side: a copy of the repository's example project (features/*.feature, the one-line
environment.py and steps module of the README, the pyproject config). Baseline: the same
.feature files with a stub steps module that registers the *same step patterns* (read from
behave's step registry after importing ``behave_aitest.steps``) with no-op bodies, and no
environment.py. So both runs parse the same files and match the same steps against the same
number of patterns; the difference is importing and registering behave-aitest. (``--dry-run``
runs no hooks, so the plugin's ``before_all`` is not part of either side.)

``python -X importtime`` on the plugin side lists every module imported: litellm and mcp
must not be among them.
"""

from __future__ import annotations

import shutil

from .common import BEHAVE, PYTHON, ROOT, Bench, Figure, Row, check, example_config, fmt_seconds, run_timed, write_project

ITEM = 4
TITLE = "Start-up (--dry-run)"
FORBIDDEN = ("litellm", "mcp")
ALSO_HEAVY = ("openai", "httpx", "httpx2", "anyio", "pydantic", "jinja2", "tiktoken", "tokenizers")
DRY = ["--dry-run"]


def stub_steps() -> str:
    """A steps module with behave-aitest's step patterns and no-op bodies (built in a child
    process, so this process's behave registry is left alone)."""
    import subprocess

    code = (
        "import behave_aitest.steps\n"
        "from behave.step_registry import registry\n"
        "lines = ['from behave import given, when, then, step', '']\n"
        "for keyword, definitions in registry.steps.items():\n"
        "    for d in definitions:\n"
        "        lines.append(f'@{keyword}({d.pattern!r})\\ndef _(context, *args, **kwargs):\\n    pass\\n')\n"
        "print('\\n'.join(lines))\n"
    )
    return subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, check=True).stdout


def imported_top_level(importtime_stderr: str) -> set[str]:
    names = set()
    for line in importtime_stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            module = line.rsplit("|", 1)[1].strip()
            names.add(module.split(".")[0])
    return names


def run(bench: Bench) -> list[Row]:
    size = bench.size
    features = {p.name: p.read_text(encoding="utf-8") for p in sorted((ROOT / "features").glob("*.feature"))}
    plugin_dir = write_project(bench.folder("startup-plugin"), example_config(), features)
    shutil.copy(ROOT / "features" / "scripted_model.toml", plugin_dir / "features")
    stub = stub_steps()
    steps_count = stub.count("def _(")
    plain_dir = write_project(bench.folder("startup-plain"), "", features, steps=stub, environment=False)
    env = bench.env()
    expected_steps = None
    cpu: dict[str, list[float]] = {"plugin": [], "plain": []}

    def side(folder, name):
        def one() -> float:
            nonlocal expected_steps
            total = cpu_total = 0.0
            for _ in range(size.dry_runs):
                done = check(run_timed(BEHAVE + DRY, folder, env), f"behave --dry-run in {folder.name}")
                cpu_total += done.cpu_seconds
                summary = [line for line in done.stdout.splitlines() if line.endswith("untested") and "step" in line]
                if expected_steps is None:
                    expected_steps = summary
                elif summary != expected_steps:
                    raise RuntimeError(f"the two dry runs differ: {summary} vs {expected_steps}")
                total += done.seconds
            cpu[name].append(cpu_total / size.dry_runs)
            return total / size.dry_runs

        return one

    times = bench.alternate({"plugin": side(plugin_dir, "plugin"), "plain": side(plain_dir, "plain")}, "item 4, dry run")

    heavy_counts, seen = [], set()
    for _ in range(bench.repeat):
        done = check(run_timed([PYTHON, "-X", "importtime", *BEHAVE[1:], *DRY], plugin_dir, env), "behave -X importtime --dry-run")
        names = imported_top_level(done.stderr)
        heavy_counts.append(float(len(names & set(FORBIDDEN))))
        seen |= names
    forbidden = sorted(seen & set(FORBIDDEN))
    also = sorted(seen & set(ALSO_HEAVY))
    plugin_modules = sorted(n for n in seen if n == "behave_aitest")
    return [
        Row(
            ITEM,
            "`behave --dry-run` of the examples with the plugin: litellm and mcp imported",
            Figure(heavy_counts, "count"),
            expected=0,
            target="none",
            note=(
                "Top-level packages in `python -X importtime -m behave --dry-run`: "
                + (f"imported: {', '.join(forbidden)}." if forbidden else "neither litellm nor mcp is imported")
                + (f"; other heavy packages imported: {', '.join(also)}." if also else "; nor openai, httpx, anyio or pydantic.")
                + ("" if plugin_modules else " (behave_aitest itself was not imported: check the project copy.)")
            ),
        ),
        Row(
            ITEM,
            "`behave --dry-run` of the examples: with the plugin vs plain behave on the same files",
            Figure(times["plugin"]),
            Figure(times["plain"]),
            limit=1.3,
            note=(
                f"Whole processes; each repetition is the mean of {size.dry_runs} runs per side. Baseline: the same "
                f".feature files, a stub steps module registering the same {steps_count} step patterns with no-op "
                "bodies, no environment.py. Bytecode caching is on for both sides (as in any installation), "
                "after an untimed warm-up run."
            ),
        ),
        Row(
            ITEM,
            "`behave --dry-run` of the examples: CPU time (user + system), with the plugin vs plain behave",
            Figure(cpu["plugin"][-bench.repeat:]),
            Figure(cpu["plain"][-bench.repeat:]),
            note="The same runs as the row above; CPU time is far less disturbed by other load on the machine than wall time.",
        ),
    ]


def explain(row: Row) -> str:
    """What limits the plugin here, from the row's own figures (for a miss)."""
    if row.value is None or row.baseline is None:
        return ""
    if row.expected is not None:
        return "litellm or mcp is imported at start-up: some module imports it at the top instead of on first use."
    extra = row.value.median - row.baseline.median
    return (
        f"The plugin's dry run takes {fmt_seconds(extra)} more (medians): importing behave-aitest "
        "(environment → hooks → config, runtime, engine, records, servers, llm, repeats; steps → checks). "
        "Most of that is executing those modules: creating their dataclasses and compiling regular "
        "expressions; litellm and mcp are not imported."
    )
