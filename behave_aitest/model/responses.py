"""The OpenAI Responses API on the model endpoint, translated to and from chat completions.

The OpenAI Agents SDK (and other clients) speak the Responses API by default
(``POST /v1/responses``). The model endpoint answers it by translating the request into the
chat-completions request the rest of behave-aitest knows (so the cassette, prices and limits
are the same whichever API the agent speaks) and the reply back into a ``response`` object,
or into its server-sent events when the agent asked for a stream. Stateless only: a request
that continues a stored response (``previous_response_id``, ``conversation``) is refused with
one line, since behave-aitest owns the history and stores nothing.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from typing import Any

from .llm import ModelReply

_ids = itertools.count(1)


class ResponsesRefusal(ValueError):
    """A Responses request the endpoint cannot translate: a 400 with this one line."""


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p)
    return ""


def chat_request(body: dict[str, Any]) -> dict[str, Any]:
    """The chat-completions request (messages, tools, ...) of a Responses API body."""
    for key in ("previous_response_id", "conversation"):
        if body.get(key):
            raise ResponsesRefusal(
                f"behave-aitest's model endpoint keeps no stored responses ({key!r}): send the whole input each time "
                "(OpenAI Agents SDK: do not pass previous_response_id or conversation_id)."
            )
    messages: list[dict[str, Any]] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": str(body["instructions"])})
    items = body.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    for item in items or []:
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            role = "system" if item.get("role") == "developer" else item.get("role")
            messages.append({"role": role, "content": _text(item.get("content"))})
        elif kind == "function_call":
            call = {"id": item.get("call_id"), "type": "function", "function": {"name": item.get("name"), "arguments": item.get("arguments") or ""}}
            last = messages[-1] if messages else None
            if last is not None and last.get("role") == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)  # parallel calls: one assistant message
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            messages.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": output if isinstance(output, str) else _text(output)})
        # reasoning items and others carry nothing a chat model reads
    request: dict[str, Any] = {"messages": messages}
    tools = [
        {"type": "function", "function": {k: v for k, v in (("name", t.get("name")), ("description", t.get("description")), ("parameters", t.get("parameters"))) if v is not None}}
        for t in body.get("tools") or [] if t.get("type") == "function"
    ]
    if tools:
        request["tools"] = tools
    choice = body.get("tool_choice")
    if isinstance(choice, str):
        request["tool_choice"] = choice
    elif isinstance(choice, dict) and choice.get("type") == "function":
        request["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    for source, target in (("temperature", "temperature"), ("top_p", "top_p"), ("max_output_tokens", "max_tokens"), ("parallel_tool_calls", "parallel_tool_calls")):
        if body.get(source) is not None:
            request[target] = body[source]
    return request


def output_items(reply: ModelReply) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if reply.content:
        items.append({"type": "message", "id": f"msg_aitest_{next(_ids)}", "status": "completed", "role": "assistant",
                      "content": [{"type": "output_text", "text": reply.content, "annotations": []}]})
    for call in reply.tool_calls:
        items.append({"type": "function_call", "id": f"fc_aitest_{next(_ids)}", "call_id": call.id, "name": call.name,
                      "arguments": call.arguments, "status": "completed"})
    if not items:
        items.append({"type": "message", "id": f"msg_aitest_{next(_ids)}", "status": "completed", "role": "assistant",
                      "content": [{"type": "output_text", "text": "", "annotations": []}]})
    return items


def response_object(reply: ModelReply, model: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"resp_aitest_{next(_ids)}", "object": "response", "created_at": int(time.time()), "status": "completed",
        "model": model, "output": output_items(reply), "error": None, "incomplete_details": None,
        "instructions": body.get("instructions"), "metadata": {}, "parallel_tool_calls": bool(body.get("parallel_tool_calls", True)),
        "temperature": body.get("temperature"), "top_p": body.get("top_p"), "tool_choice": body.get("tool_choice") or "auto",
        "tools": body.get("tools") or [], "text": {"format": {"type": "text"}}, "truncation": "disabled",
        "usage": {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens,
                  "total_tokens": reply.input_tokens + reply.output_tokens,
                  "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}},
    }


def stream_events(response: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(event name, data)`` of a streamed response: created, each item added/delta/done, completed."""
    sequence = itertools.count(0)
    started = {**response, "status": "in_progress", "output": [], "usage": None}
    yield "response.created", {"type": "response.created", "sequence_number": next(sequence), "response": started}
    for index, item in enumerate(response["output"]):
        if item["type"] == "message":
            empty = {**item, "status": "in_progress", "content": []}
            yield "response.output_item.added", {"type": "response.output_item.added", "sequence_number": next(sequence), "output_index": index, "item": empty}
            part = {"type": "output_text", "text": "", "annotations": []}
            yield "response.content_part.added", {"type": "response.content_part.added", "sequence_number": next(sequence), "item_id": item["id"], "output_index": index, "content_index": 0, "part": part}
            text = item["content"][0]["text"]
            for start in range(0, len(text), 64):
                yield "response.output_text.delta", {"type": "response.output_text.delta", "sequence_number": next(sequence), "item_id": item["id"], "output_index": index, "content_index": 0, "delta": text[start:start + 64], "logprobs": []}
            yield "response.output_text.done", {"type": "response.output_text.done", "sequence_number": next(sequence), "item_id": item["id"], "output_index": index, "content_index": 0, "text": text, "logprobs": []}
            yield "response.content_part.done", {"type": "response.content_part.done", "sequence_number": next(sequence), "item_id": item["id"], "output_index": index, "content_index": 0, "part": item["content"][0]}
        else:
            yield "response.output_item.added", {"type": "response.output_item.added", "sequence_number": next(sequence), "output_index": index, "item": {**item, "arguments": "", "status": "in_progress"}}
            yield "response.function_call_arguments.delta", {"type": "response.function_call_arguments.delta", "sequence_number": next(sequence), "item_id": item["id"], "output_index": index, "delta": item["arguments"]}
            yield "response.function_call_arguments.done", {"type": "response.function_call_arguments.done", "sequence_number": next(sequence), "item_id": item["id"], "output_index": index, "arguments": item["arguments"], "name": item["name"]}
        yield "response.output_item.done", {"type": "response.output_item.done", "sequence_number": next(sequence), "output_index": index, "item": item}
    yield "response.completed", {"type": "response.completed", "sequence_number": next(sequence), "response": response}


def sse(events: Iterator[tuple[str, dict[str, Any]]]) -> Iterator[bytes]:
    for name, data in events:
        yield f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()
