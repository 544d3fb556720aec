"""Similarity of meaning: "the response is similar to ..." scored by an embedding model.

The score is the cosine of the two texts' embeddings (-1 to 1), from the offline model or a
litellm embedding model (:mod:`behave_aitest.model.embeddings`).

A static embedding sees topic, not truth: "It will rain in Paris tomorrow" and "Tomorrow in
Paris will be sunny and dry" score about 0.7. Negation, numbers and who-did-what need the
grounding check or the judge (docs/checks-meaning-safety.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import StepUsageError
from ..model.embeddings import Embed, EmbeddingError, Embeddings

DEFAULT_THRESHOLD = 0.75  # promptfoo's `similar` default; a paraphrase scores ~0.8 offline, unrelated text ~0


@dataclass(frozen=True)
class Similarity:
    """One comparison: the score, the bar and what it means."""

    score: float
    threshold: float
    model: str
    negated: bool = False  # "is not similar to": passes below the threshold

    @property
    def ok(self) -> bool:
        return self.score < self.threshold if self.negated else self.score >= self.threshold

    def summary(self) -> str:
        bar = f"below {self.threshold:.2f}" if self.negated else f"at least {self.threshold:.2f}"
        return f"similarity {self.score:.2f} ({bar} needed; {self.model})"


def parse_threshold(text: str | None) -> float:
    """The ``(at least 0.8)`` of a step; a StepUsageError for anything outside 0..1."""
    if text is None:
        return DEFAULT_THRESHOLD
    try:
        value = float(text.strip())
    except ValueError:
        raise StepUsageError(f"The similarity threshold {text.strip()!r} is not a number: write one from 0 to 1, e.g. (at least 0.8).") from None
    if not 0.0 <= value <= 1.0 or math.isnan(value):
        raise StepUsageError(f"The similarity threshold {text.strip()} is outside 0 to 1: write one from 0 to 1, e.g. (at least 0.8).")
    return value


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """The cosine of two vectors (0 when either is all zeros: an empty text is like nothing)."""
    if len(a) != len(b):
        raise EmbeddingError(f"the embedding model gave vectors of different lengths ({len(a)} and {len(b)})")
    dot = sum(x * y for x, y in zip(a, b))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return 0.0 if norm == 0 else max(-1.0, min(1.0, dot / norm))


async def compare(embed: Embed, response: str, expected: str, threshold: float, negated: bool = False) -> tuple[Similarity, Embeddings]:
    """Embed both texts in one call and score them."""
    found = await embed([response, expected])
    if len(found.vectors) != 2:
        raise EmbeddingError(f"the embedding model {found.model!r} gave {len(found.vectors)} vectors for 2 texts")
    score = round(cosine(found.vectors[0], found.vectors[1]), 4)
    return Similarity(score, threshold, found.model, negated), found
