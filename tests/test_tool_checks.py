"""Pure tests of the argument matchers, trajectories and invariants (behave_aitest/checks.py)
and of the double rules (behave_aitest/doubles.py): parsing and matching, no behave run."""

from __future__ import annotations

import re

import pytest

from behave_aitest.agent import checks
from behave_aitest.record.records import ToolCall


def call(name: str, arguments: object, server: str | None = "bank") -> ToolCall:
    return ToolCall("id", name, server, name, arguments, "")


def table(*rows: tuple[str, str, str]) -> list[checks.ArgumentCheck]:
    return checks.parse_argument_table(["argument", "check", "value"], [list(r) for r in rows])


ARGS = {
    "amount": 500.4,
    "memo": "Trip to PARIS in May",
    "to_account": "savings",
    "reference": "R-1",
    "currency": "EUR",
    "entities": [{"name": "Ada", "tags": ["x"]}],
    "flag": True,
    "count": 3,
    "city": "Paris, France",
}


@pytest.mark.parametrize(
    ("row", "holds"),
    [
        (("amount", "about", "500 ± 1"), True),
        (("amount", "about", "500 ± 0.1"), False),
        (("amount", "about", "500 ± 0.1%"), True),
        (("amount", "about", "510 +/- 2%"), True),
        (("amount", "about", "510 +- 1%"), False),
        (("memo", "about", "1 ± 1"), False),  # not a number
        (("memo", "contains", "paris"), True),
        (("memo", "contains", "trip  to"), True),  # whitespace runs are one space
        (("memo", "contains", "rome"), False),
        (("entities", "contains", "ada"), True),  # on the JSON of a non-text value
        (("to_account", "matches", "^sav"), True),
        (("to_account", "matches", "^check"), False),
        (("count", "matches", r"^\d$"), True),
        (("reference", "any", ""), True),
        (("fee", "any", ""), False),
        (("fee", "absent", ""), True),
        (("memo", "absent", ""), False),
        (("currency", "one of", "USD, EUR"), True),
        (("currency", "one of", "USD, GBP"), False),
        (("count", "one of", "1, 3"), True),
        (("city", "one of", '"Paris, France", Rome'), True),  # a quoted value may hold a comma
        (("city", "one of", "Paris, France"), False),  # unquoted, that is two values
        (("entities.0.name", "equals", "Ada"), True),
        (("entities.0.tags.0", "equals", "x"), True),
        (("entities.1.name", "absent", ""), True),
        (("amount", "equals", "500.4"), True),
        (("flag", "equals", "true"), True),
        (("count", "equals", "3.0"), True),
        (("flag", "equals", "1"), False),  # True is not 1
        (("amount", "", "500.4"), True),  # an empty check cell is equals
        (("currency", "One_Of", "EUR"), True),  # spelled loosely
    ],
)
def test_argument_checks(row: tuple[str, str, str], holds: bool) -> None:
    assert checks.arguments_hold(table(row), ARGS) is holds


def test_two_column_tables_keep_todays_meaning_and_a_table_without_headings() -> None:
    parsed = checks.parse_argument_table(["amount", "500"], [["memo", "x"]])
    assert [(c.argument, c.check, c.value) for c in parsed] == [("amount", "equals", "500"), ("memo", "equals", "x")]
    assert checks.arguments_hold(parsed, {"amount": 500.0, "memo": "x"})


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (("amount", "roughly", "500"), "table row 1 (| amount | roughly | 500 |): unknown check 'roughly'. Use one of: equals, contains, matches, about, any, absent, one of."),
        (("amount", "about", "five ± 1"), "table row 1 (| amount | about | five ± 1 |): 'five ± 1' is not 'number ± tolerance'"),
        (("amount", "about", "500"), "is not 'number ± tolerance'"),
        (("amount", "about", "500 ± -1"), "the tolerance not negative"),
        (("memo", "matches", "(unclosed"), "table row 1 (| memo | matches | (unclosed |): not a valid regular expression"),
        (("memo", "any", "x"), "the check 'any' takes no value"),
        (("currency", "one of", " , "), "'one of' needs values"),
        (("", "equals", "x"), "the argument name is empty"),
    ],
)
def test_bad_rows_name_the_row(row: tuple[str, str, str], message: str) -> None:
    with pytest.raises(checks.TableError) as info:
        table(row)
    assert message in str(info.value)


def test_bad_table_shape() -> None:
    with pytest.raises(checks.TableError, match=r"\| argument \| check \| value \|"):
        checks.parse_argument_table(["a", "b", "c", "d"], [])


def test_the_failure_report_lists_each_argument_per_call() -> None:
    rows = table(("amount", "about", "500 ± 1"), ("memo", "contains", "paris"), ("fee", "absent", ""))
    text = checks.arguments_report("transfer", rows, [call("transfer", {"amount": 502, "memo": "Paris", "fee": 1}), call("transfer", {"amount": 500})])
    assert text.splitlines() == [
        "  call 1 of 2 to 'transfer':",
        "    ✗ amount  about 500 ± 1  → actual: 502",
        "    ✓ memo    contains paris  → actual: \"Paris\"",
        "    ✗ fee     absent  → actual: 1",
        "  call 2 of 2 to 'transfer':",
        "    ✓ amount  about 500 ± 1  → actual: 500",
        "    ✗ memo    contains paris  → actual: (missing)",
        "    ✓ fee     absent  → actual: (missing)",
    ]


def test_trajectories() -> None:
    calls = [call("get_balance", {}), call("transfer", {}), call("get_balance", {})]
    assert checks.missing_in_any_order(["transfer", "get_balance"], calls) == []
    assert checks.missing_in_any_order(["transfer", "transfer"], calls) == ["transfer"]
    assert checks.missing_in_any_order(["bank.transfer", "get_transactions"], calls) == ["get_transactions"]
    assert [c.name for c in checks.calls_outside(["get_balance"], calls)] == ["transfer"]
    assert checks.calls_outside(["get_balance", "bank.transfer"], calls) == []
    assert checks.call_counts(calls) == {"get_balance": 2, "transfer": 1}
    assert checks.call_counts([*calls, call("get_balance", {}, server="other")]) == {"bank.get_balance": 2, "transfer": 1, "other.get_balance": 1}


def test_globs_on_tool_names() -> None:
    calls = [call("delete_account", {}), call("get_balance", {}), call("drop", {}, server="admin")]
    assert [c.name for c in checks.calls_matching_glob("delete*", calls)] == ["delete_account"]
    assert [c.name for c in checks.calls_matching_glob("admin.*", calls)] == ["drop"]
    assert checks.calls_matching_glob("Delete*", calls) == []  # case-sensitive
    assert [c.name for c in checks.calls_matching_glob("[dg]*_*", calls)] == ["delete_account", "get_balance"]
    with pytest.raises(ValueError, match="not closed"):
        checks.check_glob("delete[")
    with pytest.raises(ValueError, match="empty"):
        checks.check_glob(" ")


def test_arguments_matching_a_regex_at_any_depth() -> None:
    ssn = re.compile(r"\d{3}-\d{2}-\d{4}")
    calls = [call("save", {"person": {"ids": ["123-45-6789"]}, "n": 5}), call("other", None), call("ok", {"a": "none"})]
    calls[1].raw_arguments = "{bad json 987-65-4321"
    assert checks.arguments_matching(ssn, calls) == [
        "save: person.ids.0 = 123-45-6789",
        "other: (raw arguments) = {bad json 987-65-4321",
    ]
    assert checks.argument_values({"a": [1, True, None]}) == [("a.0", "1"), ("a.1", "true"), ("a.2", "null")]


# --------------------------------------------------------------------------- doubles and the server folder


def test_which_double_answers_a_call() -> None:
    from behave_aitest.agent.doubles import DELAY, FAILS, RETURNS, Double, Doubles, answer, parse_seconds

    doubles = Doubles()
    assert doubles.find("bank", "transfer", {}) is None and not doubles
    everyone = Double("bank", "transfer", RETURNS, "ok")
    big = Double("bank", "transfer", FAILS, "limit", when=tuple(table(("amount", "about", "1000 ± 500"))))
    doubles.add(big)
    doubles.add(everyone)
    assert doubles.find("bank", "transfer", {"amount": 900}) is big  # a conditional double beats a general one
    assert doubles.find("bank", "transfer", {"amount": 9}) is everyone
    assert doubles.find("other", "transfer", {"amount": 900}) is None  # another server's tool of that name
    later = Double("bank", "transfer", DELAY, seconds=2)
    doubles.add(later)
    assert doubles.find("bank", "transfer", {"amount": 9}) is later  # the one set last
    assert (answer(big).text, answer(big).is_error, answer(everyone).is_error) == ("limit", True, False)
    assert later.describe() == "takes 2 s" and big.describe() == "fails 'limit'"
    doubles.clear()
    assert doubles.find("bank", "transfer", {}) is None
    assert parse_seconds("0.5") == 0.5
    for bad in ("soon", "-1", "inf", "nan"):
        with pytest.raises(ValueError, match="not a number of seconds"):
            parse_seconds(bad)


def test_the_server_folder_goes_into_command_env_and_cwd(tmp_path: object) -> None:
    from behave_aitest.config import ServerConfig
    from behave_aitest.mcp.launch import resolve_command, server_cwd, server_environment

    config = ServerConfig(
        "notes",
        command=("node", "server.js", "--db", "${AITEST_SERVER_DIR}/db.sqlite"),
        env={"MEMORY_FILE_PATH": "${AITEST_SERVER_DIR}/memory.json", "HOME_COPY": "${HOME}"},
        cwd="${AITEST_SERVER_DIR}/work",
    )
    folder = str(tmp_path)
    assert resolve_command(config.command, folder) == ("node", ["server.js", "--db", f"{folder}/db.sqlite"])
    env = server_environment(config, {"HOME": "/home/u", "PATH": "/bin"}, server_dir=folder)
    assert env["MEMORY_FILE_PATH"] == f"{folder}/memory.json" and env["AITEST_SERVER_DIR"] == folder and env["HOME_COPY"] == "/home/u"
    assert server_cwd(config, folder) == f"{folder}/work" and (tmp_path / "work").is_dir()  # type: ignore[operator]
    assert server_cwd(ServerConfig("x", command=("a",), cwd="srv"), folder) == "srv"


def test_a_failure_message_marks_doubled_calls() -> None:
    from behave_aitest.record.records import Turn

    turn = Turn(0, "hi", "m", 0)
    doubled = call("transfer", {"amount": 5})
    doubled.doubled, doubled.result, doubled.is_error = "fails", "declined", True
    turn.tool_calls = [doubled, call("get_balance", {"account": "savings"})]
    text = checks.describe([turn])
    assert '    - transfer({"amount": 5})  [doubled: fails]' in text
    assert '    - get_balance({"account": "savings"})\n' in text


def test_a_delay_counts_against_tool_timeout() -> None:
    import anyio

    from behave_aitest.agent.doubles import DELAY, Double, delayed
    from behave_aitest.record.records import ToolOutcome

    async def real() -> ToolOutcome:
        return ToolOutcome("checking: $1,500.00", False, 0.0)

    async def both() -> tuple[ToolOutcome, ToolOutcome]:
        quick = await delayed(Double("bank", "get_balance", DELAY, seconds=0, timeout_s=5), "get_balance", real)
        late = await delayed(Double("bank", "get_balance", DELAY, seconds=30, timeout_s=0.05), "get_balance", real)
        return quick, late

    quick, late = anyio.run(both)
    assert (quick.text, quick.is_error) == ("checking: $1,500.00", False)
    assert (late.text, late.is_error) == ("Tool 'get_balance' did not answer within 0.05 s (tool_timeout_s).", True)


def test_the_html_cuts_a_long_result_of_the_tests_own_call() -> None:
    from behave_aitest.report import clip_texts

    doc = {"features": [{"name": "F", "scenarios": [{"name": "S", "direct_calls": [{"name": "get_balance", "result": "x" * 5000}]}]}]}
    cut = clip_texts(doc, 100)["features"][0]["scenarios"][0]["direct_calls"][0]
    assert cut["name"] == "get_balance" and len(cut["result"]) < 300
