"""Item 11 (issue 23), any agent under test: what behave-aitest's two wires cost an external agent.

Every figure comes from ``python -m behave`` runs configured only through the public
``[tool.behave_aitest.agents.NAME]`` keys, with a ``python =`` agent (bench/agent_client.py,
written into the project) that times its own requests:

* **model calls**: the agent makes N chat-completion requests (no tools) with one HTTP client,
  either to behave-aitest's model endpoint (which forwards each one through litellm to the
  fake model, counts and records it) or straight to the same fake model; the per-call times
  are the agent's own ``perf_counter`` around each request. One figure per repetition: the
  median call of the run.
* **tool calls**: the same agent makes N ``tools/call get_balance`` requests (JSON-RPC over
  streamable HTTP) either to the MCP endpoint (which runs each through the toolbox and the
  bank server's stdio connection, and records it) or straight to a bank server process
  serving streamable HTTP itself.
* **turns**: the run of item 1 (scenarios × turns; a ``get_balance`` call and an answer per
  turn) by the built-in loop against the same Gherkin run by the external agent
  (``Given the agent "external"``): whole processes, spawn to exit.
"""

from __future__ import annotations

import re
import statistics
import subprocess
from pathlib import Path

from .common import BEHAVE, PYTHON, ROOT, Bench, BenchError, Figure, Row, bank_pyproject, banking_features, check, fmt_seconds, run_timed, split, write_project

ITEM = 11
TITLE = "Any agent under test (issue 23)"
MODEL_LIMIT = 1.05
MODEL_ADDED_S = 0.002
TOOL_LIMIT = 1.10
TURN_LIMIT = 1.10
AGENT = (ROOT / "bench" / "agent_client.py").read_text(encoding="utf-8")

EXTERNAL = """
[tool.behave_aitest.agents.external]
python = "agent_client:{function}"
servers = ["bank"]
"""

CALLS_FEATURE = """Feature: Agent calls
  Scenario: Timed calls
    Given the agent "external"
    When the user says "Make the timed calls."
    Then the response mentions "calls done"
"""


def run(bench: Bench) -> list[Row]:
    from behave_aitest import config

    if "python" not in getattr(config, "AGENT_KINDS", ()):
        return [Row(ITEM, "An external agent's model calls, tool calls and turns",
                    missing="not measured yet: needs the external agent kinds of issue 23 (agents = python/url/command)")]
    url = bench.llm()
    calls = 20 if bench.size.name == "tiny" else 200
    return [*_model_calls(bench, url, calls), _tool_calls(bench, url, calls), _turns(bench, url)]


def _calls_project(bench: Bench, url: str, name: str, function: str) -> Path:
    project = write_project(bench.folder(name), bank_pyproject(url, scope="run") + EXTERNAL.format(function=function), {"calls.feature": CALLS_FEATURE})
    (project / "agent_client.py").write_text(AGENT, encoding="utf-8")
    return project


def _timed_calls(bench: Bench, project: Path, label: str, sides: dict[str, dict[str, str]], calls: int) -> dict[str, list[float]]:
    """Per side and repetition, the median of the agent's ``calls`` request times in one behave run."""
    samples_file = project / "samples.txt"

    def side(extra: dict[str, str]) -> float:
        samples_file.write_text("", encoding="utf-8")
        env = bench.env(BENCH_SAMPLES=str(samples_file), BENCH_CALLS=str(calls), **extra)
        done = check(run_timed(BEHAVE, project, env), f"behave ({label})")
        if "1 scenario passed" not in done.stdout + done.stderr:
            raise BenchError(f"the timed-calls scenario did not pass ({label}):\n{done.tail()}")
        times = [float(line) for line in samples_file.read_text(encoding="utf-8").split()]
        if len(times) != calls:
            raise BenchError(f"the agent timed {len(times)} calls, not {calls} ({label})")
        return statistics.median(times)

    return bench.alternate({name: (lambda extra=extra: side(extra)) for name, extra in sides.items()}, label)


def _model_calls(bench: Bench, url: str, calls: int) -> list[Row]:
    project = _calls_project(bench, url, "agent-model-calls", "model_calls")
    medians = _timed_calls(bench, project, "item 11, model calls",
                           {"endpoint": {}, "direct": {"BENCH_DIRECT_MODEL_URL": url}}, calls)
    added = [e - d for e, d in zip(medians["endpoint"], medians["direct"])]
    note = (
        f"The agent's own timing of {calls} sequential chat completions (no tools) in one behave run, one "
        "HTTP client kept open; a figure is the run's median call. Through the endpoint: HTTP to behave-aitest's "
        "model endpoint (127.0.0.1, per-run key), litellm to the fake model, the call counted and recorded on the "
        "turn, the reply returned. Direct: the same client to the same fake model process."
    )
    return [
        Row(ITEM, "One model call of an external agent: through the model endpoint vs straight to the model",
            Figure(medians["endpoint"]), Figure(medians["direct"]), limit=MODEL_LIMIT, note=note),
        Row(ITEM, "One model call of an external agent: time added by the model endpoint (median call)",
            Figure(added), at_most=MODEL_ADDED_S,
            note="Per repetition, the endpoint side's median call minus the direct side's (the rows above)."),
    ]


def _tool_calls(bench: Bench, url: str, calls: int) -> Row:
    project = _calls_project(bench, url, "agent-tool-calls", "tool_calls")
    with _bank_over_http(project) as direct_url:
        medians = _timed_calls(bench, project, "item 11, tool calls",
                               {"endpoint": {}, "direct": {"BENCH_DIRECT_MCP_URL": direct_url}}, calls)
    note = (
        f"The agent's own timing of {calls} sequential `tools/call get_balance` requests (JSON-RPC over streamable "
        "HTTP, one client) in one behave run; a figure is the run's median call. Through the endpoint: behave-aitest's "
        "MCP endpoint, the toolbox (allowed tools, doubles, the call recorded on the turn), the bank server over its "
        "stdio connection. Direct: a bank server process serving streamable HTTP itself (the MCP SDK's server)."
    )
    return Row(ITEM, "One tool call of an external agent: through the MCP endpoint vs straight to the MCP server",
               Figure(medians["endpoint"]), Figure(medians["direct"]), limit=TOOL_LIMIT, note=note)


class _bank_over_http:
    """A bank server process serving streamable HTTP on a free port (the direct side of the tool calls)."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.process: subprocess.Popen[str] | None = None

    def __enter__(self) -> str:
        self.process = subprocess.Popen(
            [PYTHON, "-m", "behave_aitest.testing.bank_server", "--transport", "streamable-http", "--port", "0"],
            cwd=self.cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        assert self.process.stderr is not None
        for line in self.process.stderr:
            found = re.search(r"(http://\S+/mcp)", line)
            if found:
                return found.group(1)
        raise BenchError("the bank server over streamable HTTP did not start")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def _turns(bench: Bench, url: str) -> Row:
    size = bench.size
    scenarios, turns = size.turn_scenarios, size.turn_turns
    features, per_feature = split(scenarios)
    files = banking_features(features, per_feature, turns)
    external = {name: text.replace('Given the agent "banker"', 'Given the agent "external"') for name, text in files.items()}
    builtin_project = write_project(bench.folder("agent-turns-builtin"), bank_pyproject(url, scope="run"), files)
    external_project = write_project(bench.folder("agent-turns-external"), bank_pyproject(url, scope="run") + EXTERNAL.format(function="banker"), external)
    (external_project / "agent_client.py").write_text(AGENT, encoding="utf-8")

    def side(project: Path, label: str) -> float:
        done = check(run_timed(BEHAVE, project, bench.env()), label)
        if f"{scenarios} scenarios passed, 0 failed" not in done.stdout + done.stderr:
            raise BenchError(f"{label}: behave did not pass {scenarios} scenarios:\n{done.tail()}")
        return done.seconds

    wall = bench.alternate(
        {"external agent": lambda: side(external_project, "the external agent's run"),
         "built-in loop": lambda: side(builtin_project, "the built-in loop's run")},
        "item 11, turns",
    )
    return Row(
        ITEM,
        f"{scenarios * turns} turns ({scenarios} scenarios × {turns}): an external agent (python kind) vs the built-in loop",
        Figure(wall["external agent"]), Figure(wall["built-in loop"]), limit=TURN_LIMIT,
        note=(
            "Whole `python -m behave` processes, spawn to exit, the same feature files, fake model process and bank "
            "server command (scope run). The external agent (bench/agent_client.py `banker`) opens the MCP endpoint "
            "(initialize, tools/list) and asks the model endpoint for each turn, like framework agents do; the "
            "built-in loop keeps one MCP connection and calls litellm itself."
        ),
    )


def explain(row: Row) -> str:
    """What limits the external agent here, from the row's own figures (for a miss)."""
    if row.value is None:
        return ""
    if row.baseline is None:  # the added-time row
        return (
            f"The endpoint adds {fmt_seconds(row.value.median)} to a model call: the request is parsed and checked "
            "(key, thread), handed to the run's event loop, sent through litellm (request building, its HTTP client, "
            "response parsing, cost lookup) to the fake model, recorded on the turn and serialised back. litellm's own "
            "per-call work is most of it, and the built-in loop pays it too: on this machine at the time of the run "
            "(load about 10 on 2 cores), 40 sequential `litellm.acompletion` calls to the same fake model took 100 ms "
            "at the median against 44 ms for the same request sent with `httpx` alone (a one-off measurement)."
        )
    extra = row.value.median - row.baseline.median
    if "tool call" in row.what:
        return (
            f"The MCP endpoint path adds {fmt_seconds(extra)} per call: a second hop (the agent's HTTP request to the "
            "endpoint, then the toolbox's call to the bank server over stdio) where the direct side has one, plus the "
            "recording of the call on the turn."
        )
    if "model call" in row.what:
        return f"The endpoint path took {fmt_seconds(extra)} more per call (medians); see the next row."
    return (
        f"The external agent's run took {fmt_seconds(extra)} longer (medians): each turn it makes two more HTTP "
        "requests (initialize, tools/list on the MCP endpoint) and every model and tool request crosses one more local "
        "HTTP hop than the built-in loop's."
    )


__all__ = ["ITEM", "TITLE", "explain", "run"]
