"""The example agents of examples/agents/ (issue 23, docs/agents.md "Recipes"), end to end through
``python -m behave``: an OpenAI Agents SDK agent, a PydanticAI agent, a LangGraph agent (a
service from its own virtualenv), a plain HTTP agent service and a CLI agent, each running the
banking Gherkin of features/banking_session.feature against the bank server (a real process).

Each is first run live against the project's fake model (a real HTTP server in this process,
answering with the examples' scripted rules) and recorded, then replayed with that model stopped
and no key. The committed cassettes are replayed too, as ``bash scripts/examples.sh`` does, here under ``-j 2``. A
framework that cannot be installed here is skipped with the reason."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, Project, processes_in

from behave_aitest.model.fakellm import FakeOpenAI
from behave_aitest.model.scripted import RulesBrain

EXAMPLES = REPO / "examples" / "agents"
FEATURES = {
    "openai_agents": "openai_agents_banker.feature",
    "pydantic_ai": "pydantic_ai_banker.feature",
    "langgraph": "langgraph_banker.feature",
    "http_service": "http_banker.feature",
    "cli": "cli_banker.feature",
}


@pytest.fixture(scope="session")
def langgraph_python() -> Path:
    """The LangGraph example's own virtualenv, made by its setup script (bounded by a timeout) or skipped."""
    done = subprocess.run(
        ["bash", str(EXAMPLES / "langgraph" / "setup.sh")], capture_output=True, text=True, timeout=900,
        env={**os.environ, "AITEST_LANGGRAPH_SETUP_TIMEOUT": os.environ.get("AITEST_LANGGRAPH_SETUP_TIMEOUT", "600")},
    )
    if done.returncode != 0:
        pytest.skip(f"the LangGraph example's virtualenv cannot be made here: {done.stderr.strip() or done.stdout.strip()}")
    return EXAMPLES / ".venv-langgraph" / "bin" / "python"


def needs(framework: str, request: pytest.FixtureRequest) -> None:
    """Skip, with the reason, when the framework of this example is not installed."""
    if framework == "openai_agents":
        pytest.importorskip("agents", reason="openai-agents (the [agents] extra) is not installed")
    elif framework == "pydantic_ai":
        pytest.importorskip("pydantic_ai", reason="pydantic-ai-slim (the [agents] extra) is not installed")
    elif framework == "langgraph":
        request.getfixturevalue("langgraph_python")


def example_copy(where: Path, *, keep_cassettes: bool) -> Project:
    """A copy of examples/agents in ``where``, the LangGraph virtualenv named by its absolute path
    (the services' ports are ``${AITEST_PORT}``: free ones, whatever else runs)."""
    project = Project(where / "agents")
    ignore = ["__pycache__", ".venv-langgraph*", "reports"] + ([] if keep_cassettes else ["cassettes"])
    shutil.copytree(EXAMPLES, project.root, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*ignore))
    config = project.root / "pyproject.toml"
    text = config.read_text(encoding="utf-8")
    text = text.replace('".venv-langgraph/bin/python"', json.dumps(str(EXAMPLES / ".venv-langgraph" / "bin" / "python")))
    config.write_text(text, encoding="utf-8")
    return project


def use_fake_model(project: Project, fake: FakeOpenAI) -> None:
    """Point the copy at the fake model (instead of the built-in scripted model it was recorded with)."""
    config = project.root / "pyproject.toml"
    text, count = re.subn(r'(?m)^model = "scripted".*$', f'model = "openai/fake-model"\napi_base = "{fake.base_url}"\nretries = 0', config.read_text(encoding="utf-8"))
    assert count == 1
    config.write_text(text, encoding="utf-8")


@pytest.fixture
def scripted_fake() -> Iterator[FakeOpenAI]:
    """The project's fake model, answering with the examples' banking rules whatever model is asked for."""
    with FakeOpenAI(brain=RulesBrain.from_file(EXAMPLES / "scripted_model.toml")) as server:
        yield server


def passed(output: str, scenarios: int) -> bool:
    return f"{scenarios} scenarios passed, 0 failed" in output


@pytest.mark.parametrize("framework", list(FEATURES))
def test_each_example_agent_records_live_then_replays_offline(
    framework: str, tmp_path: Path, scripted_fake: FakeOpenAI, request: pytest.FixtureRequest
) -> None:
    needs(framework, request)
    project = example_copy(tmp_path, keep_cassettes=False)
    use_fake_model(project, scripted_fake)
    feature = f"features/{FEATURES[framework]}"

    live = project.run("-D", "aitest.cassette=record", "-f", "behave_aitest.formatter:JSONFormatter", "-o", "report.json", "-f", "plain", feature)
    assert live.returncode == 0, live.output
    assert passed(live.output, 3), live.output
    requests = len(scripted_fake.requests)
    assert requests == 6  # per turn: the model asks for the tool, then answers with its result
    report = (project.root / "report.json").read_text(encoding="utf-8")
    for tool in ('"get_all_balances"', '"transfer"', '"get_balance"'):
        assert tool in report  # each call crossed the MCP endpoint and was recorded on its turn
    assert not re.search(r"aitest-[A-Za-z0-9_-]{32}", report)  # the per-run key is never written
    recorded = sorted((project.root / "features" / "cassettes").rglob("*.json"))
    assert len(recorded) == 1  # one @session conversation

    scripted_fake.stop()
    replay = project.run("-D", "aitest.cassette=replay", feature, env={"OPENAI_API_KEY": ""})
    assert replay.returncode == 0, replay.output
    assert passed(replay.output, 3), replay.output
    assert len(scripted_fake.requests) == requests  # nothing reached the model
    assert processes_in(project.root) == []  # the services, CLI runs and servers are gone


def test_the_committed_cassettes_replay_offline_as_the_examples_script_does_also_in_parallel(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """``-j 2``: each worker starts its own services on a port of its own (``${AITEST_PORT}``)."""
    skip: list[str] = []
    for framework in FEATURES:
        try:
            needs(framework, request)
        except pytest.skip.Exception:
            skip.append(f"not @{framework}")
    project = example_copy(tmp_path, keep_cassettes=True)
    args = ["-D", "aitest.cassette=replay", "-j", "2"]
    if skip:
        args += ["--tags", " and ".join(skip)]
    result = project.run(*args, env={"OPENAI_API_KEY": ""})
    assert result.returncode == 0, result.output
    features = len(FEATURES) - len(skip)
    assert f"{features} features passed, 0 failed" in result.output, result.output
    assert passed(result.output, 3 * features), result.output
    assert processes_in(project.root) == []
