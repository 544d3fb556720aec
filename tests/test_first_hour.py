"""Issue 18, "the first hour": what a new user meets first (the steps catalogue, the
scripted model's rules, the report's matrix) and a test suite that leaves their files alone."""

from __future__ import annotations

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
