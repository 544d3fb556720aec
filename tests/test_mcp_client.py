"""The MCP client beyond tools (issue 15, docs/mcp.md): the five naming and connection
defects, then elicitation, sampling, roots, images, resources, prompts, list changes,
progress and logs, annotations and structured content, in both protocol eras, end to end
through ``python -m behave`` against the project's studio server (behave_aitest.testing.
studio_server) and the fake model."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import anyio
import pytest
from conftest import Project, llm_config

from behave_aitest.config import ServerConfig
from behave_aitest.mcp.content import block_view
from behave_aitest.mcp.elicitation import ElicitationPlan, answer, parse_value
from behave_aitest.agent.toolbox import AgentSetupError, ToolBox
from behave_aitest.model.fakellm import FakeOpenAI
from behave_aitest.mcp.connection import ServerConnection, connect
from behave_aitest.errors import ServerError
from behave_aitest.record.records import ToolSpec
from behave_aitest.steps.mcp import destructive

# --------------------------------------------------------------------------- the five defects


def conn(server: str, *names: str) -> ServerConnection:
    """A connection as the ToolBox sees it: a server and the tools it listed (no session needed)."""
    spec = {"type": "object", "properties": {}}
    return ServerConnection(ServerConfig(name=server, command=("x",)), None, [ToolSpec(server, n, "", spec) for n in names])


def test_a_valid_name_is_never_taken_by_a_sanitised_one() -> None:
    box = ToolBox([conn("probe", "ask.model", "ask_model")])
    assert box.resolve("ask_model")[1].name == "ask_model"  # type: ignore[index]
    other = [n["function"]["name"] for n in box.schemas() if n["function"]["name"] != "ask_model"]
    assert len(other) == 1 and other[0].startswith("ask_model_") and box.resolve(other[0])[1].name == "ask.model"  # type: ignore[index]


def test_allowed_tools_with_a_dotted_tool_name() -> None:
    box = ToolBox([conn("probe", "ask.model", "other")], ["probe.ask.model"])
    assert [box.resolve(s["function"]["name"])[1].name for s in box.schemas()] == ["ask.model"]  # type: ignore[index]
    assert len(ToolBox([conn("probe", "ask.model")], ["ask.model"]).schemas()) == 1
    with pytest.raises(AgentSetupError, match="'probe.nope' is not offered"):
        ToolBox([conn("probe", "ask.model")], ["probe.nope"])


def test_a_tool_listed_twice_by_one_server_is_kept_once_with_a_warning() -> None:
    box = ToolBox([conn("raw", "dup", "dup")])
    assert [s["function"]["name"] for s in box.schemas()] == ["dup"]
    assert any("lists the tool 'dup' more than once" in w and "fix the server" in w for w in box.warnings)
    assert not any("raw.dup" in w for w in box.warnings)


def test_a_task_only_tool_named_by_a_step_or_allowed_tools_says_it_is_task_only() -> None:
    """Issue 24 item 13: a tool listed with ``execution.taskSupport = "required"`` is not
    offered; a step or an ``allowed_tools`` entry naming it says why, not "has no tool"."""
    from behave_aitest.agent.names import KnownTools, allowed_tools_problem, unknown_tool

    known = KnownTools("old", (("studio", "sketch"),), ("sketch",), task_only=(("studio", "research"),))
    said = unknown_tool("studio.research", known, 'Then the agent did not call tool "studio.research"')
    assert said and "the tool 'research' of MCP server 'studio' only runs as a task" in said and "has no tool" not in said, said
    assert "Did you mean" not in said and unknown_tool("sketch", known, "x") is None
    entry = allowed_tools_problem(["research"], known, "[agents.old]") or ""
    assert "'research' (it only runs as a task, which behave-aitest does not use)" in entry and "did you mean" not in entry, entry


class _Refusing(BaseHTTPRequestHandler):
    status = 404

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST  # noqa: N815

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def refusing() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def _start_failure(config: ServerConfig, tmp_path: Path) -> str:
    async def main() -> None:
        async with connect(config, tmp_path / "x.log"):
            pass

    with pytest.raises(ServerError) as caught:
        anyio.run(main)
    return str(caught.value)


@pytest.mark.parametrize("status", [401, 403])
def test_http_401_403_say_authentication_failed(refusing: ThreadingHTTPServer, tmp_path: Path, status: int) -> None:
    refusing.status = status  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{refusing.server_port}/mcp"
    for transport in ("streamable-http", "sse"):
        message = _start_failure(ServerConfig(name="api", transport=transport, url=url, startup_timeout_s=10, where="[servers.api]"), tmp_path)
        assert f"authentication failed (HTTP {status})" in message and "headers" in message, message
        assert "Is the server running" not in message


def test_a_url_ending_in_sse_hints_at_the_transport(refusing: ThreadingHTTPServer, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{refusing.server_port}/sse"
    message = _start_failure(ServerConfig(name="old", transport="streamable-http", url=url, startup_timeout_s=10), tmp_path)
    assert 'transport = "sse"' in message, message


# --------------------------------------------------------------------------- pure pieces


def test_elicitation_answers_are_checked_against_the_schema() -> None:
    class Params:
        mode = "form"
        message = "Who?"
        requested_schema = {"type": "object", "properties": {"client": {"type": "string"}, "colours": {"type": "integer"}}, "required": ["client"]}

    sent, record = answer(ElicitationPlan("accept", {"client": "ACME", "colours": 3}, True), Params())
    assert sent == {"action": "accept", "content": {"client": "ACME", "colours": 3}} and record["fields"] == ["client", "colours"]
    sent, record = answer(ElicitationPlan("accept", {"colours": "three"}, True), Params())
    assert sent == {"action": "decline"}
    assert any("'client'" in p for p in record["problems"]) and any("'colours'" in p for p in record["problems"])
    sent, record = answer(ElicitationPlan(), Params())
    assert sent == {"action": "decline"} and "declined by default" in record["reason"]

    class Url:
        mode = "url"
        message = "Log in"
        url = "https://example.invalid/login"

    sent, record = answer(ElicitationPlan("accept", {}, True), Url())
    assert sent == {"action": "decline"} and record["url"] == "https://example.invalid/login"
    assert parse_value("true") is True and parse_value("42") == 42 and parse_value("ACME") == "ACME"


def test_resource_blocks_keep_uri_name_type_and_size() -> None:
    from mcp_types import EmbeddedResource, ResourceLink, TextResourceContents

    text, item, _ = block_view(ResourceLink(type="resource_link", uri="file:///a.md", name="a", mimeType="text/markdown", size=12))
    assert text == "[resource link uri=file:///a.md name=a mimeType=text/markdown size=12]" and item["uri"] == "file:///a.md"
    text, _, _ = block_view(EmbeddedResource(type="resource", resource=TextResourceContents(uri="mem://x", mimeType="text/plain", text="hello")))
    assert text.startswith("[embedded resource uri=mem://x mimeType=text/plain size=5]") and text.endswith("hello")


def test_destructive_follows_the_mcp_defaults() -> None:
    assert destructive(None) and destructive({"readOnlyHint": False})
    assert not destructive({"readOnlyHint": True}) and not destructive({"destructiveHint": False})


# --------------------------------------------------------------------------- end to end

STUDIO = '["python", "-m", "behave_aitest.testing.studio_server"]'

CONFIG = """
[tool.behave_aitest.servers.studio]
command = {studio}
roots = ["shared"]
scope = "feature"

[tool.behave_aitest.servers.legacy]
command = {studio}
protocol = "legacy"
scope = "feature"

[tool.behave_aitest.servers.remote]
url = "{url}"

[tool.behave_aitest.agents.designer]
servers = ["studio"]
vision = true
resources = true

[tool.behave_aitest.agents.old]
servers = ["legacy"]
vision = false

[tool.behave_aitest.agents.remote]
servers = ["remote"]
"""

FEATURE = """\
Feature: The studio's MCP client features

  Scenario: answered
    Given the agent "designer"
    And the user will answer the server's questions with:
      | field   | value |
      | client  | ACME  |
      | colours | 3     |
    When the user says "start a design"
    Then the server asked the user for "client"
    And the result of tool "start_design" mentions "ACME in 3 colours"

  Scenario: declined by default
    Given the agent "designer"
    When the user says "start a design"
    Then the result of tool "start_design" mentions "decline"

  Scenario: cancelled
    Given the agent "designer"
    And the user cancels the server's questions
    When the user says "start a design"
    Then the result of tool "start_design" mentions "cancel"

  Scenario: answers missing a required field
    Given the agent "designer"
    And the user will answer the server's questions with:
      | field   | value |
      | colours | 3     |
    When the user says "start a design"

  Scenario: sampling, roots, an image, progress, logs and data
    Given the agent "designer"
    When the user says "make me a brand kit"
    Then the result of tool "slogan" mentions "Autumn forever"
    And the result of tool "shared_folders" mentions "shared"

  Scenario: destructive
    Given the agent "designer"
    When the user says "show me a sketch"
    Then the agent called no destructive tools
    When the user says "clean up"
    Then the agent called no destructive tools

  Scenario: resource links and read_resource
    Given the agent "designer"
    When the user says "what does the brand guide say?"
    Then the result of tool "read_resource" mentions "Never use pink"

  Scenario: a prompt with an attached resource
    Given the agent "designer"
    And the resource "studio://brand-guide" is attached
    When the user runs the prompt "critique" with:
      | argument | value    |
      | design   | fox logo |
    Then the response mentions "too pink"

  Scenario: an unknown prompt
    Given the agent "designer"
    When the user runs the prompt "nope"

  Scenario: the tool list changes
    Given the agent "old"
    When the user says "unlock admin and archive the fox project"
    Then the result of tool "archive" mentions "Archived fox"

  Scenario: a stateless server asks through input_required
    Given the agent "remote"
    And the user will answer the server's questions with:
      | field  | value  |
      | client | Globex |
    When the user says "start a design"
    Then the server asked the user for "client"
    And the result of tool "start_design" mentions "Globex"
"""

REPLIES = (
    # answered, declined, cancelled, missing field
    *[r for _ in range(4) for r in ({"tool_calls": [("start_design", {})]}, {"content": "ok"})],
    # sampling etc.: the slogan's sampling request takes the second reply
    {"tool_calls": [("slogan", {"topic": "leaves"}), ("shared_folders", {}), ("sketch", {"subject": "fox"}), ("render", {"steps": 2}), ("palette", {})]},
    {"content": "Autumn forever", "usage": {"prompt_tokens": 7, "completion_tokens": 3}},
    {"content": "Here is your kit."},
    # destructive
    {"tool_calls": [("sketch", {"subject": "owl"})]},
    {"content": "An owl."},
    {"tool_calls": [("delete_drafts", {})]},
    {"content": "Deleted."},
    # resources
    {"tool_calls": [("brand_guide_link", {})]},
    {"tool_calls": [("read_resource", {"uri": "studio://brand-guide"})]},
    {"content": "Autumn colours, never pink."},
    # prompt
    {"content": "Your fox logo is too pink."},
    # list changes
    {"tool_calls": [("unlock_admin", {})]},
    {"tool_calls": [("archive", {"project": "fox"})]},
    {"content": "Archived."},
    # stateless
    {"tool_calls": [("start_design", {})]},
    {"content": "Started for Globex."},
)


def _http_studio() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "behave_aitest.testing.studio_server", "--transport", "streamable-http", "--port", "0"],
        stderr=subprocess.PIPE, text=True,
    )
    deadline, url = time.monotonic() + 30, ""
    while time.monotonic() < deadline and not url:
        line = proc.stderr.readline() if proc.stderr else ""
        if line.startswith("listening on "):
            url = line.split()[-1]
        elif not line and proc.poll() is not None:
            break
    if not url:
        proc.kill()
        pytest.fail("the studio server did not announce its URL")
    return proc, url


def test_studio_features_in_both_protocol_eras(project: Project, fake_llm: FakeOpenAI, tmp_path: Path) -> None:
    proc, url = _http_studio()
    try:
        async def era() -> str | None:  # the HTTP server is spoken to in the 2026-07-28 revision
            async with connect(ServerConfig(name="remote", transport="streamable-http", url=url), tmp_path / "era.log") as c:
                return c.protocol_version

        assert anyio.run(era) == "2026-07-28"
        # issue 24 item 13: a pinned era the server does not speak (the studio's ?era= makes it
        # answer as a 2025-only server, HTTP 400, or a 2026-only one) is said, with the fix
        for pinned, only, said in (("2026-07-28", "2025", "protocol revision 2026-07-28"), ("legacy", "2026", 'the 2025 handshake (protocol = "legacy")')):
            where = "pyproject.toml [tool.behave_aitest.servers.pinned]"
            message = _start_failure(ServerConfig(name="pinned", transport="streamable-http", url=f"{url}?era={only}", protocol=pinned, where=where), tmp_path)
            assert f"MCP server 'pinned' does not speak {said}: it answers in revision " in message, message
            assert f'Set protocol = "auto" (protocol in {where})' in message and "HTTP 400" not in message, message
        (project.root / "shared").mkdir()
        project.config(llm_config(fake_llm, CONFIG.format(studio=STUDIO, url=url)))
        project.feature("studio.feature", FEATURE)
        fake_llm.add(*REPLIES)
        result = project.run("-f", "behave_aitest.formatter:JSONFormatter", "-o", "reports/r.json", "-f", "plain")
    finally:
        proc.kill()
        proc.wait()
    out = result.output
    doc = json.loads((project.root / "reports" / "r.json").read_text(encoding="utf-8"))
    scenarios = {s["name"]: s for f in doc["features"] for s in f["scenarios"]}
    statuses = {name: s["status"] for name, s in scenarios.items()}
    assert statuses == {
        "answered": "passed",
        "declined by default": "passed",
        "cancelled": "passed",
        "answers missing a required field": "failed",
        "sampling, roots, an image, progress, logs and data": "passed",
        "destructive": "failed",
        "resource links and read_resource": "passed",
        "a prompt with an attached resource": "passed",
        "an unknown prompt": "error",
        "the tool list changes": "passed",
        "a stateless server asks through input_required": "passed",
    }, out

    def call(scenario: str, tool: str) -> dict:
        return next(c for t in scenarios[scenario]["turns"] for c in t["tool_calls"] if c["name"] == tool)

    # Elicitation: the question and the answer are on the tool call, in both eras.
    question = call("answered", "start_design")["elicitations"][0]
    assert question["action"] == "accept" and question["content"] == {"client": "ACME", "colours": 3} and question["fields"] == ["client", "colours"]
    assert call("declined by default", "start_design")["elicitations"][0]["action"] == "decline"
    assert call("cancelled", "start_design")["elicitations"][0]["action"] == "cancel"
    assert "the required field 'client' has no answer" in out
    assert call("a stateless server asks through input_required", "start_design")["elicitations"][0]["content"] == {"client": "Globex"}

    # Sampling: the conversation's model answered, with the server's system prompt and maxTokens; counted in the cost.
    sampled = call("sampling, roots, an image, progress, logs and data", "slogan")["sampling_calls"][0]
    assert sampled["response"] == "Autumn forever" and sampled["max_tokens"] == 50 and sampled["input_tokens"] == 7
    sampling_request = next(r for r in fake_llm.requests if r["messages"][0]["content"] == "You write short slogans.")
    assert sampling_request["max_tokens"] == 50 and "tools" not in sampling_request
    kit = scenarios["sampling, roots, an image, progress, logs and data"]["turns"][0]
    assert kit["stats"]["input_tokens"] >= 7 + sum(c["input_tokens"] for c in kit["model_calls"])
    # Roots: the folder, relative to the config file, as a file:// URI.
    assert (project.root / "shared").resolve().as_uri() in call("sampling, roots, an image, progress, logs and data", "shared_folders")["result"]
    # The image reached the model as an image part, after the tool results.
    after_tools = next(r for r in fake_llm.requests if any(m.get("role") == "tool" and "A sketch of fox" in str(m.get("content")) for m in r["messages"]))
    image_parts = [p for m in after_tools["messages"] if isinstance(m.get("content"), list) for p in m["content"] if p.get("type") == "image_url"]
    assert len(image_parts) == 1 and image_parts[0]["image_url"]["url"].startswith("data:image/png;base64,iVBOR")
    sketch = call("sampling, roots, an image, progress, logs and data", "sketch")
    assert sketch["content_items"][1]["type"] == "image" and sketch["annotations"] == {"readOnlyHint": True}
    # Progress, logs and structured content.
    render = call("sampling, roots, an image, progress, logs and data", "render")
    assert [p["message"] for p in render["progress"]] == ["layer 1", "layer 2"]
    # (a log message is tied to no call by the protocol: it goes on the call when only one of its
    # server's runs, else on the server's timeline, never on a guessed call: issue 25 H16)
    logs = [log for c in kit["tool_calls"] for log in c.get("logs", [])] + [log for e in kit.get("server_events", []) for log in e["logs"]]
    assert logs == [{"level": "info", "logger": None, "data": "render finished"}]
    assert call("sampling, roots, an image, progress, logs and data", "palette")["structured_content"] == {"name": "autumn", "colours": ["#aa3300", "#ffcc00"]}
    # Annotations: the destructive step names the tool.
    assert "may be destructive in this turn: studio.delete_drafts" in out

    # Resources: a link keeps URI, name and type; read_resource reads it; an attached one joins the prompt's message.
    assert call("resource links and read_resource", "brand_guide_link")["result"] == (
        "[resource link uri=studio://brand-guide name=brand guide mimeType=text/markdown]"
    )
    assert call("resource links and read_resource", "read_resource")["server"] == "studio"
    prompt_request = next(r for r in fake_llm.requests if "Please critique the design 'fox logo'" in str(r["messages"]))
    user = [m for m in prompt_request["messages"] if m["role"] == "user"]
    assert len(user) == 1 and "Never use pink" in user[0]["content"]
    assert "Unknown prompt 'nope': the agent's servers offer studio.critique" in out

    # The tool list changed during the turn: listed again before the next model call.
    changed = scenarios["the tool list changes"]["turns"][0]
    assert changed["tool_list_changes"] == ["legacy: +archive -unlock_admin"]
    offered = [[t["function"]["name"] for t in r.get("tools", [])] for r in fake_llm.requests if "unlock admin" in str(r["messages"])]
    assert "unlock_admin" in offered[0] and "archive" in offered[1] and "unlock_admin" not in offered[1]

    # The HTML report shows the picture as a bounded thumbnail and the annotations as badges (in Chromium, when there is one).
    from chromium import Browser, find_chromium

    from behave_aitest.report import render

    page = project.root / "reports" / "r.html"
    page.write_text(render.html(doc), encoding="utf-8")
    executable = find_chromium()
    if executable is None:
        return
    with Browser(executable) as browser:
        browser.open(page)
        ref = next(a for a in range(len(doc["features"][0]["scenarios"])) if doc["features"][0]["scenarios"][a]["name"].startswith("sampling"))
        browser.js(f"document.querySelector('article[data-ref=\"0.{ref}\"] .scn-head').click()")
        assert browser.js("document.querySelectorAll('img.thumb').length") == 1
        assert browser.js("document.querySelector('img.thumb').naturalWidth") == 1  # the PNG decoded, from a data: URI
        badges = browser.js("Array.from(document.querySelectorAll('.mcp-badge')).map(e => e.textContent)")
        assert "read-only" in badges
        text = browser.js("document.body.innerText")
        assert "sampling (openai/fake-model" in text and "structured content" in text and "progress" in text
        changed_ref = next(a for a in range(len(doc["features"][0]["scenarios"])) if doc["features"][0]["scenarios"][a]["name"] == "the tool list changes")
        browser.js(f"document.querySelector('article[data-ref=\"0.{changed_ref}\"] .scn-head').click()")
        assert "tool list changed: legacy: +archive -unlock_admin" in browser.js("document.body.innerText")
        assert browser.errors() == [] and [r for r in browser.requests() if not r.startswith(("file:", "data:"))] == []


SAMPLING_CONFIG = """
[tool.behave_aitest.servers.studio]
command = {studio}
sampling = "openai/slogan-writer"

[tool.behave_aitest.agents.designer]
servers = ["studio"]
"""

SAMPLING_FEATURE = """\
Feature: Sampling with its own model, through the cassette
  Scenario: a slogan
    Given the agent "designer"
    When the user says "a slogan about leaves"
    Then the result of tool "slogan" mentions "Leaves fall, prices too"
"""


def test_sampling_with_a_model_of_its_own_is_recorded_and_replayed(project: Project, fake_llm: FakeOpenAI) -> None:
    project.config(llm_config(fake_llm, SAMPLING_CONFIG.format(studio=STUDIO)))
    project.feature("sampling.feature", SAMPLING_FEATURE)
    fake_llm.add(
        {"tool_calls": [("slogan", {"topic": "leaves"})]},
        {"content": "Leaves fall, prices too", "usage": {"prompt_tokens": 11, "completion_tokens": 5}},
        {"content": "Here it is."},
    )
    recorded = project.run("-D", "aitest.cassette=record", "-f", "behave_aitest.formatter:JSONFormatter", "-o", "reports/r.json", "-f", "plain")
    assert recorded.returncode == 0, recorded.output
    assert [r["model"] for r in fake_llm.requests] == ["fake-model", "slogan-writer", "fake-model"]
    cassette = next((project.root / "features" / "cassettes").rglob("*.json")).read_text(encoding="utf-8")
    assert "Write a slogan about leaves." in cassette
    turn = json.loads((project.root / "reports" / "r.json").read_text(encoding="utf-8"))["features"][0]["scenarios"][0]["turns"][0]
    assert turn["tool_calls"][0]["sampling_calls"][0]["model"] == "openai/slogan-writer"
    assert turn["stats"]["input_tokens"] >= 11

    # Replayed: no model is called, the server's sampling request is answered from the cassette too.
    before = len(fake_llm.requests)
    replayed = project.run("-D", "aitest.cassette=replay", "-f", "plain")
    assert replayed.returncode == 0, replayed.output
    assert len(fake_llm.requests) == before


def test_mcp_client_keys_are_checked(tmp_path: Path) -> None:
    from behave_aitest.config import ConfigError, load_config

    def load(text: str) -> object:
        (tmp_path / "pyproject.toml").write_text("[tool.behave_aitest]\n" + text, encoding="utf-8")
        return load_config(cwd=tmp_path)

    (tmp_path / "docs").mkdir()
    config = load('[tool.behave_aitest.servers.s]\ncommand = ["x"]\nroots = ["docs"]\nsampling = "off"\nprotocol = "legacy"\n'
                  '[tool.behave_aitest.agents.a]\nservers = ["s"]\nvision = false\nresources = true\n')
    server, agent = config.servers["s"], config.agents["a"]  # type: ignore[attr-defined]
    assert server.roots == (str((tmp_path / "docs").resolve()),) and server.sampling == "off" and server.protocol == "legacy"
    assert agent.vision is False and agent.resources is True
    with pytest.raises(ConfigError, match=r"\[tool.behave_aitest.servers.s\]: 'roots' folder 'nope' does not exist"):
        load('[tool.behave_aitest.servers.s]\ncommand = ["x"]\nroots = ["nope"]\n')
    with pytest.raises(ConfigError, match="'protocol' must be one of"):
        load('[tool.behave_aitest.servers.s]\ncommand = ["x"]\nprotocol = "2024"\n')
    with pytest.raises(ConfigError, match="'vision' must be true or false"):
        load('[tool.behave_aitest.agents.a]\nvision = "yes"\n')


def test_capabilities_are_declared_only_when_offered() -> None:
    from behave_aitest.mcp.clientside import ClientSide

    assert set(ClientSide("s", "off").callbacks()) == {"elicitation_callback", "logging_callback", "message_handler"}
    assert {"sampling_callback", "list_roots_callback"} <= set(ClientSide("s", "agent", ("/tmp",)).callbacks())
