"""behave formatters for the report: HTML, JSON and a Markdown summary.

    behave -f behave_aitest.formatter:HTMLFormatter -o reports/aitest.html -f pretty

All three collect the same thing (behave's Feature objects, with the records the hooks hung
on them) and draw one document (:func:`behave_aitest.report.build_document`) in
``close()``: behave has no "scenario finished" callback, and the records of a scenario are
complete only after its ``after_scenario`` hook, so nothing is rendered earlier.

A report is also written when behave never gets to ``close()`` (a crash, an interrupt
outside a step, SIGTERM): an ``atexit`` handler, and a SIGTERM handler when nobody else
has one, write what was collected, marked partial. Files
are written as UTF-8 whatever the console's encoding, atomically (a reader never sees
half a file).

Options (userdata, ``-D key=value`` or ``[behave.userdata]``), each also as
``-D aitest.report_<name>``:

``behave.formatter.aitest.title``     the report's title
``behave.formatter.aitest.json``      HTMLFormatter: also write ``<name>.json`` beside the
                                      HTML (default true; false to turn it off)
``behave.formatter.aitest.max_text``  characters of one text (tool result, message) shown in
                                      HTML and Markdown; default 20000, 0 for no limit.
                                      The JSON always keeps the full text.
"""

from __future__ import annotations

import atexit
import gc
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from behave.formatter.base import Formatter

from . import config as _config
from . import report
from .report import render
from .run.quirks import one_catalog
from .text.files import write_atomic
from .text.redact import Redactor

OPTIONS = _config.REPORT_OPTIONS  # also -D aitest.report_<option>

INTERRUPTED = "The run was interrupted (Ctrl-C or a signal) before every scenario ran."
NOT_CLOSED = "behave did not finish the run (it was interrupted or crashed outside a step): this is what had run until then."
TERMINATED = "The run was terminated (SIGTERM, e.g. a cancelled CI job): this is what had run until then."

_LIVE: list[ReportFormatter] = []  # formatters that have not written their report yet


def _on_sigterm(signum: int, frame: Any) -> None:
    """Write every pending report, then die of SIGTERM as if we had not been here."""
    for formatter in list(_LIVE):
        formatter._finish(TERMINATED)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _watch_sigterm() -> None:
    """Catch SIGTERM (Python's default dies without atexit), unless someone else handles it."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)


def option(userdata: Mapping[str, Any], name: str, default: Any = None) -> Any:
    """A formatter option from behave's userdata (flat "a.b.c" keys, or nested TOML tables)."""
    for key in (f"behave.formatter.aitest.{name}", f"aitest.report_{name}"):
        if key in userdata:
            return userdata[key]
        node: Any = userdata
        for part in key.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if node is not None and not isinstance(node, Mapping):
            return node
    return default


def _flag(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).strip().lower() not in ("0", "false", "no", "off", "")


def default_title(runtime: Any = None) -> str:
    """The report's title when none is given: the ``[project] name`` of the pyproject.toml the
    run's configuration came from (else of the working directory), or "behave-aitest report"."""
    config_path = getattr(getattr(runtime, "config", None), "path", None)
    candidates = [Path(config_path)] if config_path and Path(config_path).name == "pyproject.toml" else []
    candidates.append(Path.cwd() / "pyproject.toml")
    for path in candidates:
        try:
            from .config import tomllib

            name = tomllib.loads(path.read_text(encoding="utf-8")).get("project", {}).get("name")
        except Exception:  # no file, or one that is not TOML: the config loader says so elsewhere
            continue
        if isinstance(name, str) and name.strip():
            return name.strip()
    return "behave-aitest report"


# Suffixes of the files each report kind writes; a report sent to a file with another kind's
# suffix was paired with the wrong -o (a file without one, like $GITHUB_STEP_SUMMARY, is fine).
REPORT_SUFFIXES = {".html": "HTML", ".htm": "HTML", ".json": "JSON", ".md": "Markdown", ".markdown": "Markdown", ".xml": "XML", ".txt": "text"}


def suffix_warning(kind: str, mine: tuple[str, ...], target: str | None, config: Any) -> str | None:
    """The warning for a report going to a file whose suffix is another format's: behave pairs
    each ``-o`` with the ``-f`` in the same position, so one ``-o`` too few or too many shifts
    every report after it. Names the pairs behave made and how to write them."""
    if not target or target == "-":
        return None
    suffix = Path(target).suffix.lower()
    if suffix not in REPORT_SUFFIXES or suffix in mine:
        return None
    return (
        f"the {kind} goes to {target}, a {REPORT_SUFFIXES[suffix]} file name: behave pairs each -o with the -f "
        f"in the same position, here {behave_pairs(config)[1]}. Give each -f its -o in the same order (a console formatter "
        "after the report formatters needs none)."
    )


def behave_pairs(config: Any) -> tuple[list[tuple[str, str]], str]:
    """The (-f, -o) pairs behave made (an -f past the last -o writes to the console), and them
    written out as a command line for a message."""
    formats = [str(f) for f in getattr(config, "format", None) or []]
    outputs = [getattr(o, "name", None) or "-" for o in getattr(config, "outputs", None) or []]
    pairs = [(f, outputs[i] if i < len(outputs) else "-") for i, f in enumerate(formats)]
    return pairs, " ".join(f"-f {f} -o {o}" for f, o in pairs)


def behave_pair_warnings(config: Any) -> list[str]:
    """Warnings for behave's own formatters writing to a report's file name.

    behave puts the command line's ``-f``/``-o`` after ``[tool.behave]``'s ``format`` and
    ``outfiles`` and, when the command line names no ``-f``, adds its default formatter: so
    ``behave -o reports/x.html``, meant to move the configured report, writes pretty text into
    ``x.html`` while the report stays where it was."""
    pairs, said = behave_pairs(config)
    ours = {s: cls.__name__ for cls in (HTMLFormatter, JSONFormatter, MarkdownFormatter) for s in cls.suffixes if s != ".txt"}
    warnings = []
    for name, target in pairs:
        suffix = Path(target).suffix.lower()
        if ":" in name or suffix not in ours or (suffix == ".json" and name.startswith("json")):
            continue
        warnings.append(
            f"{target} gets behave's {name} output, not a report: behave pairs each -o with the -f in the same "
            f"position, the command line's after [tool.behave]'s format and outfiles (and adds its default "
            f"formatter when the command line names none), here {said}. Give the report's -f with it: "
            f"-f behave_aitest.formatter:{ours[suffix]} -o {target}."
        )
    return warnings


def report_target(stream_opener: Any) -> str | None:
    """The file a report goes to, resolved (None for the console)."""
    name = getattr(stream_opener, "name", None)
    if not name or name == "-":
        return None
    return str(Path(name).resolve())


class ReportFormatter(Formatter):  # type: ignore[misc]
    """The shared collector: keeps the features, builds the document once at the end."""

    name = "aitest"
    description = "behave-aitest report"
    kind = "report"
    suffixes: tuple[str, ...] = ()  # the file suffixes this report is written to (suffix_warning)

    def __init__(self, stream_opener: Any, config: Any) -> None:
        super().__init__(stream_opener, config)
        one_catalog(config)
        self.features: list[Any] = []
        self.started = time.time()
        self.done = False
        warning = suffix_warning(self.kind, self.suffixes, getattr(stream_opener, "name", None), config)
        if warning:
            print(f"behave-aitest WARNING: {warning}", file=sys.stderr)
        if not getattr(config, "aitest_pairs_checked", False):  # said once, by the first report formatter
            config.aitest_pairs_checked = True
            for warning in behave_pair_warnings(config):
                print(f"behave-aitest WARNING: {warning}", file=sys.stderr)
        # The same report named by [tool.behave] and by the command line (behave runs both): the
        # first writes it, this one neither writes it again nor says so a second time.
        target = report_target(stream_opener)
        self.twin = target is not None and any(type(f) is type(self) and report_target(f.stream_opener) == target for f in _LIVE)
        _LIVE.append(self)
        atexit.register(self._at_exit)
        _watch_sigterm()

    # behave calls these
    def feature(self, feature: Any) -> None:
        if not any(f is feature for f in self.features):
            self.features.append(feature)

    def close(self) -> None:
        self._finish()

    # ----------------------------------------------------------------- internals

    def _at_exit(self) -> None:
        self._finish(NOT_CLOSED)

    def _finish(self, why_unfinished: str | None = None) -> None:
        """Write the report once: from close(), or from atexit / SIGTERM with ``why_unfinished``."""
        if self.done:
            return
        self.done = True
        atexit.unregister(self._at_exit)
        if self in _LIVE:
            _LIVE.remove(self)
        main = threading.current_thread() is threading.main_thread()
        if not _LIVE and main and signal.getsignal(signal.SIGTERM) is _on_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if getattr(self.config, "steps_catalog", False):
            return  # `behave --steps-catalog` runs nothing: keep the last real report
        if self.twin:
            return  # another formatter of this kind writes the same file
        # Building the document allocates many small objects that all live until written; with
        # the whole run's records on the heap, every automatic full collection would scan it
        # all, making a 1,000-scenario report grow faster than linearly (python -m bench, item
        # 5). Nothing built here forms reference cycles, so collect nothing meanwhile.
        collecting = gc.isenabled()
        gc.disable()
        try:
            reasons = [why_unfinished] if why_unfinished else []
            self.write(self.document([*reasons, *self._partial_reasons()]))
        except OSError as exc:  # a path that cannot be written: say which, no traceback needed
            target = getattr(self.stream_opener, "name", None) or "-"
            print(f"behave-aitest: could not write the {self.kind} to {target}: {exc}", file=sys.stderr)
        except Exception:  # a report bug must not hide the run's own result
            print(f"behave-aitest: could not write the {self.kind}:\n{traceback.format_exc()}", file=sys.stderr)
        finally:
            if collecting:
                gc.enable()

    def _userdata(self) -> Mapping[str, Any]:
        return getattr(self.config, "userdata", None) or {}

    def _option(self, name: str, default: Any = None) -> Any:
        return option(getattr(self.config, "userdata", None) or {}, name, default)

    def _partial_reasons(self) -> list[str]:
        """Why the report does not cover the whole run, read from behave's own statuses."""
        if getattr(self.config, "dry_run", False):
            return []
        reasons = []
        hook_errors = list(getattr(self.config, "aitest_hook_errors", []) or [])
        before_all = [e for e in hook_errors if "before_all" in e]
        scenarios = [s for f in self.features for s in f.walk_scenarios()]
        not_run = [s for s in scenarios if report.outcome(s.status) == "untested" or getattr(s.status, "name", "") == "executing"]
        interrupted = any(
            "KeyboardInterrupt" in str(getattr(step, "error_message", "") or "")
            for s in scenarios
            for step in s.all_steps
            if report.outcome(step.status) == "error"
        ) or any("KeyboardInterrupt" in e for e in hook_errors)
        if before_all:
            reasons.append(f"The run stopped before the first scenario: {before_all[0]}")
        elif interrupted:
            reasons.append(INTERRUPTED)
        if not_run and not before_all:
            why = " (--stop after the first failure)" if getattr(self.config, "stop", False) and not interrupted else ""
            reasons.append(f"{len(not_run)} scenario{'s' * (len(not_run) != 1)} did not run{why}.")
        return reasons

    def document(self, reasons: list[str]) -> report.Doc:
        runtime = getattr(self.config, "aitest_runtime", None)
        doc = self._document(reasons, runtime)
        baseline = getattr(getattr(runtime, "config", None), "baseline", None)
        if baseline:  # -D aitest.baseline=PATH: deltas against a previous report, inline (behave_aitest.diff)
            from .report.diff import attach_baseline

            attach_baseline(doc, baseline)
        return doc

    def _document(self, reasons: list[str], runtime: Any) -> report.Doc:
        return report.build_document(
            self.features,
            runtime=runtime,
            dry_run=bool(getattr(self.config, "dry_run", False)),
            started_at=self.started,
            finished_at=time.time(),
            title=self._option("title") or self._userdata().get("aitest.title") or default_title(runtime),
            partial_reasons=reasons,
            hook_errors=getattr(self.config, "aitest_hook_errors", []) or [],
            redactor=Redactor.from_environment(getattr(runtime, "config", None)),
            shard=getattr(self.config, "aitest_shard", None),
        )

    def render(self, doc: report.Doc) -> str:
        raise NotImplementedError

    @property
    def max_text(self) -> int:
        """The ``max_text`` option: characters kept of one text in HTML and Markdown."""
        value = self._option("max_text", report.DEFAULT_MAX_TEXT)
        try:
            return int(value)
        except (TypeError, ValueError):
            return report.DEFAULT_MAX_TEXT

    def write(self, doc: report.Doc) -> None:
        self.emit(self.render(doc))

    def emit(self, text: str) -> None:
        """To the ``-o`` file, or to stdout (as UTF-8 bytes, whatever the console encoding)."""
        name = self.stream_opener.name
        if name and name != "-":
            write_atomic(name, text)
            print(f"behave-aitest: {self.kind} written to {name}", file=sys.stderr)
            return
        stream = self.stream or sys.stdout
        stream.flush()
        buffer = getattr(sys.stdout, "buffer", None)
        if buffer is not None:
            buffer.write(text.encode("utf-8", errors="replace"))
            buffer.flush()
        else:
            stream.write(text)


class HTMLFormatter(ReportFormatter):
    """One self-contained HTML page; with ``-o x.html`` also ``x.json`` beside it (option ``json``)."""

    name = "aitest"
    description = "behave-aitest HTML report (self-contained, session-grouped)"
    kind = "HTML report"
    suffixes = (".html", ".htm")

    def render(self, doc: report.Doc) -> str:
        return render.html(doc, self.max_text)

    def write(self, doc: report.Doc) -> None:
        self.emit(self.render(doc))
        name = self.stream_opener.name
        if name and name != "-" and _flag(self._option("json", True)):
            beside = Path(name).with_suffix(".json")
            if beside != Path(name):
                write_atomic(beside, report.dumps(doc))


class JSONFormatter(ReportFormatter):
    """The report document as JSON (schema in docs/report.md): merge and render it later."""

    name = "aitest.json"
    description = "behave-aitest JSON report (versioned schema)"
    kind = "JSON report"
    suffixes = (".json",)

    def render(self, doc: report.Doc) -> str:
        return report.dumps(doc)


class MarkdownFormatter(ReportFormatter):
    """A short Markdown summary for a CI job summary or a pull-request comment."""

    name = "aitest.md"
    description = "behave-aitest Markdown summary"
    kind = "Markdown summary"
    suffixes = (".md", ".markdown", ".txt")

    def render(self, doc: report.Doc) -> str:
        return render.markdown(doc, self.max_text)
