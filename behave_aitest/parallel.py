"""``behave -j N``: up to N conversations at the same time, seen as one ordinary behave run.

Use it with ``behave --runner behave_aitest.parallel:ParallelRunner -j 8`` or, once and for
all, ``runner = "behave_aitest.parallel:ParallelRunner"`` under ``[tool.behave]``. Without
``-j`` (or with ``-j 1``) it *is* behave's own runner: nothing changes.

How a parallel run goes (docs/parallel.md):

1. The parent parses the features with behave's own selection, expands model flows, checks
   the feature files and the config, and plans *units* (:mod:`behave_aitest.units`).
2. It imports what every worker needs (litellm, the MCP SDK) once, then forks N workers
   before any thread or event loop exists, so no worker pays for the imports again.
3. Workers (:mod:`behave_aitest.worker`) take units longest first and send back outcomes
   (:mod:`behave_aitest.outcomes`); the parent prints one line per finished unit.
4. The parent puts every outcome on its own behave model and replays the run through
   behave's formatters and reporters in file order: one merged HTML/JSON/Markdown report,
   one JUnit file per feature, behave's summary, and the exit code a sequential run gives.
"""

from __future__ import annotations

import collections
import multiprocessing
import os
import signal
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from behave.exception import ConfigError as BehaveConfigError
from behave.formatter._registry import make_formatters
from behave.model import NoMatch
from behave.model_type import Status
from behave.runner import Context, Runner, the_step_registry
from behave.runner_util import parse_features

from . import outcomes, units
from .config import ConfigError, load_config
from .repeats import RepeatStats, _settle

# How long workers get to stop their servers after Ctrl-C / SIGTERM before they are killed.
STOP_GRACE_S = 10.0
_CONSOLE_FORMATTERS = ("pretty", "plain", "progress", "progress2", "progress3", "rerun", "tags", "steps", "sphinx.steps")
_RUN_FAILED_STATUSES = ("failed", "error", "hook_error", "cleanup_error", "undefined", "pending")


@dataclass
class _Worker:
    index: int
    process: Any
    conn: Any
    log: Path
    ready: bool = False
    unit: units.Unit | None = None
    done: bool = False  # sent its last message
    started_at: float = 0.0


@dataclass
class _Run:
    """What the parent knows while the workers run."""

    plan: list[units.Unit]
    results: dict[int, outcomes.UnitOutcome] = field(default_factory=dict)
    hook_errors: list[str] = field(default_factory=list)
    aborted: bool = False
    setup_failed: str | None = None


class ParallelRunner(Runner):
    """behave's runner, plus ``-j N`` and ``-D aitest.shard=K/N`` (see the module docstring)."""

    def __init__(self, config: Any, **kwargs: Any) -> None:
        super().__init__(config)
        self._undefined: list[Any] = []

    @property
    def undefined_steps(self) -> list[Any]:
        return self._undefined if self._parallel else self._undefined_steps

    @property
    def _parallel(self) -> bool:
        return bool(getattr(self, "_in_parallel", False))

    def run(self) -> bool:
        jobs = getattr(self.config, "jobs", 1)
        if jobs is None or jobs < 1:
            raise BehaveConfigError(f"-j {jobs}: the number of jobs must be a whole number of at least 1 (e.g. -j 8).")
        try:
            config = load_config(self.config.userdata)
        except ConfigError as exc:
            raise BehaveConfigError(str(exc)) from None
        if (jobs == 1 and config.shard is None) or self.config.dry_run:
            return super().run()  # exactly behave's own run
        self._in_parallel = True
        with self.path_manager:
            self.setup_paths()
            return self._run_parallel(config, jobs)

    # ----------------------------------------------------------------- the parent

    def _run_parallel(self, config: Any, jobs: int) -> bool:
        from . import hooks

        self.context = Context(self)
        self.load_hooks()
        self.load_step_definitions()
        if self.step_registry is None:
            self.step_registry = the_step_registry  # what behave's own run_model uses
        locations = [f for f in self.feature_locations() if not self.config.exclude(f)]
        self.features.extend(parse_features(locations, language=self.config.lang))
        try:
            hooks.expand_model_flows(self.features, config.models)
            hooks.check_features(self.features, SimpleNamespace(config=config))
            plan = units.plan(self.features, self.config, config.repeat)
        except (ConfigError, units.PlanError) as exc:
            raise BehaveConfigError(str(exc)) from None
        durations = self._durations(config)
        if config.shard is not None:
            plan = units.shard(plan, *config.shard, durations if config.durations else None)
        self.formatters = self._formatters()
        cassettes = None
        if config.cassette != "off":
            from .cassettes import CassetteLibrary

            cassettes = CassetteLibrary(config)
        for line in hooks.banners(config, cassettes):
            print(line)
        shard = f", shard {config.shard[0]}/{config.shard[1]}" if config.shard else ""
        workers = min(jobs, max(len(plan), 1))
        print(f"behave-aitest: {len(plan)} conversation{'s' * (len(plan) != 1)} on {workers} worker{'s' * (workers != 1)}{shard}")
        sys.stdout.flush()
        run = _Run(plan)
        if plan:
            self._preload(config)
            self._execute(run, units.longest_first(plan, durations), workers, config)
        return self._finish(run, config)

    def _durations(self, config: Any) -> dict[str, float]:
        """Unit durations of an earlier run: ``-D aitest.durations=PATH``, else this run's own JSON report."""
        if config.durations:
            return units.load_durations(Path(config.durations))
        for path in self._report_paths():
            found = units.load_durations(path)
            if found:
                return found
        return {}

    def _report_paths(self) -> list[Path]:
        paths = []
        for name, out in zip(self.config.format or [], self.config.outputs or []):
            target = getattr(out, "name", None)
            if target and target != "-" and "aitest" in str(name).lower():
                paths.append(Path(str(target)).with_suffix(".json"))
        return paths

    def _formatters(self) -> list[Any]:
        """behave's formatters for the replay; console formatters give way to the per-unit lines."""
        kept, dropped = [], []
        for formatter in make_formatters(self.config, self.config.outputs):
            to_console = getattr(formatter.stream_opener, "name", None) in (None, "-")
            ours = type(formatter).__module__.startswith("behave_aitest.")
            if to_console and not ours and getattr(formatter, "name", "") in _CONSOLE_FORMATTERS:
                dropped.append(formatter.name)
                continue
            kept.append(formatter)
        if dropped:
            print(
                f"behave-aitest -j: the console formatter {', '.join(sorted(set(dropped)))} is replaced by one line per "
                "conversation; give it an output file (-f NAME -o FILE) to keep its output."
            )
        return kept

    @staticmethod
    def _preload(config: Any) -> None:
        """Import what every worker needs once, in the parent, before forking (litellm: 3-5 s of CPU;
        the MCP client SDK, which servers.connect imports on a worker's first server start: 1 s;
        what litellm imports on its first call: 0.2 s)."""
        import jsonschema.validators  # noqa: F401 - servers check tool schemas with it
        import mcp.client.stdio  # noqa: F401

        from . import engine, runtime  # noqa: F401 - imported for the workers' sake

        if config.cassette != "replay":
            from .llm import litellm_module

            litellm_module()
            try:  # imported by litellm's first acompletion (its module path moves between versions)
                import litellm.proxy.openai_files_endpoints.common_utils  # noqa: F401
            except ImportError:
                pass

    def _start(self, index: int, log_dir: Path, method: str) -> _Worker:
        parent_end, child_end = multiprocessing.Pipe()
        log = log_dir / f"worker-{index}.log"
        temp = log_dir / f"worker-{index}.tmp"
        context = multiprocessing.get_context(method)
        if method == "fork":
            from .worker import serve

            process = context.Process(target=serve, args=(self, self.features, index, child_end, str(log), str(temp)), daemon=False)
        else:  # spawn: the worker parses and plans again from the same command line
            process = context.Process(target=_spawned, args=(list(sys.argv[1:]), os.getcwd(), index, child_end, str(log), str(temp)), daemon=False)
        self.config.aitest_worker = True
        try:
            process.start()
        finally:
            self.config.aitest_worker = False
        child_end.close()
        return _Worker(index, process, parent_end, log)

    def _execute(self, run: _Run, order: list[units.Unit], jobs: int, config: Any) -> None:
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        method = os.environ.get("BEHAVE_AITEST_START_METHOD", method)
        log_dir = Path(tempfile.mkdtemp(prefix="behave-aitest-j-"))
        queue = collections.deque(order)
        workers: list[_Worker] = []
        previous = signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
        restarts = jobs
        try:
            workers = [self._start(i, log_dir, method) for i in range(1, jobs + 1)]
            while any(not w.done for w in workers):
                try:
                    self._step(run, workers, queue)
                except KeyboardInterrupt:
                    run.aborted = True
                    queue.clear()
                    self._stop(workers, run)
                    break
                if queue and restarts and not any(not w.done for w in workers):
                    restarts -= 1  # every worker died: start one more for the rest
                    workers.append(self._start(len(workers) + 1, log_dir, method))
            if queue and not run.setup_failed and not run.aborted:
                run.setup_failed = "every worker died before the run was done"
        finally:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
            for worker in workers:
                _kill(worker)
            shutil.rmtree(log_dir, ignore_errors=True)

    def _step(self, run: _Run, workers: list[_Worker], queue: collections.deque[units.Unit]) -> None:
        """Wait for the next message or death of a worker and act on it."""
        live = [w for w in workers if not w.done]
        ready = wait([w.conn for w in live] + [w.process.sentinel for w in live])
        for worker in live:
            if worker.conn in ready:
                try:
                    message = worker.conn.recv()
                except (EOFError, OSError):
                    self._died(run, worker)
                    continue
                self._receive(run, worker, message)
            elif worker.process.sentinel in ready and not worker.conn.poll():
                self._died(run, worker)
        for worker in workers:
            if worker.ready and worker.unit is None and not worker.done:
                if queue and not run.aborted and not run.setup_failed:
                    worker.unit = queue.popleft()
                    worker.started_at = time.time()
                    worker.conn.send(worker.unit)
                else:
                    worker.conn.send(None)
                    worker.ready = False  # waits for its "done"

    def _receive(self, run: _Run, worker: _Worker, message: Any) -> None:
        if isinstance(message, tuple) and message and message[0] == "ready":
            _, ok, errors = message
            _merge_errors(run.hook_errors, errors)
            if ok:
                worker.ready = True
            elif not run.setup_failed:
                run.setup_failed = errors[-1] if errors else f"before_all failed in worker {worker.index}"
                print(f"behave-aitest -j: {run.setup_failed}")
            return
        if isinstance(message, tuple) and message and message[0] == "done":
            _merge_errors(run.hook_errors, message[1])
            worker.done = True
            return
        outcome: outcomes.UnitOutcome = message
        worker.unit = None
        run.results[outcome.unit] = outcome
        _merge_errors(run.hook_errors, outcome.hook_errors)
        self._progress(run, outcome)
        if outcome.aborted:
            run.aborted = True

    def _died(self, run: _Run, worker: _Worker) -> None:
        """A worker that ended without saying goodbye: its unit becomes an error that says so."""
        worker.process.join(timeout=5)
        worker.done = True
        try:
            os.killpg(worker.process.pid, signal.SIGKILL)  # the servers it left behind
        except (ProcessLookupError, PermissionError):
            pass
        unit = worker.unit
        worker.unit = None
        if unit is None:
            return
        code = worker.process.exitcode
        how = f"was killed by signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exited with code {code}"
        tail = _tail(worker.log)
        message = (
            f"behave-aitest -j: worker {worker.index} {how} while running this conversation; "
            f"the other conversations went on. Its last output:\n{tail or '(none)'}"
        )
        outcome = outcomes.UnitOutcome(unit.index, worker.index, time.time() - worker.started_at)
        outcome.scenarios = [
            outcomes.ScenarioOutcome(index=i, status="error", hook_failed=True, error_message=message) for i in unit.scenarios
        ]
        outcome.feature_hook_failed = False
        run.results[unit.index] = outcome
        self._progress(run, outcome)

    def _stop(self, workers: list[_Worker], run: _Run) -> None:
        """Ctrl-C or SIGTERM: every worker stops like after Ctrl-C, stops its servers and reports.

        Workers get ``STOP_GRACE_S``; a second Ctrl-C or SIGTERM (GitHub Actions sends SIGINT,
        then SIGTERM 7.5 s later) ends the wait at once. Then what is left is killed.
        """
        print("\nbehave-aitest -j: stopping every worker (their servers are stopped too)...", flush=True)
        hurry: list[int] = []
        previous = {sig: signal.signal(sig, lambda signum, frame: hurry.append(signum)) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for worker in workers:
                if not worker.done and worker.process.is_alive():
                    os.kill(worker.process.pid, signal.SIGTERM)
            deadline = time.time() + STOP_GRACE_S
            while any(not w.done for w in workers) and time.time() < deadline and not hurry:
                live = [w for w in workers if not w.done]
                ready = wait([w.conn for w in live] + [w.process.sentinel for w in live], timeout=0.2)
                for worker in live:
                    if worker.conn in ready:
                        try:
                            message = worker.conn.recv()
                        except (EOFError, OSError):
                            worker.done = True
                            continue
                        if isinstance(message, outcomes.UnitOutcome):
                            worker.unit = None
                            run.results[message.unit] = message
                            self._progress(run, message)
                        elif isinstance(message, tuple) and message[0] == "done":
                            worker.done = True
                        elif isinstance(message, tuple) and message[0] == "ready":
                            worker.conn.send(None)
                    elif worker.process.sentinel in ready:
                        worker.done = True
            if hurry:
                print("behave-aitest -j: stopping now (second signal).", flush=True)
        finally:
            for worker in workers:
                _kill(worker)
            for sig, handler in previous.items():
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)

    def _progress(self, run: _Run, outcome: outcomes.UnitOutcome) -> None:
        unit = _unit(run, outcome.unit)
        done = len(run.results)
        width = len(str(len(run.plan)))
        repeat = f" (run {unit.run}/{unit.runs})" if unit.runs > 1 else ""
        status = outcome.status
        print(f"[{done:>{width}}/{len(run.plan)}] {status.upper():<7} {unit.label}{repeat}  {outcome.duration:.1f}s  {unit.location}", flush=True)
        if status in _RUN_FAILED_STATUSES:
            for line in _first_failure(outcome)[:8]:
                print(f"    {line}", flush=True)

    # ----------------------------------------------------------------- the replay

    def _finish(self, run: _Run, config: Any) -> bool:
        from . import report as _report  # noqa: F401 - the formatters need it anyway

        conversations = outcomes.renumber(list(run.results.values()))
        view = SimpleNamespace(config=config, conversations=conversations, models_below_gate=[])
        self.config.aitest_runtime = view
        self.config.aitest_hook_errors = list(run.hook_errors)
        if run.setup_failed:
            self.config.aitest_hook_errors.append(f"HOOK-ERROR in before_all: {run.setup_failed}")
        ran: dict[int, dict[int, list[outcomes.UnitOutcome]]] = {}
        for unit in run.plan:
            result = run.results.get(unit.index)
            if result is not None:
                ran.setdefault(unit.feature, {}).setdefault(unit.index, []).append(result)
        in_plan = {u.feature for u in run.plan}
        failed_count = 0
        for fi, feature in enumerate(self.features):
            if config.shard is not None and fi not in in_plan:
                continue  # another shard's feature
            planned = {i for u in run.plan if u.feature == fi for i in u.scenarios}
            results = [r for rs in ran.get(fi, {}).values() for r in rs]
            failed = self._replay_feature(feature, results, run, planned, sharded=config.shard is not None)
            failed_count += failed
            for reporter in self.config.reporters:
                reporter.feature(feature)
        from . import repeats

        below = repeats.model_gate(self.features, config.min_pass_rate)
        view.models_below_gate = below
        gate_failed = bool(below and config.min_pass_rate < 1)
        if gate_failed:
            message = "HOOK-ERROR in after_all: ModelGateFailed: " + "; ".join(below)
            self.config.aitest_hook_errors.append(message)
            print(message)
        if run.aborted:
            print("\nABORTED: By user.")
        for formatter in self.formatters:
            formatter.close()
        for reporter in self.config.reporters:
            reporter.end()
        after_all_failed = any("after_all" in e for e in run.hook_errors)
        return bool(failed_count or run.aborted or run.setup_failed or gate_failed or after_all_failed or self._undefined)

    def _replay_feature(self, feature: Any, results: list[outcomes.UnitOutcome], run: _Run, planned: set[int], *, sharded: bool) -> bool:
        """Put a feature's outcomes on the parent's objects and show them to the formatters, in order."""
        scenarios = list(feature.walk_scenarios())
        by_scenario: dict[int, list[tuple[units.Unit, outcomes.ScenarioOutcome]]] = {}
        for result in sorted(results, key=lambda r: r.unit):
            unit = _unit(run, result.unit)
            for outcome in result.scenarios:
                by_scenario.setdefault(outcome.index, []).append((unit, outcome))
            if result.session is not None:
                feature.aitest_conversation = result.session
            if result.feature_hook_failed:
                feature.hook_failed = True
                feature.error_message = result.feature_error_message
            for si, pi in result.undefined:
                step = list(scenarios[si].all_steps)[pi]
                if step not in self._undefined:
                    self._undefined.append(step)
        ran: set[int] = set()
        failed = False
        for index, scenario in enumerate(scenarios):
            done = by_scenario.get(index)
            if not done:
                continue
            ran.add(id(scenario))
            outcomes.apply(scenario, done[-1][1])
            if done[-1][0].runs > 1:
                _repeat_stats(scenario, [o for _, o in done], run_min_pass_rate(self))
            failed = failed or scenario.status.has_failed()
        if sharded:  # another shard runs the rest: this shard reports only its own
            _keep_only(feature, {id(scenarios[i]) for i in planned})
        feature.clear_status()
        if getattr(feature, "hook_failed", False):
            feature.set_status(Status.hook_error)
            failed = True
        self._show(feature, ran, {id(scenarios[i]) for i in planned})
        return failed

    def _show(self, feature: Any, ran: set[int], planned: set[int]) -> None:
        """Call the formatters as behave's own Feature/Scenario/Step.run would have."""
        show_skipped = bool(self.config.show_skipped)
        for scenario in feature.walk_scenarios():
            if id(scenario) not in planned and scenario.status == Status.untested:
                scenario.should_skip = True  # not selected (tags, name, file:LINE): skipped, as behave shows it
                for step in scenario.all_steps:
                    if step.status == Status.untested:
                        step.status = Status.skipped
        if not (feature.should_run(self.config) or ran or show_skipped) or not self.formatters:
            return
        for formatter in self.formatters:
            formatter.uri(feature.filename)
            formatter.feature(feature)
            if feature.background:
                formatter.background(feature.background)
        for scenario in feature.walk_scenarios():
            if id(scenario) not in ran and not show_skipped:
                continue
            for formatter in self.formatters:
                formatter.scenario(scenario)
                for step in scenario:
                    formatter.step(step)
            for step in scenario.all_steps:
                if step.status in (Status.untested, Status.skipped):
                    continue
                match = self.step_registry.find_match(step) if step.status != Status.undefined else None
                for formatter in self.formatters:
                    formatter.match(match if match is not None else NoMatch())
                    formatter.result(step)
        for formatter in self.formatters:
            formatter.eof()


def _repeat_stats(scenario: Any, runs: list[outcomes.ScenarioOutcome], min_pass_rate: float) -> None:
    """A scenario whose runs went to several workers: one pass rate, as a sequential repeat gives."""
    stats = RepeatStats(0, 0, min_pass_rate)
    for outcome in runs:
        ok = outcome.status in ("passed", "skipped")
        stats.runs += 1
        stats.passed += ok
        stats.outcomes.append(ok)
    scenario.aitest_attempts = [o.record for o in runs if o.record is not None]
    _settle(scenario, stats)


def _keep_only(container: Any, keep: set[int]) -> None:
    """Drop from a feature (or rule, or outline) every scenario not in ``keep`` (ids)."""
    from behave.model import Rule, ScenarioOutline

    items = []
    for item in container.run_items:
        if isinstance(item, Rule):
            _keep_only(item, keep)
            if item.walk_scenarios():
                items.append(item)
        elif isinstance(item, ScenarioOutline):
            item._scenarios = [s for s in item.scenarios if id(s) in keep]
            if item._scenarios:
                items.append(item)
        elif id(item) in keep:
            items.append(item)
    container.run_items[:] = items
    if hasattr(container, "scenarios") and isinstance(container.scenarios, list):
        container.scenarios[:] = [s for s in container.scenarios if s in items]


def _spawned(argv: list[str], cwd: str, index: int, conn: Any, log: str, temp: str) -> None:
    """A worker started with ``spawn`` (no fork): build the same runner and plan from the command line."""
    from behave.configuration import Configuration

    from . import hooks
    from .worker import serve

    os.chdir(cwd)
    config = Configuration(argv)
    config.aitest_worker = True
    runner = ParallelRunner(config)
    runner.path_manager.__enter__()
    runner.setup_paths()
    runner.load_hooks()
    runner.load_step_definitions()
    runner.step_registry = the_step_registry
    locations = [f for f in runner.feature_locations() if not config.exclude(f)]
    runner.features.extend(parse_features(locations, language=config.lang))
    hooks.expand_model_flows(runner.features, load_config(config.userdata).models)
    serve(runner, list(runner.features), index, conn, log, temp)


def run_min_pass_rate(runner: Any) -> float:
    view = getattr(runner.config, "aitest_runtime", None)
    return float(getattr(getattr(view, "config", None), "min_pass_rate", 1.0))


def _unit(run: _Run, index: int) -> units.Unit:
    return run.plan[index] if index < len(run.plan) and run.plan[index].index == index else next(u for u in run.plan if u.index == index)


def _merge_errors(into: list[str], new: list[str]) -> None:
    for error in new:
        if error not in into:
            into.append(error)


def _first_failure(outcome: outcomes.UnitOutcome) -> list[str]:
    """The first failure's message, without the Python traceback behave puts before an error's reason."""
    for scenario in outcome.scenarios:
        texts = [(s.error_message, f"{s.status}") for s in scenario.steps if s.status in _RUN_FAILED_STATUSES and s.error_message]
        if not texts and scenario.status in _RUN_FAILED_STATUSES and scenario.error_message:
            texts = [(scenario.error_message, scenario.status)]
        if texts:
            lines = str(texts[0][0]).strip().splitlines()
            if lines and lines[0].startswith("Traceback (most recent call last)"):
                reason = next((i for i, line in enumerate(lines[1:], 1) if line and not line[0].isspace()), 0)
                lines = lines[reason:]
            return lines
    return []


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def _kill(worker: _Worker) -> None:
    """A worker still there after the run (or its stop grace): killed with its process group
    (the servers it started); then nothing of it is left."""
    process = worker.process
    if process.is_alive():
        process.join(timeout=0.5)
    if process.pid is not None:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # also its servers, and a server's own children
        except (ProcessLookupError, PermissionError):
            pass
    process.join(timeout=5)
    worker.conn.close()


def _sigterm_as_interrupt(signum: int, frame: Any) -> None:
    """SIGTERM (a CI cancel) is the first Ctrl-C: stop the workers, write the partial report."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt
