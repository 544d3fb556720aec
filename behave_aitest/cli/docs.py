"""``behave-aitest docs [TOPIC]``: the documentation, where a user of the package can read it.

The init templates, the report banner and the messages point to ``docs/<topic>.md``. Those
files live beside the package in a clone (the way behave-aitest is installed today,
``pip install -e /path/to/behave-aitest``), not in a user's project: this command finds them
and prints one (or lists them), so "see docs/scripted-model.md" is one command away.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def docs_folder() -> Path | None:
    """The ``docs/`` folder of the clone this package runs from, if there is one."""
    folder = Path(__file__).resolve().parents[2] / "docs"
    return folder if folder.is_dir() else None


def topics(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.md"))


def show(topic: str | None, out: Any = None) -> int:
    """Print the topic's page (``scripted-model``, ``docs/scripted-model.md`` or a close name),
    or the list of topics; 1 with one line when there is nothing to show."""
    import difflib

    out = out or sys.stdout
    folder = docs_folder()
    if folder is None:
        print(
            "behave-aitest docs: this installation has no docs/ folder (it was not installed from a clone); "
            "read them in the behave-aitest repository's docs/ folder.",
            file=sys.stderr,
        )
        return 1
    known = topics(folder)
    if not topic:
        print(f"Topics (behave-aitest docs TOPIC; the files are in {folder}):", file=out)
        for name in known:
            print(f"  {name}", file=out)
        return 0
    name = Path(topic).name.removesuffix(".md").split("#")[0]
    if name not in known:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        print(f"behave-aitest docs: no topic {name!r}.{hint} Topics: {', '.join(known)}.", file=sys.stderr)
        return 1
    out.write((folder / f"{name}.md").read_text(encoding="utf-8"))
    return 0


def add_docs_command(subparsers: Any) -> None:
    """``behave-aitest docs [TOPIC]``."""
    parser = subparsers.add_parser(
        "docs", help="print a page of the documentation (or list them)",
        description="Print docs/TOPIC.md (e.g. scripted-model, configuration, steps), or list the topics.",
    )
    parser.add_argument("topic", nargs="?", metavar="TOPIC", help="e.g. scripted-model or docs/scripted-model.md")
    parser.set_defaults(func=lambda args: show(args.topic))
