"""Sampling: a server asks the client's model to write something (``sampling/createMessage``).

Per server, ``sampling = "agent"`` (the default) answers with the conversation's own model,
a model string with that model, and ``"off"`` does not offer sampling at all. The call goes
through the same completer as the agent's own calls (prices, cassettes, concurrency
limits), its cost is the agent's spend, and it is recorded on the tool call during which
the server asked. ``maxTokens`` (lowered to ``max_sampling_tokens``: a server never chooses
what the provider is asked to spend) and ``systemPrompt`` are honoured; tools in a sampling
request are not offered (the client does not declare ``sampling.tools``). How many
requests a server may make is bounded by the client side (``clientside.ClientLimits``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ..record.records import SamplingCall
from .content import block_view


@dataclass
class Sampler:
    """The model a server's sampling requests go to: a completer and its settings
    (an ``engine.TurnSettings``: ``model``, ``request``, ``timeout_s``)."""

    complete: Any
    settings: Any


def sampling_messages(params: Any) -> list[dict[str, Any]]:
    """The request's messages in the chat format litellm takes (images as image parts)."""
    messages: list[dict[str, Any]] = []
    if getattr(params, "system_prompt", None):
        messages.append({"role": "system", "content": params.system_prompt})
    for message in params.messages:
        blocks = message.content if isinstance(message.content, list) else [message.content]
        parts: list[dict[str, Any]] = []
        for block in blocks:
            text, _, image = block_view(block)
            if image is not None:
                parts.append({"type": "image_url", "image_url": {"url": f"data:{image['mime_type']};base64,{image['data']}"}})
            else:
                parts.append({"type": "text", "text": text})
        content: Any = parts[0]["text"] if len(parts) == 1 and parts[0]["type"] == "text" else parts
        messages.append({"role": message.role, "content": content})
    return messages


async def sample(sampler: Sampler, params: Any, server: str, max_tokens: int | None = None) -> tuple[dict[str, Any], SamplingCall]:
    """Ask the model; return the ``CreateMessageResult`` fields and the record. The
    request's ``maxTokens`` is lowered to ``max_tokens`` (the ceiling) when above it."""
    settings = sampler.settings
    request = {**settings.request, "messages": sampling_messages(params)}
    request.pop("tools", None)
    asked = getattr(params, "max_tokens", None)
    if asked:
        request["max_tokens"] = min(asked, max_tokens) if max_tokens else asked
    if getattr(params, "temperature", None) is not None:
        request["temperature"] = params.temperature
    if getattr(params, "stop_sequences", None):
        request["stop"] = list(params.stop_sequences)
    record = SamplingCall(server=server, model=settings.model, messages=request["messages"], max_tokens=request.get("max_tokens") if asked else None)
    started = time.perf_counter()
    try:
        reply = await sampler.complete(request, timeout_s=settings.timeout_s)
    except Exception as exc:
        record.error = f"{type(exc).__name__}: {exc}"
        record.latency_s = time.perf_counter() - started
        exc.sampling_record = record  # type: ignore[attr-defined]  # the failed call keeps its request
        raise
    record.response = reply.content or ""
    record.input_tokens, record.output_tokens = reply.input_tokens, reply.output_tokens
    record.cost_usd, record.latency_s = reply.cost_usd, reply.latency_s
    record.replayed, record.recorded_cost_usd = reply.replayed, reply.recorded_cost_usd
    stop = "maxTokens" if reply.finish_reason == "length" else "endTurn"
    result = {"role": "assistant", "content": {"type": "text", "text": reply.content or ""}, "model": settings.model, "stopReason": stop}
    return result, record
