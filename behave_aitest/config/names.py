"""Did-you-mean for names the configuration defines: one rule for unknown keys, agents,
servers, models and tools, so every message suggests the same way.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from .records import ConfigError


def suggest_key(key: str, known: Mapping[str, Any] | set[str]) -> str:
    """`` Did you mean 'x'?`` for the closest known key, else the known keys (a table has few)."""
    return did_you_mean(key, sorted(known)) or f" Known keys: {', '.join(sorted(known))}."


def did_you_mean(name: str, known: Mapping[str, Any] | Sequence[str]) -> str:
    """`` Did you mean 'x'?`` for the closest known name, or nothing."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def unknown_name(kind: str, name: str, known: Mapping[str, Any], table: str, config_file: str, where: str = "") -> ConfigError:
    """The error for a step or table naming an agent or server the config does not define."""
    listed = ", ".join(sorted(known)) or "none are configured"
    prefix = f"{where}: u" if where else "U"
    return ConfigError(
        f"{prefix}nknown {kind} {name!r} (known {kind}s: {listed}).{did_you_mean(name, known)} "
        f"Define it under [tool.behave_aitest.{table}.{name}] in {config_file}, or correct the name."
    )
