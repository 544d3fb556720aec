"""``${VAR}`` and ``${VAR:-default}`` in a server's command, env, headers and url: an unset
variable without a default is a ConfigError naming where it is used.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from .records import ConfigError

# --------------------------------------------------------------------------- ${VAR} expansion

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: str, where: str, environ: Mapping[str, str] | None = None) -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}``; an unset variable without default is an error."""
    env = os.environ if environ is None else environ

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(f"{where}: environment variable {name} is not set (used as ${{{name}}}).")

    return _VAR.sub(replace, value)
