"""The run's cassettes: which file each conversation uses, opened and closed with it, and what
the run recorded, replayed and missed (the banner and the report's summary).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

from ...config import Config
from ...text.redact import Redactor
from .cassette import Cassette
from .naming import (
    SESSION_NAME,
    cassette_relpath,
    feature_key,
    flow_model,
    scenario_stem,
)

# --------------------------------------------------------------------------- the run's cassettes


_QUOTED = re.compile(r'"([^"]+)"')


def expected_texts(feature: Any, scenario: Any | None) -> list[str]:
    """The quoted texts and doc strings of the conversation's Then steps: what its assertions
    expect. The cassette never redacts them, so a step that passed live passes on replay."""
    scenarios = [scenario] if scenario is not None else list(feature.walk_scenarios())
    texts: list[str] = []
    for each in scenarios:
        for step in getattr(each, "all_steps", []):
            if getattr(step, "step_type", "") == "then":
                texts += _QUOTED.findall(str(step.name))
                if getattr(step, "text", None):
                    texts.append(str(step.text))
    return texts


class CassetteLibrary:
    """Opens the cassette of each conversation of a run (the runtime holds one)."""

    def __init__(self, config: Config, cwd: Path | None = None) -> None:
        self.config = config
        self.mode = config.cassette
        self.directory = Path(config.cassette_dir) if config.cassette_dir else config.base_dir / "features" / "cassettes"
        self.cwd = cwd or Path.cwd()
        self.scrubber = Redactor.from_environment(config)
        self.opened: Counter[str] = Counter()
        self.owners: dict[str, tuple[Any, str]] = {}  # casefolded cassette path -> (conversation, what it is)

    def describe(self) -> str:
        """One line for the start of the run."""
        what = {
            "record": "every model call goes to the model and is recorded",
            "replay": "model calls are answered from the cassettes; no model is called",
            "auto": "existing cassettes are replayed, missing ones recorded where the model is available",
        }[self.mode]
        tools = "; MCP tool calls are recorded/replayed too" if self.config.cassette_tools == "record" else ""
        return f"behave-aitest: cassette mode {self.mode!r} ({what}{tools}), cassettes in {self.display(self.directory)}/"

    def display(self, path: Path) -> str:
        try:
            return path.resolve().relative_to(self.cwd.resolve()).as_posix()
        except ValueError:
            return str(path)

    def open(self, feature: Any, scenario: Any | None) -> Cassette:
        """The cassette for a conversation: a scenario, or (``scenario=None``) a ``@session`` feature."""
        folder, feature_path = feature_key(feature.filename, self.directory, self.config.base_dir, self.cwd)
        model = flow_model(feature)
        stem = SESSION_NAME if scenario is None else scenario_stem(feature, scenario)
        base = cassette_relpath(folder, stem, model, 1)
        what = f"scenario {scenario.name!r} of {feature_path}" if scenario is not None else f"@session feature {feature_path}"
        identity = (os.path.normcase(os.path.abspath(str(feature.filename))), None if scenario is None else (scenario.line, str(scenario.name)), model)
        # casefolded: Bank.feature and bank.feature are one folder on macOS and Windows
        owner, owner_what = self.owners.setdefault(base.casefold(), (identity, what))
        conflict = None
        if owner != identity:
            conflict = (
                f"two conversations map to cassette {self.display(self.directory / base)}: {owner_what} and {what}. "
                "Rename one of them (cassette names ignore case and punctuation)."
            )
        else:
            self.opened[base] += 1
        # A repeated scenario (or session) gets one cassette per run; in a parallel run the
        # worker is told the run's number (its own count would start at 1 in every worker).
        run = getattr(scenario if scenario is not None else feature, "aitest_run", None) or self.opened[base] or 1
        relpath = cassette_relpath(folder, stem, model, run)
        path = self.directory / relpath
        header = {
            "feature": feature_path,
            "feature_name": str(feature.name),
            "scenario": None if scenario is None else str(scenario.name),
            "session": scenario is None,
            "flow_model": model,
            "run": run,
        }
        mode, auto = self.mode, False
        if mode == "auto":
            mode, auto = ("replay", False) if path.exists() else ("record", True)
        scrub = self.scrubber.keeping(expected_texts(feature, scenario))
        cassette = Cassette(path, self.display(path), mode, header, scrub, self.config.cassette_tools == "record", auto)
        cassette.conflict = conflict
        if mode == "replay" and conflict is None:
            cassette._load()  # now, so the records can say where it came from (problems surface at the first call)
        return cassette
