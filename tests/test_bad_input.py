"""Malformed feature files and unknown steps keep behave's own messages: the plugin's hooks
neither hide nor replace them."""

from __future__ import annotations

from conftest import Project, llm_config

from behave_aitest.model.fakellm import FakeOpenAI


def test_malformed_feature_and_unknown_step_keep_behaves_messages(project: Project, fake_llm: FakeOpenAI) -> None:
    project.config(llm_config(fake_llm))
    project.feature("broken.feature", 'Feature: Broken\n  Scenario: s\n    When the user says "hi"\n  Examples without an outline\n')
    result = project.run("-f", "plain")
    assert result.returncode != 0
    assert "ParserError" in result.output and "broken.feature" in result.output and "at line 4" in result.output, result.output
    assert "Traceback" not in result.output

    (project.root / "features" / "broken.feature").unlink()
    fake_llm.add({"content": "hello"})
    project.feature("undefined.feature", 'Feature: Undefined\n  Scenario: s\n    When the user says "hi"\n    Then the moon is made of cheese\n')
    result = project.run("-f", "plain")
    assert result.returncode == 1
    assert "undefined" in result.output
    assert "You can implement step definitions for undefined steps with these snippets" in result.output
    assert "@then(u'the moon is made of cheese')" in result.output
