"""Files written whole or not at all: reports, cassettes, exported spans.

A reader (a CI artefact upload, a browser, a second worker, ``git diff``) must see the old file
or the whole new one, never a part, and an interrupted write must leave nothing a later run
could mistake for a cassette or a report.

Temporary folders (:func:`owned_tempdir`) name the process that owns them, so a run killed
outright (SIGKILL) leaves nothing for ever: the next run removes the folders whose owner is
gone (:func:`remove_stale_tempdirs`).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from pathlib import Path


def write_atomic(path: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` (temporary file, fsync, rename), creating folders.

    The file gets mode 0666 less the umask: a cassette or report written as root in a container
    stays readable (and committable) by the host's user. A character UTF-8 cannot hold (a lone
    surrogate from a model) is replaced rather than costing the whole file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8", errors="replace")
    while True:
        temporary = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


# ----------------------------------------------------------------------------- temporary folders

STALE_PREFIXES = ("behave-aitest-", "aitest-")
UNOWNED_STALE_S = 24 * 3600  # a folder of ours without an owner in its name (an older version) older than this is stale
# the owner in a folder's name: "p<pid>.<start time>-" (a server's name never holds a dot)
_OWNER = re.compile(r"p(\d+)\.(\d*)-")


def _start_time(pid: int) -> str:
    """When process ``pid`` started (Linux: /proc's clock ticks since boot), "" when unknown:
    with the pid it tells a live owner from a new process that reuses its number."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def owned_tempdir(prefix: str) -> str:
    """A new, empty temporary folder (``tempfile.mkdtemp``) whose name says which process owns
    it, so the next run can remove it if that process died without cleaning up (SIGKILL, a
    crash: :func:`remove_stale_tempdirs`, issue 25 H19). Nothing is written inside it."""
    import tempfile

    return tempfile.mkdtemp(prefix=f"{prefix}p{os.getpid()}.{_start_time(os.getpid())}-")


def _alive(pid: int, started: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    now = _start_time(pid)
    return not started or not now or now == started


def remove_stale_tempdirs(folder: str | None = None) -> list[str]:
    """Remove this project's temporary folders whose owner process is gone (killed runs), and
    owner-less ones of ours older than a day; never a live run's. Returns what was removed."""
    import shutil
    import tempfile
    import time

    base = Path(folder or tempfile.gettempdir())
    removed = []
    try:
        entries = list(base.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(STALE_PREFIXES) or entry.is_symlink() or not entry.is_dir():
            continue
        owner = _OWNER.search(entry.name)
        try:
            if owner is not None:
                stale = not _alive(int(owner.group(1)), owner.group(2))
            else:
                info = entry.stat()
                stale = time.time() - info.st_mtime > UNOWNED_STALE_S and info.st_uid == os.getuid()
        except OSError:
            continue
        if stale:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
    return removed
