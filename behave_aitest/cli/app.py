"""The ``behave-aitest`` command.

    behave-aitest report render run.json -o run.html
    behave-aitest report merge shard-1.json shard-2.json -o all.html
    behave-aitest report diff main.json run.json -o diff.md --max-cost-increase 20%
    behave-aitest doctor
    behave-aitest init [DIR]

Each group of subcommands lives beside the code it drives and is added by a function
``add_<group>_commands(subparsers)`` that sets a ``func(args) -> exit code`` default on
its parsers; :data:`COMMANDS` lists them, so a new group is one line here. Modules are
imported only when the parser is built, and stay light.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..text.files import write_atomic

# "module:function" adding one group of subcommands to an argparse subparsers object.
COMMANDS: tuple[str, ...] = (
    "behave_aitest.cli.app:add_report_commands",
    "behave_aitest.cli.cassettes:add_cassette_commands",
    "behave_aitest.cli.doctor:add_doctor_command",
    "behave_aitest.cli.scaffold:add_init_command",
    "behave_aitest.cli.docs:add_docs_command",
)

FORMATS = {".html": "html", ".htm": "html", ".json": "json", ".md": "md", ".markdown": "md"}


def write_report(doc: dict[str, Any], output: str, fmt: str | None, max_text: int | None = None) -> str:
    """Write ``doc`` to ``output`` ("-" for stdout) in ``fmt`` or the format its suffix names.

    HTML and Markdown cut texts longer than ``max_text`` with a note; JSON keeps them whole.
    """
    from .. import report
    from ..report import render

    kind = fmt or FORMATS.get(Path(output).suffix.lower())
    if kind is None:
        raise report.ReportError(f"{output}: cannot tell the format from the suffix; use .html, .json or .md, or --format.")
    limit = report.DEFAULT_MAX_TEXT if max_text is None else max_text
    text = report.dumps(doc) if kind == "json" else {"html": render.html, "md": render.markdown}[kind](doc, limit)
    if output == "-":
        sys.stdout.buffer.write(text.encode("utf-8", errors="replace"))
        sys.stdout.buffer.flush()
    else:
        write_atomic(output, text)
    return kind


def _malformed(names: Sequence[str], exc: Exception) -> Exception:
    """A report that passed :func:`report.shape_problem` but still broke the rendering (a field
    of the wrong type deep inside): one line naming the file(s), not a traceback."""
    from ..report import ReportError

    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return ReportError(f"{', '.join(names)}: malformed report, cannot render it ({detail}).")


# What a field of the wrong type raises while summarising, merging or rendering.
_SHAPE_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError, RecursionError)


def _render(args: argparse.Namespace) -> int:
    from .. import report

    doc = report.load(args.input)
    if args.title:
        doc["title"] = args.title
    try:
        report.summarize(doc)
        _baseline(doc, args.baseline)
        write_report(doc, args.output, args.format, args.max_text)
    except report.ReportError:
        raise
    except _SHAPE_ERRORS as exc:
        raise _malformed([args.input], exc) from None
    if args.output != "-":
        print(f"{args.output}: {_summary(doc)}", file=sys.stderr)
    return 0


def _merge(args: argparse.Namespace) -> int:
    from .. import report
    from ..record import coverage

    docs = [report.load(path) for path in args.inputs]
    from ..report.merge import shard_problem

    problem = shard_problem(docs, list(args.inputs))
    if problem:  # a gap or a double would be a wrong total (issue 25, H10)
        raise report.ReportError(f"cannot merge: {problem}.")
    try:
        doc = report.merge(docs, title=args.title)
        if args.min_tool_coverage is not None and doc.get("coverage"):
            doc["coverage"] = coverage.merge([doc["coverage"]], args.min_tool_coverage)
        _baseline(doc, args.baseline)
        write_report(doc, args.output, args.format, args.max_text)
    except report.ReportError:
        raise
    except _SHAPE_ERRORS as exc:
        raise _malformed(args.inputs, exc) from None
    if args.output != "-":
        print(f"{args.output}: merged {len(args.inputs)} report{'s' * (len(args.inputs) != 1)}, {_summary(doc)}", file=sys.stderr)
    short = coverage.gate_message(doc.get("coverage"))  # the shards' gate, applied to the whole run
    if short:
        print(f"behave-aitest: {short}", file=sys.stderr)
        return 1
    return 0


def _diff(args: argparse.Namespace) -> int:
    """``report diff``: exit 1 on any regression (see behave_aitest.diff)."""
    from .. import report
    from ..report import diff

    base, new = diff.load_pair(args.base, args.new)
    if not new.get("features"):  # a run that ran nothing shows no regression, and proves nothing (H9)
        raise report.ReportError(f"{args.new}: the report has no features: nothing to compare with {args.base}.")
    thresholds = {m: v for m, v in (("cost_usd", args.max_cost_increase), ("tokens", args.max_token_increase), ("latency_s", args.max_latency_increase)) if v is not None}
    try:
        result = diff.compare(base, new, thresholds, base_name=args.base, new_name=args.new)
        kind = args.format or (FORMATS.get(Path(args.output).suffix.lower()) if args.output else "md")
        if kind is None:
            raise report.ReportError(f"{args.output}: cannot tell the format from the suffix; use .html, .json or .md, or --format.")
        text = diff.render(result, kind)
    except report.ReportError:
        raise
    except _SHAPE_ERRORS as exc:
        raise _malformed([args.base, args.new], exc) from None
    if args.output and args.output != "-":
        write_atomic(args.output, text)
        print(f"{args.output}: {diff.headline(result)}", file=sys.stderr)
    else:
        sys.stdout.buffer.write(text.encode("utf-8", errors="replace"))
        sys.stdout.buffer.flush()
    if result.get("partial"):  # an interrupted run cannot show that nothing regressed (H9)
        print(f"behave-aitest: {', '.join(result['partial'])}: the report of an interrupted run (partial): the comparison is incomplete.", file=sys.stderr)
        return 1
    return 1 if result["regressions"] else 0


def _increase(text: str) -> float:
    from ..report.diff import parse_increase

    try:
        return parse_increase(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _baseline(doc: dict[str, Any], path: str | None) -> None:
    if path:
        from ..report.diff import attach_baseline

        attach_baseline(doc, path)


def _summary(doc: dict[str, Any]) -> str:
    t = doc["totals"]
    partial = " (partial)" if doc.get("partial") else ""
    from ..text.safetext import plural

    return f"{plural(t['scenarios'], 'scenario')}: {t['passed']} passed, {t['failed']} failed, {plural(t['error'], 'error')}{partial}"


def add_report_commands(subparsers: Any) -> None:
    """``report render`` and ``report merge``."""
    parser = subparsers.add_parser("report", help="render or merge report JSON files", description="Render or merge behave-aitest report JSON files.")
    commands = parser.add_subparsers(dest="report_command", metavar="COMMAND")
    commands.required = True
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-o", "--output", required=True, metavar="FILE", help="output file: .html, .json or .md (- for stdout)")
    common.add_argument("--format", choices=("html", "json", "md"), help="output format (default: from the output's suffix)")
    common.add_argument("--title", help="report title (default: the input's)")
    common.add_argument("--baseline", metavar="BASE.json", help="show the deltas against this earlier report inline (HTML), as -D aitest.baseline does")
    common.add_argument(
        "--max-text", type=int, metavar="N",
        help="characters kept of one text in HTML and Markdown (default: 20000; 0 keeps everything); JSON keeps all",
    )
    render_parser = commands.add_parser(
        "render", parents=[common], help="regenerate a report from its JSON",
        description="Regenerate the HTML (or Markdown, or JSON) report from a report JSON file.",
    )
    render_parser.add_argument("input", metavar="RUN.json")
    render_parser.set_defaults(func=_render)
    merge_parser = commands.add_parser(
        "merge", parents=[common], help="merge report JSON files of shards into one report",
        description="Merge the report JSON files of the shards of a parallel or multi-job run into one report. "
        "A @session feature is never split; a feature whose scenarios ran on different shards (-D aitest.shard=K/N) is joined again.",
    )
    merge_parser.add_argument("inputs", nargs="+", metavar="SHARD.json")
    merge_parser.add_argument(
        "--min-tool-coverage", type=_fraction, metavar="RATE",
        help="fail (exit 1) when the merged tool coverage is below RATE (0-1; default: the shards' min_tool_coverage)",
    )
    merge_parser.set_defaults(func=_merge)
    add_diff_command(commands)


def add_diff_command(commands: Any) -> None:
    """``report diff BASE.json NEW.json``."""
    parser = commands.add_parser(
        "diff", help="compare two report JSON files (exit 1 on a regression)",
        description="Compare two report JSON files scenario by scenario: status changes, pass-rate drops, tool-sequence "
        "changes, cost / token / latency deltas, scenarios added or removed. Exit 1 on any regression.",
    )
    parser.add_argument("base", metavar="BASE.json")
    parser.add_argument("new", metavar="NEW.json")
    parser.add_argument("-o", "--output", metavar="FILE", help="diff.md, diff.html or diff.json (default: Markdown on stdout)")
    parser.add_argument("--format", choices=("html", "json", "md"), help="output format (default: from the output's suffix)")
    for metric in ("cost", "token", "latency"):
        parser.add_argument(
            f"--max-{metric}-increase", type=_increase, metavar="PCT",
            help=f"a regression when the run's total {metric} grew by more than PCT (e.g. 20%%) over the scenarios in both runs",
        )
    parser.set_defaults(func=_diff)


def _fraction(text: str) -> float:
    """0-1, or a percentage (``80%``)."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number from 0 to 1 (or a percentage)") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and 1 (e.g. 0.8 or 80%)")
    return value


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="behave-aitest", description="Tools around behave-aitest runs.")
    parser.add_argument("--version", action="version", version=f"behave-aitest {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for spec in COMMANDS:
        module, _, function = spec.partition(":")
        getattr(importlib.import_module(module), function)(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from ..report import ReportError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ReportError as exc:
        print(f"behave-aitest: {exc}", file=sys.stderr)
        return 1
