"""``behave-aitest cassettes prune [--check]`` (and ``python -m behave_aitest.cassettes``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from typing import Any

from ..record.cassettes.prune import prune


def add_cassette_commands(subparsers: Any) -> None:
    """Add ``cassettes prune [--check] [--config FILE] [PATH...]`` to an argparse subparsers object.

    The parser's ``func`` default takes the parsed arguments and returns the exit code.
    """
    parser = subparsers.add_parser("cassettes", help="manage recorded model calls (cassettes)", description="Manage cassettes.")
    commands = parser.add_subparsers(dest="cassettes_command", metavar="COMMAND")
    commands.required = True
    prune_parser = commands.add_parser(
        "prune",
        help="remove cassettes whose scenario no longer exists",
        description="Remove cassettes whose feature file, @session feature or scenario no longer exists "
        "(and temporary files left by an interrupted write). Files that are not cassettes this version reads "
        "(another format version, merge conflicts, other JSON) are listed as skipped and never removed. "
        "With --check, only list them and exit 1 if there are any.",
    )
    prune_parser.add_argument("paths", nargs="*", metavar="PATH", help="cassette folders or files (default: cassette_dir of the config)")
    prune_parser.add_argument("--check", action="store_true", help="list stale cassettes and exit 1 if there are any; change nothing")
    prune_parser.add_argument("--config", metavar="FILE", help="config file (default: the nearest pyproject.toml with [tool.behave_aitest])")
    prune_parser.set_defaults(func=lambda args: prune(args.paths, args.check, config=args.config))


def main(argv: Iterable[str] | None = None) -> int:
    """``python -m behave_aitest.cassettes prune [--check]``."""
    parser = argparse.ArgumentParser(prog="python -m behave_aitest.cassettes")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    add_cassette_commands(subparsers)
    args = parser.parse_args(["cassettes", *(list(argv) if argv is not None else sys.argv[1:])])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
