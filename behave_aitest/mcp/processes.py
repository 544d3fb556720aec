"""Process groups of local servers: each stdio server starts in a group of its own, noted in a
folder a parallel run's parent can read, so that what a server started (helpers, shells) is
stopped with it, and a killed worker's servers can be stopped from outside.
"""

from __future__ import annotations

import os
from pathlib import Path

# A parallel run's worker also notes its servers' groups as files in this folder, so that
# the parent can stop them when the worker itself is killed (behave_aitest.parallel).
_GROUPS: dict[int, int] = {}  # process group -> the pid of the process that started it
GROUPS_DIR_ENV = "BEHAVE_AITEST_SERVER_GROUPS"


def _note_group(group: int, running: bool) -> None:
    folder = os.environ.get(GROUPS_DIR_ENV)
    if not folder:
        return
    try:
        if running:
            Path(folder).mkdir(parents=True, exist_ok=True)
            (Path(folder) / str(group)).touch()
        else:
            (Path(folder) / str(group)).unlink(missing_ok=True)
    except OSError:
        pass


def _children() -> set[int]:
    """Process ids of this process's children (Linux ``/proc``; empty where there is none)."""
    me, found = os.getpid(), set()
    try:
        for task in Path(f"/proc/{me}/task").iterdir():
            found.update(int(pid) for pid in (task / "children").read_text().split())
        return found
    except OSError:
        pass
    try:
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                try:
                    stat = (proc / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == me:
                    found.add(int(proc.name))
    except OSError:
        pass
    return found


def _new_group(before: set[int]) -> int | None:
    """The process group of the server just started: the SDK starts each stdio server in
    its own session, so it is the new child that leads its own group."""
    for pid in sorted(_children() - before):
        try:
            if os.getpgid(pid) == pid:
                _GROUPS[pid] = os.getpid()
                _note_group(pid, True)
                return pid
        except OSError:
            continue
    return None


def _signal_group(group: int, sig: int) -> bool:
    """Send ``sig`` to the group; False when no process of it is left."""
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # EPERM: something is left that we may not signal
    return True


async def stop_group(group: int | None) -> None:
    """Stop what is left of a server's process group (helpers it started) once the server
    has ended: SIGTERM, up to a second's grace, then SIGKILL."""
    import signal

    import anyio

    if group is None:
        return
    _GROUPS.pop(group, None)
    if not _signal_group(group, signal.SIGTERM):
        _note_group(group, False)
        return
    with anyio.CancelScope(shield=True):  # also when the run is being interrupted
        with anyio.move_on_after(1.0):
            while _signal_group(group, 0):
                await anyio.sleep(0.05)
            _note_group(group, False)
            return
        _signal_group(group, signal.SIGKILL)
        _note_group(group, False)


def stop_all_groups() -> None:
    """SIGKILL every server process group not stopped the ordinary way (an interrupted
    cleanup): no server or helper outlives the run."""
    import signal

    me = os.getpid()
    for group, owner in list(_GROUPS.items()):
        if owner == me:
            del _GROUPS[group]
            _signal_group(group, signal.SIGKILL)
            _note_group(group, False)
