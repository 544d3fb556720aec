"""Text safety for what we print and write: step messages, reports and log noise.

Model answers, tool names, tool arguments and MCP servers' stderr are written by someone
else, and they end up in places with rules of their own:

- behave's console output, which a CI system reads: a raw ANSI sequence repaints the log,
  a line starting with ``::`` is a GitHub Actions workflow command (``::error ...`` makes a
  spoofed annotation);
- JUnit XML, which must not hold control characters (XML 1.0 forbids most of them; one ESC
  from a progress bar makes the whole file unreadable for the CI's test tab);
- UTF-8 files: a lone surrogate (``"\\ud800"``, from a server that cuts strings by UTF-16
  length) cannot be encoded, and one such character would cost the whole report;
- JSON with ``allow_nan=False``: ``NaN`` is not JSON, and a page whose embedded data holds it
  stops working.

:func:`message` makes one text safe for a step message (escaped, capped); :func:`json_safe`
makes report data encodable. Standard library only: the formatters stay cheap to load.
"""

from __future__ import annotations

import json
import logging
import math
import re
from typing import Any

# Caps for step messages (console, JUnit XML, the report's step message): a server writing
# 5 MB of stderr on one line must not give a 5 MB console. The whole texts (tool arguments,
# results) stay in the JSON report's turns.
LINE_LIMIT = 2_000  # characters of one line of a message
MESSAGE_LIMIT = 20_000  # characters of a whole message

# C0 controls except tab and newline, DEL, C1 controls (0x9b is a one-byte CSI), lone
# surrogates, and the two non-characters XML 1.0 forbids.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
# A line that a CI runner would read as a workflow command (GitHub: "::name ...::").
_COMMAND = re.compile(r"^([ \t]*)::", re.MULTILINE)
_SURROGATE = re.compile("[\ud800-\udfff]")
_NAMED = {"\r": "\\r", "\x0b": "\\v", "\x0c": "\\f"}


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    if "\ud800" <= char <= "\udfff":
        return "\ufffd"  # not printable as anything meaningful; never encodable
    return _NAMED.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def escape(text: str) -> str:
    """``text`` with control characters shown as ``\\x1b``-style escapes, lone surrogates as
    U+FFFD and the first colon of a line starting with ``::`` as ``\\x3a``: nothing in it can
    drive a terminal, a CI log or break XML. Tabs and newlines stay."""
    text = _UNSAFE.sub(_escape, text)
    if "::" in text:
        text = _COMMAND.sub(r"\1\\x3a:", text)
    return text


def clip(text: str, limit: int, what: str = "characters") -> str:
    """``text`` cut to about ``limit`` characters, keeping its start and its end (an error's
    cause is often at the end: the last line of a stderr tail)."""
    if len(text) <= limit:
        return text
    half = max(limit // 2, 1)
    return f"{text[:half]} … [{len(text) - 2 * half} {what} cut] … {text[-half:]}"


def message(text: str, line_limit: int = LINE_LIMIT, limit: int = MESSAGE_LIMIT) -> str:
    """A step message safe to print and to put in JUnit XML: escaped (see :func:`escape`),
    every line capped at ``line_limit`` characters, the whole at ``limit``."""
    text = escape(text)
    if len(text) > line_limit:
        text = "\n".join(clip(line, line_limit) for line in text.split("\n"))
    return clip(text, limit)


def json_safe(value: Any, surrogates: bool = True) -> Any:
    """A copy of JSON-like ``value`` that ``json.dumps(..., allow_nan=False)`` accepts and
    UTF-8 can encode: non-finite numbers become None (unknown), lone surrogates U+FFFD
    (unless ``surrogates`` is False: a cassette escapes them instead, to replay them exactly).
    Containers without anything to change are returned as they are."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value) if surrogates and _SURROGATE.search(value) else value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {json_safe(k, surrogates) if isinstance(k, str) else k: json_safe(v, surrogates) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v, surrogates) for v in value]
    return value


# Loggers that print request URLs at INFO ("HTTP Request: POST http://user:pass@host/mcp?token=...").
# behave captures logging and prints it under a failing scenario, and in JUnit XML.
HTTP_LOGGERS = ("httpx", "httpx2", "httpcore", "httpcore2")


def quiet_http_logs() -> None:
    """Keep the HTTP clients' request lines (which quote URLs with passwords and tokens) out of
    behave's captured log: only their warnings and errors are kept."""
    for name in HTTP_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)


def dumps(value: Any) -> str:
    """Compact JSON of ``value`` that is valid JSON (``allow_nan=False``: no ``NaN``) and that
    UTF-8 can encode (no lone surrogate). The usual case costs one ``json.dumps``."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:  # a NaN or an infinity somewhere: unknown, written as null
        text = json.dumps(json_safe(value), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


def plural(n: Any, word: str, many: str | None = None) -> str:
    """``n`` and the word, in the singular for exactly one: "1 feature", "2 features",
    "1 retry", "3 retries" (``many`` for an irregular plural). The one rule for every count
    our messages, the HTML report (its ``plural`` filter) and the Markdown show."""
    count = int(n or 0)
    return f"{count} {word if count == 1 else (many or word + 's')}"
