"""Item 10, provider rate limits (issue 26): ``behave -j N`` against a fake provider with a quota,
nothing tuned, against the same run with the limit set by hand.

The provider is the project's fake OpenAI server (``behave_aitest.model.fakellm``) in its own
process (``python -m bench.ratelimits --serve``), every answer after ``latency`` seconds, with
a quota: N requests in flight (429 + ``Retry-After: 1`` above it), or N requests per minute
(429 + ``x-ratelimit-remaining-requests: 0`` / ``x-ratelimit-reset-requests``). The suite is
plain conversations of 2 turns (no MCP server: the model is what is measured). Each row:
wall time of the run with nothing tuned (adaptive limits only) against the run with
``max_model_concurrency`` (or ``requests_per_minute``) set to the quota; the conversations
lost (not passed) and the provider's 429s (from the JSON report's ``totals.rate_limits``) are
in the note. The requests-per-minute row compares with the ideal schedule (the quota's
requests at once, the next ones a minute later) and runs at full size only (it needs minutes).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .common import BEHAVE, PYTHON, ROOT, Bench, BenchError, Figure, Row, run_timed, write_project

ITEM = 10
TITLE = "Rate limits"
RUNNER = ["--runner", "behave_aitest.parallel:ParallelRunner"]
MODEL = "openai/bench-model"
LIMIT = 1.25  # issue 26: nothing tuned within 1.25x of the hand-tuned run


def _cases(bench: Bench) -> list[dict[str, Any]]:
    if bench.size.name == "tiny":
        return [{"quota": 2, "jobs": 3, "conversations": 4, "latency": 0.05}]
    return [
        {"quota": 4, "jobs": 12, "conversations": 24, "latency": 1.0},
        {"quota": 8, "jobs": 16, "conversations": 24, "latency": 1.0},
    ]


def _features(conversations: int) -> dict[str, str]:
    lines = ["Feature: Busy provider"]
    for i in range(conversations):
        lines += [f"  Scenario: Conversation {i}"]
        for t in range(2):
            lines += [f'    When the user says "question {t} of conversation {i}"', "    Then the agent answered"]
    return {"busy.feature": "\n".join(lines) + "\n"}


def _provider(args: list[str], bench: Bench) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([PYTHON, "-m", "bench.ratelimits", "--serve", *args], cwd=ROOT, env=bench.env(), stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise BenchError("the fake provider did not start")
    return proc, url


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _run(project: Path, bench: Bench, args: list[str]) -> tuple[float, int, int]:
    """One run: (wall seconds, conversations not passed, the provider's 429s)."""
    report = project / "r.json"
    report.unlink(missing_ok=True)
    cmd = BEHAVE[:4] + RUNNER + ["-f", "behave_aitest.formatter:JSONFormatter", "-o", str(report), *args]
    done = run_timed(cmd, project, bench.env(), timeout=1800)
    if not report.exists():
        raise BenchError(f"behave wrote no report (exit {done.returncode}):\n{done.tail()}")
    doc = json.loads(report.read_text(encoding="utf-8"))
    lost = sum(1 for f in doc["features"] for s in f["scenarios"] if s["status"] != "passed")
    refused = sum(int(r.get("throttled") or 0) for r in (doc["totals"].get("rate_limits") or {}).values())
    return done.seconds, lost, refused


def run(bench: Bench) -> list[Row]:
    rows = []
    for case in _cases(bench):
        quota, jobs, conversations, latency = case["quota"], case["jobs"], case["conversations"], case["latency"]
        proc, url = _provider(["--quota", str(quota), "--latency", str(latency)], bench)
        try:
            project = write_project(
                bench.folder(f"ratelimits-{quota}"),
                f'[tool.behave_aitest]\nmodel = "{MODEL}"\napi_base = "{url}"\ntimeout_s = 600\n',
                _features(conversations),
            )
            seen: dict[str, list[tuple[int, int]]] = {"adaptive": [], "pinned": []}

            def side(name: str, extra: list[str]) -> Any:
                def measure() -> float:
                    seconds, lost, refused = _run(project, bench, ["-j", str(jobs), *extra])
                    seen[name].append((lost, refused))
                    return seconds

                return measure

            samples = bench.alternate(
                {"adaptive": side("adaptive", []), "pinned": side("pinned", ["-D", f"aitest.max_model_concurrency={quota}"])},
                f"quota {quota}, -j {jobs}",
                warmup=False,
            )
        finally:
            _stop(proc)
        lost = max(lost for lost, _ in seen["adaptive"] + seen["pinned"])
        note = (
            f"429s per run: nothing tuned {', '.join(str(r) for _, r in seen['adaptive'])}; "
            f"max_model_concurrency = {quota}: {', '.join(str(r) for _, r in seen['pinned'])}. "
            f"Conversations lost (not passed): {lost}."
        )
        rows.append(
            Row(
                ITEM,
                f"{conversations} conversations × 2 turns, `-j {jobs}`, quota {quota} in flight, {latency:g} s model: nothing tuned vs `max_model_concurrency = {quota}`",
                value=Figure(samples["adaptive"]),
                baseline=Figure(samples["pinned"]),
                limit=LIMIT,
                note=note,
            )
        )
    if bench.size.name != "tiny":
        rows.append(_per_minute(bench))
    return rows


def _per_minute(bench: Bench) -> Row:
    """A quota of R requests a minute, 2R + R/2 calls: the run with requests_per_minute = R
    against the ideal schedule (R calls at once, each further R a minute after). Measured from
    the provider's side, first request to last answer (the start-up of behave and its workers,
    which items 8 and the rows above show, is not the schedule)."""
    per_minute, latency, jobs = 20, 1.0, 10
    conversations = 25  # 50 calls: minutes 0, 1 and 2
    calls = conversations * 2
    ideal = (math.ceil(calls / per_minute) - 1) * 60.0 + latency
    stamps = bench.folder("ratelimits-stamps") / "arrivals.txt"
    proc, url = _provider(["--rpm", str(per_minute), "--latency", str(latency), "--stamps", str(stamps)], bench)
    try:
        project = write_project(
            bench.folder("ratelimits-rpm"),
            f'[tool.behave_aitest]\nmodel = "{MODEL}"\napi_base = "{url}"\ntimeout_s = 600\nrequests_per_minute = {per_minute}\n',
            _features(conversations),
        )
        results, spans = [], []
        for _ in range(bench.repeat):
            stamps.write_text("", encoding="utf-8")
            results.append(_run(project, bench, ["-j", str(jobs)]))
            arrived = [float(line) for line in stamps.read_text(encoding="utf-8").split()]
            spans.append(max(arrived) - min(arrived) + latency)
    finally:
        _stop(proc)
    note = (
        f"{calls} calls against {per_minute} requests a minute, `-j {jobs}`, from the provider's first request to its last "
        f"answer; ideal {ideal:.0f} s (calls in minutes 0, 1 and 2, then the last answer); whole runs (with start-up): "
        f"{', '.join(f'{s:.0f} s' for s, _, _ in results)}; 429s: {', '.join(str(r) for _, _, r in results)}; "
        f"conversations lost: {max(lost for _, lost, _ in results)}."
    )
    return Row(
        ITEM,
        f"{conversations} conversations × 2 turns, quota {per_minute} requests a minute, `requests_per_minute = {per_minute}`: first request to last answer vs the ideal schedule",
        value=Figure(spans),
        baseline=Figure([ideal]),
        limit=LIMIT,
        note=note,
    )


def serve(argv: list[str]) -> int:
    """The fake provider of this item, in the foreground (prints its base URL)."""
    from behave_aitest.model.fakellm import FakeOpenAI, Quota, serve_until_stopped

    parser = argparse.ArgumentParser(prog="python -m bench.ratelimits --serve")
    parser.add_argument("--quota", type=int, help="requests in flight (429 + Retry-After: 1 above)")
    parser.add_argument("--rpm", type=int, help="requests a minute (429 + x-ratelimit-* above)")
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--stamps", help="append each answered request's arrival time (time.time()) to this file")
    args = parser.parse_args(argv)
    quota = Quota(concurrent=args.quota) if args.quota else Quota(requests=args.rpm, window_s=60.0, headers="ratelimit")
    usage = {"prompt_tokens": 120, "completion_tokens": 12}

    def brain(request: dict[str, Any]) -> dict[str, Any]:
        if args.stamps:
            with open(args.stamps, "a", encoding="utf-8") as out:
                out.write(f"{time.time():.6f}\n")
        return {"content": "Fine.", "delay": args.latency, "usage": usage}

    return serve_until_stopped(FakeOpenAI(brain=brain, quota=quota))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        sys.exit(serve(sys.argv[2:]))
    sys.exit("usage: python -m bench.ratelimits --serve [--quota N | --rpm N] [--latency S]")
