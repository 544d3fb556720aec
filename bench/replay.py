"""Item 6, replay and memory (cassettes: behave_aitest/cassettes.py).

* The example suite (features/*.feature against the built-in scripted model) run in replay
  mode, against the run that records it (``-D aitest.cassette=record``, a fresh cassette
  folder each time). Whole processes.
* Peak RSS of the behave process replaying a suite of 1,000 scenarios x 4 turns, against
  the same for 100 scenarios (the first 100 of the same suite, so they share cassettes,
  recorded once beforehand against the fake model). The bank server has ``scope = "run"``;
  the replay runs point litellm at a closed port, so a call that was not replayed fails the
  run instead of being measured.
"""

from __future__ import annotations

import re
import shutil

from .common import (
    BEHAVE, PYTHON, ROOT, Bench, BenchError, Figure, Row, bank_pyproject, banking_features, check, example_config, run_timed,
    split, write_project,
)

ITEM = 6
TITLE = "Replay and memory"
DEAD_API_BASE = "http://127.0.0.1:9/v1"  # the discard port: nothing listens


def _passed(done, scenarios: int, what: str) -> None:
    """Every scenario passed: at least ``scenarios`` (the "Scenario:" lines of the files; a
    feature compared across models runs its scenarios once per model), none failed or skipped."""
    summary = re.search(r"(\d+) scenarios passed, 0 failed, 0 skipped", done.stdout + done.stderr)
    if summary is None or int(summary.group(1)) < scenarios:
        raise BenchError(f"{what} did not pass {scenarios} scenarios:\n{done.tail()}")


def run(bench: Bench) -> list[Row]:
    if not (ROOT / "behave_aitest" / "cassettes.py").exists():
        return [Row(ITEM, "Replay and memory", missing="not measured yet: needs behave_aitest/cassettes.py")]
    return example_suite(bench) + memory(bench)


def example_suite(bench: Bench) -> list[Row]:
    features = {p.name: p.read_text(encoding="utf-8") for p in sorted((ROOT / "features").glob("*.feature"))}
    if bench.size.name == "tiny":  # proves the code runs: one example feature is enough
        features = {name: text for name, text in features.items() if name == "weather_chat.feature"} or features
    project = write_project(bench.folder("replay-examples"), example_config(), features)
    shutil.copy(ROOT / "features" / "scripted_model.toml", project / "features")
    scenarios = sum(text.count("Scenario:") for text in features.values())
    turns = sum(text.count("When the user says") for text in features.values())
    env = bench.env()
    recorded: list = []  # cassette folders, one per recording run; replay reads the newest

    def record() -> float:
        folder = project / f"cassettes-{len(recorded) + 1}"
        done = check(run_timed(BEHAVE + ["-D", "aitest.cassette=record", "-D", f"aitest.cassette_dir={folder}"], project, env), "recording the examples")
        _passed(done, scenarios, "recording the examples")
        recorded.append(folder)
        return done.seconds

    def replay() -> float:
        done = check(run_timed(BEHAVE + ["-D", "aitest.cassette=replay", "-D", f"aitest.cassette_dir={recorded[-1]}"], project, env), "replaying the examples")
        _passed(done, scenarios, "replaying the examples")
        if "cassette mode 'replay'" not in done.stdout + done.stderr:
            raise BenchError(f"the replay run did not say it was replaying:\n{done.tail()}")
        return done.seconds

    # "record" first: the first repetition records what every replay then reads.
    times = bench.alternate({"record": record, "replay": replay}, "item 6, examples", warmup=False)
    return [
        Row(
            ITEM,
            f"Example suite ({len(features)} features, {scenarios} scenarios, {turns} turns, scripted model): replay vs the recording run",
            Figure(times["replay"]),
            Figure(times["record"]),
            note=(
                "Whole `python -m behave` processes. Recording calls the model (here the built-in scripted model: "
                "litellm over HTTP to a local server) and writes one cassette per conversation; replay answers "
                "every model call from the cassettes and does not even import litellm (about 2 s of start-up). "
                "The MCP servers run for real in both (cassette_tools off), so their start-ups are most of what remains."
            ),
        )
    ]


def memory(bench: Bench) -> list[Row]:
    size = bench.size
    url = bench.llm()
    per = 10 if size.replay_small % 10 == 0 else 2
    suites = {"small": size.replay_small, "large": size.replay_large}
    projects = {}
    for name, count in suites.items():
        features, per_feature = split(count, per)
        projects[name] = write_project(
            bench.folder(f"replay-{name}"), bank_pyproject(url, scope="run"), banking_features(features, per_feature, 4)
        )
    env = bench.env()
    bench.log(f"  item 6: recording {suites['large']} scenarios × 4 turns once")
    recording = check(run_timed(BEHAVE + ["-D", "aitest.cassette=record"], projects["large"], env, timeout=3600), "recording the large suite")
    _passed(recording, suites["large"], "recording the large suite")
    # The small suite is the first files of the large one: same cassettes (features/cassettes/).
    (projects["small"] / "features" / "cassettes").symlink_to(projects["large"] / "features" / "cassettes")
    rss: dict[str, list[float]] = {name: [] for name in suites}

    def replay(name: str):
        def one() -> float:
            out = bench.workdir / f"rss-{name}.txt"
            cmd = [PYTHON, str(ROOT / "bench" / "rss.py"), str(out), *BEHAVE[3:],
                   "-D", "aitest.cassette=replay", "-D", f"aitest.api_base={DEAD_API_BASE}"]
            done = check(run_timed(cmd, projects[name], env, timeout=3600), f"replaying the {name} suite")
            _passed(done, suites[name], f"replaying the {name} suite")
            rss[name].append(float(out.read_text()))
            return done.seconds

        return one

    times = bench.alternate({"large": replay("large"), "small": replay("small")}, "item 6, memory", warmup=False)
    small, large = suites["small"], suites["large"]
    return [
        Row(
            ITEM,
            f"Peak RSS of the behave process replaying {large:,} vs {small:,} scenarios × 4 turns",
            Figure(rss["large"], "bytes"),
            Figure(rss["small"], "bytes"),
            limit=1.5,
            note=(
                "`ru_maxrss` of the behave process itself (not its MCP server), replay mode, bank server scope \"run\"; "
                f"the cassettes were recorded once against the fake model ({recording.seconds:.0f} s for {large:,} scenarios). "
                "Memory that grows with the run: behave's model of every feature, and behave-aitest's records "
                "(every conversation's messages and turns, kept for the reports)."
            ),
        ),
        Row(
            ITEM,
            f"Replay run time, {large:,} vs {small:,} scenarios × 4 turns (linear would be {large / small:g}×)",
            Figure(times["large"]),
            Figure(times["small"]),
            note="Whole processes; a fixed start-up (imports, one bank server) makes the small run relatively dearer.",
        ),
    ]


def explain(row: Row) -> str:
    if not row.what.startswith("Peak RSS") or row.value is None or row.baseline is None:
        return ""
    grown = row.value.median - row.baseline.median
    return (
        f"The large run's peak is {grown / 1e6:.0f} MB higher. What grows with the number of scenarios is behave's "
        "model of every feature, scenario and step, and behave-aitest's records of every conversation (messages, "
        "turns, tool calls) that stay in memory until the end of the run for the report formatters; the fixed part "
        "is mostly litellm (imported to check the model name before the run) and the mcp SDK."
    )
