"""``max_run_cost_usd``: the run's known spend, shared by every worker, and whether a price is known.

Why: a parallel run against a paid provider can spend more than its owner meant; once the
run's known cost passes the cap, no new conversation starts (those running finish) and the
run fails (docs/rate-limits.md). Each priced model call adds its cost to one small file in the
run's folder (the parallel runner's ``BEHAVE_AITEST_MODEL_SLOTS``, or a temporary folder of
this process), under an exclusive ``flock``, so every worker sees the whole run's spend.
A cap cannot be enforced on a model whose price nobody knows: :func:`unpriced` finds those
before the first scenario.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .adaptive import _own_folder
from .limits import SLOTS_ENV


class SpendMeter:
    """The run's known cost in USD, added to by every process of the run."""

    def __init__(self, directory: Path | None = None) -> None:
        folder = directory or _own_folder()
        folder.mkdir(parents=True, exist_ok=True)
        self._path = folder / "spend.json"
        self._lock = folder / "spend.lock"

    @classmethod
    def for_run(cls, alone: Path | None = None) -> SpendMeter:
        """The run's meter: in the parallel runner's folder (every worker), else in ``alone``."""
        folder = os.environ.get(SLOTS_ENV)
        return cls(Path(folder) if folder else alone)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        import fcntl

        fd = os.open(self._lock, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read(self) -> float:
        try:
            return float(json.loads(self._path.read_text(encoding="utf-8")).get("usd", 0.0))
        except (OSError, ValueError, AttributeError, TypeError):
            return 0.0

    def add(self, usd: float | None) -> float:
        """Add one call's cost (None or 0: nothing); the run's total after it."""
        with self._locked():
            total = self._read() + (usd if usd and usd > 0 else 0.0)
            if usd:
                temporary = self._path.with_suffix(f".{os.getpid()}.tmp")
                temporary.write_text(json.dumps({"usd": total}), encoding="utf-8")
                os.replace(temporary, self._path)
            return total

    def total(self) -> float:
        with self._locked():
            return self._read()


def price_known(model: str, prices: Mapping[str, Any], scripted: bool) -> bool:
    """Whether a call of ``model`` has a known cost: the scripted model (free), a configured
    price, or litellm's price table."""
    if scripted or model in prices:
        return True
    from .llm import litellm_module

    try:
        litellm_module().cost_per_token(model=model, prompt_tokens=1000, completion_tokens=1000)
    except Exception:  # ModelNotMappedError, or a model litellm cannot route at all
        return False
    return True


def unpriced(models: Iterable[str], prices: Mapping[str, Any], is_scripted: Any) -> list[str]:
    """The models among ``models`` whose cost is unknown (a spend cap cannot count them)."""
    return [m for m in dict.fromkeys(models) if not price_known(m, prices, bool(is_scripted(m)))]
