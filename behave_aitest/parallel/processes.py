"""Worker processes, from the parent's side: started by fork where that is safe (else spawn, the
same plan rebuilt from the command line), stopped with their process groups and servers after
a grace period, and SIGTERM turned into the interrupt behave's runner already handles.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import units

# How long workers get to stop their servers after Ctrl-C / SIGTERM before they are killed.
STOP_GRACE_S = 10.0

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
    shown: int = 0  # bytes of its log already shown
    # its unit's progress so far (worker.PROGRESS): scenario index -> latest snapshot, and the
    # unit's conversations and session as last sent; what is kept if the worker never finishes it
    snapshots: dict[int, Any] = field(default_factory=dict)
    conversations: list[Any] = field(default_factory=list)
    session: Any = None

    def begin(self, unit: units.Unit, at: float) -> None:
        self.unit, self.started_at = unit, at
        self.snapshots, self.conversations, self.session = {}, [], None


def _start_method() -> str:
    """fork where it is safe (Linux, no thread running), else spawn; BEHAVE_AITEST_START_METHOD decides."""
    import threading

    chosen = os.environ.get("BEHAVE_AITEST_START_METHOD")
    if chosen:
        return chosen
    if "fork" not in multiprocessing.get_all_start_methods() or sys.platform == "darwin":
        return "spawn"
    if threading.active_count() > 1:  # e.g. an SDK started by environment.py: forking it is unsafe
        print("behave-aitest -j: threads are running in this process, so workers are spawned (slower start) instead of forked.")
        return "spawn"
    return "fork"


def _fingerprint(features: list[Any]) -> list[tuple[str, str, int]]:
    """What a spawned worker must parse to the same units: file, name and scenario count per feature."""
    return [(str(f.filename), str(f.name), len(f.walk_scenarios())) for f in features]


def _kill(worker: _Worker) -> None:
    """A worker still there after the run (or its stop grace): killed with its process group
    (the servers it started); then nothing of it is left."""
    process = worker.process
    if process.is_alive():
        process.join(timeout=0.5)
    groups = [process.pid] if process.pid is not None else []
    folder = worker.log.with_name(f"worker-{worker.index}.tmp") / "server-groups"
    if folder.is_dir():  # its servers lead groups of their own (the MCP SDK starts them so)
        groups += [int(p.name) for p in folder.iterdir() if p.name.isdigit()]
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    process.join(timeout=5)
    worker.conn.close()


def _sigterm_as_interrupt(signum: int, frame: Any) -> None:
    """SIGTERM (a CI cancel) is the first Ctrl-C: stop the workers, write the partial report."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt
