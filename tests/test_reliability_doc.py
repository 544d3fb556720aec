"""docs/reliability.md names the test proving each row; every one of them must exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_row_names_an_existing_test() -> None:
    text = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    refs = set(re.findall(r"(tests/[\w/]+\.py)::(\w+)", text))
    assert len(refs) >= 10
    for path, name in sorted(refs):
        tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
        names = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
        assert name in names, f"docs/reliability.md names {path}::{name}, which does not exist"
