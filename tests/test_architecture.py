"""The house keeps its shape: imports point down the layers of docs/design.md, and no module
imports itself back through others (no import circle). Read with ``ast``, no third-party tool."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "behave_aitest"

# Bottom to top: a module may import its own layer's modules and those of lower layers.
# "" is the package's own __init__ (the version). testing/ stands apart: it imports only itself.
LAYERS: list[set[str]] = [
    {"", "errors", "text"},
    {"config"},
    {"model"},
    {"record"},
    {"mcp"},
    {"agent"},
    {"run"},
    {"report"},
    {"parallel"},
    {"cli"},
    {"environment", "formatter", "hooks", "cassettes", "steps", "bridge", "__main__"},
]


def modules() -> dict[str, tuple[Path, bool]]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        found[".".join(parts)] = (path, is_package)
    return found


def imports(name: str, path: Path, is_package: bool, known: set[str]) -> set[str]:
    """The package's own modules that ``name`` imports (at any depth, lazily or not)."""
    here = name.split(".") if name else []
    if not is_package:
        here = here[:-1]
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {  # `if TYPE_CHECKING:` imports never run
        id(inner) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for stmt in node.body for inner in ast.walk(stmt)
    }
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
                if not (module == "behave_aitest" or module.startswith("behave_aitest.")):
                    continue
            # `from pkg import mod` imports pkg.mod; the package itself only for names that are not modules
            targets = [f"{module}.{a.name}".strip(".") for a in node.names]
        for target in targets:
            target = target.removeprefix("behave_aitest").lstrip(".") if target.startswith("behave_aitest") else target
            if node.__class__ is ast.Import and not target:
                continue
            while target not in known and target:
                if "." not in target:
                    target = ""
                    break
                target = target.rsplit(".", 1)[0]
            if target in known and target != name:
                found.add(target)
    return found


@functools.cache
def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(name, path, is_pkg, set(mods)) for name, (path, is_pkg) in mods.items()}


def layer(name: str) -> int:
    top = name.split(".")[0]
    for index, members in enumerate(LAYERS):
        if top in members:
            return index
    raise AssertionError(f"behave_aitest.{name} is in no layer of tests/test_architecture.py: add its package to LAYERS (and to docs/design.md's map)")


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_package_has_no_import_circle() -> None:
    found = circles(graph())
    assert not found, "import circles: " + "; ".join(" <-> ".join(c) for c in found)


def test_imports_point_down_the_layers() -> None:
    upward = []
    for name, targets in graph().items():
        if name.split(".")[0] == "testing":
            upward += [f"{name} -> {t}" for t in targets if t and t.split(".")[0] != "testing"]  # "" = the version
            continue
        upward += [f"{name} -> {t}" for t in sorted(targets) if t.split(".")[0] != "testing" and layer(t) > layer(name)]
    assert not upward, "imports that point up (docs/design.md): " + ", ".join(upward)


def test_the_walk_sees_imports() -> None:
    """The walk itself can fail: the agent loop is known to import the records and the model."""
    edges = graph()
    assert {"record.records", "model.llm"} <= edges["agent.loop"]
    assert circles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
