"""Cassettes: record model calls once, replay them in CI with no key and no network.

A cassette is one readable JSON file per conversation (a scenario, or a whole
``@session`` feature flow) holding one *interaction* per model call: the normalised
request (model, messages, tool schemas, the parameters that change the answer) and
the response (content, tool calls, usage, cost). Recording sits at the litellm
boundary (:func:`behave_aitest.llm.complete`), so prompt assembly, the tool loop, the
MCP servers and every assertion run for real during a replay.

Modes (``cassette`` in the config, ``-D aitest.cassette=...``):

``off``
    Nothing is read or written.
``record``
    Every call goes to the model; the conversation's cassette is (re)written when the
    conversation ends — only if every model call of it succeeded.
``replay``
    Calls are answered from the cassette; litellm is never called. A request that
    matches no recorded one fails the step with the cassette, the call number and a
    diff against the nearest recorded request.
``auto``
    An existing cassette is replayed (a miss fails, exactly like ``replay``); a
    conversation without a cassette is recorded when its model is *available*: the
    request has an ``api_base`` or ``api_key`` (the scripted model has both), or
    litellm finds the provider's key in the environment
    (``litellm.validate_environment``).

Matching: each request is normalised (:func:`normalize_request`), scrubbed of secrets
(:class:`~behave_aitest.redact.Redactor`, the reports' rule) and hashed (:func:`request_hash`); call N of a replay takes the
first not-yet-used recorded interaction with the same hash. Transport settings
(``api_base``, ``api_key``, timeouts, headers) are not part of the hash, and tool-call
ids are renumbered in order of appearance, so a cassette recorded against one endpoint
replays anywhere. Since format 2 a request stores only its new messages and names the
earlier call it continues (``messages_from``), and the hash is over per-message digests,
so files and their reading grow linearly with the conversation. Files are written
atomically (temporary file + ``os.replace``) with the umask's mode; a file that cannot be
written raises :class:`CassetteWriteError`, and one of the wrong shape is named, with the
field, by :func:`load`.

With ``cassette_tools = "record"`` the MCP tool calls are recorded too, and a replay
answers them from the cassette without starting those servers (for servers that cannot
run in CI). By default tools run for real in every mode.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import difflib
import hashlib
import json
import math
import os
import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

from .. import __version__
from ..config import Config, ConfigError, is_scripted
from ..errors import TurnFailure
from ..model.llm import ModelReply, ToolRequest
from ..text.safetext import json_safe, plural
from ..text.files import write_atomic
from ..text.redact import Redactor
from ..errors import ServerError
from .records import ToolOutcome, ToolSpec

FORMAT = "behave-aitest cassette"
VERSION = 2  # 2: each request stores its new messages and refers to an earlier call for the rest
READABLE_VERSIONS = (1, 2)  # version 1 stored every request whole
RECENT = 8  # earlier requests a new one may continue (an agent's call, then a judge's, then the agent's again)
SESSION_NAME = "session"
SUFFIX = ".json"

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


class CassetteMiss(TurnFailure):
    """Replay found no recorded answer (or no cassette): the turn stops, kind ``cassette``."""

    def __init__(self, message: str) -> None:
        super().__init__("cassette", message)


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


# --------------------------------------------------------------------------- files


TEMPORARY = re.compile(r"^\..+\.json\.[0-9a-z_]+\.tmp$")  # what write_atomic leaves when interrupted


_SURROGATE = re.compile("[\ud800-\udfff]")


def dumps(document: Mapping[str, Any]) -> str:
    """Readable JSON; a lone surrogate (text cut mid-character by a server or model) is
    written as its ``\\udxxx`` escape, which JSON reads back as the same character, rather
    than making the UTF-8 write fail and the recording lost."""
    try:
        text = json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    except ValueError:  # a NaN or an infinity (say, in a tool's arguments): valid JSON says null
        text = json.dumps(json_safe(document, surrogates=False), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


class CassetteFileError(Exception):
    """A cassette file that cannot be used (not JSON, not a cassette, another format version, wrong shape)."""


class CassetteWriteError(Exception):
    """A finished recording could not be written (read-only folder, full disk): one line naming
    the file and the reason, for the runtime to make the conversation's error."""


class _BadShape(Exception):
    """A field of a cassette that does not have the shape this version writes."""


def _need(ok: bool, where: str, what: str) -> None:
    if not ok:
        raise _BadShape(f"{where} must be {what}")


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    """None or a finite number (JSON readers accept NaN and Infinity, which int() and the reports do not)."""
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value))


def _text(value: Any) -> bool:
    return value is None or isinstance(value, str)


def check_shape(document: Mapping[str, Any]) -> None:
    """Raise :class:`_BadShape` naming the first field (``interactions[2].response.content``)
    that is not what a replay or ``prune`` reads: hand edits and merges produce valid JSON of
    the wrong shape, which must not surface as an AttributeError or blame the model."""
    for key in ("feature", "feature_name", "scenario", "flow_model"):
        _need(_text(document.get(key)), key, "a string")
    _need(isinstance(document.get("session", False), bool), "session", "true or false")
    _need(_whole(document.get("run", 1)) and document.get("run", 1) >= 1, "run", "a whole number of at least 1")
    _need(isinstance(document.get("recorded", {}), (dict, type(None))), "recorded", "an object")
    schemas = document.get("tool_schemas")
    schemas = {} if schemas is None else schemas
    _need(isinstance(schemas, dict), "tool_schemas", "an object")
    for key, value in schemas.items():
        _need(isinstance(value, list), f"tool_schemas.{key}", "a list")
    interactions = document.get("interactions")
    _need(isinstance(interactions, list), "interactions", "a list")
    lengths: dict[int, int] = {}  # call -> messages in its whole request
    for index, interaction in enumerate(interactions):
        where = f"interactions[{index}]"
        _need(isinstance(interaction, dict), where, "an object")
        call = interaction.get("call", index + 1)
        _need(_whole(call) and call not in lengths, f"{where}.call", "a whole number no earlier call has")
        request = interaction.get("request")
        _need(isinstance(request, dict), f"{where}.request", "an object")
        _need(_text(request.get("model")), f"{where}.request.model", "a string")
        messages = request.get("messages", [])
        _need(isinstance(messages, list), f"{where}.request.messages", "a list")
        for number, message in enumerate(messages):
            _need(isinstance(message, dict), f"{where}.request.messages[{number}]", "an object")
        count = 0
        continues = request.get("messages_from")
        if continues is not None:
            _need(isinstance(continues, dict), f"{where}.request.messages_from", "an object")
            _need(_whole(continues.get("call")) and continues["call"] in lengths, f"{where}.request.messages_from.call", "the number of an earlier call")
            count = continues.get("count")
            limit = lengths[continues["call"]]
            _need(_whole(count) and 0 <= count <= limit, f"{where}.request.messages_from.count", f"a whole number from 0 to {limit}")
        lengths[call] = count + len(messages)
        tools = request.get("tools")
        _need(tools is None or isinstance(tools, list) or (isinstance(tools, str) and tools in schemas), f"{where}.request.tools", "a list or a key of tool_schemas")
        _need(isinstance(request.get("params", {}), dict), f"{where}.request.params", "an object")
        response = interaction.get("response")
        _need(isinstance(response, dict), f"{where}.response", "an object")
        for key in ("content", "finish_reason", "model"):
            _need(_text(response.get(key)), f"{where}.response.{key}", "a string")
        calls = response.get("tool_calls") or []
        _need(isinstance(calls, list), f"{where}.response.tool_calls", "a list")
        for number, call_ in enumerate(calls):
            _need(isinstance(call_, dict), f"{where}.response.tool_calls[{number}]", "an object")
            for key in ("id", "name", "arguments"):
                _need(_text(call_.get(key)), f"{where}.response.tool_calls[{number}].{key}", "a string")
        usage = response.get("usage") or {}
        _need(isinstance(usage, dict), f"{where}.response.usage", "an object")
        for key in ("input_tokens", "output_tokens"):
            _need(_number(usage.get(key)), f"{where}.response.usage.{key}", "a number")
        _need(_number(response.get("cost_usd")), f"{where}.response.cost_usd", "a number")
    tools_part = document.get("recorded_tools")
    if tools_part is None:
        return
    _need(isinstance(tools_part, dict), "recorded_tools", "an object")
    servers = tools_part.get("servers") or {}
    _need(isinstance(servers, dict), "recorded_tools.servers", "an object")
    for name, listed in servers.items():
        _need(isinstance(listed, list), f"recorded_tools.servers.{name}", "a list")
        for number, tool in enumerate(listed):
            _need(isinstance(tool, dict) and isinstance(tool.get("name"), str), f"recorded_tools.servers.{name}[{number}].name", "a string")
    calls = tools_part.get("calls") or []
    _need(isinstance(calls, list), "recorded_tools.calls", "a list")
    for number, call_ in enumerate(calls):
        where = f"recorded_tools.calls[{number}]"
        _need(isinstance(call_, dict), where, "an object")
        for key in ("server", "tool", "result"):
            _need(isinstance(call_.get(key), str), f"{where}.{key}", "a string")
        _need(isinstance(call_.get("arguments", {}), dict), f"{where}.arguments", "an object")


def load(path: Path, shown: str | None = None) -> dict[str, Any]:
    """A cassette file, checked: readable JSON, this format, a version this code reads, the right shape."""
    shown = shown or str(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CassetteFileError(f"{shown}: cannot be read as a cassette: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise CassetteFileError(f"{shown}: cannot be read as a cassette: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise CassetteFileError(f"{shown}: not a behave-aitest cassette (no \"format\": \"{FORMAT}\").")
    if document.get("version") not in READABLE_VERSIONS:
        raise CassetteFileError(
            f"{shown}: cassette format version {document.get('version')!r}; this behave-aitest reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}. Re-record it with -D aitest.cassette=record (or upgrade behave-aitest)."
        )
    try:
        check_shape(document)
    except _BadShape as exc:
        raise CassetteFileError(f"{shown}: not a valid cassette: {exc}. Re-record it with -D aitest.cassette=record.") from None
    return document


# --------------------------------------------------------------------------- one conversation's cassette


def _litellm_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("litellm")
    except Exception:  # pragma: no cover - litellm is a dependency
        return None


def model_available(request: Mapping[str, Any]) -> tuple[bool, str]:
    """Can ``request`` reach its model? (available, what is missing)."""
    if request.get("api_base") or request.get("api_key") or request.get("base_url"):
        return True, ""
    from ..model.llm import litellm_module

    try:
        found = litellm_module().validate_environment(model=request.get("model"))
    except Exception as exc:  # unknown provider: say so rather than guess
        return False, f"litellm cannot tell what model {request.get('model')!r} needs ({exc})"
    if found.get("keys_in_environment"):
        return True, ""
    missing = ", ".join(found.get("missing_keys") or []) or "a key"
    return False, f"the environment has no {missing} for model {request.get('model')!r}"


class Cassette:
    """The cassette of one conversation: replays it, or records it and writes it at the end."""

    def __init__(
        self,
        path: Path,
        display: str,
        mode: str,
        header: dict[str, Any],
        scrubber: Redactor,
        record_tools: bool = False,
        auto: bool = False,
    ) -> None:
        self.path = path
        self.display = display  # the path as shown in messages
        self.mode = mode  # "record" or "replay" (auto has been resolved)
        self.auto = auto  # auto mode, recording because the file did not exist
        self.header = header
        self.scrub = scrubber
        self.record_tools = record_tools
        self.models: list[str] = []
        self.interactions: list[dict[str, Any]] = []
        self.tool_schemas: dict[str, Any] = {}
        self.servers: dict[str, list[dict[str, Any]]] = {}
        self.tool_calls: list[dict[str, Any]] = []
        self.failure: tuple[str, str] | None = None  # (request hash, why) of a failed call not yet retried
        self.conflict: str | None = None  # another conversation of this run maps to the same file
        self.recorded: dict[str, Any] | None = None  # a replayed cassette's "recorded" header
        self._recent: list[tuple[int, list[str]]] = []  # (call, message digests) of the last requests recorded
        self._loaded = False
        self._load_error: str | None = None
        self._used: set[int] = set()
        self._used_tools: set[int] = set()
        self._requests = 0  # model calls asked of the replay so far (answered or not)
        self._missed = False
        self._hashes: list[str] = []
        self._calls: dict[int, int] = {}  # a replayed cassette's call number -> its index
        self._tool_miss: str | None = None
        # tool doubles (docs/tool-doubles.md): calls a double answered or delayed, marked in the file;
        # in a replay the same doubles answer again, and a difference is warned about
        self.doubled_calls: list[dict[str, Any]] = []
        self._recorded_doubles: list[dict[str, Any]] | None = None

    # ----------------------------------------------------------------- replay side

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if not self.path.exists():
            self._load_error = (
                f"there is no cassette {self.display} for this conversation "
                f"({self._what()}). Record it with -D aitest.cassette=record (or auto, where a key is available)."
            )
            return
        try:
            document = load(self.path, self.display)
        except CassetteFileError as exc:
            self._load_error = str(exc)
            return
        self.recorded = dict(document.get("recorded") or {})
        self.tool_schemas = dict(document.get("tool_schemas") or {})
        self.interactions = list(document.get("interactions") or [])
        # Recomputed from the stored requests (request_hash in the file is for readers), so a
        # request edited by hand matches as edited. A request that continues an earlier call
        # takes that call's message digests: linear in the file, however long the session.
        digests: dict[int, list[str]] = {}
        self._calls = {}
        for index, interaction in enumerate(self.interactions):
            request = interaction["request"]
            continues = request.get("messages_from")
            own = [digest(m) for m in request.get("messages") or []]
            messages = digests[continues["call"]][: continues["count"]] + own if continues else own
            call = interaction.get("call", index + 1)
            digests[call], self._calls[call] = messages, index
            self._hashes.append(request_hash(self._expanded(request, whole=False), messages))
        recorded = document.get("recorded_tools") or {}
        self.servers = dict(recorded.get("servers") or {})
        self.tool_calls = list(recorded.get("calls") or [])
        self._recorded_doubles = list(document.get("doubled_calls") or [])

    def _what(self) -> str:
        scenario = self.header.get("scenario")
        where = self.header.get("feature")
        return f"scenario {scenario!r} of {where}" if scenario is not None else f"@session feature {where}"

    def _expanded(self, request: Mapping[str, Any], whole: bool = True) -> dict[str, Any]:
        """A stored request with its tool-schema reference replaced by the schemas and (with
        ``whole``) the messages it shares with an earlier call put back: what was sent."""
        out = dict(request)
        if isinstance(out.get("tools"), str):
            out["tools"] = self.tool_schemas.get(out["tools"], out["tools"])
        continues = out.pop("messages_from", None)
        if whole and continues:  # follow the chain back, then rebuild forward (no recursion: sessions are long)
            chain = [request]
            while continues:
                chain.append(self.interactions[self._calls[continues["call"]]]["request"])
                continues = chain[-1].get("messages_from")
            messages: list[Any] = []
            for earlier in reversed(chain):
                shared = earlier.get("messages_from")
                messages = (messages[: shared["count"]] if shared else []) + list(earlier.get("messages") or [])
            out["messages"] = messages
        return out

    def _replay(self, normalized: dict[str, Any]) -> ModelReply:
        self._load()
        self._requests += 1
        number = self._requests
        if self._load_error:
            raise CassetteMiss(self._load_error)
        if self._tool_miss:
            raise CassetteMiss(self._tool_miss)
        key = request_hash(normalized)
        for index, interaction in enumerate(self.interactions):
            if index in self._used:
                continue
            if self._hashes[index] == key:
                self._used.add(index)
                return reply_from_interaction(interaction)
        self._missed = True
        raise CassetteMiss(self._miss_message(number, normalized))

    def _miss_message(self, number: int, normalized: dict[str, Any]) -> str:
        total = len(self.interactions)
        head = (
            f"replay: model call {number} of this conversation matches no recorded request in cassette {self.display} "
            f"({self._what()}; {len(self._used)} of {plural(total, 'recorded call')} used so far)."
        )
        if not self.interactions:
            return head + " The cassette holds no model calls. Re-record it with -D aitest.cassette=record."
        current_lines = _pretty(normalized)

        def closeness(index: int) -> tuple[float, bool, int]:
            recorded = _pretty(self._expanded(self.interactions[index].get("request") or {}))
            ratio = difflib.SequenceMatcher(None, recorded, current_lines, autojunk=False).ratio()
            return ratio, index not in self._used, -abs(index - (number - 1))

        nearest = max(range(total), key=closeness)
        recorded_call = self.interactions[nearest].get("call", nearest + 1)
        diff = request_diff(
            self._expanded(self.interactions[nearest].get("request") or {}),
            normalized,
            f"recorded call {recorded_call} ({self.display})",
            f"this run, call {number}",
        )
        return (
            f"{head}\nNearest recorded request: call {recorded_call}. What changed (- recorded, + this run):\n{diff}\n"
            "If the change is intended, re-record with -D aitest.cassette=record; "
            "otherwise the prompt, the tools or the history now differ from the recording."
        )

    # ----------------------------------------------------------------- record side

    def _record(
        self, settings_model: str, request: Mapping[str, Any], normalized: dict[str, Any], digests: list[str], reply: ModelReply
    ) -> None:
        """Store the call: its new messages only, continuing the recent request that shares the
        longest prefix (usually the agent's previous call), so the file grows linearly."""
        call = len(self.interactions) + 1
        continued, shared = 0, 0
        for earlier, previous in self._recent:
            same = next((i for i, (a, b) in enumerate(zip(previous, digests)) if a != b), min(len(previous), len(digests)))
            if same > shared:
                continued, shared = earlier, same
        self._recent = [*self._recent[-(RECENT - 1):], (call, digests)]
        stored: dict[str, Any] = {"model": normalized.get("model")}
        if shared:
            stored["messages_from"] = {"call": continued, "count": shared}
        stored["messages"] = normalized.get("messages", [])[shared:]
        if "tools" in normalized:
            key = f"tools-{digest(normalized['tools'])[:10]}"
            self.tool_schemas.setdefault(key, normalized["tools"])
            stored["tools"] = key
        if "params" in normalized:
            stored["params"] = normalized["params"]
        interaction: dict[str, Any] = {"call": call, "model": settings_model}
        interaction["request_hash"] = request_hash(normalized, digests)
        interaction["request"] = stored
        api_base = scrub_url(request.get("api_base") or request.get("base_url"), self.scrub.text)
        if api_base:
            interaction["api_base"] = api_base
        interaction["response"] = self.scrub(
            {
                "content": reply.content,
                "tool_calls": [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in reply.tool_calls],
                "finish_reason": reply.finish_reason,
                "model": reply.model,
                "usage": {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens},
                "cost_usd": reply.cost_usd,
            }
        )
        self.interactions.append(interaction)
        if settings_model not in self.models:
            self.models.append(settings_model)

    def completer(self, inner: Callable[..., Any], settings: Any) -> Callable[..., Any]:
        """Wrap ``inner`` (the completer that calls the model) for this cassette."""
        model = str(getattr(settings, "model", "") or "")

        async def complete(request: dict[str, Any], *, timeout_s: float | None = None) -> ModelReply:
            if self.conflict:
                raise CassetteMiss(self.conflict)
            normalized = normalize_request(request, self.scrub)
            if self.mode == "replay":
                return self._replay(normalized)
            if self.auto:
                available, missing = model_available(request)
                if not available:
                    raise CassetteMiss(
                        f"auto: there is no cassette {self.display} ({self._what()}) and it cannot be recorded: {missing}. "
                        "Set the key, or record elsewhere and commit the cassette."
                    )
            digests = [digest(m) for m in normalized.get("messages") or []]
            key = request_hash(normalized, digests)
            try:
                reply = await inner(request, timeout_s=timeout_s)
            except BaseException as exc:  # including cancellation: this recording is not complete
                self.failure = (key, f"model call {len(self.interactions) + 1} failed ({type(exc).__name__})")
                raise
            if self.failure and self.failure[0] == key:
                self.failure = None  # a retry of the same request succeeded
            self._record(model, request, normalized, digests, reply)
            return reply

        return complete

    # ----------------------------------------------------------------- tools

    def tool_connections(self, connect: Callable[[], list[Any]], servers: Sequence[str]) -> list[Any]:
        """The agent's server connections: recorded around the real ones, or replayed without them."""
        if not self.record_tools:
            return connect()
        if self.mode == "replay":
            self._load()
            found = []
            for name in servers:
                if name not in self.servers:
                    reason = self._load_error or (
                        f"cassette {self.display} has no recorded tools of MCP server {name!r} "
                        "(cassette_tools = \"record\" replays tools from the cassette). Re-record it with -D aitest.cassette=record."
                    )
                    raise ServerError(reason)
                found.append(ReplayedServer(name, self))
            return found
        return [RecordingServer(conn, self) for conn in connect()]

    def _tool_key(self, server: str, tool: str, arguments: Mapping[str, Any]) -> str:
        return digest({"server": server, "tool": tool, "arguments": self.scrub(_json_value(_sorted(dict(arguments))))})

    def record_tool_call(self, server: str, tool: str, arguments: Mapping[str, Any], outcome: ToolOutcome) -> None:
        self.tool_calls.append(
            {
                "server": server,
                "tool": tool,
                "arguments": self.scrub(_json_value(_sorted(dict(arguments)))),
                "after_model_call": len(self.interactions),
                "result": self.scrub.text(outcome.text),
                "is_error": outcome.is_error,
            }
        )

    def replay_tool_call(self, server: str, tool: str, arguments: Mapping[str, Any]) -> ToolOutcome:
        key = self._tool_key(server, tool, arguments)
        for index, call in enumerate(self.tool_calls):
            if index in self._used_tools:
                continue
            if self._tool_key(call.get("server", ""), call.get("tool", ""), call.get("arguments") or {}) == key:
                self._used_tools.add(index)
                return ToolOutcome(str(call.get("result", "")), bool(call.get("is_error")), 0.0)
        args = json.dumps(dict(arguments), ensure_ascii=False, sort_keys=True)
        self._tool_miss = (
            f"replay: the tool call {server}.{tool}({args}) matches no recorded tool call in cassette {self.display} "
            f"({self._what()}; cassette_tools = \"record\"). Re-record it with -D aitest.cassette=record."
        )
        return ToolOutcome(self._tool_miss, True, 0.0)

    def note_doubled(self, turn: Any) -> None:
        """Mark the turn's doubled tool calls (their double, arguments and answer) in the cassette."""
        for call in turn.tool_calls:
            if call.doubled:
                self.doubled_calls.append(
                    {
                        "turn": turn.index,
                        "server": call.server,
                        "tool": call.name,
                        "double": call.doubled,
                        "arguments": self.scrub(_json_value(_sorted(dict(call.arguments or {})))),
                        "result": self.scrub.text(call.result),
                        "is_error": call.is_error,
                    }
                )

    def _doubles_differ(self) -> bool:
        """In a replay: the doubles answered other calls than when recorded (same steps, other answers)."""
        if self._recorded_doubles is None:
            return False
        def key(entry: Mapping[str, Any]) -> tuple[Any, ...]:
            return (entry.get("tool"), entry.get("double"), entry.get("result"), entry.get("is_error"))
        return [key(e) for e in self._recorded_doubles] != [key(e) for e in self.doubled_calls]

    # ----------------------------------------------------------------- end of the conversation

    def document(self) -> dict[str, Any]:
        recorded = {
            "at": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
            "models": self.models,
            "scripted": bool(self.models) and all(is_scripted(m) for m in self.models),
            "behave_aitest": __version__,
            "litellm": _litellm_version(),
            "tools": "recorded in this file (cassette_tools = \"record\")" if self.record_tools else "not recorded: the MCP servers run for real in a replay",
        }
        document: dict[str, Any] = {"format": FORMAT, "version": VERSION, **self.header, "recorded": recorded}
        document["note"] = (
            "Recorded against the built-in scripted model (a rules file, not an LLM)."
            if recorded["scripted"]
            else "Recorded from live model calls."
        ) + " Re-record with: python -m behave -D aitest.cassette=record [-D aitest.model=<provider/model>]"
        document["tool_schemas"] = self.tool_schemas
        document["interactions"] = self.interactions
        if self.record_tools:
            document["recorded_tools"] = {"servers": self.servers, "calls": self.tool_calls}
        if self.doubled_calls:  # calls a tool double answered (or delayed): no server was asked
            document["doubled_calls"] = self.doubled_calls
        return document

    def close(self, turns: Sequence[Any] = ()) -> str | None:
        """Write a finished recording; return a warning for the run's output, if any.

        A recording is written only when every model call succeeded and every turn of
        ``turns`` finished (or hit max_turns, which a replay reproduces): a timeout, a
        model, server or cassette error, or an interruption leaves the old file as it was.
        A write that fails raises :class:`CassetteWriteError` (one line: the file, the reason).
        """
        if self.conflict:
            return f"cassette {self.display} was NOT written: {self.conflict}"
        if self.mode == "record":
            broken = next((str(t.error) for t in turns if t.error and not str(t.error).startswith("max_turns")), None)
            if broken and broken.startswith("cassette:") and not self.interactions and not self.failure:
                return None  # nothing was recorded, and the failing step says why
            why = self.failure[1] if self.failure else (f"a turn did not finish: {broken.splitlines()[0]}" if broken else None)
            if why is not None:
                return (
                    f"cassette {self.display} was NOT written: the recording is incomplete ({why}). "
                    "The previous cassette, if any, is unchanged."
                )
            if not self.interactions and not (self.record_tools and self.tool_calls):
                return None  # (the test's own tool calls alone are worth a cassette: a replay needs them)
            try:
                write_atomic(self.path, dumps(self.document()))
            except (OSError, ValueError) as exc:  # read-only folder, full disk, a path that is a file
                reason = (exc.strerror if isinstance(exc, OSError) else None) or str(exc) or type(exc).__name__
                raise CassetteWriteError(
                    f"cassette {self.display} could not be written: {reason} ({self._what()}). "
                    "The recording is lost; make the folder writable (or free space) and record again."
                ) from None
            return None
        if self._loaded and not self._load_error and not self._missed and self._doubles_differ():
            return (
                f"cassette {self.display}: the tool doubles answered differently than when it was recorded "
                "(doubled_calls in the file); re-record it with -D aitest.cassette=record."
            )
        if self._loaded and not self._load_error and not self._missed and len(self._used) < len(self.interactions):
            unused = len(self.interactions) - len(self._used)
            return (
                f"cassette {self.display}: {unused} of {plural(len(self.interactions), 'recorded model call')} "
                f"{'was' if unused == 1 else 'were'} not replayed."
            )
        return None


def reply_from_interaction(interaction: Mapping[str, Any]) -> ModelReply:
    """The recorded response as the agent loop expects it; real spend is 0, the recorded cost kept apart."""
    response = interaction.get("response") or {}
    usage = response.get("usage") or {}
    cost = response.get("cost_usd")
    return ModelReply(
        content=response.get("content"),
        tool_calls=[
            ToolRequest(id=str(c.get("id") or f"call_{i}"), name=str(c.get("name") or ""), arguments=str(c.get("arguments") or ""))
            for i, c in enumerate(response.get("tool_calls") or [])
        ],
        input_tokens=int(usage.get("input_tokens") or 0),
        output_tokens=int(usage.get("output_tokens") or 0),
        cost_usd=0.0,
        finish_reason=response.get("finish_reason"),
        model=str(response.get("model") or ""),
        latency_s=0.0,
        replayed=True,
        recorded_cost_usd=float(cost) if cost is not None else None,
    )


class RecordingServer:
    """A live MCP connection whose tool calls are also written to the cassette."""

    def __init__(self, connection: Any, cassette: Cassette) -> None:
        self.connection = connection
        self.cassette = cassette
        self.name = connection.name
        self.tools = connection.tools
        cassette.servers.setdefault(
            self.name,
            [{"name": t.name, "description": t.description, "input_schema": _sorted(dict(t.input_schema))} for t in self.tools],
        )

    @property
    def alive(self) -> bool:
        return bool(self.connection.alive)

    async def call(self, tool: str, arguments: Mapping[str, Any]) -> ToolOutcome:
        try:
            outcome = await self.connection.call(tool, arguments)
        except BaseException as exc:
            self.cassette.failure = ("tool", f"tool call {self.name}.{tool} failed ({type(exc).__name__})")
            raise
        self.cassette.record_tool_call(self.name, tool, arguments, outcome)
        return outcome


class ReplayedServer:
    """An MCP server answered from the cassette: no process, no connection."""

    alive = True

    def __init__(self, name: str, cassette: Cassette) -> None:
        self.name = name
        self.cassette = cassette
        self.tools = [
            ToolSpec(name, str(t.get("name")), str(t.get("description") or ""), dict(t.get("input_schema") or {}))
            for t in cassette.servers.get(name, [])
        ]

    async def call(self, tool: str, arguments: Mapping[str, Any]) -> ToolOutcome:
        return self.cassette.replay_tool_call(self.name, tool, arguments)


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
    from ..config import load_config

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


def add_cassette_commands(subparsers: Any) -> None:
    """Add ``cassettes prune [--check] [--config FILE] [PATH...]`` to an argparse subparsers object.

    The parser's ``func`` default takes the parsed arguments and returns the exit code.
    """
    parser = subparsers.add_parser("cassettes", help="manage recorded model calls (cassettes)", description="Manage cassettes.")
    commands = parser.add_subparsers(dest="cassettes_command", metavar="COMMAND")
    commands.required = True
    prune_parser = commands.add_parser(
        "prune",
        help="remove cassettes whose scenario no longer exists",
        description="Remove cassettes whose feature file, @session feature or scenario no longer exists "
        "(and temporary files left by an interrupted write). Files that are not cassettes this version reads "
        "(another format version, merge conflicts, other JSON) are listed as skipped and never removed. "
        "With --check, only list them and exit 1 if there are any.",
    )
    prune_parser.add_argument("paths", nargs="*", metavar="PATH", help="cassette folders or files (default: cassette_dir of the config)")
    prune_parser.add_argument("--check", action="store_true", help="list stale cassettes and exit 1 if there are any; change nothing")
    prune_parser.add_argument("--config", metavar="FILE", help="config file (default: the nearest pyproject.toml with [tool.behave_aitest])")
    prune_parser.set_defaults(func=lambda args: prune(args.paths, args.check, config=args.config))


def main(argv: Iterable[str] | None = None) -> int:
    """``python -m behave_aitest.cassettes prune [--check]``."""
    parser = argparse.ArgumentParser(prog="python -m behave_aitest.cassettes")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    add_cassette_commands(subparsers)
    args = parser.parse_args(["cassettes", *(list(argv) if argv is not None else sys.argv[1:])])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
