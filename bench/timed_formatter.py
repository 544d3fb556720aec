"""behave-aitest's report formatters, timed: ``close()`` generates the report (build the document
from behave's features and the plugin's records, render it, write the file) ``BENCH_REPORT_REPEAT``
times and writes the seconds of each to ``<output>.times`` (JSON). The data are the same every
time, so the repetitions measure generation alone, without running the suite again.

    behave -f bench.timed_formatter:TimedHTML -o run.html -f bench.timed_formatter:TimedJSON -o run.json
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from behave_aitest.formatter import HTMLFormatter, JSONFormatter


class _Timed:
    def close(self) -> None:
        samples = []
        for _ in range(int(os.environ.get("BENCH_REPORT_REPEAT", "1"))):
            self.done = False  # type: ignore[attr-defined]  # let the formatter write again
            started = time.perf_counter()
            super().close()  # type: ignore[misc]
            samples.append(time.perf_counter() - started)
        Path(self.stream_opener.name + ".times").write_text(json.dumps(samples))  # type: ignore[attr-defined]


class TimedHTML(_Timed, HTMLFormatter):
    pass


class TimedJSON(_Timed, JSONFormatter):
    pass
