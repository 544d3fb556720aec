"""Numbers grounded in tool results: every number an answer states must come from somewhere.

A banking agent that answers "You have $9,999" when the tool said $1,500 passes every
"mentions" check that does not name the number. This check reads the numbers of an answer
(amounts, counts, percentages, dates, times) and looks for each in the conversation's tool
results and in what the user said. Deterministic: no model, no embedding.

The same number written differently counts as the same: ``$1,500`` = ``1500.00`` =
``1.5k`` = ``USD 1500``; ``80%`` = ``0.8``; ``2026-12-07`` = ``December 7, 2026`` =
``7 Dec``; ``14:30`` = ``2:30 pm``. A number written with less precision than the tool's
counts as that number rounded (``$3,217`` and ``$3.2k`` for 3,217.45; not ``$3,200``).
What it does not do: numbers written as words ("two"), sums and differences the agent
worked out (a total is a number no tool said: ground it in a user message, or use the
judge), units (``5 km`` and ``5 miles`` are both 5).

Pure functions over strings; the step gives the texts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"), ("may",), ("june", "jun"),
            ("july", "jul"), ("august", "aug"), ("september", "sep", "sept"), ("october", "oct"),
            ("november", "nov"), ("december", "dec"),
        ],
        start=1,
    )
    for name in names
}
_MONTH = r"(?P<month>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_ORD = r"(?:st|nd|rd|th)?"

# One alternation, tried left to right at each position: dates and times before plain
# numbers, so "2026-12-07" is one date, not 2026, 12 and 7.
_TOKEN = re.compile(
    r"(?P<iso>(?<![\w.])(?P<iy>\d{4})-(?P<im>\d{1,2})-(?P<id>\d{1,2})(?![\d])(?:T[\d:.]+Z?)?)"
    r"|(?P<slash>(?<![\w./])(?P<sa>\d{1,2})/(?P<sb>\d{1,2})/(?P<sy>\d{4}|\d{2})(?![\d/]))"
    rf"|(?P<md>\b{_MONTH.replace('month', 'mdm')}\s+(?P<mdd>\d{{1,2}}){_ORD}\b(?:,?\s+(?P<mdy>\d{{4}})\b)?)"
    rf"|(?P<dm>(?<![\w.,])(?P<dmd>\d{{1,2}}){_ORD}\s+(?:of\s+)?{_MONTH.replace('month', 'dmm')}(?![a-z])(?:,?\s+(?P<dmy>\d{{4}})\b)?)"
    r"|(?P<time>(?<![\w.:])(?P<th>\d{1,2}):(?P<tm>\d{2})(?::\d{2})?(?![\d:])(?:\s*(?P<ampm>[ap])\.?m\b\.?)?)"
    r"|(?P<id_>\b[A-Za-z][A-Za-z0-9]*[-_#]\d[\w-]*)"
    r"|(?P<glued>(?<=[A-Za-z])\d[\d.,]*)"
    r"|(?P<num>(?<![\w.])(?P<cur>[$€£¥]|(?:USD|EUR|GBP)\s?)?(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<dec>\d+))?(?![\d])"
    r"(?:\s?(?P<suffix>k|K|M|bn|thousand|million|billion)(?![A-Za-z]))?(?:\s?(?P<pct>%|percent\b|per cent\b))?)",
    re.IGNORECASE,
)
# A numbered list's marker ("1. ", "2) ") at the start of a line is layout, not a number.
_LIST_MARKER = re.compile(r"^[ \t]*(?:[-*][ \t]+)?\d+[.)][ \t]+", re.MULTILINE)
_MULTIPLIERS = {"k": 1000, "thousand": 1000, "m": 1_000_000, "million": 1_000_000, "bn": 1_000_000_000, "billion": 1_000_000_000}


@dataclass(frozen=True)
class Number:
    """One number as written (``text``) and what it means.

    ``kind`` is "number" (``value``, ``quantum``: the precision it was written with,
    ``percent``), "date" (``dates``: the (year or None, month, day) it may mean: 07/12/2026
    is ambiguous), "time" (``minutes``: after midnight, both readings without am/pm) or
    "id" (``text`` compared as written, case-insensitive: ``task-3``, ``INV-2041``)."""

    text: str
    kind: str
    value: Decimal = Decimal(0)
    quantum: Decimal = Decimal(1)
    percent: bool = False
    dates: frozenset[tuple[int | None, int, int]] = frozenset()
    minutes: frozenset[int] = frozenset()


def numbers_in(text: str) -> list[Number]:
    """Every number of ``text``, in order (numbered-list markers left out)."""
    text = _LIST_MARKER.sub(lambda m: " " * len(m.group(0)), text or "")
    found: list[Number] = []
    for match in _TOKEN.finditer(text):
        number = _number(match)
        if number is not None:
            found.append(number)
    return found


def _number(m: re.Match[str]) -> Number | None:
    g = m.groupdict()
    text = m.group(0).strip()
    if g["iso"]:
        return _date(text, [(int(g["iy"]), int(g["im"]), int(g["id"]))])
    if g["slash"]:
        a, b, y = int(g["sa"]), int(g["sb"]), int(g["sy"])
        year = y + 2000 if y < 100 else y
        return _date(text, [(year, a, b), (year, b, a)])  # 07/12 is July 12 or 7 December
    if g["md"]:
        return _date(text, [(int(g["mdy"]) if g["mdy"] else None, _MONTHS[g["mdm"].lower()], int(g["mdd"]))])
    if g["dm"]:
        return _date(text, [(int(g["dmy"]) if g["dmy"] else None, _MONTHS[g["dmm"].lower()], int(g["dmd"]))])
    if g["time"]:
        hour, minute = int(g["th"]), int(g["tm"])
        if hour > 23 or minute > 59:
            return None
        if g["ampm"]:
            hour = hour % 12 + (12 if g["ampm"].lower() == "p" else 0)
            readings = {hour * 60 + minute}
        else:
            readings = {hour * 60 + minute} | ({(hour + 12) * 60 + minute} if 1 <= hour < 12 else set())
        return Number(text, "time", minutes=frozenset(readings))
    if g["id_"]:
        return Number(text, "id")
    if g["glued"]:
        return None  # part of a name: mp3, gpt4, A1
    digits = g["int"].replace(",", "")
    decimals = g["dec"] or ""
    try:
        value = Decimal(f"{digits}.{decimals}" if decimals else digits)
    except InvalidOperation:  # pragma: no cover - the regex only lets digits through
        return None
    multiplier = Decimal(_MULTIPLIERS.get((g["suffix"] or "").lower(), 1))
    quantum = Decimal(1).scaleb(-len(decimals)) * multiplier
    return Number(text, "number", value=value * multiplier, quantum=quantum, percent=bool(g["pct"]))


def _date(text: str, readings: Iterable[tuple[int | None, int, int]]) -> Number | None:
    valid = frozenset((y, mo, d) for y, mo, d in readings if 1 <= mo <= 12 and 1 <= d <= 31)
    return Number(text, "date", dates=valid) if valid else None


# --------------------------------------------------------------------------- matching


@dataclass
class Known:
    """What the conversation said: the numbers of its tool results and user messages."""

    values: set[Decimal] = field(default_factory=set)
    dates: set[tuple[int | None, int, int]] = field(default_factory=set)
    minutes: set[int] = field(default_factory=set)
    texts: list[str] = field(default_factory=list)  # casefolded, for ids

    @classmethod
    def of(cls, texts: Iterable[str]) -> Known:
        known = cls()
        for text in texts:
            known.texts.append((text or "").casefold())
            for number in numbers_in(text):
                if number.kind == "number":
                    known.values.add(number.value)
                    if number.percent:
                        known.values.add(number.value / 100)
                elif number.kind == "date":
                    known.dates |= number.dates
                    known.values |= {Decimal(y) for y, _, _ in number.dates if y is not None}
                    known.values |= {Decimal(d) for _, _, d in number.dates}
                elif number.kind == "time":
                    known.minutes |= number.minutes
        return known

    def holds(self, number: Number) -> bool:
        """Whether ``number`` is one the conversation said (see the module's rules)."""
        if number.kind == "id":
            return number.text.casefold() in "\n".join(self.texts)
        if number.kind == "time":
            return bool(number.minutes & self.minutes)
        if number.kind == "date":
            return any(_same_date(d, k) for d in number.dates for k in self.dates)
        wanted = {number.value, number.value / 100} if number.percent else {number.value}
        return any(_rounds_to(k, number.quantum) in wanted for k in self.values)


def _same_date(said: tuple[int | None, int, int], known: tuple[int | None, int, int]) -> bool:
    return said[1:] == known[1:] and (said[0] is None or known[0] is None or said[0] == known[0])


def _rounds_to(value: Decimal, quantum: Decimal) -> Decimal:
    """``value`` written at the precision ``quantum`` (3217.45 at 1 -> 3217; at 100 -> 3200)."""
    if quantum <= 0:  # pragma: no cover
        return value
    return (value / quantum).quantize(Decimal(1), rounding=ROUND_HALF_UP) * quantum


@dataclass(frozen=True)
class Grounding:
    """The verdict on one answer: its numbers, and those no tool result or user message holds."""

    numbers: list[Number]
    ungrounded: list[Number]

    @property
    def ok(self) -> bool:
        return not self.ungrounded

    def summary(self) -> str:
        if not self.numbers:
            return "no numbers in the response"
        if self.ok:
            return f"all {_count(len(self.numbers))} grounded"
        shown = ", ".join(n.text for n in self.ungrounded)
        return f"{len(self.ungrounded)} of {_count(len(self.numbers))} ungrounded: {shown}"


def _count(n: int) -> str:
    return f"{n} number" if n == 1 else f"{n} numbers"


def ground(answer: str, tool_results: Sequence[str], user_messages: Sequence[str]) -> Grounding:
    """Which numbers of ``answer`` appear in no tool result and no user message.

    A number repeated in the answer is named once. ``tool_results`` must not be empty: the
    step says there is nothing to ground in before it asks."""
    known = Known.of([*tool_results, *user_messages])
    numbers = numbers_in(answer)
    ungrounded: list[Number] = []
    seen: set[str] = set()
    for number in numbers:
        if not known.holds(number) and number.text not in seen:
            seen.add(number.text)
            ungrounded.append(number)
    return Grounding(numbers, ungrounded)
