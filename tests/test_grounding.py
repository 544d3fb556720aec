"""Numbers grounded in tool results: the pure rules (behave_aitest.agent.grounding), fast.

The step itself runs end to end in tests/test_meaning_safety.py."""

from __future__ import annotations

import pytest

from behave_aitest.agent.grounding import ground, numbers_in

TOOLS = [
    "checking: $1,500.00\nsavings: $3,217.45",
    "Forecast 2026-12-08: 80% chance of rain, wind 12 km/h, at 14:30",
    "Added task-3; invoice INV-2041",
]
USER = ["Can I spend $250 this week?"]


@pytest.mark.parametrize(
    "answer",
    [
        "You have $1,500 in checking and 3217.45 in savings.",
        "About 1.5k in checking and $3.2k in savings.",  # less precise: the tool's number rounded
        "USD 1500, 1500 dollars, 1,500.00 EUR",
        "On December 8, 2026 there is a 0.8 chance of rain at 2:30 pm.",
        "On 8 Dec: 80 percent.",
        "Rain on 12/08/2026.",
        "You can spend the $250 you asked about.",  # the user's number is known
        "1. Checking $1500\n2. Savings $3,217",  # list markers are layout
        "I used mp3 and gpt4 for task-3 and INV-2041.",  # digits inside names are not numbers
    ],
)
def test_numbers_written_differently_are_the_same(answer: str) -> None:
    verdict = ground(answer, TOOLS, USER)
    assert verdict.ok, verdict.summary()
    assert verdict.numbers


@pytest.mark.parametrize(
    ("answer", "ungrounded"),
    [
        ("You have $9,999.", ["$9,999"]),
        ("In total you have $4,717.45.", ["$4,717.45"]),  # a sum the agent worked out
        ("Savings: $3,200.", ["$3,200"]),  # not 3,217.45 at that precision
        ("Rain on 9 Dec and on December 8.", ["9 Dec"]),
        ("See task-9.", ["task-9"]),
        ("It is 90% likely, 90% sure.", ["90%"]),  # named once
    ],
)
def test_numbers_from_nowhere_are_named(answer: str, ungrounded: list[str]) -> None:
    verdict = ground(answer, TOOLS, USER)
    assert [n.text for n in verdict.ungrounded] == ungrounded
    assert not verdict.ok and verdict.summary().startswith(f"{len(ungrounded)} of ")


def test_no_numbers_passes_and_says_so() -> None:
    verdict = ground("Both accounts look fine.", TOOLS, USER)
    assert verdict.ok and verdict.summary() == "no numbers in the response"


def test_what_a_number_means() -> None:
    date, time, money, percent = numbers_in("07/12/2026 at 10:05 am: -$5.00, 12%")
    assert date.dates == {(2026, 7, 12), (2026, 12, 7)}
    assert time.minutes == {605}
    assert (money.value, str(money.quantum)) == (5, "0.01")
    assert percent.percent and percent.value == 12
