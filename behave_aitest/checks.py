"""Pure checks over turn records, shared by the Then steps.

Each check returns data (matching calls, a list of problems); the steps turn that into
an assertion whose message shows what actually happened.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .safetext import clip, plural

if TYPE_CHECKING:
    from .records import ToolCall, Turn

CALL_LIMIT = 1_000  # characters of one line of a tool call (arguments, result) in a failure message
INLINE = 100  # a value this short, on one line, stays on its label's line
BLOCK_LINES = 25  # lines of one value (a result, the arguments, the response) in a failure message


def calls_of(turns: Iterable[Turn]) -> list[ToolCall]:
    return [call for turn in turns for call in turn.tool_calls]


def name_matches(call: ToolCall, name: str) -> bool:
    """``transfer`` matches the tool on any server; ``bank.transfer`` only on ``bank``."""
    if call.name == name or call.qualified_name == name:
        return True
    return not call.name and call.provider_name == name


def calls_named(turns: Iterable[Turn], name: str) -> list[ToolCall]:
    return [c for c in calls_of(turns) if name_matches(c, name)]


def split_names(text: str) -> list[str]:
    """``"get_balance, transfer"`` -> ``["get_balance", "transfer"]``."""
    return [part.strip().strip('"') for part in text.split(",") if part.strip()]


def _same(wanted: Any, value: Any) -> bool:
    if isinstance(wanted, bool) or isinstance(value, bool):
        return wanted is value
    return bool(wanted == value)


def _lookup(arguments: Any, path: str) -> tuple[bool, Any]:
    value = arguments
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return False, None
    return True, value


def argument_problems(expected: Mapping[str, str], arguments: Any) -> list[str]:
    """Differences between a ``| argument | value |`` table and one call's arguments.

    Values compare as JSON where they parse (``500`` equals ``500.0``, ``true`` is
    True, ``{"a": 1}`` an object), else as text. A dotted name looks inside objects and
    lists (``to.account``, ``items.0``).
    """
    problems: list[str] = []
    for name, text in expected.items():
        found, value = _lookup(arguments, name)
        if not found:
            problems.append(f"{name}: missing")
            continue
        try:
            wanted: Any = json.loads(text)
        except (json.JSONDecodeError, TypeError):
            wanted = text
        if isinstance(wanted, str) and not isinstance(value, str):
            same = wanted == json.dumps(value, ensure_ascii=False)
        else:
            same = _same(wanted, value)
        if not same:
            problems.append(f"{name}: expected {text}, got {json.dumps(value, ensure_ascii=False)}")
    return problems


def is_subsequence(names: Sequence[str], calls: Sequence[ToolCall]) -> bool:
    """True when the tools ``names`` were called in this order (other calls may interleave)."""
    position = 0
    for call in calls:
        if position < len(names) and name_matches(call, names[position]):
            position += 1
    return position == len(names)


def mentions(text: str, phrase: str) -> bool:
    """Case-insensitive containment, with runs of whitespace treated as one space."""
    def squash(s: str) -> str:
        return re.sub(r"\s+", " ", s).casefold()

    return squash(phrase) in squash(text)


def readable(text: str) -> str:
    """``text`` as a person reads it: JSON (an object or a list) pretty-printed, indented;
    anything else as it is. Most MCP servers answer JSON, and on one line it is unreadable."""
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            return json.dumps(json.loads(stripped), indent=2, ensure_ascii=False)
        except ValueError:  # not JSON after all (or a NaN-free parse failed): shown as it is
            pass
    return text


def labelled(label: str, text: str, indent: str) -> list[str]:
    """``label: text`` on one line when ``text`` is short, else ``label:`` and ``text`` below
    it, indented, at most BLOCK_LINES lines of at most CALL_LIMIT characters each, the cut
    said (the JSON report keeps every text whole). Arguments can be megabytes, a result
    thousands of lines: a failure message must stay readable."""
    if not text.strip():
        return [f"{indent}{label}: (none)"]
    if "\n" not in text and len(text) <= INLINE:
        return [f"{indent}{label}: {text}"]
    lines = text.split("\n")
    shown = [f"{indent}  {clip(line, CALL_LIMIT)}" for line in lines[:BLOCK_LINES]]
    if len(lines) > BLOCK_LINES:
        shown.append(f"{indent}  … {plural(len(lines) - BLOCK_LINES, 'more line')} cut (the JSON report keeps the whole text)")
    return [f"{indent}{label}:", *shown]


def _call_lines(call: ToolCall) -> list[str]:
    """One tool call: ``- name(arguments)`` when the arguments are short, else ``- name`` and
    the arguments pretty-printed below; then its result, readable."""
    name = call.name or call.provider_name
    compact = call.raw_arguments if call.arguments is None else json.dumps(call.arguments, ensure_ascii=False)
    if "\n" not in compact and len(compact) <= INLINE:
        lines = [f"    - {name}({compact})"]
    else:
        pretty = compact if call.arguments is None else json.dumps(call.arguments, indent=2, ensure_ascii=False)
        lines = [f"    - {name}", *labelled("arguments", pretty, "        ")]
    lines += labelled("result (error)" if call.is_error else "result", readable(call.result), "        ")
    return lines


def describe(turns: Sequence[Turn], *, what: str = "this turn") -> str:
    """What the agent actually did: its tool calls and its answer (for failure messages),
    as readable, bounded, multi-line text: JSON pretty-printed, long values cut with a note."""
    calls = calls_of(turns)
    lines = [f"What the agent did in {what}:"]
    lines.append("  tools called:" if calls else "  tools called: none")
    for call in calls:
        lines += _call_lines(call)
    lines += labelled("response", turns[-1].response if turns else "", "  ")
    return "\n".join(lines)
