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
    assert len(blocks) == 3, "docs/ci.md should hold the GitHub single-job and sharded workflows and the GitLab pipeline"
    return {"github-job": yaml.safe_load(blocks[0]), "github": yaml.safe_load(blocks[1]), "gitlab": yaml.safe_load(blocks[2])}


def shell(project: Project, command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    full["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{full.get('PATH', '')}"
    full.update(env)
    return subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=project.root, env=full, capture_output=True, text=True, timeout=300)


# Steps that need the network and a forge (a download from the CI's API, a comment): not run here.
NETWORK = ("gh run ", "curl ", "urllib")


def runnable(commands: list[str]) -> list[str]:
    return [c for c in commands if not c.strip().startswith("pip install") and not any(n in c for n in NETWORK)]


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
        if "report diff" in command:
            main_report(recorded, "main-report/reports/aitest.json")  # where the artifacts download unzips it
        done = shell(recorded, command, {"CI_MERGE_REQUEST_IID": "7"})
        assert done.returncode == 0, done.stdout + done.stderr
    check_merged(recorded)
    assert "0 regressions · 1 improved" in (recorded.root / "reports" / "diff.md").read_text(encoding="utf-8")


def main_report(project: Project, where: str) -> None:
    """Put "main's last report" where the recipe's download step puts it: this run's report,
    one scenario marked failed on main (so the diff has something to say, and no regression)."""
    doc = json.loads((project.root / "reports" / "aitest.json").read_text(encoding="utf-8"))
    doc["features"][0]["scenarios"][0]["status"] = "failed"
    target = project.root / where
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(doc), encoding="utf-8")


def test_github_single_job_recipe_with_summary_and_pr_diff(recorded: Project) -> None:
    job = recipes()["github-job"]["jobs"]["agent-tests"]
    assert recipes()["github-job"]["permissions"]["pull-requests"] == "write"
    summary = recorded.root / "step-summary.md"
    env = {"GITHUB_STEP_SUMMARY": str(summary), "GITHUB_EVENT_NAME": "pull_request"}
    statuses: dict[str, int] = {}
    for step in job["steps"]:
        if "run" not in step or not runnable([step["run"]]):
            continue
        if "steps.diff.outcome == 'failure'" in str(step.get("if")) and statuses.get("diff") == 0:
            continue  # the step GitHub skips when the diff found no regression
        if step.get("id") == "diff":
            main_report(recorded, "main-report/aitest.json")
        done = shell(recorded, step["run"], env)
        statuses[step.get("id") or step.get("name", "")] = done.returncode
        assert done.returncode == 0, done.stdout + done.stderr
    reports = recorded.root / "reports"
    assert json.loads((reports / "aitest.json").read_text())["totals"]["passed"] == 7
    assert list((reports / "junit").glob("*.xml")) and (reports / "aitest.html").is_file()
    diff = (reports / "diff.md").read_text(encoding="utf-8")
    assert "**✅ 0 regressions · 1 improved** (7 scenarios compared)" in diff and (reports / "diff.html").is_file()
    text = summary.read_text(encoding="utf-8")
    assert "All 7 passed" in text and "0 regressions · 1 improved" in text  # the summary, then the diff
