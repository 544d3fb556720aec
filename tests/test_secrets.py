"""Planted secrets never reach any artefact of a run, and untrusted text stays inert in each.

One run records a cassette and writes every output there is: console (plain), HTML, JSON,
Markdown, JUnit XML. The model echoes a provider key, a tool echoes a server's secret env
value, and a step fails quoting both. Then every file the run left and everything it
printed is searched for the secret values.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from conftest import Project, llm_config

from behave_aitest.model.fakellm import FakeOpenAI

PROVIDER_KEY = "sk-plantedProviderKey0123456789abcdef"
SERVER_TOKEN = "tok-Planted-9f8e7d6c5b4a"
GITHUB_TOKEN = "ghp_PlantedGithubToken0123456789abcdefXYZ"
HOSTILE = "</script><img src=x onerror=alert(1)> ]]> & <![CDATA[ x"

CONFIG = """
[tool.behave_aitest.servers.faulty]
command = ["python", "-m", "behave_aitest.testing.faulty_server"]
env = { API_TOKEN = "${PLANTED_TOKEN}" }
[tool.behave_aitest.agents.helper]
servers = ["faulty"]
"""

FEATURE = """\
Feature: Secrets stay secret
  Scenario: The agent leaks what it was given
    Given the agent "helper"
    When the user says "What is API_TOKEN?"
    Then the response mentions "nothing of the sort"
"""


def every_text(root: Path) -> dict[Path, str]:
    """Every file under ``root`` except the test's own inputs, as text."""
    out = {}
    for path in root.rglob("*"):
        if path.is_file() and path.name != "pyproject.toml" and "__pycache__" not in path.parts:
            out[path] = path.read_text(encoding="utf-8", errors="replace")
    return out


def test_planted_secrets_reach_no_artefact(project: Project, fake_llm: FakeOpenAI) -> None:
    fake_llm.add(
        {"tool_calls": [("getenv", {"name": "API_TOKEN"})]},
        {"content": f"The token is {SERVER_TOKEN}, your key is {PROVIDER_KEY}, GitHub says {GITHUB_TOKEN}. {HOSTILE}"},
    )
    project.config(llm_config(fake_llm) + CONFIG)
    project.feature("secrets.feature", FEATURE)
    result = project.run(
        "-D", "aitest.cassette=record",
        "-f", "behave_aitest.formatter:HTMLFormatter", "-o", "reports/run.html",
        "-f", "behave_aitest.formatter:MarkdownFormatter", "-o", "reports/run.md",
        "-f", "plain", "--junit", "--junit-directory", "reports/junit",
        env={"OPENAI_API_KEY": PROVIDER_KEY, "PLANTED_TOKEN": SERVER_TOKEN, "GITHUB_TOKEN": GITHUB_TOKEN},
    )
    assert result.returncode == 1, result.output  # the step fails, quoting the answer
    files = every_text(project.root)
    names = {p.relative_to(project.root).as_posix() for p in files}
    assert {"reports/run.html", "reports/run.json", "reports/run.md"} <= names
    assert any(n.startswith("reports/junit/") for n in names) and any(n.startswith("features/cassettes/") for n in names)

    # The secrets really passed through the run: the tool got the token, the model saw it.
    assert fake_llm.requests[1]["messages"][-1]["content"] == SERVER_TOKEN
    for where, text in {**{str(p): t for p, t in files.items()}, "console output": result.output}.items():
        for secret in (PROVIDER_KEY, SERVER_TOKEN, GITHUB_TOKEN):
            assert secret not in text, f"{secret!r} reached {where}"
    assert "[REDACTED:faulty.env.API_TOKEN]" in result.output  # the failing step's message, on the console
    junit = next(t for p, t in files.items() if "junit" in p.parts)
    assert "[REDACTED:faulty.env.API_TOKEN]" in junit

    # Untrusted text stays text: JUnit is well-formed XML holding it verbatim, the JSON too.
    failure = ET.fromstring(junit.encode("utf-8")).find(".//failure")
    assert failure is not None and HOSTILE in (failure.get("message", "") + (failure.text or ""))
    doc = json.loads(files[project.root / "reports" / "run.json"])
    assert HOSTILE in doc["features"][0]["scenarios"][0]["turns"][0]["response"]
    html = files[project.root / "reports" / "run.html"]
    assert "<img src=x" not in html and "</script><img" not in html
