"""What a value may be: one checker per kind of value (a positive int, a rate, a
choice, a list of strings, ``-D aitest.otel`` ...), each returning the value converted or
raising ValueError with what was expected; ``keys`` names the checker of every key.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

# --------------------------------------------------------------------------- value checks


def text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value


def positive_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("must be a whole number")
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if not isinstance(value, int) or value < 1:
        raise ValueError("must be a whole number of at least 1")
    return value


def non_negative_int(value: Any) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("must be a whole number of at least 0")
    return value


def number(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("must be a number")
    try:
        found = float(value)
    except (TypeError, ValueError):
        raise ValueError("must be a number") from None
    if not math.isfinite(found):  # inf/nan pass every comparison check below and break the run
        raise ValueError("must be a finite number")
    return found


def positive_number(value: Any) -> float:
    found = number(value)
    if not found > 0:
        raise ValueError("must be greater than 0")
    return found


def non_negative_number(value: Any) -> float:
    found = number(value)
    if found < 0:
        raise ValueError("must be 0 or greater")
    return found


def switch(value: Any) -> bool:
    """true/false in the config file, or the same words (also on/off, 1/0, yes/no) from -D."""
    if isinstance(value, bool):
        return value
    words = {"true": True, "on": True, "1": True, "yes": True, "false": False, "off": False, "0": False, "no": False}
    if isinstance(value, str) and value.strip().lower() in words:
        return words[value.strip().lower()]
    raise ValueError("must be true or false")


def temperature(value: Any) -> float:
    found = non_negative_number(value)
    if found > 2:
        raise ValueError("must be between 0 and 2")
    return found


def rate(value: Any) -> float:
    found = non_negative_number(value)
    if found > 1:
        raise ValueError("must be between 0 and 1 (e.g. 0.8 for 80%)")
    return found


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def text_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        raise ValueError('must be a list of strings, e.g. ["a", "b"]')
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError('must be a list of strings, e.g. ["a", "b"]')
    return tuple(value)


def text_table(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValueError('must be a table of strings, e.g. { NAME = "value" }')
    for key, item in value.items():
        if not isinstance(item, str):
            raise ValueError(f"{key!r} must be a string (quote numbers and booleans)")
    return dict(value)


def choice(*allowed: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(repr(a) for a in allowed)}")
        return value

    return check


def shard(value: Any) -> tuple[int, int]:
    """``K/N``: the K-th (1-based) of N parts."""
    parts = str(value).strip().split("/")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError("must be K/N, e.g. 1/4 for the first of four parts")
    k, n = (int(p) for p in parts)
    if n < 1 or not 1 <= k <= n:
        raise ValueError("must be K/N with 1 <= K <= N, e.g. 1/4 for the first of four parts")
    return k, n


def model_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    models = text_list(value)
    if not models:
        raise ValueError("must name at least one model")
    return models


OTEL_EXPORT = "otlp"  # -D aitest.otel=otlp: spans to an OTLP/HTTP collector (docs/telemetry.md)


def otel_problem(value: str) -> str | None:
    """Why ``value`` is not a target (None when it is): ``otlp`` needs the SDK installed."""
    if value == OTEL_EXPORT:
        try:
            import opentelemetry.exporter.otlp.proto.http.trace_exporter  # noqa: F401
            import opentelemetry.sdk.trace  # noqa: F401
        except ImportError:
            return "'otlp' needs the OpenTelemetry SDK and OTLP exporter: pip install 'behave-aitest[otel]'"
        return None
    if not value.endswith(".json"):
        return f"must be 'otlp' or a file name ending in .json (got {value!r})"
    return None


def otel_target(value: str) -> str:
    problem = otel_problem(value)
    if problem:
        raise ValueError(problem)
    return value


# Run-level knobs: settable in [tool.behave_aitest] and with -D aitest.<key>=value (the
# latter is what a CI job or a developer overrides).
