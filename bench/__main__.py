"""``python -m bench``: run the benchmarks, print the table, write docs/performance.md.

    python -m bench                                   # full size, 5 repetitions
    python -m bench --size tiny --repeat 1 --output /tmp/perf.md   # seconds; what the tests run
    python -m bench --items 1,4                       # only some benchmarks
    python -m bench --items 8 --update                # re-measure item 8, keep the other rows of docs/performance.md
    python -m bench --save-json r.json; python -m bench --from-json r.json   # re-write the table only
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

from . import jobs, parallel, ratelimits, replay, reports, scopes, similarity, startup, tool_calls, turns
from .common import ROOT, SIZES, Bench, Row
from .output import load_results, markdown, save_results, table, update

# Issue 7's items, in order (8: issue 12's parallel conversations; 9: issue 27's offline similarity;
# 10: issue 26's rate limits). Each module: ITEM, TITLE, run(bench) -> list[Row].
MODULES = [turns, tool_calls, scopes, startup, reports, replay, parallel, jobs, similarity, ratelimits]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Benchmarks of behave-aitest (issue 7).")
    parser.add_argument("--size", choices=sorted(SIZES), default="full", help="tiny: seconds, for the test suite (default: full)")
    parser.add_argument("--repeat", type=int, help="repetitions of every measurement (default: 5 for full, 1 for tiny)")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "performance.md", help="the Markdown file to write (default: docs/performance.md)")
    parser.add_argument("--items", help="comma-separated item numbers to run (default: all)")
    parser.add_argument("--update", action="store_true", help="keep the rows of --output that this run does not measure (other items, other scopes)")
    parser.add_argument("--scopes", help="item 1's server scopes, comma-separated (default: the size's: run,conversation for full)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (projects, logs)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.add_argument("--save-json", type=Path, metavar="FILE", help="also save the raw results (every sample) as JSON")
    parser.add_argument("--from-json", type=Path, metavar="FILE", help="measure nothing: write the table from results saved with --save-json")
    args = parser.parse_args(argv)
    if args.from_json:
        saved = load_results(args.from_json)
        print(table(saved["rows"]))
        for module in MODULES:
            if hasattr(module, "restore"):
                module.restore(saved["rows"], saved["loads"])
        text = markdown(**saved, explain=explain, sections=sections)
        if args.update and args.output.exists():
            text = update(text, args.output.read_text(encoding="utf-8"), {r.item for r in saved["rows"]})
        args.output.write_text(text, encoding="utf-8")
        return 0
    size = SIZES[args.size]
    if args.scopes:
        size = dataclasses.replace(size, turn_scopes=tuple(args.scopes.split(",")))
    repeat = args.repeat or size.default_repeat
    if repeat < 1:
        parser.error("--repeat must be at least 1")
    wanted = {int(i) for i in args.items.split(",")} if args.items else None

    def log(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # clean up like Ctrl-C
    workdir = Path(tempfile.mkdtemp(prefix="behave-aitest-bench-"))
    bench = Bench(size, repeat, workdir, log)
    rows: list[Row] = []
    started = dt.datetime.now(dt.timezone.utc)
    clock = time.perf_counter()
    failed = False
    try:
        for module in MODULES:
            if wanted is not None and module.ITEM not in wanted:
                continue
            log(f"[item {module.ITEM}] {module.TITLE}")
            try:
                rows.extend(module.run(bench))
            except Exception as exc:  # a broken benchmark is reported, never turned into a number
                failed = True
                traceback.print_exc()
                rows.append(Row(module.ITEM, module.TITLE, missing=f"not measured: the benchmark failed: {one_line(exc)}"))
    finally:
        bench.close()
        if args.keep:
            log(f"scratch folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.perf_counter() - clock
    bench.loads.append(os.getloadavg()[0])
    print(table(rows))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    results = {"rows": rows, "size": size, "repeat": repeat, "started": started, "elapsed": elapsed, "loads": bench.loads}
    text = markdown(**results, explain=explain, sections=sections)
    if args.update and args.output.exists():
        text = update(text, args.output.read_text(encoding="utf-8"), {r.item for r in rows})
    args.output.write_text(text, encoding="utf-8")
    if args.save_json:
        save_results(args.save_json, results)
    log(f"wrote {args.output}")
    return 1 if failed else 0


def explain(row: Row) -> str:
    """What limits a row that misses its target, from the module that measured it (``explain(row)``)."""
    for module in MODULES:
        if module.ITEM == row.item and hasattr(module, "explain"):
            return str(module.explain(row) or "")
    return ""


def sections(rows: list[Row]) -> list[str]:
    """Extra Markdown sections from the modules that measured something worth a paragraph (``summary(rows)``)."""
    lines: list[str] = []
    for module in MODULES:
        if hasattr(module, "summary"):
            lines.extend(module.summary([r for r in rows if r.item == module.ITEM]))
    return lines


def one_line(exc: BaseException) -> str:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= 300 else text[:297] + "..."


if __name__ == "__main__":
    sys.exit(main())
