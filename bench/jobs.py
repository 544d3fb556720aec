"""Item 8, parallel conversations: ``behave -j N`` through behave-aitest's ParallelRunner
with a model that takes its time, as a real one does.

48 plain (non-session) scenarios of 2 turns in 4 feature files; each turn is a
``get_balance`` tool call and an answer, so 4 model calls a conversation, every one answered
after 1.0 s by the bench's fake model server (``--latency``, its own process). Run at
``-j 1`` (plain ``python -m behave``: the sequential runner), 4, 8 and 16 (the same command
with ``--runner behave_aitest.parallel:ParallelRunner -j N``). The bank server has
``scope = "run"``: one per worker, the setup a parallel suite would use (a conversation-scoped
stdio server costs about a second of CPU per start on a 2-core machine, which would measure
Python start-ups rather than the runner).

Per run: wall time (spawn to exit), CPU time (user + system from ``wait4``: the behave
process and every process it waited for, the workers and the MCP servers; not the fake
model), start-up (spawn until the fake model receives the run's first request) and peak
memory (the process tree's RSS summed every 50 ms, the largest sum; and the same for PSS,
which counts the pages the forked workers share with the parent once).
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .common import BEHAVE, PYTHON, ROOT, Bench, BenchError, Figure, Row, bank_pyproject, banking_features, fmt_bytes, fmt_seconds, write_project

ITEM = 8
TITLE = "Parallel conversations"
RUNNER = ["--runner", "behave_aitest.parallel:ParallelRunner"]
# Issue 12's targets: speed-up over -j 1 (wall time, medians), and start-up at most 1.5x -j 1's.
SPEEDUP = {8: 6.0, 16: 10.0}
STARTUP = {8: 1.5}
SAMPLE_S = 0.05
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Sample:
    """One measured run."""

    seconds: float
    cpu_seconds: float
    startup: float
    rss: int  # largest sum of RSS over the process tree
    pss: int  # largest sum of PSS (sampled every 10th time)
    processes: int  # most processes seen at once
    # CPU seconds (user + system) by kind of process, read from /proc while it ran (see _Tree):
    # "parent" (behave), "workers", "servers" (the bank MCP servers), "model" (the bench's fake model)
    cpu_by_kind: dict[str, float] = field(default_factory=dict)


@dataclass
class _Tree:
    """Samples the memory of a process and all its descendants until stopped."""

    root: int
    rss: int = 0
    pss: int = 0
    processes: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    cpu: dict[int, float] = field(default_factory=dict)  # pid -> last CPU seconds seen
    servers: set[int] = field(default_factory=set)  # pids seen running a bank server

    def run(self) -> None:
        tick = 0
        while not self.stop.wait(SAMPLE_S):
            pids = descendants(self.root)
            self.processes = max(self.processes, len(pids))
            for pid in pids:
                seconds = _cpu(pid)
                if seconds is not None:
                    self.cpu[pid] = max(self.cpu.get(pid, 0.0), seconds)
                if pid not in self.servers and pid != self.root and b"bank_server" in _cmdline(pid):
                    self.servers.add(pid)
            self.rss = max(self.rss, sum(_rss(p) for p in pids))
            if tick % 10 == 0:
                self.pss = max(self.pss, sum(_pss(p) for p in pids))
            tick += 1


    def by_kind(self) -> dict[str, float]:
        """CPU seconds of the behave process, its workers and the bank servers, as last seen
        (a process's last 50 ms may be missed; the ``wait4`` total is the exact sum)."""
        kinds = {"parent": 0.0, "workers": 0.0, "servers": 0.0}
        for pid, seconds in self.cpu.items():
            kind = "parent" if pid == self.root else "servers" if pid in self.servers else "workers"
            kinds[kind] += seconds
        return kinds


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (/proc/PID/stat), None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return None


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read()
    except OSError:
        return b""


def descendants(root: int) -> list[int]:
    """``root`` and every process below it (through /proc/PID/task/TID/children)."""
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as children:
                    todo.extend(int(c) for c in children.read().split())
        except OSError:  # gone meanwhile
            continue
    return found


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _pss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def measure(cmd: list[str], cwd: Path, env: dict[str, str], stamps: Path, expect: str, timeout: float = 1800, model: int | None = None) -> Sample:
    """Run ``cmd`` once; check its output holds ``expect``; read the first model request's time
    (``model``: the fake model's pid, whose CPU time during the run is noted too)."""
    stamps.write_text("", encoding="utf-8")
    model_before = _cpu(model) if model else None
    with tempfile.TemporaryFile() as out:
        spawned = time.time()
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        tree = _Tree(proc.pid)
        sampler = threading.Thread(target=tree.run, daemon=True)
        sampler.start()
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            killer.cancel()
            tree.stop.set()
            sampler.join()
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    tail = "\n".join(text.rstrip().splitlines()[-30:])
    if proc.returncode != 0 or expect not in text:
        raise BenchError(f"{' '.join(cmd[2:])} exited with {proc.returncode} without '{expect}':\n{tail}")
    arrivals = [float(line) for line in stamps.read_text(encoding="utf-8").split()]
    if not arrivals:
        raise BenchError(f"the fake model received no request from {' '.join(cmd[2:])}:\n{tail}")
    kinds = tree.by_kind()
    model_after = _cpu(model) if model else None
    if model_before is not None and model_after is not None:
        kinds["model"] = model_after - model_before
    return Sample(seconds, usage.ru_utime + usage.ru_stime, min(arrivals) - spawned, tree.rss, tree.pss, tree.processes, kinds)


def _start_model(bench: Bench, latency: float, stamps: Path) -> tuple[subprocess.Popen[str], str]:
    cmd = [PYTHON, "-m", "bench.llm_server", "--latency", str(latency), "--stamps", str(stamps)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=bench.env(), stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise BenchError("the slow fake model server did not start")
    return proc, url


def run(bench: Bench) -> list[Row]:
    size = bench.size
    conversations, turns, files, latency = size.jobs_conversations, size.jobs_turns, size.jobs_features, size.jobs_latency
    if conversations % files:
        raise BenchError(f"{conversations} conversations do not split into {files} feature files")
    folder = bench.folder("jobs")
    stamps = folder / "model-requests.txt"
    model, url = _start_model(bench, latency, stamps)
    try:
        project = write_project(
            folder / "project", bank_pyproject(url, scope="run"), banking_features(files, conversations // files, turns)
        )
        env = bench.env()
        expect = f"{conversations} scenarios passed, 0 failed"
        runs: dict[int, list[Sample]] = {n: [] for n in size.jobs_levels}

        def side(jobs: int):
            cmd = list(BEHAVE) if jobs == 1 else [*BEHAVE, *RUNNER, "-j", str(jobs)]

            def once() -> float:
                sample = measure(cmd, project, env, stamps, expect, model=model.pid)
                runs[jobs].append(sample)
                return sample.seconds

            return once

        if size.warmup:  # bytecode and page cache, on the cheapest side only (-j 1 takes minutes)
            measure([*BEHAVE, *RUNNER, "-j", str(max(size.jobs_levels))], project, env, stamps, expect)
        first_load = len(bench.loads)
        bench.alternate({f"-j {n}": side(n) for n in size.jobs_levels}, "item 8", warmup=False)
        loads = bench.loads[first_load:]
    finally:
        model.terminate()
        model.wait(timeout=10)
    global LAST
    LAST = Result(conversations, turns, files, latency, runs, loads)
    return LAST.rows()


@dataclass
class Result:
    conversations: int
    turns: int
    files: int
    latency: float
    runs: dict[int, list[Sample]]
    loads: list[float] = field(default_factory=list)  # 1-minute load averages taken while it ran

    def fig(self, jobs: int, what: str, unit: str = "s") -> Figure:
        return Figure([float(getattr(s, what)) for s in self.runs[jobs]], unit)

    def rows(self) -> list[Row]:
        calls = 2 * self.turns
        suite = (
            f'{self.conversations} conversations × {self.turns} turns ({self.files} files), every model call answered after '
            f'{self.latency:g} s, scope = "run" (one bank server per worker)'
        )
        ideal = self.conversations * calls * self.latency
        how = (
            f"Whole processes, spawn to exit; `-j 1` is plain `python -m behave` (the sequential runner), `-j N` the same "
            f"command with `--runner behave_aitest.parallel:ParallelRunner -j N`. Each conversation makes {calls} model "
            f"calls of {self.latency:g} s, so the model alone takes {fmt_seconds(ideal)} one after the other and "
            f"{fmt_seconds(ideal / 8)} at -j 8, {fmt_seconds(ideal / 16)} at -j 16. Every run is checked to pass all "
            f"{self.conversations} scenarios."
        )
        rows = []
        base = self.fig(1, "seconds")
        rows.append(Row(ITEM, f"{suite}: wall time at `-j 1` (sequential)", base, note=how))
        for n in self.levels[1:]:
            wall = self.fig(n, "seconds")
            speedup = base.median / wall.median
            target = SPEEDUP.get(n)
            rows.append(
                Row(
                    ITEM,
                    f"{suite}: wall time at `-j {n}` vs `-j 1` (speed-up {speedup:.2f}×)",
                    wall,
                    base,
                    limit=1 / target if target else None,
                    target=f"speed-up ≥ {target:g}× (ratio ≤ {1 / target:.3f}×)" if target else "",
                    note=how,
                )
            )
        start_note = (
            "From spawning `python -m behave` until the fake model receives the run's first request (the server writes "
            "each request's arrival time): Python and behave start, the plugin's config and litellm import, parsing the "
            "features; with -j the plan and the fork of the workers; then a worker's first conversation starts its bank "
            "server (MCP handshake, tool list) and sends its first model call."
        )
        for n in self.levels[1:]:
            limit = STARTUP.get(n)
            rows.append(
                Row(ITEM, f"{suite}: start-up at `-j {n}` vs `-j 1` (until the first model request)",
                    self.fig(n, "startup"), self.fig(1, "startup"), limit=limit, note=start_note)
            )
        cpu_note = (
            "User + system time from `wait4` of the behave process: it includes every process it waited for, so the "
            "workers and the bank servers they started (not the fake model, a process of the bench)."
        )
        mem_note = (
            f"The process tree (behave, its workers, their bank servers) sampled every {SAMPLE_S * 1000:.0f} ms through "
            "/proc: the largest sum of RSS over a sample. RSS counts the pages a forked worker still shares with the parent "
            "(litellm is imported once, before the fork) once per process; the PSS sum, which counts them once, is given in "
            "the text."
        )
        for n in self.levels[1:]:
            rows.append(Row(ITEM, f"{suite}: CPU time (user + system, all processes) at `-j {n}` vs `-j 1`",
                            self.fig(n, "cpu_seconds"), self.fig(1, "cpu_seconds"), note=cpu_note))
        for n in self.levels[1:]:
            pss_n, pss_1 = self.fig(n, "pss", "bytes"), self.fig(1, "pss", "bytes")
            rows.append(
                Row(ITEM, f"{suite}: peak memory, RSS summed over all processes, at `-j {n}` vs `-j 1` "
                    f"(PSS sum: {fmt_bytes(pss_n.median)} vs {fmt_bytes(pss_1.median)})",
                    self.fig(n, "rss", "bytes"), self.fig(1, "rss", "bytes"), note=mem_note)
            )
        return rows

    @property
    def levels(self) -> list[int]:
        return sorted(self.runs)

    def summary(self) -> list[str]:
        """The prose and the small table of docs/performance.md's "Parallel conversations" section."""
        base = self.fig(1, "seconds").median
        lines = [
            "| jobs | wall (median) | speed-up | CPU, all processes | start-up | peak RSS sum | peak PSS sum |",
            "|---|---|---|---|---|---|---|",
        ]
        for n in self.levels:
            wall = self.fig(n, "seconds").median
            lines.append(
                f"| `-j {n}` | {fmt_seconds(wall)} | {base / wall:.2f}× | {fmt_seconds(self.fig(n, 'cpu_seconds').median)} | "
                f"{fmt_seconds(self.fig(n, 'startup').median)} | {fmt_bytes(self.fig(n, 'rss', 'bytes').median)} | "
                f"{fmt_bytes(self.fig(n, 'pss', 'bytes').median)} |"
            )
        return lines


    def kinds(self, jobs: int) -> dict[str, float]:
        """Median CPU seconds per kind of process at ``-j jobs`` (empty for results restored from JSON)."""
        samples = [s.cpu_by_kind for s in self.runs[jobs] if s.cpu_by_kind]
        if not samples:
            return {}
        return {k: statistics.median(s.get(k, 0.0) for s in samples) for k in samples[0]}

    def cpu_table(self) -> list[str]:
        """CPU by kind of process, and the wall time 2 idle cores could at best give (see floor)."""
        if not all(self.kinds(n) for n in self.levels):
            return []
        base = self.fig(1, "seconds").median
        lines = [
            "| jobs | behave (parent) | workers | bank servers | fake model | sum | ÷ 2 cores | best wall on 2 idle cores (speed-up) | wall measured |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for n in self.levels:
            k = self.kinds(n)
            total = sum(k.values())
            servers = max(n, 1)
            best = self.floor(n)
            lines.append(
                f"| `-j {n}` | {fmt_seconds(k['parent'])} | {fmt_seconds(k['workers'])} | {fmt_seconds(k['servers'])} "
                f"({fmt_seconds(k['servers'] / servers)} each) | {fmt_seconds(k.get('model', 0.0))} | {fmt_seconds(total)} | "
                f"{fmt_seconds(total / 2)} | {fmt_seconds(best)} ({base / best:.1f}×) | {fmt_seconds(self.fig(n, 'seconds').median)} |"
            )
        return lines

    def floor(self, jobs: int) -> float:
        """The least wall time ``-j jobs`` could take on 2 idle cores, from this run's CPU medians.

        The parent's CPU comes first and alone (parse, import litellm and the MCP SDK, fork);
        then the bank servers start two at a time (one per core), each ready after its CPU
        time s, so worker k can start its first conversation at ceil(k/2) * s; the conversations
        (each 2 x turns model calls of latency seconds) then keep every worker busy until the
        model time left is shared out: wall >= parent + max(rounds x conversation, (all model
        time + sum of the workers' waits) / jobs), and never less than all CPU / 2 cores.
        """
        k = self.kinds(jobs)
        conversation = 2 * self.turns * self.latency
        rounds = -(-self.conversations // jobs)
        server = k["servers"] / jobs
        waits = sum(-(-i // 2) * server for i in range(1, jobs + 1))
        after = max(rounds * conversation, (self.conversations * conversation + waits) / jobs)
        return max(k["parent"] + after, sum(k.values()) / 2)


LAST: Result | None = None
_SUITE = re.compile(r"^(\d+) conversations × (\d+) turns \((\d+) files\), every model call answered after ([\d.]+) s")
_PSS = re.compile(r"PSS sum: ([\d.]+) (GB|MB|kB) vs ([\d.]+) (GB|MB|kB)")


def from_rows(rows: list[Row]) -> Result | None:
    """A run rebuilt from its rows (``--from-json``): every repetition's figures; PSS only as the
    medians its rows quote."""
    head = _SUITE.match(rows[0].what) if rows else None
    if head is None:
        return None
    scale = {"GB": 1e9, "MB": 1e6, "kB": 1e3}
    values: dict[int, dict[str, list[float]]] = {}
    for row in rows:
        if row.value is None or "`-j " not in row.what:
            continue
        n = int(row.what.split("`-j ")[1].split("`")[0])
        key = next((k for t, k in (("wall time", "seconds"), ("start-up", "startup"), ("CPU time", "cpu_seconds"), ("peak memory", "rss")) if t in row.what), None)
        if key is None:
            continue
        values.setdefault(n, {})[key] = list(row.value.samples)
        if row.baseline is not None:
            values.setdefault(1, {})[key] = list(row.baseline.samples)
        pss = _PSS.search(row.what)
        if pss:
            values[n]["pss"] = [float(pss.group(1)) * scale[pss.group(2)]]
            values[1]["pss"] = [float(pss.group(3)) * scale[pss.group(4)]]
    runs = {}
    for n, v in values.items():
        count = len(v.get("seconds", []))

        def pick(key: str, i: int) -> float:
            got = v.get(key) or [0.0]
            return got[i] if len(got) == count else got[0]

        runs[n] = [Sample(pick("seconds", i), pick("cpu_seconds", i), pick("startup", i), int(pick("rss", i)), int(pick("pss", i)), 0) for i in range(count)]
    return Result(int(head.group(1)), int(head.group(2)), int(head.group(3)), float(head.group(4)), runs)


def restore(rows: list[Row], loads: list[float]) -> None:
    """Results saved with --save-json, written again with --from-json: what summary and explain read
    (``loads``: the saved run's load averages, item 8's own when it ran alone)."""
    global LAST
    LAST = from_rows([r for r in rows if r.item == ITEM])
    if LAST is not None:
        LAST.loads = list(loads)


def summary(rows: list[Row]) -> list[str]:
    """A paragraph and a table for docs/performance.md."""
    r = LAST or from_rows(rows)
    if r is None or 1 not in r.runs:
        return []
    ideal = r.conversations * 2 * r.turns * r.latency
    base_cpu = r.fig(1, "cpu_seconds").median
    top = r.levels[-1]
    extra_cpu = (r.fig(top, "cpu_seconds").median - base_cpu) / max(top - 1, 1)
    return [
        "## Parallel conversations (item 8)",
        "",
        f"A suite whose time is the model's: {r.conversations} conversations of {r.turns} turns, each turn a tool call "
        f"and an answer, every model call taking {r.latency:g} s ({fmt_seconds(ideal)} of model time in all). behave runs "
        "scenarios one after another, so `-j 1` costs the sum of every call; the ParallelRunner keeps up to N "
        "conversations in flight, one per worker, while the turns of each stay in order. Medians:",
        "",
        *r.summary(),
        "",
        f"On the minima (the least disturbed of the {len(r.runs[1])} repetitions) the speed-ups are "
        + ", ".join(f"{r.fig(1, 'seconds').min / r.fig(n, 'seconds').min:.2f}× at `-j {n}`" for n in r.levels[1:])
        + f", with start-ups of {fmt_seconds(r.fig(1, 'startup').min)} at `-j 1` and "
        + ", ".join(f"{fmt_seconds(r.fig(n, 'startup').min)} at `-j {n}`" for n in r.levels[1:])
        + ". The machine (2 cores) was shared with other developers' test runs while this ran"
        + (f" (1-minute load average {min(r.loads):.1f} to {max(r.loads):.1f}, median {statistics.median(r.loads):.1f})" if r.loads else "")
        + ": the medians carry that noise.",
        "",
        f"Read the wall time as start-up + rounds of conversations: at `-j N` the model alone needs "
        f"⌈{r.conversations}/N⌉ rounds of {2 * r.turns * r.latency:g} s. The start-up (until the first model call) is "
        "mostly the parent importing litellm and the MCP SDK (once: the workers are forked after it, so none pays for "
        "it again), then each worker starting its own bank server (scope \"run\" is per worker) on its first "
        "conversation, one per core at a time on 2 cores. Each extra worker costs about "
        f"{fmt_seconds(extra_cpu)} of CPU here (`-j {top}` against `-j 1`, divided by {top - 1}), mostly its bank "
        "server's start (a new Python process importing the MCP SDK) and copy-on-write page faults. With a fixed "
        "start-up of S seconds the speed-up cannot pass (-j 1 wall) ÷ (S + model time), and a loaded machine stretches "
        "S most: compare the minima (the least disturbed runs) in the table above. Memory grows by about "
        "one worker and one bank server per job; the RSS sum counts the pages the workers share with the parent once "
        "per worker, the PSS sum counts them once.",
        "",
        *_cpu_section(r),
    ]


def _cpu_section(r: Result) -> list[str]:
    """Where the CPU goes, per kind of process, and the best wall time 2 idle cores allow."""
    table = r.cpu_table()
    if not table:
        return []
    top = r.levels[-1]
    k1, kt = r.kinds(1), r.kinds(top)
    return [
        "### Where the CPU goes (item 8)",
        "",
        "CPU seconds (user + system, medians) of each kind of process, read from /proc every "
        f"{SAMPLE_S * 1000:.0f} ms while the run went on (so a process's last few milliseconds can be missed; the "
        "`wait4` totals above are exact): the behave process (at `-j 1` it runs everything; at `-j N` it parses, "
        "imports litellm and the MCP SDK once, forks and replays the outcomes), the forked workers (the conversations: "
        "litellm's and the MCP client's per-call work), the bank MCP servers (at `-j N` one per worker: a new Python "
        "process importing the MCP SDK), and the bench's own fake model (its own process, never counted in the "
        "`wait4` total). CPU time is far less disturbed by other load than wall time.",
        "",
        *table,
        "",
        f"The per-worker cost is the bank server's start: {fmt_seconds(kt['servers'] / top)} of CPU each at `-j {top}` "
        f"(against {fmt_seconds(kt['workers'] / top)} for a worker's own share of the conversations), the SDK importing "
        "its protocol types; the fake model costs next to nothing. The \"best wall\" column is the least a run could "
        "take on 2 idle cores with these CPU times: the parent's CPU first and alone, then the servers starting one per "
        "core (worker k starts its first conversation after ⌈k/2⌉ server starts), then the model time shared out over "
        "the workers — and never less than the total CPU ÷ 2. Where the speed-up in that column is below a target, the "
        f"target cannot be met on this machine with these CPU costs, however the work is scheduled (at `-j 1` the parent alone takes {fmt_seconds(k1['parent'])}).",
        "",
    ]


def explain(row: Row) -> str:
    """For a missed speed-up or start-up: what the wall time is made of, from this run's medians."""
    r = LAST
    if r is None or "`-j " not in row.what:
        return row.note
    n = int(row.what.split("`-j ")[1].split("`")[0])
    if n not in r.runs:
        return row.note
    wall, start = r.fig(n, "seconds").median, r.fig(n, "startup").median
    rounds = -(-r.conversations // n)
    model = rounds * 2 * r.turns * r.latency
    base_wall, base_start = r.fig(1, "seconds").median, r.fig(1, "startup").median
    if "start-up" in row.what:
        return (
            f"`-j {n}` reached its first model call after {fmt_seconds(start)}, `-j 1` after {fmt_seconds(base_start)}. "
            f"Both import litellm and the MCP SDK once; then `-j 1` starts one bank server, while the {n} forked "
            f"workers start {n} bank servers, one per core at a time, on 2 cores shared with the other workers and "
            "with other work on the machine."
        )
    return (
        f"At `-j {n}` the run took {fmt_seconds(wall)}: {fmt_seconds(start)} until the first model call, then "
        f"{fmt_seconds(wall - start)} for {rounds} rounds of conversations whose model calls alone take "
        f"{fmt_seconds(model)}. `-j 1` took {fmt_seconds(base_wall)} ({fmt_seconds(base_start)} of it start-up). The "
        "start-up is paid once whatever N is, so it caps the speed-up at about (-j 1 wall) ÷ (start-up + model time); "
        f"here that bound is {base_wall / (start + model):.1f}×. The time beyond the model calls after the start-up is "
        "the workers' own start (a bank server each, one per core at a time, on 2 cores shared with other work), and "
        "the load on the machine stretches every part."
        + (
            f" From this run's CPU times, the best 2 idle cores could do at `-j {n}` is about {fmt_seconds(r.floor(n))} "
            f"({base_wall / r.floor(n):.1f}×; see \"Where the CPU goes\")."
            if r.kinds(n) else ""
        )
    )
