"""The model boundary: one function that sends a chat request through litellm.

Everything that talks to a model goes through :func:`complete`, so recording and
replaying (cassettes) and the judge plug in at exactly one place. litellm is imported
on the first call, never at import time: it costs about two seconds and a dry run or a
run without AI steps must not pay for it.
"""

from __future__ import annotations

import math
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

_litellm: Any = None

# Exceptions worth another attempt: the provider is busy, down or unreachable.
RETRYABLE = ("RateLimitError", "InternalServerError", "ServiceUnavailableError", "APIConnectionError", "BadGatewayError")


def litellm_module() -> Any:
    """Import litellm once, offline and quiet."""
    global _litellm
    if _litellm is None:
        # Without this litellm fetches its price map from GitHub at import (5 s when offline).
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import logging

        import litellm

        litellm.suppress_debug_info = True
        for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "litellm"):
            logging.getLogger(name).setLevel(logging.WARNING)
        litellm.telemetry = False
        _litellm = litellm
    return _litellm


# The text that opens each tool image in the user message carrying tool images to a vision
# model (mcp/content.py builds it; the scripted model reads such a message as tool results).
TOOL_IMAGE_TEXT = "Image returned by the tool call "

_warmed = False


async def warm_up() -> None:
    """Import litellm and run its first-call set-up (about 40 more modules it imports lazily,
    over a second of CPU) once per process, through a mocked completion that sends nothing.

    A turn's ``timeout_s`` covers model and tool calls only: called before the turn's
    deadline starts, this keeps start-up out of it (a first turn on a busy machine otherwise
    timed out with no model call, cancelling litellm half-way and leaving its coroutine
    un-awaited).
    """
    global _warmed
    if _warmed:
        return
    litellm = litellm_module()
    try:
        await litellm.acompletion(
            model="openai/behave-aitest-warm-up", messages=[{"role": "user", "content": "warm-up"}], mock_response="ok", api_key="none"
        )
    except Exception:  # a warm-up that fails costs the first call its set-up time, nothing else
        pass
    _warmed = True


# Variables that only say *where* a provider is: a configured api_base stands in for them.
_WHERE_KEYS = ("API_BASE", "BASE_URL", "ENDPOINT")


def missing_keys(model: str, *, has_api_base: bool = False) -> list[str]:
    """The environment variables litellm says ``model`` needs and does not find.

    An unknown provider (litellm cannot route it) returns [] here: that mistake has its own
    message (:func:`behave_aitest.hooks.check_models`)."""
    litellm = litellm_module()
    # litellm counts a variable set to "" as present; a provider does not. Hidden while it looks.
    empty = {k: v for k, v in os.environ.items() if v == "" and k.isupper()}
    for name in empty:
        del os.environ[name]
    try:
        found = litellm.validate_environment(model)
    except Exception:  # litellm's check itself failed: nothing reliable to say
        return []
    finally:
        os.environ.update(empty)
    keys = [str(k) for k in (found or {}).get("missing_keys") or []]
    if has_api_base:
        keys = [k for k in keys if not any(part in k for part in _WHERE_KEYS)]
    return keys


@dataclass
class ToolRequest:
    """A tool call as the model sent it (arguments still raw JSON text)."""

    id: str
    name: str
    arguments: str


@dataclass
class ModelReply:
    """The parts of a chat completion the agent loop and the records need."""

    content: str | None
    tool_calls: list[ToolRequest] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    finish_reason: str | None = None
    model: str = ""
    latency_s: float = 0.0
    replayed: bool = False  # answered from a cassette, not by the model
    recorded_cost_usd: float | None = None  # a replayed answer's cost when it was recorded
    # the provider's rate-limit headers (x-ratelimit-*, retry-after*), read by model.adaptive
    headers: dict[str, str] = field(default_factory=dict)
    throttled: int = 0  # 429s the rate limiter waited out before this answer (model.adaptive)


class ModelError(Exception):
    """The model could not be reached or refused the request (after any retries)."""


def is_retryable(exc: BaseException) -> bool:
    if is_auth_error(exc):
        return False
    return type(exc).__name__ in RETRYABLE or any(c.__name__ in RETRYABLE for c in type(exc).__mro__)


# Authentication trouble: another attempt cannot help, and it is not the provider's outage.
AUTH_ERRORS = ("AuthenticationError", "PermissionDeniedError")
# OpenAI's SDK refuses to send a request without a key; litellm calls that an InternalServerError.
_NO_CREDENTIALS = re.compile(r"missing credentials|api_key client option must be set|no api key|api key is missing", re.I)


def is_auth_error(exc: BaseException) -> bool:
    """A 401/403, litellm's AuthenticationError, or a request the SDK refused for want of a key."""
    if any(c.__name__ in AUTH_ERRORS for c in type(exc).__mro__):
        return True
    if getattr(exc, "status_code", None) in (401, 403):
        return True
    return bool(_NO_CREDENTIALS.search(str(exc)))


def auth_message(exc: BaseException, model: str, missing: list[str]) -> str:
    """What an authentication failure says: never "InternalServerError", always the key to check."""
    status = getattr(exc, "status_code", None)
    status = status if status in (401, 403) else None
    detail = re.sub(r"^(litellm\.\w+:\s*)?(\w+Error:\s*)?", "", str(exc)).strip()
    hint = f" {' / '.join(missing)} is not set in the environment." if missing else " Check the API key for this provider."
    code = f" (HTTP {status})" if status else ""
    return f"authentication failed{code} for model {model!r}, not retried:{hint} The provider said: {detail}"


MAX_RETRY_AFTER_S = 300.0  # a longer wait is cut here (and by the turn's timeout_s anyway)


def retry_after(exc: BaseException) -> float | None:
    """Seconds the provider asked us to wait, if it said so: finite and not negative.

    The header is the provider's text: ``nan`` means nothing (None: our own backoff), a
    negative wait is no wait, ``inf`` or a huge one is cut to :data:`MAX_RETRY_AFTER_S`
    (``anyio.sleep`` raises on NaN, and would wait forever on inf).
    """
    # litellm keeps the provider's real headers in litellm_response_headers; its
    # exc.response is a stand-in whose headers are empty.
    for headers in (getattr(exc, "litellm_response_headers", None), getattr(getattr(exc, "response", None), "headers", None)):
        try:
            value = headers.get("retry-after") if headers else None
            if value is not None:
                seconds = float(value)
                if math.isnan(seconds):
                    continue
                return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)
        except (TypeError, ValueError, AttributeError):
            continue
    return None


def reply_from_response(response: Any, latency_s: float) -> ModelReply:
    """Convert a litellm ``ModelResponse`` into a :class:`ModelReply`.

    A response without choices is the provider's fault, said as such (not an IndexError)."""
    choices = getattr(response, "choices", None) or []
    if not choices:
        raise ModelError("the model returned no choices (empty answer)")
    choice = choices[0]
    message = choice.message
    calls = [
        ToolRequest(
            id=c.id or f"call_{i}",
            name=(c.function.name or "") if c.function else "",
            arguments=(c.function.arguments or "") if c.function else "",
        )
        for i, c in enumerate(message.tool_calls or [])
    ]
    usage = getattr(response, "usage", None)
    hidden = getattr(response, "_hidden_params", None) or {}
    headers = rate_limit_headers(hidden.get("additional_headers"))
    cost = hidden.get("response_cost")
    return ModelReply(
        content=message.content,
        tool_calls=calls,
        input_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        output_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
        cost_usd=float(cost) if cost is not None else None,
        finish_reason=choice.finish_reason,
        model=getattr(response, "model", "") or "",
        latency_s=latency_s,
        headers=headers,
    )


def rate_limit_headers(headers: Any) -> dict[str, str]:
    """The rate-limit headers among a response's (litellm prefixes the provider's own with
    ``llm_provider-``); nothing else of them is kept."""
    found: dict[str, str] = {}
    try:
        items = list(dict(headers or {}).items())
    except (TypeError, ValueError):
        return found
    for name, value in items:
        key = str(name).lower().removeprefix("llm_provider-")
        if key.startswith(("x-ratelimit-", "anthropic-ratelimit-", "retry-after")):
            found.setdefault(key, str(value))
    return found


async def complete(request: dict[str, Any], *, timeout_s: float | None = None) -> ModelReply:
    """One chat completion, no retries (the agent loop retries and records attempts).

    ``request`` holds the litellm keyword arguments that decide the answer (model,
    messages, tools, temperature, ...) plus transport settings (api_base, api_key).
    """
    litellm = litellm_module()
    started = time.perf_counter()
    try:
        response = await litellm.acompletion(**request, max_retries=0, timeout=timeout_s)
    except Exception as exc:
        refused = scripted_refusal(exc, str(request.get("model") or ""))
        if refused is None:
            raise
        from ..errors import TurnFailure

        raise TurnFailure("model", refused) from None
    return reply_from_response(response, time.perf_counter() - started)


def scripted_refusal(exc: BaseException, model: str) -> str | None:
    """The scripted model's own words when it refuses a message (no rule for it, a rule
    calling a tool the agent lacks: behave_aitest/model/scripted.py), without the
    ``BadRequestError: litellm.BadRequestError: OpenAIException -`` litellm puts before them;
    None for any other error."""
    from ..config import is_scripted

    if not is_scripted(model.removeprefix("openai/")) or getattr(exc, "status_code", None) != 400:
        return None
    text = str(exc)
    at = text.find("the scripted model ")
    return text[at:] if at >= 0 else None
