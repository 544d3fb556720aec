"""The cassette file: its format and version, its shape checked field by field when read (a
hand-edited or truncated file is named, with the field), written whole or not at all.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...text.safetext import json_safe

FORMAT = "behave-aitest cassette"
VERSION = 2  # 2: each request stores its new messages and refers to an earlier call for the rest
READABLE_VERSIONS = (1, 2)  # version 1 stored every request whole

# --------------------------------------------------------------------------- files


TEMPORARY = re.compile(r"^\..+\.json\.[0-9a-z_]+\.tmp$")  # what write_atomic leaves when interrupted


_SURROGATE = re.compile("[\ud800-\udfff]")


def dumps(document: Mapping[str, Any]) -> str:
    """Readable JSON; a lone surrogate (text cut mid-character by a server or model) is
    written as its ``\\udxxx`` escape, which JSON reads back as the same character, rather
    than making the UTF-8 write fail and the recording lost."""
    try:
        text = json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    except ValueError:  # a NaN or an infinity (say, in a tool's arguments): valid JSON says null
        text = json.dumps(json_safe(document, surrogates=False), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


class CassetteFileError(Exception):
    """A cassette file that cannot be used (not JSON, not a cassette, another format version, wrong shape)."""


class CassetteWriteError(Exception):
    """A finished recording could not be written (read-only folder, full disk): one line naming
    the file and the reason, for the runtime to make the conversation's error."""


class _BadShape(Exception):
    """A field of a cassette that does not have the shape this version writes."""


def _need(ok: bool, where: str, what: str) -> None:
    if not ok:
        raise _BadShape(f"{where} must be {what}")


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    """None or a finite number (JSON readers accept NaN and Infinity, which int() and the reports do not)."""
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value))


def _text(value: Any) -> bool:
    return value is None or isinstance(value, str)


def check_shape(document: Mapping[str, Any]) -> None:
    """Raise :class:`_BadShape` naming the first field (``interactions[2].response.content``)
    that is not what a replay or ``prune`` reads: hand edits and merges produce valid JSON of
    the wrong shape, which must not surface as an AttributeError or blame the model."""
    for key in ("feature", "feature_name", "scenario", "flow_model"):
        _need(_text(document.get(key)), key, "a string")
    _need(isinstance(document.get("session", False), bool), "session", "true or false")
    _need(_whole(document.get("run", 1)) and document.get("run", 1) >= 1, "run", "a whole number of at least 1")
    _need(isinstance(document.get("recorded", {}), (dict, type(None))), "recorded", "an object")
    schemas = document.get("tool_schemas")
    schemas = {} if schemas is None else schemas
    _need(isinstance(schemas, dict), "tool_schemas", "an object")
    for key, value in schemas.items():
        _need(isinstance(value, list), f"tool_schemas.{key}", "a list")
    interactions = document.get("interactions")
    _need(isinstance(interactions, list), "interactions", "a list")
    lengths: dict[int, int] = {}  # call -> messages in its whole request
    for index, interaction in enumerate(interactions):
        where = f"interactions[{index}]"
        _need(isinstance(interaction, dict), where, "an object")
        call = interaction.get("call", index + 1)
        _need(_whole(call) and call not in lengths, f"{where}.call", "a whole number no earlier call has")
        request = interaction.get("request")
        _need(isinstance(request, dict), f"{where}.request", "an object")
        _need(_text(request.get("model")), f"{where}.request.model", "a string")
        messages = request.get("messages", [])
        _need(isinstance(messages, list), f"{where}.request.messages", "a list")
        for number, message in enumerate(messages):
            _need(isinstance(message, dict), f"{where}.request.messages[{number}]", "an object")
        count = 0
        continues = request.get("messages_from")
        if continues is not None:
            _need(isinstance(continues, dict), f"{where}.request.messages_from", "an object")
            _need(_whole(continues.get("call")) and continues["call"] in lengths, f"{where}.request.messages_from.call", "the number of an earlier call")
            count = continues.get("count")
            limit = lengths[continues["call"]]
            _need(_whole(count) and 0 <= count <= limit, f"{where}.request.messages_from.count", f"a whole number from 0 to {limit}")
        lengths[call] = count + len(messages)
        tools = request.get("tools")
        _need(tools is None or isinstance(tools, list) or (isinstance(tools, str) and tools in schemas), f"{where}.request.tools", "a list or a key of tool_schemas")
        _need(isinstance(request.get("params", {}), dict), f"{where}.request.params", "an object")
        response = interaction.get("response")
        _need(isinstance(response, dict), f"{where}.response", "an object")
        for key in ("content", "finish_reason", "model"):
            _need(_text(response.get(key)), f"{where}.response.{key}", "a string")
        calls = response.get("tool_calls") or []
        _need(isinstance(calls, list), f"{where}.response.tool_calls", "a list")
        for number, call_ in enumerate(calls):
            _need(isinstance(call_, dict), f"{where}.response.tool_calls[{number}]", "an object")
            for key in ("id", "name", "arguments"):
                _need(_text(call_.get(key)), f"{where}.response.tool_calls[{number}].{key}", "a string")
        usage = response.get("usage") or {}
        _need(isinstance(usage, dict), f"{where}.response.usage", "an object")
        for key in ("input_tokens", "output_tokens"):
            _need(_number(usage.get(key)), f"{where}.response.usage.{key}", "a number")
        _need(_number(response.get("cost_usd")), f"{where}.response.cost_usd", "a number")
    tools_part = document.get("recorded_tools")
    if tools_part is None:
        return
    _need(isinstance(tools_part, dict), "recorded_tools", "an object")
    servers = tools_part.get("servers") or {}
    _need(isinstance(servers, dict), "recorded_tools.servers", "an object")
    for name, listed in servers.items():
        _need(isinstance(listed, list), f"recorded_tools.servers.{name}", "a list")
        for number, tool in enumerate(listed):
            _need(isinstance(tool, dict) and isinstance(tool.get("name"), str), f"recorded_tools.servers.{name}[{number}].name", "a string")
    calls = tools_part.get("calls") or []
    _need(isinstance(calls, list), "recorded_tools.calls", "a list")
    for number, call_ in enumerate(calls):
        where = f"recorded_tools.calls[{number}]"
        _need(isinstance(call_, dict), where, "an object")
        for key in ("server", "tool", "result"):
            _need(isinstance(call_.get(key), str), f"{where}.{key}", "a string")
        _need(isinstance(call_.get("arguments", {}), dict), f"{where}.arguments", "an object")


def load(path: Path, shown: str | None = None) -> dict[str, Any]:
    """A cassette file, checked: readable JSON, this format, a version this code reads, the right shape."""
    shown = shown or str(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CassetteFileError(f"{shown}: cannot be read as a cassette: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise CassetteFileError(f"{shown}: cannot be read as a cassette: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise CassetteFileError(f"{shown}: not a behave-aitest cassette (no \"format\": \"{FORMAT}\").")
    if document.get("version") not in READABLE_VERSIONS:
        raise CassetteFileError(
            f"{shown}: cassette format version {document.get('version')!r}; this behave-aitest reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}. Re-record it with -D aitest.cassette=record (or upgrade behave-aitest)."
        )
    try:
        check_shape(document)
    except _BadShape as exc:
        raise CassetteFileError(f"{shown}: not a valid cassette: {exc}. Re-record it with -D aitest.cassette=record.") from None
    return document
