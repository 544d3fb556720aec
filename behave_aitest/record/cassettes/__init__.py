"""Cassettes: record model calls once, replay them in CI with no key and no network.

A cassette is one readable JSON file per conversation (a scenario, or a whole
``@session`` feature flow) holding one *interaction* per model call: the normalised
request (model, messages, tool schemas, the parameters that change the answer) and
the response (content, tool calls, usage, cost). Recording sits at the litellm
boundary (:func:`behave_aitest.model.llm.complete`), so prompt assembly, the tool loop, the
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
(:class:`~behave_aitest.text.redact.Redactor`, the reports' rule) and hashed (:func:`request_hash`); call N of a replay takes the
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

The modules, as vcrpy splits them: ``naming`` (where a conversation's cassette lives),
``store`` (the file: format, shape, reading and writing), ``matching`` (normalising, scrubbing,
hashing, a miss's diff), ``cassette`` (one conversation: record and replay), ``tools``
(recorded tools), ``library`` (the run's cassettes), ``prune`` (cassettes nothing uses).
"""

from __future__ import annotations

from .cassette import (
    RECENT,
    Cassette,
    CassetteMiss,
    model_available,
    reply_from_interaction,
)
from .library import CassetteLibrary, expected_texts
from .matching import (
    REDACTED,
    TRANSPORT_KEYS,
    digest,
    marked_diff,
    normalize_request,
    request_diff,
    request_hash,
    scrub_url,
)
from .naming import (
    SESSION_NAME,
    SUFFIX,
    cassette_relpath,
    feature_key,
    flow_model,
    scenario_stem,
    slug,
)
from .prune import prune
from .store import (
    FORMAT,
    READABLE_VERSIONS,
    TEMPORARY,
    VERSION,
    CassetteFileError,
    CassetteWriteError,
    check_shape,
    dumps,
    load,
)
from .tools import RecordingServer, ReplayedServer

__all__ = [
    "Cassette",
    "CassetteFileError",
    "CassetteLibrary",
    "CassetteMiss",
    "CassetteWriteError",
    "FORMAT",
    "READABLE_VERSIONS",
    "RECENT",
    "REDACTED",
    "RecordingServer",
    "ReplayedServer",
    "SESSION_NAME",
    "SUFFIX",
    "TEMPORARY",
    "TRANSPORT_KEYS",
    "VERSION",
    "cassette_relpath",
    "check_shape",
    "digest",
    "dumps",
    "expected_texts",
    "feature_key",
    "flow_model",
    "load",
    "marked_diff",
    "model_available",
    "normalize_request",
    "prune",
    "reply_from_interaction",
    "request_diff",
    "request_hash",
    "scenario_stem",
    "scrub_url",
    "slug",
]
