"""Embedding models: the vectors of texts, offline or through litellm.

Two embedders with one signature (:data:`Embed`: texts in, :class:`Embeddings` out):

- **offline** (the default): ``wordllama``'s static embedding model, whose weights and
  tokenizer ship inside its wheel (the optional ``[similarity]`` extra). Loaded once per
  process, from the package's own folder with downloads disabled: wordllama's default loader
  looks for the tokenizer in ``tokenizer/`` while the wheel has ``tokenizers/``, so pointing
  its cache folder at the package is what makes it load with no network at all.
- **a litellm embedding model** (``embedding_model = "openai/text-embedding-3-small"``),
  called through ``litellm.aembedding``; the conversation's cassette records and replays it
  (:meth:`behave_aitest.record.cassettes.cassette.Cassette.embedder`).

Nothing heavy is imported at module import: ``behave --dry-run`` stays light.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

OFFLINE_MODEL = "wordllama"  # the name the report shows for the offline embedder
OFFLINE_CONFIG = "l2_supercat"  # the 256-dimension model in wordllama 0.4's wheel
EXTRA = "behave-aitest[similarity]"

Embed = Callable[[Sequence[str]], Awaitable["Embeddings"]]


class SimilarityUnavailable(Exception):
    """The offline embedder cannot be used here (the optional extra is not installed)."""


class EmbeddingError(Exception):
    """The embedding model failed (provider trouble, a cassette miss, an answer of the wrong shape)."""


@dataclass(frozen=True)
class Embeddings:
    """The vectors of some texts, and what getting them cost."""

    vectors: list[list[float]]
    model: str
    input_tokens: int = 0
    cost_usd: float | None = 0.0
    latency_s: float = 0.0
    replayed: bool = False


# --------------------------------------------------------------------------- offline: wordllama

_offline: Any = None
_offline_lock = threading.Lock()


def offline_model() -> Any:
    """The offline embedder, loaded once per process from the weights inside its wheel."""
    global _offline
    with _offline_lock:
        if _offline is None:
            try:
                import wordllama
            except ImportError:
                raise SimilarityUnavailable(
                    f"The similarity steps need the optional extra: pip install '{EXTRA}' "
                    "(its offline embedding model, wordllama, is not installed); or set embedding_model "
                    "to a litellm embedding model."
                ) from None
            from pathlib import Path

            folder = Path(wordllama.__file__).parent  # the wheel's weights/ and tokenizers/
            try:
                _offline = wordllama.WordLlama.load(config=OFFLINE_CONFIG, cache_dir=folder, disable_download=True)
            except Exception as exc:  # a wordllama whose wheel no longer ships the weights
                raise SimilarityUnavailable(
                    f"The offline embedding model of wordllama {getattr(wordllama, '__version__', '?')} could not be loaded "
                    f"without a download ({type(exc).__name__}: {exc}); install '{EXTRA}' (wordllama 0.4), "
                    "or set embedding_model to a litellm embedding model."
                ) from None
    return _offline


async def embed_offline(texts: Sequence[str]) -> Embeddings:
    """Embed with the offline model (fast: a few milliseconds a pair, no network)."""
    model = offline_model()
    started = time.perf_counter()
    vectors = model.embed(list(texts), norm=False)
    return Embeddings([list(map(float, v)) for v in vectors], OFFLINE_MODEL, latency_s=time.perf_counter() - started)


# --------------------------------------------------------------------------- a litellm embedding model


def is_embedding_model(model: str) -> bool | None:
    """What litellm's price map says: True (an embedding model), False (a chat or other model),
    None (litellm does not know it: it may be a local or custom one, so it is not refused)."""
    from .llm import litellm_module

    try:
        info = litellm_module().get_model_info(model)
    except Exception:
        return None
    mode = info.get("mode") if isinstance(info, dict) else None
    return None if mode is None else mode == "embedding"


def embedding_model_problem(model: str, where: str) -> str | None:
    """Why ``embedding_model`` cannot be used, in one line (a model litellm knows as something
    other than an embedding model); None when it can, or when litellm does not know it."""
    if is_embedding_model(model) is not False:
        return None
    return (
        f"{where}: {model!r} is not an embedding model (litellm knows it as a chat or other model); "
        'use one such as "openai/text-embedding-3-small", or leave embedding_model out for the offline model.'
    )


def litellm_embedder(model: str, request: dict[str, Any], timeout_s: float) -> Embed:
    """An :data:`Embed` calling ``litellm.aembedding`` with the agent's connection settings
    (``api_base``, ``api_key``, ... from ``request``; the chat-only keys left out)."""

    async def embed(texts: Sequence[str]) -> Embeddings:
        from .llm import litellm_module

        litellm = litellm_module()
        keep = {k: v for k, v in request.items() if k in ("api_base", "api_key", "api_version", "base_url", "extra_headers")}
        started = time.perf_counter()
        try:
            reply = await litellm.aembedding(model=model, input=list(texts), timeout=timeout_s, max_retries=0, **keep)
        except Exception as exc:
            raise EmbeddingError(f"the embedding model {model!r} could not be reached: {type(exc).__name__}: {exc}") from None
        return embeddings_from(reply, model, time.perf_counter() - started)

    return embed


def embeddings_from(reply: Any, model: str, latency_s: float = 0.0) -> Embeddings:
    """The vectors, tokens and cost of a litellm ``EmbeddingResponse`` (or its JSON)."""
    data = reply.get("data") if isinstance(reply, dict) else getattr(reply, "data", None)
    try:
        items = sorted(data or [], key=lambda item: _get(item, "index") or 0)
        vectors = [[float(x) for x in _get(item, "embedding")] for item in items]
    except (TypeError, ValueError) as exc:
        raise EmbeddingError(f"the embedding model {model!r} answered no embeddings ({exc})") from None
    usage = reply.get("usage") if isinstance(reply, dict) else getattr(reply, "usage", None)
    tokens = int(_get(usage, "prompt_tokens") or 0) if usage is not None else 0
    hidden = getattr(reply, "_hidden_params", None) or {}
    cost = hidden.get("response_cost") if isinstance(hidden, dict) else None
    return Embeddings(vectors, model, input_tokens=tokens, cost_usd=cost, latency_s=latency_s)


def _get(item: Any, key: str) -> Any:
    return item.get(key) if isinstance(item, dict) else getattr(item, key, None)
