"""Where a conversation's cassette lives: a folder per feature file, a file per scenario (or
``session`` for an ``@session`` flow), the model and the run number in its name; names made
safe for every file system, stable across runs and distinct for distinct scenarios.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from pathlib import Path
from typing import Any

SESSION_NAME = "session"
SUFFIX = ".json"

# --------------------------------------------------------------------------- naming


def slug(text: str, limit: int = 80) -> str:
    """``"Check balances -- @1.2 Examples"`` -> ``"check-balances-1-2-examples"``; long names
    keep a short hash of the full text so they stay distinct."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    out = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    short = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    if not out:
        return f"x-{short}"
    if len(out) > limit:
        out = f"{out[:limit - 9].rstrip('-')}-{short}"
    return out


def _hashed(shown: str, text: str) -> str:
    """``shown~<hash of text>``: ``~`` is never produced by :func:`slug` or a safe path part,
    so a name that lost information can equal no other name."""
    return f"{shown or 'x'}~{hashlib.sha1(text.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"


def _safe_part(part: str) -> str:
    """A path part as a folder name: kept as it is when it is plain ASCII (``bank``, ``a-b``),
    else slugged with a hash of the original (``a b`` -> ``a-b~<hash>``, ``日本`` -> ``x~<hash>``)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", part).strip("-")
    return safe if safe == part and safe.strip(".") else _hashed(safe, part)


def flow_model(feature: Any) -> str | None:
    """The model of a per-model flow (a feature copied once per model, named ``Title [model]``)."""
    model = getattr(feature, "aitest_model", None)
    if model and str(feature.name).endswith(f" [{model}]"):
        return str(model)
    return None


def feature_key(feature_file: str | Path, cassette_dir: Path, base_dir: Path, cwd: Path | None = None) -> tuple[str, str]:
    """(folder of the feature's cassettes inside ``cassette_dir``, feature path for the header).

    The folder is the feature file's path relative to the cassette folder's parent
    (``features/`` by default), without ``.feature``: ``features/bank/transfer.feature``
    -> ``bank/transfer``. A part that is not plain ASCII letters, digits, ``.``, ``_`` and
    ``-`` keeps a hash (``a b`` -> ``a-b~1f0c2d3e``), so two feature files never share a
    folder. The header path is relative to the config file's folder.
    """
    path = Path(feature_file)
    if not path.is_absolute():
        path = (cwd or Path.cwd()) / path
    path = Path(os.path.normpath(path))
    folder: Path | None = None
    for root in (cassette_dir.parent, base_dir):
        try:
            folder = path.relative_to(Path(os.path.normpath(root)))
            break
        except ValueError:
            continue
    if folder is None:  # outside the project: the file name and a hash of where it is
        parts = [_hashed(re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem).strip("-"), path.as_posix())]
    else:
        parts = [_safe_part(p) for p in folder.with_suffix("").parts]
    try:
        header = path.relative_to(Path(os.path.normpath(base_dir))).as_posix()
    except ValueError:
        header = path.as_posix()
    return "/".join(parts), header


def scenario_stem(feature: Any, scenario: Any) -> str:
    """The slug of a scenario's name; scenarios of a feature whose names slug alike get
    ``~2``, ``~3``... in file order (``~``: no slug contains it, so ``Check`` twice never
    meets ``Check 2``, which is ``check-2``)."""
    name = slug(str(scenario.name))
    same = [s for s in feature.walk_scenarios() if slug(str(s.name)) == name]
    index = next((i for i, other in enumerate(same, start=1) if other is scenario), 1)
    return name if index == 1 else f"{name}~{index}"


def cassette_relpath(folder: str, stem: str, model: str | None, run: int) -> str:
    """``<folder>/<stem>[--<model>][--run-<n>].json``"""
    name = stem
    if model:
        name += f"--{slug(model)}"
    if run > 1:
        name += f"--run-{run}"
    return f"{folder}/{name}{SUFFIX}"
