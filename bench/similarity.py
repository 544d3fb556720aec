"""Item 9, offline similarity (issue 27): the embedding model of the ``[similarity]`` extra
loads once per process in under 1 s and scores a pair in under 5 ms.

Each repetition is a fresh interpreter (``python -c``) that imports
:mod:`behave_aitest.model.embeddings`, loads the offline model (timed: what the first
"the response is similar to" of a run pays), then scores pairs of answer-sized texts (timed
per pair, after the load: what every later step pays) and prints both as JSON. Without the
extra installed, the row says what it needs instead of a number.
"""

from __future__ import annotations

import json

from .common import PYTHON, ROOT, Bench, Figure, Row, check, run_timed

ITEM = 9
TITLE = "offline similarity: load the model once, score a pair"

SCRIPT = r"""
import asyncio, json, time
from behave_aitest.agent.similarity import compare
from behave_aitest.model import embeddings
started = time.perf_counter()
import wordllama
imported = time.perf_counter() - started
started = time.perf_counter()
embeddings.offline_model()
load = time.perf_counter() - started
answer = "Your checking account holds $1,500.00 and savings $3,200.00. Would you like to move money between them?"
expected = "You have 1500 dollars in checking and 3200 in savings."
pairs = []
for i in range(PAIRS):
    started = time.perf_counter()
    asyncio.run(compare(embeddings.embed_offline, answer + " " * (i % 3), expected, 0.75))
    pairs.append(time.perf_counter() - started)
print(json.dumps({"import": imported, "load": load, "pairs": pairs}))
"""


def run(bench: Bench) -> list[Row]:
    try:
        import wordllama  # noqa: F401
    except ImportError:
        return [Row(ITEM, TITLE, missing="not measured yet: needs the [similarity] extra (pip install 'behave-aitest[similarity]')")]
    imports: list[float] = []
    loads: list[float] = []
    pairs: list[float] = []
    for _ in range(bench.repeat):
        done = check(run_timed([PYTHON, "-c", SCRIPT.replace("PAIRS", "50")], ROOT, bench.env()), "the similarity benchmark")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        imports.append(result["import"])
        loads.append(result["load"])
        pairs.extend(result["pairs"][1:])  # the first pair starts asyncio's machinery
    return [
        Row(ITEM, "offline similarity: import wordllama (numpy, tokenizers, pydantic) once per process", Figure(imports),
            target="(no target)", note="Paid with the load by the first similarity step; never by a run without one, nor by --dry-run."),
        Row(ITEM, "offline similarity model: load once per process (wordllama, weights from its wheel)", Figure(loads), at_most=1.0,
            note="A fresh interpreter each time; the load is what the first similarity step of a run (or worker) pays."),
        Row(ITEM, "offline similarity: score one pair (embed both texts, cosine)", Figure(pairs), at_most=0.005,
            note="After the load, 49 pairs per interpreter; each includes an asyncio.run, as the step's call through the run's loop does."),
    ]
