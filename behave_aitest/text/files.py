"""Files written whole or not at all: reports, cassettes, exported spans.

A reader (a CI artefact upload, a browser, a second worker, ``git diff``) must see the old file
or the whole new one, never a part, and an interrupted write must leave nothing a later run
could mistake for a cassette or a report.
"""

from __future__ import annotations

import contextlib
import os
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
