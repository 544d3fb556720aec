"""docs/ci.md's GitHub Actions and GitLab CI recipes, run as written.

The workflows are read from the page itself; their shell steps run on a temporary project
(the matrix variables filled in the way each CI fills them): every shard's behave command,
then the merge commands. ``pip install`` steps are left out: this test runs in the
environment that already has behave-aitest installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import Project

ROOT = Path(__file__).resolve().parents[1]
SHARDS = 3

FEATURE = """\
Feature: Greetings
  Scenario Outline: Greet <name>
    When the user says "hello <name>"
    Then the response mentions "Hi <name>"

    Examples:
      | name  |
      | Ada   |
      | Alan  |
      | Grace |
      | Linus |
      | Barbara |
"""

SESSION = """\
@session
Feature: A remembered name
  Scenario: Introduce
    When the user says "hello Edsger"
    Then the response mentions "Hi Edsger"

  Scenario: Again
    When the user says "hello Donald"
    Then the response mentions "Hi Donald"
"""


def recipes() -> dict[str, dict]:
    text = (ROOT / "docs" / "ci.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    assert len(blocks) == 2, "docs/ci.md should hold the GitHub and the GitLab workflow"
    return {"github": yaml.safe_load(blocks[0]), "gitlab": yaml.safe_load(blocks[1])}


def shell(project: Project, command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    full["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{full.get('PATH', '')}"
    full.update(env)
    return subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=project.root, env=full, capture_output=True, text=True, timeout=300)


def runnable(commands: list[str]) -> list[str]:
    return [c for c in commands if not c.strip().startswith("pip install")]


@pytest.fixture(scope="module")
def recorded_project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A project whose cassettes are recorded (the recipes replay them); recorded once."""
    project = Project(tmp_path_factory.mktemp("ci"))
    project.config('[tool.behave_aitest]\nmodel = "scripted"\nscripted_rules = "rules.toml"\n')
    (project.root / "rules.toml").write_text("[[rule]]\nwhen = 'hello (?P<name>\\w+)'\nreply = \"Hi {name}!\"\n", encoding="utf-8")
    project.feature("greetings.feature", FEATURE)
    project.feature("session.feature", SESSION)
    result = project.run("-D", "aitest.cassette=record")
    assert result.returncode == 0, result.output
    return project


@pytest.fixture
def recorded(recorded_project: Project) -> Project:
    shutil.rmtree(recorded_project.root / "reports", ignore_errors=True)
    return recorded_project


def check_merged(project: Project) -> None:
    doc = json.loads((project.root / "reports" / "aitest.json").read_text(encoding="utf-8"))
    names = [s["name"].split(" -- @")[0] for f in doc["features"] for s in f["scenarios"]]
    assert sorted(names) == sorted(["Greet Ada", "Greet Alan", "Greet Grace", "Greet Linus", "Greet Barbara", "Introduce", "Again"]), names
    assert doc["totals"]["passed"] == 7
    assert (project.root / "reports" / "aitest.html").is_file()
    assert "All 7 passed" in (project.root / "reports" / "aitest.md").read_text(encoding="utf-8")


def test_github_actions_recipe(recorded: Project) -> None:
    jobs = recipes()["github"]["jobs"]
    assert jobs["shard"]["strategy"]["matrix"]["shard"] == list(range(1, SHARDS + 1))
    summary = recorded.root / "step-summary.md"
    for k in jobs["shard"]["strategy"]["matrix"]["shard"]:
        for step in jobs["shard"]["steps"]:
            for command in runnable([step["run"]] if "run" in step else []):
                done = shell(recorded, command.replace("${{ matrix.shard }}", str(k)), {})
                assert done.returncode == 0, done.stdout + done.stderr
    assert len(list((recorded.root / "reports").glob("shard-*.json"))) == SHARDS
    for step in jobs["report"]["steps"]:
        for command in runnable([step["run"]] if "run" in step else []):
            done = shell(recorded, command, {"GITHUB_STEP_SUMMARY": str(summary)})
            assert done.returncode == 0, done.stdout + done.stderr
    check_merged(recorded)
    assert "All 7 passed" in summary.read_text(encoding="utf-8")


def test_gitlab_recipe(recorded: Project) -> None:
    pipeline = recipes()["gitlab"]
    tests, merge = pipeline["agent-tests"], pipeline["agent-report"]
    for k in range(1, tests["parallel"] + 1):
        for command in runnable(tests["script"]):
            done = shell(recorded, command, {"CI_NODE_INDEX": str(k), "CI_NODE_TOTAL": str(tests["parallel"])})
            assert done.returncode == 0, done.stdout + done.stderr
    assert list((recorded.root / "reports" / "junit").glob("*.xml"))
    for command in runnable(merge["script"]):
        done = shell(recorded, command, {})
        assert done.returncode == 0, done.stdout + done.stderr
    check_merged(recorded)
