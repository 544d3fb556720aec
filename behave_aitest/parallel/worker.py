"""A worker process of a parallel run: runs the units it is sent, one at a time, through behave.

The worker is a behave runner without formatters or reporters (the parent replays every
outcome through those, so their files are written once). It runs ``before_all`` once, then
``feature.run`` for each unit with every scenario outside the unit marked to skip, then
``after_all``. While a unit runs, each scenario's snapshot goes to the parent after every
step (:class:`_Progress`), so a worker killed before the unit's end still has what it
finished reported. Its console output goes to a log file the parent shows if the worker dies.

Signals: the parent owns the terminal. A worker ignores SIGINT (Ctrl-C reaches the whole
process group; the parent forwards it once as SIGTERM) and takes the first SIGTERM as
Ctrl-C — behave then aborts the step and the hooks stop the servers; later signals are
ignored so that clean-up finishes.
"""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import sys
import tempfile
import time
import traceback
from typing import Any, NoReturn

from ..mcp.processes import GROUPS_DIR_ENV
from .outcomes import ScenarioOutcome, UnitOutcome, capture, scenario_outcome
from .units import Unit

READY = "ready"  # ("ready", ok, hook error messages, hook failures): before_all has run
DONE = "done"  # ("done", hook error messages, hook failures, cleanup failed): after_all has run
# ("progress", unit index, ScenarioOutcome, conversations, session): a scenario's snapshot after
# each of its steps, and once more when it is over, so a worker killed later loses nothing it finished
PROGRESS = "progress"


def _stop_like_ctrl_c(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # later signals must not break the clean-up
    raise KeyboardInterrupt


def _die_with_parent() -> None:
    """On Linux, a SIGTERM (handled as Ctrl-C) when the parent dies, even by SIGKILL."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:  # the parent was already gone
        raise SystemExit(0)


def _redirect_output(log_path: str) -> None:
    """fd 1 and 2 (and so every child process's inherited output) to the worker's log."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", encoding="utf-8", errors="backslashreplace", buffering=1, closefd=False)
    sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", buffering=1, closefd=False)


def serve(runner: Any, features: list[Any], index: int, conn: Any, log_path: str, temp_dir: str, inherited: list[Any]) -> NoReturn:
    """The worker's whole life (in the child process); never returns.

    The worker leads a process group of its own (with the servers it starts), so the parent
    can stop all of it at once, and keeps its temporary files in ``temp_dir``, which the
    parent removes whatever happens to the worker.
    """
    code = 0
    parent = os.getppid()
    try:
        for end in inherited:  # the parent's ends of the pipes: the worker must see the parent go
            end.close()
        _die_with_parent()
        os.setpgid(0, 0)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, _stop_like_ctrl_c)
        os.makedirs(temp_dir, exist_ok=True)
        os.environ["TMPDIR"] = temp_dir
        tempfile.tempdir = temp_dir
        os.environ[GROUPS_DIR_ENV] = os.path.join(temp_dir, "server-groups")  # for the parent, if this worker is killed
        _redirect_output(log_path)
        code = _serve(runner, features, index, conn)
    except BaseException:  # noqa: BLE001 - the worker must end with an exit code, not a traceback loop
        traceback.print_exc()
        code = 70
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            if os.getppid() != parent:  # the parent was killed outright: nobody else will tidy up
                shutil.rmtree(os.path.dirname(log_path), ignore_errors=True)
        finally:
            os._exit(code)  # no atexit: the parent's report formatters live in this copy too


def _serve(runner: Any, features: list[Any], index: int, conn: Any) -> int:
    from behave.runner import Context

    # The hooks see no features: the parent already expanded model flows, checked the
    # feature files and planned repeats; a worker must not do any of it again.
    runner.features = []
    runner.formatters = []
    runner.config.reporters = []
    runner.context = Context(runner)
    runner.hook_failures = 0
    runner.run_hook("before_all")
    hook_errors = list(getattr(runner.config, "aitest_hook_errors", []) or [])
    ok = runner.hook_failures == 0 and not runner.aborted
    conn.send((READY, ok, hook_errors, runner.hook_failures))
    counted = runner.hook_failures
    if ok:
        while True:
            unit = conn.recv()
            if unit is None:
                break
            outcome = run_unit(runner, features, unit, index, conn)
            outcome.hook_failures = runner.hook_failures - counted
            counted = runner.hook_failures
            _send(conn, outcome)
            if outcome.aborted:
                break
    runner.run_hook_with_capture("after_all")
    cleanup_failed = False
    try:
        runner.context._do_remaining_cleanups()
    except Exception:  # noqa: BLE001 - reported like behave does: a failed run
        traceback.print_exc()
        cleanup_failed = True
    failures = list(getattr(runner.config, "aitest_hook_errors", []) or [])[len(hook_errors):]
    _send(conn, (DONE, failures, runner.hook_failures - counted, cleanup_failed))
    return 0


def run_unit(runner: Any, features: list[Any], unit: Unit, index: int, conn: Any = None) -> UnitOutcome:
    """Run one unit on this worker's copy of its feature and read the outcome off it (and, with
    ``conn``, send each scenario's progress as it goes: :class:`_Progress`)."""
    feature = features[unit.feature]
    scenarios = list(feature.walk_scenarios())
    chosen = set(unit.scenarios)
    skipped = [s.should_skip for s in scenarios]
    for i, scenario in enumerate(scenarios):
        scenario.should_skip = skipped[i] or i not in chosen
        scenario.aitest_run = unit.run  # the cassette of run N of a repeated conversation
    feature.aitest_run = unit.run
    runtime = getattr(runner.config, "aitest_runtime", None)
    known = len(getattr(runtime, "conversations", []) or [])
    undefined = len(runner.undefined_steps)
    errors = len(getattr(runner.config, "aitest_hook_errors", []) or [])
    started = time.time()
    runner.feature = feature
    if conn is not None:
        progress = _Progress(conn, unit, feature, scenarios, runtime, known)
        runner.formatters = [progress]
        runner.run_hook_with_capture = progress.hooks(runner.run_hook_with_capture)
    try:
        feature.run(runner)
    except KeyboardInterrupt:
        runner.abort(reason="KeyboardInterrupt")
    finally:
        runner.formatters = []
        runner.__dict__.pop("run_hook_with_capture", None)
    outcome = capture(
        unit.index,
        index,
        feature,
        unit.scenarios,
        time.time() - started,
        list(getattr(runtime, "conversations", []) or [])[known:],
        runner.undefined_steps[undefined:],
    )
    outcome.hook_errors = list(getattr(runner.config, "aitest_hook_errors", []) or [])[errors:]
    outcome.aborted = bool(runner.aborted)
    for i, scenario in enumerate(scenarios):
        scenario.should_skip = skipped[i]
    return outcome


class _Progress:
    """The worker's only "formatter": after each step behave reports (``result``), a snapshot of
    its scenario goes to the parent, and the scenario's final outcome once the next one starts,
    so that a worker killed before it sends the unit's outcome (it did not stop within the
    grace after Ctrl-C, or died) still has what it finished reported as it ended (issue 25,
    H15). Every other formatter event is ignored."""

    def __init__(self, conn: Any, unit: Unit, feature: Any, scenarios: list[Any], runtime: Any, known: int) -> None:
        # (private names only: behave calls a formatter's attribute named after each event)
        self._conn, self._unit, self._feature, self._runtime, self._known = conn, unit, feature, runtime, known
        self._scenarios = {si: scenarios[si] for si in unit.scenarios}
        self._positions = {id(step): (si, pi) for si in unit.scenarios for pi, step in enumerate(scenarios[si].all_steps)}
        self._begun: int | None = None  # the scenario running (or last run), not yet sent as finished
        self._sent: list[str] | None = None  # the conversation ids last sent

    def scenario(self, scenario: Any) -> None:
        self._finish_begun()
        index = next((si for si, s in self._scenarios.items() if s is scenario), None)
        self._begun = index

    def result(self, step: Any) -> None:
        found = self._positions.get(id(step))
        if found is not None:
            si, pi = found
            self._send(scenario_outcome(si, self._scenarios[si], done=pi + 1))

    def eof(self) -> None:
        self._finish_begun()

    def rule(self, rule: Any) -> None:  # a rule begins or ends: the scenario before it is over
        self._finish_begun()

    def rule_finished(self) -> None:
        self._finish_begun()

    def hooks(self, run_hook: Any) -> Any:
        """behave's hook runner, which first sends the last scenario as finished when the
        after_rule or after_feature hooks begin (they may hang: feature-scope servers stop there)."""

        def run(name: str, *args: Any, **kwargs: Any) -> Any:
            if name in ("after_rule", "after_feature"):
                self._finish_begun()
            return run_hook(name, *args, **kwargs)

        return run

    def __getattr__(self, name: str) -> Any:  # behave's other formatter events
        if name.startswith("_"):
            raise AttributeError(name)
        return _ignore

    def _finish_begun(self) -> None:
        if self._begun is not None:
            si, self._begun = self._begun, None
            self._send(scenario_outcome(si, self._scenarios[si]))

    def _send(self, snapshot: ScenarioOutcome) -> None:
        # the unit's conversations (their ids, cassettes, a session's history) go again only when
        # one is new or a scenario is over: a long session's history is not re-sent after every step
        conversations: list[Any] | None = list(getattr(self._runtime, "conversations", []) or [])[self._known:]
        ids = [c.id for c in conversations or []]
        if snapshot.finished or ids != self._sent:
            self._sent = ids
            message = (PROGRESS, self._unit.index, snapshot, conversations, getattr(self._feature, "aitest_conversation", None))
        else:
            message = (PROGRESS, self._unit.index, snapshot, None, None)
        try:
            data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001 - captured output that does not pickle: without it
            snapshot.captured = None
            for step in snapshot.steps:
                step.captured = None
            try:
                data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:  # noqa: BLE001 - the unit's outcome will say why, if it comes
                return
        _write(self._conn, data)


def _ignore(*args: Any, **kwargs: Any) -> None:
    return None


def _send(conn: Any, message: Any) -> None:
    """Send, dropping captured output that does not pickle rather than losing the outcome."""
    try:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # noqa: BLE001
        if not isinstance(message, UnitOutcome):
            raise
        for scenario in message.scenarios:
            scenario.captured = None
            for step in scenario.steps:
                step.captured = None
        try:
            data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001 - last resort: statuses and messages only
            for scenario in message.scenarios:
                scenario.record = None
                for step in scenario.steps:
                    step.turn = None
            message.conversations, message.session = [], None
            message.hook_errors.append(f"behave-aitest -j: the records of this unit could not be sent ({type(exc).__name__}: {exc})")
            data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    _write(conn, data)


def _write(conn: Any, data: bytes) -> None:
    """One whole message on the pipe: a SIGTERM (raised as KeyboardInterrupt) waits until it
    is written, so it cannot cut a message in two and leave the parent reading garbage."""
    blocked = hasattr(signal, "pthread_sigmask")
    if blocked:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        conn.send_bytes(data)
    finally:
        if blocked:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
