"""``cassettes prune``: cassettes no feature file uses any more (a scenario renamed or removed, a
model dropped), and the leftovers of interrupted writes.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from ...config import ConfigError
from .naming import SESSION_NAME, SUFFIX, cassette_relpath, feature_key, scenario_stem
from .store import TEMPORARY, CassetteFileError, load

# --------------------------------------------------------------------------- prune


class _Skip(Exception):
    """A file prune leaves alone, saying why (it cannot tell whether it is stale)."""


def _stale_reason(path: Path, roots: Sequence[Path], base_dir: Path, cwd: Path) -> str | None:
    """Why the cassette at ``path`` belongs to no scenario any more (None: it still does).

    Raises :class:`_Skip` for a file that is not a cassette this version reads (another
    format version, merge-conflict markers, any other JSON) or whose feature file does not
    parse: prune deletes only what it can prove is stale. ``roots`` are the cassette folders
    the file may belong to (the configured one first); its expected name is checked against
    each, so ``prune features`` judges ``features/cassettes/...`` by the configured folder.
    """
    from behave.parser import ParserError, parse_file

    try:
        document = load(path, path.name)
    except CassetteFileError as exc:
        raise _Skip(str(exc).split(": ", 1)[-1]) from None
    feature_path = base_dir / str(document.get("feature", ""))
    if not document.get("feature") or not feature_path.is_file():
        return f"its feature file {document.get('feature')!r} no longer exists"
    try:
        feature = parse_file(str(feature_path))
    except (ParserError, OSError, UnicodeDecodeError) as exc:
        raise _Skip(f"its feature file {document.get('feature')} cannot be parsed ({type(exc).__name__})") from None
    if feature is None:
        return f"{document.get('feature')} has no feature"
    is_session = "session" in [str(t) for t in feature.tags]
    model = document.get("flow_model")
    run = int(document.get("run") or 1)
    if document.get("session"):
        if not is_session:
            return f"{document.get('feature')} is no longer a @session feature"
        stems = [SESSION_NAME]
    else:
        if is_session:
            return f"{document.get('feature')} is now a @session feature (one cassette for the whole feature)"
        name = document.get("scenario")
        matching = [s for s in feature.walk_scenarios() if str(s.name) == name]
        if not matching:
            return f"{document.get('feature')} has no scenario named {name!r} any more"
        stems = [scenario_stem(feature, s) for s in matching]
    expected = [
        cassette_relpath(feature_key(feature_path, root, base_dir, cwd)[0], stem, model, run) for root in roots for stem in stems
    ]
    where = path.resolve().as_posix()
    if not any(where.endswith("/" + relative) for relative in expected):
        return f"its scenario's cassette is now named {expected[0]}"
    return None


def prune(paths: Sequence[str | Path] = (), check: bool = False, *, config: str | None = None, out: TextIO | None = None) -> int:
    """Remove (or with ``check`` only list) cassettes whose scenario no longer exists.

    ``paths`` are cassette folders or files (default: the configured ``cassette_dir``).
    Only cassettes of a format version this code reads, whose feature file parses, are
    judged; every other ``.json`` file is listed as skipped and left alone. Returns the
    exit code: 1 when ``check`` found stale cassettes, or on a configuration error; else 0.
    Leftover temporary files of an interrupted write (``.NAME.json.XXXX.tmp``) count as stale.
    """
    from ...config import load_config

    out = out or sys.stdout
    cwd = Path.cwd()
    try:
        cfg = load_config({"aitest.config": config} if config else {}, cwd=cwd)
    except ConfigError as exc:
        print(f"behave-aitest cassettes prune: {exc}", file=out)
        return 1
    default_dir = Path(cfg.cassette_dir) if cfg.cassette_dir else cfg.base_dir / "features" / "cassettes"
    targets: list[tuple[Path, list[Path]]] = []  # (file, the cassette folders it may belong to)
    for given in [Path(p) for p in paths] or [default_dir]:
        given = given if given.is_absolute() else cwd / given
        if given.is_dir():
            roots = [default_dir] if given == default_dir else [default_dir, given]
            targets += [
                (f, roots) for f in sorted(given.rglob("*")) if f.is_file() and (f.suffix == SUFFIX or TEMPORARY.match(f.name))
            ]
        elif given.is_file():
            targets.append((given, [default_dir]))
        else:
            print(f"behave-aitest cassettes prune: {given} does not exist.", file=out)
            return 1

    def shown(path: Path) -> str:
        try:
            return path.resolve().relative_to(cwd.resolve()).as_posix()
        except ValueError:
            return str(path)

    stale: list[tuple[Path, str]] = []
    skipped = 0
    for path, roots in targets:
        if TEMPORARY.match(path.name):
            stale.append((path, "left over by an interrupted write"))
            continue
        try:
            reason = _stale_reason(path, roots, cfg.base_dir, cwd)
        except _Skip as exc:
            skipped += 1
            print(f"skipped (cannot read / not a cassette): {shown(path)} ({exc})", file=out)
            continue
        if reason:
            stale.append((path, reason))
    verb = "stale" if check else "removed"
    for path, reason in stale:
        if not check:
            path.unlink()
        print(f"{verb}: {shown(path)} ({reason})", file=out)
    kept = len(targets) - len(stale) - skipped
    also = f", {skipped} skipped" if skipped else ""
    if check:
        print(f"{len(stale)} stale cassette(s), {kept} in use{also}.", file=out)
        return 1 if stale else 0
    print(f"{len(stale)} cassette(s) removed, {kept} kept{also}.", file=out)
    return 0
