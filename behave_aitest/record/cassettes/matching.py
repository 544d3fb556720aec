"""How a recorded request is found again: requests normalised (transport settings out, tool-call ids
renumbered), scrubbed of secrets with the reports' rule, hashed per message; a miss shown as
a diff against the nearest recorded request. vcrpy's matchers, for chat completions.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ...text.safetext import plural

# Request keys that only say how to reach the model, never what it answers: neither
# hashed nor stored (api_base is stored apart, scrubbed, for information only).
TRANSPORT_KEYS = frozenset(
    {
        "api_base", "base_url", "api_key", "api_version", "organization", "timeout", "request_timeout",
        "max_retries", "num_retries", "extra_headers", "headers", "metadata", "stream", "stream_options",
        "litellm_logging_obj", "mock_response",
    }
)

REDACTED = "[REDACTED]"  # an api_base that cannot be parsed


# --------------------------------------------------------------------------- scrubbing


def scrub_url(url: str | None, scrub: Callable[[str], str] = lambda s: s) -> str | None:
    """``url`` without credentials, query or fragment; a loopback port becomes ``<port>``
    (local test servers get a new port every run, which must not show up as a diff)."""
    if not url:
        return None
    try:
        parts = urlsplit(str(url))
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return REDACTED
    shown = f"[{host}]" if ":" in host else host
    if host in ("127.0.0.1", "localhost", "::1") and port:
        netloc = f"{shown}:<port>"
    else:
        netloc = shown + (f":{port}" if port else "")
    return scrub(urlunsplit((parts.scheme, netloc, parts.path, "", "")))


# --------------------------------------------------------------------------- normalising and hashing


def _sorted(value: Any) -> Any:
    """A JSON value with every object's keys in sorted order (stable files, stable diffs)."""
    if isinstance(value, dict):
        return {str(k): _sorted(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, (list, tuple)):
        return [_sorted(v) for v in value]
    return value


def _json_value(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists, odd types strings)."""
    return json.loads(json.dumps(value, default=str, ensure_ascii=False))


def normalize_request(request: Mapping[str, Any], scrub: Callable[[Any], Any] | None = None) -> dict[str, Any]:
    """The parts of a litellm request that decide the answer, in a canonical form.

    ``{"model", "messages", "tools"?, "params"?}``: messages keep role, content, tool
    calls (``{id, name, arguments}``), ``tool_call_id`` and ``name``; tool-call ids are
    renumbered ``call_1``, ``call_2``... in order of appearance (providers make them up);
    ``params`` holds every other non-transport keyword (temperature, max_tokens, seed,
    tool_choice, response_format, ...). Secrets are scrubbed when ``scrub`` is given.
    """
    ids: dict[str, str] = {}

    def canonical_id(value: Any) -> str:
        return ids.setdefault(str(value), f"call_{len(ids) + 1}")

    messages = []
    for message in request.get("messages") or []:
        out: dict[str, Any] = {"role": message.get("role"), "content": message.get("content")}
        calls = message.get("tool_calls") or []
        if calls:
            out["tool_calls"] = []
            for call in calls:
                if not isinstance(call, Mapping):  # a provider object rather than the dict the engine builds
                    call = call.model_dump() if hasattr(call, "model_dump") else dict(call)
                function = call.get("function") or {}
                out["tool_calls"].append(
                    {"id": canonical_id(call.get("id")), "name": function.get("name"), "arguments": function.get("arguments")}
                )
        if message.get("tool_call_id") is not None:
            out["tool_call_id"] = canonical_id(message["tool_call_id"])
        for key in sorted(k for k in message if k not in ("role", "content", "tool_calls", "tool_call_id")):
            out[key] = message[key]
        messages.append(out)
    normalized: dict[str, Any] = {"model": request.get("model"), "messages": messages}
    if request.get("tools"):
        normalized["tools"] = _sorted(list(request["tools"]))
    params = {k: v for k, v in request.items() if k not in TRANSPORT_KEYS and k not in ("model", "messages", "tools")}
    if params:
        normalized["params"] = _sorted(params)
    normalized = _json_value(normalized)
    return scrub(normalized) if scrub is not None else normalized


def digest(value: Any) -> str:
    """sha256 of a JSON value's canonical form (first 24 hex digits). A lone surrogate
    (model text cut mid-character) hashes as itself rather than failing the call."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def request_hash(normalized: Mapping[str, Any], digests: Sequence[str] | None = None) -> str:
    """The hash a replay matches on: of the whole normalised request, each message standing
    in by its own :func:`digest` (``digests``, when already known). A cassette stores only
    each request's new messages, so a reader rebuilds a request's hash from the digests of
    the call it continues plus its own, without rebuilding every history."""
    head = {k: v for k, v in normalized.items() if k not in ("messages", "messages_from")}
    head["messages"] = list(digests) if digests is not None else [digest(m) for m in normalized.get("messages") or []]
    return digest(head)


def _pretty(value: Any) -> list[str]:
    return json.dumps(value, indent=2, ensure_ascii=False).splitlines()


def marked_diff(old: Sequence[str], new: Sequence[str], old_label: str, new_label: str, context: int = 2) -> list[str]:
    """A unified diff of two lists of lines in which a changed line that resembles its
    replacement is followed by a ``?`` line marking the changed characters, as
    :class:`difflib.Differ` does (``^`` changed, ``-`` removed, ``+`` added)::

        -      "content": "What about tomorrow?"
        +      "content": "What about tomorow?"
        ?                                    -

    Readable without colour, in a console, a JUnit file or a report."""
    out = [f"--- {old_label}", f"+++ {new_label}"]
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    groups = list(matcher.get_grouped_opcodes(context))
    if not groups:
        return []
    for group in groups:
        (_, i1, _, j1, _), (_, _, i2, _, j2) = group[0], group[-1]
        out.append(f"@@ -{i1 + 1},{i2 - i1} +{j1 + 1},{j2 - j1} @@")
        for tag, a1, a2, b1, b2 in group:
            if tag == "equal":
                out += [f" {line}" for line in old[a1:a2]]
            elif tag == "replace":
                # Differ pairs each line with its most similar replacement and marks what changed.
                out += [f"{line[0]}{line[2:]}".rstrip("\n") for line in difflib.Differ().compare(old[a1:a2], new[b1:b2])]
            else:
                out += [f"-{line}" for line in old[a1:a2]] + [f"+{line}" for line in new[b1:b2]]
    return [line.rstrip() if line.startswith("?") else line for line in out]


def request_diff(recorded: Mapping[str, Any], current: Mapping[str, Any], recorded_label: str, current_label: str, limit: int = 80) -> str:
    """A diff of two normalised requests, as pretty JSON, changed characters marked (see
    :func:`marked_diff`), at most ``limit`` lines."""
    lines = marked_diff(_pretty(recorded), _pretty(current), recorded_label, current_label)
    if len(lines) > limit:
        lines = lines[:limit] + [f"... ({plural(len(lines) - limit, 'more diff line')})"]
    return "\n".join(lines)
