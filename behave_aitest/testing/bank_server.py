"""A small fake bank as an MCP server ("bank"): balances, transfers and a history.

Accounts start as ``checking`` = $1,500.00 and ``savings`` = $3,200.00 (USD). Set the
environment variable ``BANK_INITIAL`` to a JSON object to start with other accounts,
for example ``BANK_INITIAL='{"checking": 100, "savings": 0, "travel": 250.5}'``.

State lives in memory for the life of the process: a transfer stays visible to every
later call on the same server process.

Run it with ``python -m behave_aitest.testing.bank_server [--transport stdio|streamable-http|sse]
[--host 127.0.0.1] [--port N]``.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from behave_aitest.testing._serve import run, text_tool

DEFAULT_BALANCES: dict[str, str] = {"checking": "1500.00", "savings": "3200.00"}
CENT = Decimal("0.01")


def money(amount: Decimal) -> str:
    """``Decimal("1500")`` -> ``"$1,500.00"`` (negative amounts as ``"-$5.00"``)."""
    sign = "-" if amount < 0 else ""
    return f"{sign}${abs(amount):,.2f}"


def to_cents(value: object, what: str = "amount") -> Decimal:
    """A number (or numeric string) as an exact Decimal with two decimals."""
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a number, not {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, not {value!r}")
    try:
        exact = Decimal(str(value).strip().replace(",", ""))
    except InvalidOperation:
        raise ValueError(f"{what} must be a number, not {value!r}") from None
    if not exact.is_finite():
        raise ValueError(f"{what} must be a finite number, not {value!r}")
    return exact.quantize(CENT, rounding=ROUND_HALF_EVEN)


def parse_initial(text: str) -> dict[str, Decimal]:
    """Parse ``BANK_INITIAL``: a JSON object of account name -> starting balance."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"BANK_INITIAL is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not data:
        raise ValueError('BANK_INITIAL must be a non-empty JSON object, e.g. {"checking": 1500, "savings": 3200}')
    balances: dict[str, Decimal] = {}
    for name, value in data.items():
        key = str(name).strip().lower()
        if not key:
            raise ValueError("BANK_INITIAL: account names must not be empty")
        balances[key] = to_cents(value, f"BANK_INITIAL[{name!r}]")
    return balances


@dataclass(frozen=True)
class Transaction:
    """One completed transfer."""

    id: str
    from_account: str
    to_account: str
    amount: Decimal
    memo: str

    def describe(self) -> str:
        memo = f' - memo: "{self.memo}"' if self.memo else ""
        return f"{self.id}: {money(self.amount)} from {self.from_account} to {self.to_account}{memo}"


class Bank:
    """The in-memory state of one bank server process."""

    def __init__(self, balances: Mapping[str, Decimal | float | int | str] | None = None) -> None:
        source = DEFAULT_BALANCES if balances is None else balances
        self.balances: dict[str, Decimal] = {k.strip().lower(): to_cents(v) for k, v in source.items()}
        self.transactions: list[Transaction] = []

    def account(self, name: str) -> str:
        """The canonical account name for ``name``; a ToolError if there is no such account."""
        key = name.strip().lower()
        if key not in self.balances:
            raise ToolError(f"Unknown account '{name}'. Known accounts: {', '.join(self.balances)}")
        return key

    def line(self, account: str) -> str:
        return f"{account}: {money(self.balances[account])}"

    def get_balance(self, account: str) -> str:
        return self.line(self.account(account))

    def get_all_balances(self) -> str:
        total = sum(self.balances.values(), Decimal("0.00"))
        return "\n".join([*(self.line(a) for a in self.balances), f"total: {money(total)}"])

    def transfer(self, from_account: str, to_account: str, amount: float, memo: str = "") -> str:
        source = self.account(from_account)
        target = self.account(to_account)
        if source == target:
            raise ToolError(f"Cannot transfer from '{source}' to itself: choose two different accounts.")
        try:
            cents = to_cents(amount)
        except ValueError as exc:
            raise ToolError(f"Invalid amount: {exc}.") from None
        if Decimal(str(amount)) <= 0:
            raise ToolError(f"The amount must be positive, got {amount:g}.")
        if Decimal(str(amount)) != cents:
            raise ToolError(f"The amount must be in whole cents (at most 2 decimal places), got {amount!r}.")
        available = self.balances[source]
        if cents > available:
            raise ToolError(
                f"Insufficient funds: {source} has {money(available)}, which is less than the {money(cents)} requested."
            )
        self.balances[source] -= cents
        self.balances[target] += cents
        tx = Transaction(
            id=f"TX{len(self.transactions) + 1:04d}",
            from_account=source,
            to_account=target,
            amount=cents,
            memo=memo.strip(),
        )
        self.transactions.append(tx)
        memo_text = f' (memo: "{tx.memo}")' if tx.memo else ""
        return (
            f"Transferred {money(cents)} from {source} to {target}{memo_text}. Transaction id: {tx.id}.\n"
            f"New balances:\n{self.line(source)}\n{self.line(target)}"
        )

    def get_transactions(self, limit: int = 10) -> str:
        if limit < 1:
            raise ToolError(f"limit must be at least 1, got {limit}.")
        if not self.transactions:
            return "No transactions yet."
        newest = list(reversed(self.transactions))[:limit]
        header = f"{len(newest)} of {len(self.transactions)} transaction(s), newest first:"
        return "\n".join([header, *(t.describe() for t in newest)])


def create_server(balances: Mapping[str, Decimal | float | int | str] | None = None) -> MCPServer:
    """A new bank server with its own state.

    ``balances`` overrides the starting balances; when it is None, ``BANK_INITIAL``
    (if set) or the defaults (checking $1,500.00, savings $3,200.00) are used.
    """
    if balances is None and os.environ.get("BANK_INITIAL", "").strip():
        balances = parse_initial(os.environ["BANK_INITIAL"])
    bank = Bank(balances)
    server = MCPServer(
        "bank",
        instructions="A personal bank: look up account balances, move money between accounts, list past transfers.",
    )
    tool = text_tool(server)

    @tool
    def get_balance(account: str) -> str:
        """Get the current balance of one account.

        Args:
            account: The account name, for example "checking" or "savings".
        """
        return bank.get_balance(account)

    @tool
    def get_all_balances() -> str:
        """Get the current balance of every account, one per line, plus the total."""
        return bank.get_all_balances()

    @tool
    def transfer(from_account: str, to_account: str, amount: float, memo: str = "") -> str:
        """Move money from one account to another, immediately.

        Fails if an account is unknown, the two accounts are the same, the amount is not
        positive, or the source account does not hold enough money. Returns a confirmation
        with both accounts' new balances.

        Args:
            from_account: The account to take the money from, e.g. "checking".
            to_account: The account to put the money into, e.g. "savings".
            amount: The amount in US dollars, e.g. 250 or 99.95.
            memo: An optional note stored with the transfer.
        """
        return bank.transfer(from_account, to_account, amount, memo)

    @tool
    def get_transactions(limit: int = 10) -> str:
        """List past transfers, newest first.

        Args:
            limit: The maximum number of transactions to return (default 10).
        """
        return bank.get_transactions(limit)

    return server


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``python -m behave_aitest.testing.bank_server --help``."""
    try:
        server = create_server()
    except ValueError as exc:
        print(f"bank_server: {exc}", file=sys.stderr)
        return 2
    return run(server, argv, prog="python -m behave_aitest.testing.bank_server")


if __name__ == "__main__":
    sys.exit(main())
