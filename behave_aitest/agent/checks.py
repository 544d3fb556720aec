"""Pure checks over turn records, shared by the Then steps.

Each check returns data (matching calls, a list of problems); the steps turn that into
an assertion whose message shows what actually happened.
"""

from __future__ import annotations

import fnmatch
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import StepUsageError
from ..text.patterns import Pattern, PatternError, compile_pattern
from ..text.safetext import clip, plural

if TYPE_CHECKING:
    from ..record.records import ToolCall, Turn

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
    doubled = f"  [doubled: {call.doubled}]" if getattr(call, "doubled", None) else ""  # a tool double answered
    if getattr(call, "reported", False):  # an external agent's own tool: seen only in its returned messages
        doubled += "  [reported by the agent]"
    if "\n" not in compact and len(compact) <= INLINE:
        lines = [f"    - {name}({compact}){doubled}"]
    else:
        pretty = compact if call.arguments is None else json.dumps(call.arguments, indent=2, ensure_ascii=False)
        lines = [f"    - {name}{doubled}", *labelled("arguments", pretty, "        ")]
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
    unreached = [t.tools_unreached for t in turns if getattr(t, "tools_unreached", None)]
    if unreached:  # an external agent whose MCP client is not pointed at our endpoints (docs/agents.md)
        lines.append(f"  note: {unreached[-1]}")
    lines += labelled("response", turns[-1].response if turns else "", "  ")
    return "\n".join(lines)


# --------------------------------------------------------------------------- argument checks
# The `| argument | check | value |` table of "called tool ... with:" and of a double's
# "when called with:". Parsed once, before anything runs, so a mistake in the table is an
# error naming its row, never a failure of the agent.

CHECKS = ("equals", "contains", "matches", "about", "any", "absent", "one of")
_NO_VALUE = ("any", "absent")
_ABOUT = re.compile(r"^\s*(?P<target>[-+]?[\d.eE+-]+?)\s*(?:±|\+/-|\+-)\s*(?P<tolerance>[\d.eE+-]+?)\s*(?P<percent>%)?\s*$")


class TableError(ValueError):
    """A mistake in a step's table, worded with the row it is in."""


@dataclass(frozen=True)
class ArgumentCheck:
    """One row of an argument table: which argument, how it is checked, against what."""

    argument: str  # a dotted path: "amount", "to.account", "entities.0.name"
    check: str  # one of CHECKS
    value: str  # as written in the table
    row: int = 0  # 1-based row of the table, for messages
    pattern: Pattern | None = None  # "matches"
    target: float = 0.0  # "about"
    tolerance: float = 0.0  # "about": absolute, already computed from a percentage
    choices: tuple[Any, ...] = ()  # "one of", parsed as JSON where they parse

    def expected(self) -> str:
        """How the row reads in a failure message: ``about 500 ± 1``, ``contains "paris"``."""
        if self.check in _NO_VALUE:
            return self.check
        return f"{self.check} {self.value}"


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return text


def _row_text(row: int, argument: str, check: str | None, value: str) -> str:
    cells = [argument, *([check] if check is not None else []), value]
    return f"table row {row} (| {' | '.join(cells)} |)"


def normalize_check(name: str) -> str:
    """``One_Of``, ``one-of``, ``ONE OF`` -> ``one of``; ``=``/``equal`` -> ``equals``."""
    key = re.sub(r"[\s_-]+", " ", name.strip().lower())
    return {"": "equals", "=": "equals", "==": "equals", "equal": "equals", "match": "matches", "contain": "contains"}.get(key, key)


def parse_about(text: str) -> tuple[float, float]:
    """``"500 ± 1"`` -> (500, 1); ``"500 ± 1%"`` -> (500, 5); ``+/-`` and ``+-`` also work."""
    found = _ABOUT.match(text)
    if found is None:
        raise StepUsageError(f"{text!r} is not 'number ± tolerance' (e.g. 500 ± 1, or 500 ± 1%; +/- works too)")
    try:
        target, tolerance = float(found["target"]), float(found["tolerance"])
    except ValueError:
        raise StepUsageError(f"{text!r} is not 'number ± tolerance' (e.g. 500 ± 1, or 500 ± 1%)") from None
    if not (math.isfinite(target) and math.isfinite(tolerance)) or tolerance < 0:
        raise StepUsageError(f"{text!r}: the number and the tolerance must be finite, the tolerance not negative")
    if found["percent"]:
        tolerance = abs(target) * tolerance / 100
    return target, tolerance


def parse_argument_check(row: int, argument: str, check: str | None, value: str) -> ArgumentCheck:
    """One table row as an :class:`ArgumentCheck`; a :class:`TableError` naming the row when wrong."""
    where = _row_text(row, argument, check, value)
    if not argument:
        raise TableError(f"{where}: the argument name is empty.")
    kind = normalize_check(check or "")
    if kind not in CHECKS:
        raise TableError(f"{where}: unknown check {check!r}. Use one of: {', '.join(CHECKS)}.")
    if kind in _NO_VALUE and value:
        raise TableError(f"{where}: the check {kind!r} takes no value; leave the value cell empty.")
    if kind == "matches":
        try:
            return ArgumentCheck(argument, kind, value, row, pattern=compile_pattern(value))
        except PatternError as exc:
            raise TableError(f"{where}: not a valid regular expression: {exc}.") from None
    if kind == "about":
        try:
            target, tolerance = parse_about(value)
        except ValueError as exc:
            raise TableError(f"{where}: {exc}.") from None
        return ArgumentCheck(argument, kind, value, row, target=target, tolerance=tolerance)
    if kind == "one of":
        choices = tuple(_json_or_text(part) for part in split_choices(value))
        if not choices:
            raise TableError(f"{where}: 'one of' needs values separated by commas, e.g. USD, EUR (\"Paris, France\" for one with a comma).")
        return ArgumentCheck(argument, kind, value, row, choices=choices)
    return ArgumentCheck(argument, kind, value, row)


def split_choices(value: str) -> list[str]:
    """The values of a ``one of`` cell: comma-separated, except inside double quotes, so
    ``"Paris, France", Rome`` is two values (each then compares as ``equals`` does)."""
    parts, current, quoted, escaped = [], [], False, False
    for char in value:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def parse_argument_table(headings: Sequence[str], rows: Sequence[Sequence[str]]) -> list[ArgumentCheck]:
    """A behave table as argument checks: ``| argument | value |`` or ``| argument | check | value |``.

    behave takes a table's first row as its headings: a table written without a heading
    row keeps that row as data.
    """
    names = [h.strip().lower() for h in headings]
    width = len(names)
    if width not in (2, 3):
        raise TableError("the table needs the columns | argument | value |, or | argument | check | value |.")
    data = [[c.strip() for c in r] for r in rows]
    if names != (["argument", "value"] if width == 2 else ["argument", "check", "value"]):
        data.insert(0, [h.strip() for h in headings])
    found = []
    for number, cells in enumerate(data, start=1):
        if width == 2:
            found.append(parse_argument_check(number, cells[0], None, cells[1]))
        else:
            found.append(parse_argument_check(number, cells[0], cells[1], cells[2]))
    return found


def _shown(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _equals(text: str, value: Any) -> bool:
    """Today's meaning of a value: JSON where it parses (500 equals 500.0), else text."""
    wanted = _json_or_text(text)
    if isinstance(wanted, str) and not isinstance(value, str):
        return wanted == _shown(value)
    return _same(wanted, value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def check_holds(check: ArgumentCheck, arguments: Any) -> tuple[bool, str]:
    """Whether one call's ``arguments`` pass ``check``, and the actual value as shown."""
    found, value = _lookup(arguments, check.argument)
    actual = _shown(value) if found else "(missing)"
    if check.check == "absent":
        return not found, actual
    if not found:
        return False, actual
    text = value if isinstance(value, str) else _shown(value)
    if check.check == "any":
        ok = True
    elif check.check == "equals":
        ok = _equals(check.value, value)
    elif check.check == "contains":
        ok = mentions(text, check.value)
    elif check.check == "matches":
        ok = check.pattern is not None and check.pattern.search(text) is not None
    elif check.check == "about":
        number = _number(value)
        ok = number is not None and abs(number - check.target) <= check.tolerance + 1e-9 * max(1.0, abs(check.target))
    else:  # one of
        ok = any(_equals(_shown(choice) if not isinstance(choice, str) else choice, value) for choice in check.choices)
    return ok, actual


def arguments_hold(checks: Sequence[ArgumentCheck], arguments: Any) -> bool:
    return all(check_holds(c, arguments)[0] for c in checks)


def check_lines(checks: Sequence[ArgumentCheck], arguments: Any, indent: str = "    ") -> list[str]:
    """Per argument: ✓/✗, the argument, its check and expected value, and the actual value."""
    lines = []
    width = max((len(c.argument) for c in checks), default=0)
    for c in checks:
        ok, actual = check_holds(c, arguments)
        lines.append(f"{indent}{'✓' if ok else '✗'} {c.argument.ljust(width)}  {clip(c.expected(), CALL_LIMIT)}  → actual: {clip(actual, CALL_LIMIT)}")
    return lines


def arguments_report(name: str, checks: Sequence[ArgumentCheck], calls: Sequence[ToolCall]) -> str:
    """Why no call of ``name`` passed: every call, each argument with check, expected and actual."""
    lines = []
    for number, call in enumerate(calls, start=1):
        arguments = call.arguments if call.arguments is not None else {}
        lines.append(f"  call {number} of {len(calls)} to {name!r}:")
        lines += check_lines(checks, arguments)
    return "\n".join(lines)


# --------------------------------------------------------------------------- trajectories and invariants


def missing_in_any_order(names: Sequence[str], calls: Sequence[ToolCall]) -> list[str]:
    """The listed tools not called (a tool listed twice needs two calls); order is free."""
    left = list(calls)
    missing = []
    for name in names:
        found = next((c for c in left if name_matches(c, name)), None)
        if found is None:
            missing.append(name)
        else:
            left.remove(found)
    return missing


def calls_outside(names: Sequence[str], calls: Sequence[ToolCall]) -> list[ToolCall]:
    """Calls of a tool that is not one of ``names``."""
    return [c for c in calls if not any(name_matches(c, n) for n in names)]


def call_counts(calls: Sequence[ToolCall]) -> dict[str, int]:
    """How often each tool was called, by name; a tool of two servers counts apart, as ``server.tool``."""
    servers: dict[str, set[str | None]] = {}
    for call in calls:
        servers.setdefault(call.name or call.provider_name, set()).add(call.server)
    counts: dict[str, int] = {}
    for call in calls:
        name = call.name or call.provider_name
        key = call.qualified_name if len(servers[name]) > 1 else name
        counts[key] = counts.get(key, 0) + 1
    return counts


def check_glob(pattern: str) -> str:
    """``pattern`` if it is a usable glob on tool names (``*``, ``?``, ``[abc]``), else ValueError."""
    if not pattern.strip():
        raise StepUsageError("the tool name pattern is empty; write e.g. \"delete*\".")
    depth = 0
    for char in pattern:
        if char == "[":
            depth += 1
        elif char == "]" and depth:
            depth -= 1
    if depth:
        raise StepUsageError(f"{pattern!r} is not a valid pattern: a '[' is not closed by ']'.")
    return pattern


def calls_matching_glob(pattern: str, calls: Sequence[ToolCall]) -> list[ToolCall]:
    """Calls whose tool name (or ``server.tool``) matches the glob, case-sensitively."""
    return [
        c for c in calls
        if fnmatch.fnmatchcase(c.name or c.provider_name, pattern) or (c.server and fnmatch.fnmatchcase(c.qualified_name, pattern))
    ]


def argument_values(arguments: Any, path: str = "") -> list[tuple[str, str]]:
    """Every leaf value of the arguments as ``(dotted path, text)``: strings as they are,
    numbers and booleans as JSON. A call whose arguments did not parse gives its raw text."""
    if isinstance(arguments, Mapping):
        return [pair for k, v in arguments.items() for pair in argument_values(v, f"{path}.{k}" if path else str(k))]
    if isinstance(arguments, list):
        return [pair for i, v in enumerate(arguments) for pair in argument_values(v, f"{path}.{i}" if path else str(i))]
    if arguments is None and not path:
        return []
    return [(path, arguments if isinstance(arguments, str) else _shown(arguments))]


def arguments_matching(pattern: Pattern, calls: Sequence[ToolCall]) -> list[str]:
    """``tool: path = value`` for every argument value that the regex finds a match in."""
    found = []
    for call in calls:
        values = argument_values(call.arguments) if call.arguments is not None else [("(raw arguments)", call.raw_arguments)]
        for path, text in values:
            if pattern.search(text):
                found.append(f"{call.name or call.provider_name}: {path} = {clip(text, INLINE)}")
    return found
