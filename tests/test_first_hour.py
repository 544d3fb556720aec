"""Issue 18, "the first hour": what a new user meets first (the steps catalogue, the
scripted model's rules, the report's matrix) and a test suite that leaves their files alone."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import Project


def test_steps_catalog_is_printed_once_when_tool_behave_configures_a_format(project: Project) -> None:
    """behave 1.3.3 appends "steps.catalog" to the config file's format list in place, and
    that list is also its record of the configured formats, so it appends it once more."""
    project.config(
        """
        [tool.behave]
        format = ["behave_aitest.formatter:HTMLFormatter"]
        outfiles = ["reports/aitest.html"]
        runner = "behave_aitest.parallel:ParallelRunner"
        """
    )
    project.feature("a.feature", "Feature: f\n  Scenario: s\n    When the user says \"hello\"\n")
    result = project.run("--steps-catalog")
    assert result.returncode == 0, result.output
    assert result.stdout.count('When the user says "{text}"') == 1, result.stdout
    assert not (project.root / "reports").exists()  # the catalogue keeps the last real report


def _runs_behave_in_the_repository(call: ast.Call) -> bool:
    """A call with ``cwd=REPO`` (or ROOT) whose command line runs behave, other than the
    steps catalogue (which writes no file)."""
    cwd = next((k.value for k in call.keywords if k.arg == "cwd"), None)
    if not (isinstance(cwd, ast.Name) and cwd.id in ("REPO", "ROOT")) or not call.args:
        return False
    words = [n.value for n in ast.walk(call.args[0]) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    return "behave" in words and "--steps-catalog" not in words


def test_no_test_runs_behave_in_the_repository_itself() -> None:
    """The repository's [tool.behave] writes reports/aitest.html on every run (and a -o only
    adds a report, it does not replace that one), so a test that runs behave there overwrites
    the user's report: such tests run a copy (conftest.example_project) under tmp instead."""
    offenders = []
    for path in sorted(Path(__file__).parent.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and _runs_behave_in_the_repository(node):
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []
