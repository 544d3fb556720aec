"""One conversation's cassette: replays its model calls, or records them and writes the file
when the conversation ends (only if every call of it succeeded); ``auto`` decides per
conversation whether the model is available. Wraps the conversation's completer, so the
agent loop, the MCP servers and every check run for real during a replay.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ... import __version__
from ...config import is_scripted
from ...errors import ServerError, TurnFailure
from ...model.llm import ModelReply, ToolRequest
from ...text.files import write_atomic
from ...text.redact import Redactor
from ...text.safetext import plural
from ..records import ToolOutcome
from .matching import (
    _json_value,
    _pretty,
    _sorted,
    digest,
    normalize_request,
    request_diff,
    request_hash,
    scrub_url,
)
from .store import FORMAT, VERSION, CassetteFileError, CassetteWriteError, dumps, load
from .tools import RecordingServer, ReplayedServer

RECENT = 8  # earlier requests a new one may continue (an agent's call, then a judge's, then the agent's again)

class CassetteMiss(TurnFailure):
    """Replay found no recorded answer (or no cassette): the turn stops, kind ``cassette``."""

    def __init__(self, message: str) -> None:
        super().__init__("cassette", message)


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
    from ...model.llm import litellm_module

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
        # embedding calls ("the response is similar to" with an embedding_model): their texts
        # (scrubbed) and vectors, replayed by model and texts in order (docs/checks-meaning-safety.md)
        self.embeddings: list[dict[str, Any]] = []
        self._used_embeddings: set[int] = set()

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
        self.embeddings = [e for e in document.get("embeddings") or [] if isinstance(e, dict)]

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

    def embedder(self, inner: Callable[[Sequence[str]], Any], model: str) -> Callable[[Sequence[str]], Any]:
        """Wrap ``inner`` (an embedding call, :mod:`behave_aitest.model.embeddings`) for this
        cassette: recorded with the texts it embedded (scrubbed), replayed by model and texts."""
        from ...model.embeddings import Embeddings

        async def embed(texts: Sequence[str]) -> Any:
            if self.conflict:
                raise CassetteMiss(self.conflict)
            inputs = [self.scrub.text(str(t)) for t in texts]
            if self.mode == "replay":
                self._load()
                if self._load_error:
                    raise CassetteMiss(self._load_error)
                for index, entry in enumerate(self.embeddings):
                    if index not in self._used_embeddings and entry.get("model") == model and entry.get("input") == inputs:
                        self._used_embeddings.add(index)
                        vectors = [[float(x) for x in v] for v in entry.get("vectors") or []]
                        return Embeddings(vectors, model, input_tokens=int(entry.get("input_tokens") or 0), cost_usd=0.0, replayed=True)
                self._missed = True
                raise CassetteMiss(
                    f"replay: the embedding call of {model!r} for {inputs!r} matches no recorded embedding in cassette "
                    f"{self.display} ({self._what()}; {len(self.embeddings)} recorded). "
                    "Re-record with -D aitest.cassette=record."
                )
            found = await inner(texts)
            self.embeddings.append(
                {
                    "model": model,
                    "input": inputs,
                    "vectors": [[round(float(x), 7) for x in v] for v in found.vectors],
                    "input_tokens": found.input_tokens,
                    "cost_usd": found.cost_usd,
                }
            )
            return found

        return embed

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
        if self.embeddings:
            document["embeddings"] = self.embeddings
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
            if not self.interactions and not self.embeddings and not (self.record_tools and self.tool_calls):
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
