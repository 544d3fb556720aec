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
   (:mod:`behave_aitest.outcomes`), and each scenario's progress as it goes, so a worker
   killed mid-unit loses nothing it finished; the parent prints one line per finished unit.
4. The parent puts every outcome on its own behave model and replays the run through
   behave's formatters and reporters in file order: one merged HTML/JSON/Markdown report,
   one JUnit file per feature, behave's summary, and the exit code a sequential run gives.
"""

from __future__ import annotations

import collections
import multiprocessing
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from behave.exception import ConfigError as BehaveConfigError
from behave.formatter._registry import make_formatters
from behave.runner import Context, Runner, the_step_registry
from behave.runner_util import parse_features

from ..config import ConfigError, load_config
from ..mcp.connection import stderr_tail
from ..model.limits import SLOTS_ENV, START_SLOTS_ENV
from ..run.quirks import one_catalog
from . import outcomes, units
from .processes import (
    STOP_GRACE_S,
    _fingerprint,
    _kill,
    _sigterm_as_interrupt,
    _start_method,
    _Worker,
)
from .replay import Replay
from .worker import DONE, PROGRESS, READY

_CONSOLE_FORMATTERS = ("pretty", "plain", "progress", "progress2", "progress3", "rerun", "tags", "steps", "sphinx.steps")
_RUN_FAILED_STATUSES = ("failed", "error", "hook_error", "cleanup_error", "undefined", "pending")




@dataclass
class _Run:
    """What the parent knows while the workers run."""

    plan: list[units.Unit]
    results: dict[int, outcomes.UnitOutcome] = field(default_factory=dict)
    hook_errors: list[str] = field(default_factory=list)
    config: Any = None  # the run's behave-aitest Config
    running: set[int] = field(default_factory=set)  # units sent to a worker, not yet back
    hook_failures: int = 0  # behave's count over all workers (a failed run, as in run_model)
    cleanup_failed: bool = False
    aborted: bool = False
    stopped: bool = False  # --stop after a failure
    setup_failed: str | None = None  # a HOOK-ERROR line: the run could not start
    warned: set[str] = field(default_factory=set)  # run-wide warnings printed (once for the run)

    @property
    def halted(self) -> bool:
        return bool(self.aborted or self.stopped or self.setup_failed)

    def __post_init__(self) -> None:
        self._by_index = {u.index: u for u in self.plan}

    def unit(self, index: int) -> units.Unit:
        """A unit by its plan index (a shard's plan holds only some indices)."""
        return self._by_index[index]


class ParallelRunner(Replay, Runner):
    """behave's runner, plus ``-j N`` and ``-D aitest.shard=K/N`` (see the module docstring)."""

    def __init__(self, config: Any, **kwargs: Any) -> None:
        super().__init__(config)
        one_catalog(config)  # also for a project whose [tool.behave] sets only behave's formatters
        self._in_parallel = False
        self._undefined: list[Any] = []  # the parent's Step objects of the workers' undefined steps

    @property
    def undefined_steps(self) -> list[Any]:
        return self._undefined if self._in_parallel else self._undefined_steps

    def run(self) -> bool:
        jobs = getattr(self.config, "jobs", 1)
        if jobs is None or jobs < 1:
            raise BehaveConfigError(f"-j {jobs}: the number of jobs must be a whole number of at least 1 (e.g. -j 8).")
        sharded = "aitest.shard" in (self.config.userdata or {})
        if (jobs == 1 and not sharded) or self.config.dry_run:
            return super().run()  # exactly behave's own run
        self._in_parallel = True
        self._started = time.time()  # behave's "Took" is the wall time from here (issue 25, H14)
        with self.path_manager:
            self.setup_paths()
            return self._run_parallel(jobs)

    # ----------------------------------------------------------------- the parent

    def _run_parallel(self, jobs: int) -> bool:
        from ..run import hooks

        self.context = Context(self)
        self.load_hooks()
        self.load_step_definitions()
        if self.step_registry is None:
            self.step_registry = the_step_registry  # what behave's own run_model uses
        locations = [f for f in self.feature_locations() if not self.config.exclude(f)]
        self.features.extend(parse_features(locations, language=self.config.lang))
        try:
            config = load_config(self.config.userdata, for_run=True)  # once, before any worker starts
            hooks.expand_model_flows(self.features, config.models)
            hooks.name_model_flows(self.config.reporters)
            hooks.check_features(self.features, SimpleNamespace(config=config))
            plan = units.plan(self.features, self.config, config.repeat)
        except (ConfigError, units.PlanError) as exc:
            return self._stopped_before_start(f"{type(exc).__name__}: {exc}")
        durations = self._durations(config)
        if config.shard is not None:
            whole = plan
            plan = units.shard(plan, *config.shard, durations if config.durations else None)
            # the report records the plan, so report merge can refuse gaps and doubles (issue 25, H10)
            self.config.aitest_shard = units.shard_record(whole, plan, *config.shard)
        # From here a SIGTERM is a Ctrl-C (the formatters then leave SIGTERM to us): whenever it
        # comes, the run is finished the ordinary way, every planned conversation in the report
        # and JUnit, untested when it did not run (issue 25, H13).
        previous_term = signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
        run = _Run(plan, config=config)
        try:
            try:
                self.formatters = self._formatters()
                cassettes = None
                if config.cassette != "off":
                    from ..record.cassettes import CassetteLibrary

                    cassettes = CassetteLibrary(config)
                for line in hooks.banners(config, cassettes):
                    print(line)
                shard = f", shard {config.shard[0]}/{config.shard[1]}" if config.shard else ""
                workers = min(jobs, max(len(plan), 1))
                print(f"behave-aitest: {len(plan)} conversation{'s' * (len(plan) != 1)} on {workers} worker{'s' * (workers != 1)}{shard}")
                sys.stdout.flush()
                if plan:
                    self._preload(config)
            except KeyboardInterrupt:  # Ctrl-C or SIGTERM before any worker started: nothing to stop
                run.aborted = True
                if not getattr(self, "formatters", None):
                    self.formatters = self._formatters(quiet=True)
            if plan and not run.aborted:
                self._execute(run, units.longest_first(plan, durations), workers, config)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a later SIGTERM must not cut the reports being written
            return self._finish(run, config)
        finally:
            signal.signal(signal.SIGTERM, previous_term if previous_term is not None else signal.SIG_DFL)

    def _stopped_before_start(self, reason: str) -> bool:
        """A mistake found before any worker starts: said in one line, as a sequential run's
        before_all says it; the report formatters still write their (partial) report."""
        message = f"HOOK-ERROR in before_all: {reason}"
        print(message)
        self.config.aitest_hook_errors = [message]
        self.formatters = self._formatters(quiet=True)
        for feature in self.features:
            for reporter in self.config.reporters:
                reporter.feature(feature)
        for formatter in self.formatters:
            formatter.close()
        for reporter in self.config.reporters:
            reporter.end()
        return True

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

    def _formatters(self, quiet: bool = False) -> list[Any]:
        """behave's formatters for the replay; console formatters give way to the per-unit lines."""
        kept, dropped = [], []
        for formatter in make_formatters(self.config, self.config.outputs):
            to_console = getattr(formatter.stream_opener, "name", None) in (None, "-")
            ours = type(formatter).__module__.startswith("behave_aitest.")
            if to_console and not ours and getattr(formatter, "name", "") in _CONSOLE_FORMATTERS:
                dropped.append(formatter.name)
                continue
            kept.append(formatter)
        if dropped and not quiet:
            jobs = getattr(self.config, "jobs", 1) or 1
            who = "behave-aitest -j" if jobs > 1 else "behave-aitest (a shard runs as -j 1)"  # no -j given: do not name it
            print(
                f"{who}: the console formatter {', '.join(sorted(set(dropped)))} is replaced by one line per "
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

        from ..agent import loop  # noqa: F401 - imported for the workers' sake
        from ..run import runtime  # noqa: F401

        if config.cassette != "replay":
            from ..model.llm import litellm_module

            litellm_module()
            try:  # imported by litellm's first acompletion (its module path moves between versions)
                import litellm.proxy.openai_files_endpoints.common_utils  # noqa: F401
            except ImportError:
                pass

    def _start(self, index: int, log_dir: Path, method: str, workers: list[_Worker]) -> _Worker:
        parent_end, child_end = multiprocessing.Pipe()
        log = log_dir / f"worker-{index}.log"
        temp = log_dir / f"worker-{index}.tmp"
        context = multiprocessing.get_context(method)
        if method == "fork":
            from .worker import serve

            # The child must not hold the parent's ends of any pipe, or it would never see the
            # parent go away (and earlier workers would not either).
            inherited = [parent_end, *(w.conn for w in workers)]
            args = (self, self.features, index, child_end, str(log), str(temp), inherited)
            process = context.Process(target=serve, args=args, daemon=False)
        else:  # spawn: the worker parses and plans again from the same command line
            fingerprint = _fingerprint(self.features)
            args = (list(sys.argv[1:]), os.getcwd(), index, child_end, str(log), str(temp), fingerprint)
            process = context.Process(target=_spawned, args=args, daemon=False)
        self.config.aitest_worker = True
        try:
            process.start()
        finally:
            self.config.aitest_worker = False
        child_end.close()
        return _Worker(index, process, parent_end, log)

    def _execute(self, run: _Run, order: list[units.Unit], jobs: int, config: Any) -> None:
        method = _start_method()
        from ..text.files import owned_tempdir, remove_stale_tempdirs

        remove_stale_tempdirs()  # left by runs killed with SIGKILL (H19)
        log_dir = Path(owned_tempdir("behave-aitest-j-"))
        queue = collections.deque(order)
        workers: list[_Worker] = []
        previous = signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
        restarts = jobs
        slots = os.environ.get(SLOTS_ENV)
        os.environ[SLOTS_ENV] = str(log_dir / "model-slots")  # max_model_concurrency across workers
        starts = os.environ.get(START_SLOTS_ENV)
        os.environ[START_SLOTS_ENV] = str(log_dir / "start-slots")  # local servers start one per core at a time
        try:
            try:
                for i in range(1, jobs + 1):
                    workers.append(self._start(i, log_dir, method, workers))
                while any(not w.done for w in workers):
                    self._step(run, workers, queue)
                    if queue and restarts and not run.halted and all(w.done for w in workers):
                        restarts -= 1  # every worker died: start one more for the rest
                        workers.append(self._start(len(workers) + 1, log_dir, method, workers))
            except KeyboardInterrupt:
                run.aborted = True
                self._stop(workers, run)
            if queue and not run.halted:
                run.setup_failed = "HOOK-ERROR in before_all: every worker died before the run was done"
        finally:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
            for worker in workers:
                _kill(worker)
            shutil.rmtree(log_dir, ignore_errors=True)
            for name, value in ((SLOTS_ENV, slots), (START_SLOTS_ENV, starts)):
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    def _step(self, run: _Run, workers: list[_Worker], queue: collections.deque[units.Unit], timeout: float | None = None) -> None:
        """Wait for the next message or death of a worker, act on it, give idle workers work."""
        live = [w for w in workers if not w.done]
        ready = wait([w.conn for w in live] + [w.process.sentinel for w in live], timeout=timeout)
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
        if run.stopped:  # --stop: only the other runs of a repeated conversation already started
            begun = {(u.feature, u.scenarios) for u in run.plan if u.index in run.results or u.index in run.running}
            for unit in [u for u in queue if (u.feature, u.scenarios) not in begun]:
                queue.remove(unit)
        for worker in workers:
            if worker.ready and worker.unit is None and not worker.done:
                unit = queue.popleft() if queue and not (run.aborted or run.setup_failed) else None
                try:
                    worker.conn.send(unit)
                except OSError:  # it died after its last message
                    if unit is not None:
                        queue.appendleft(unit)
                    self._died(run, worker)
                    continue
                if unit is None:
                    worker.ready = False  # waits for its "done"
                else:
                    worker.begin(unit, time.time())
                    run.running.add(unit.index)

    def _receive(self, run: _Run, worker: _Worker, message: Any) -> None:
        if isinstance(message, tuple) and message and message[0] == PROGRESS:
            _, index, snapshot, conversations, session = message
            if worker.unit is not None and worker.unit.index == index:
                worker.snapshots[snapshot.index] = snapshot
                if conversations is not None:  # None: unchanged since the last snapshot
                    worker.conversations, worker.session = conversations, session
            return
        self._drain(worker)
        if isinstance(message, tuple) and message and message[0] == READY:
            _, ok, errors, failures = message
            _merge_errors(run.hook_errors, errors)
            run.hook_failures += failures
            if ok:
                worker.ready = True
            elif not run.setup_failed:
                run.setup_failed = errors[-1] if errors else f"HOOK-ERROR in before_all (worker {worker.index}, see above)"
            return
        if isinstance(message, tuple) and message and message[0] == DONE:
            _, errors, failures, cleanup_failed = message
            _merge_errors(run.hook_errors, errors)
            run.hook_failures += failures
            run.cleanup_failed = run.cleanup_failed or cleanup_failed
            worker.done = True
            return
        outcome: outcomes.UnitOutcome = message
        worker.unit = None
        run.running.discard(outcome.unit)
        run.results[outcome.unit] = outcome
        run.hook_failures += outcome.hook_failures
        _merge_errors(run.hook_errors, outcome.hook_errors)
        self._progress(run, outcome)
        if outcome.aborted:
            run.aborted = True
        if self.config.stop and outcome.status in _RUN_FAILED_STATUSES and self._verdict_failed(run, run.unit(outcome.unit)):
            run.stopped = True  # --stop: no new conversation after the first failure

    @staticmethod
    def _verdict_failed(run: _Run, unit: units.Unit) -> bool:
        """Whether the conversation's runs done so far already fail it (one run: it failed)."""
        if unit.runs == 1:
            return True
        rate = float(getattr(run.config, "min_pass_rate", 1.0))
        group = [u for u in run.plan if (u.feature, u.scenarios) == (unit.feature, unit.scenarios)]
        failed = sum(1 for u in group if u.index in run.results and run.results[u.index].status in _RUN_FAILED_STATUSES)
        return failed > len(group) - rate * len(group) + 1e-9

    def _drain(self, worker: _Worker) -> None:
        """Show what the worker printed since last time (hook errors, warnings), as behave would."""
        try:
            with worker.log.open("rb") as handle:
                handle.seek(worker.shown)
                data = handle.read()
        except OSError:
            return
        worker.shown += len(data)
        if data.strip():
            sys.stdout.write(data.decode("utf-8", errors="replace"))
            sys.stdout.flush()

    def _died(self, run: _Run, worker: _Worker) -> None:
        """A worker that ended without saying goodbye: its unit becomes an error that says so."""
        worker.process.join(timeout=5)
        worker.done = True
        _kill(worker)  # and the servers it left behind
        if worker.unit is None:
            return
        code = worker.process.exitcode
        how = f"was killed by signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exited with code {code}"
        message = (
            f"behave-aitest -j: worker {worker.index} {how} while running this conversation; "
            f"the other conversations went on. Its last output:\n{stderr_tail(worker.log, 15) or '(none)'}"
        )
        self._cut_short(run, worker, message, not_started="error")

    def _cut_short(self, run: _Run, worker: _Worker, message: str, not_started: str) -> None:
        """A unit whose worker ended without its outcome: what the worker reported as it went
        keeps its outcome, the step it was running is the error ``message`` (issue 25, H15)."""
        unit = worker.unit
        if unit is None or unit.index in run.results:
            return
        worker.unit = None
        run.running.discard(unit.index)
        outcome = outcomes.cut_short(
            unit, worker.index, time.time() - worker.started_at, worker.snapshots, message, not_started, worker.conversations, worker.session
        )
        run.results[unit.index] = outcome
        self._progress(run, outcome)

    def _stop(self, workers: list[_Worker], run: _Run) -> None:
        """Ctrl-C or SIGTERM: every worker stops like after Ctrl-C, stops its servers and reports.

        Workers get ``STOP_GRACE_S``; a second Ctrl-C or SIGTERM (GitHub Actions sends SIGINT,
        then SIGTERM 7.5 s later) ends the wait at once. Then what is left is killed.
        """
        hurry: list[int] = []
        previous = {sig: signal.signal(sig, lambda signum, frame: hurry.append(signum)) for sig in (signal.SIGINT, signal.SIGTERM)}
        print("\nbehave-aitest -j: stopping every worker (their servers are stopped too)...", flush=True)
        try:
            for worker in workers:
                if not worker.done and worker.process.is_alive():
                    os.kill(worker.process.pid, signal.SIGTERM)
            deadline = time.time() + STOP_GRACE_S
            nothing: collections.deque[units.Unit] = collections.deque()
            while any(not w.done for w in workers) and time.time() < deadline and not hurry:
                self._step(run, workers, nothing, timeout=0.2)
            if hurry:
                print("behave-aitest -j: stopping now (second signal).", flush=True)
        finally:
            for worker in workers:
                _kill(worker)
            for sig, handler in previous.items():
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        why = "at the second signal" if hurry else f"after it did not stop within {STOP_GRACE_S:g} s of the interrupt"
        for worker in workers:  # killed with its unit unfinished: what it finished still counts
            message = f"behave-aitest -j: worker {worker.index} was killed {why}, while running this step."
            self._cut_short(run, worker, message, not_started="untested")

    def _progress(self, run: _Run, outcome: outcomes.UnitOutcome) -> None:
        unit = run.unit(outcome.unit)
        done = len(run.results)
        width = len(str(len(run.plan)))
        repeat = f" (run {unit.run}/{unit.runs})" if unit.runs > 1 else ""
        status = outcome.status
        print(f"[{done:>{width}}/{len(run.plan)}] {outcome.label.upper():<7} {unit.label}{repeat}  {outcome.duration:.1f}s  {unit.location}", flush=True)
        if status in _RUN_FAILED_STATUSES:
            for line in _first_failure(outcome)[:8]:
                print(f"    {line}", flush=True)
        for warning in (w for s in outcome.scenarios if s.record is not None for w in s.record.run_warnings):
            if warning not in run.warned:  # run-wide (a server's tools): once for the run, not once per worker
                run.warned.add(warning)
                print(f"behave-aitest WARNING: {warning}", file=sys.stderr, flush=True)




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


def _spawned(argv: list[str], cwd: str, index: int, conn: Any, log: str, temp: str, fingerprint: list[tuple[str, str, int]]) -> None:
    """A worker started with ``spawn`` (no fork): build the same runner and plan from the command line."""
    from behave.configuration import Configuration

    from ..run import hooks
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
    if _fingerprint(runner.features) != fingerprint:
        raise RuntimeError(f"worker {index}: spawned from {argv!r} it parsed other features than the parent; use fork")
    serve(runner, list(runner.features), index, conn, log, temp, [])
