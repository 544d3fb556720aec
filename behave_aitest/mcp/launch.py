"""How a local (stdio) server is launched: its command (``python`` is the interpreter running
behave), its minimal environment (provider keys never reach a server) with the server's ``env``
table, and its folder (``${AITEST_SERVER_DIR}``: a fresh one per start when asked).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from ..config import ServerConfig, expand_env

# What every stdio server gets from our environment; everything else must be listed in
# the server's ``env`` table, so API keys never reach a server by accident.
BASE_ENV = (
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "TMPDIR", "TZ",
    "LANG", "LC_ALL", "LC_CTYPE",
    "SYSTEMROOT", "SYSTEMDRIVE", "USERPROFILE", "APPDATA", "LOCALAPPDATA", "TEMP", "TMP", "COMSPEC", "PATHEXT",
)





# Every stdio server process gets its own new, empty folder, named by ${AITEST_SERVER_DIR} in its
# command, env and cwd (and set in its environment), removed when the process has ended: a server
# that keeps state in a file starts clean in every conversation (per scope; docs/sessions.md).
SERVER_DIR_VAR = "AITEST_SERVER_DIR"
_SERVER_DIR = "${" + SERVER_DIR_VAR + "}"


def with_server_dir(text: str, folder: str | None) -> str:
    """``text`` with ``${AITEST_SERVER_DIR}`` replaced by the process's own folder."""
    return text.replace(_SERVER_DIR, folder) if folder is not None else text


def server_environment(config: ServerConfig, environ: Mapping[str, str] | None = None, server_dir: str | None = None) -> dict[str, str]:
    """The minimal base environment plus the server's own ``env`` table, ``${VAR}`` expanded
    (``${AITEST_SERVER_DIR}`` first, when the process has its folder)."""
    source = os.environ if environ is None else environ
    env = {k: source[k] for k in BASE_ENV if k in source}
    if server_dir is not None:
        env[SERVER_DIR_VAR] = server_dir
    for key, value in config.env.items():
        env[key] = expand_env(with_server_dir(value, server_dir), f"{config.where} env.{key}", source)
    return env


def server_cwd(config: ServerConfig, server_dir: str | None) -> str | None:
    """The server's working directory; one inside its own folder is created first."""
    if config.cwd is None or server_dir is None or _SERVER_DIR not in config.cwd:
        return config.cwd
    folder = with_server_dir(config.cwd, server_dir)
    Path(folder).mkdir(parents=True, exist_ok=True)
    return folder


def new_server_dir(config: ServerConfig) -> str:
    """A new, empty folder for one stdio server process (see :data:`SERVER_DIR_VAR`)."""
    import re

    from ..text.files import owned_tempdir

    return owned_tempdir(f"aitest-{re.sub(r'[^A-Za-z0-9_-]', '_', config.name)[:40]}-")


def resolve_command(command: tuple[str, ...], server_dir: str | None = None) -> tuple[str, list[str]]:
    """``python``/``python3`` mean the interpreter running behave, so a venv needs no activation."""
    program, *args = (with_server_dir(part, server_dir) for part in command)
    if program in ("python", "python3"):
        program = sys.executable
    return program, args
