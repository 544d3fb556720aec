"""Reaching a model.

``llm`` is the litellm boundary (the one call to ``litellm.acompletion``, with the reply and
tool-request types the rest of the package reads); ``scripted`` is the built-in rules model and
``fakellm`` the local OpenAI-compatible HTTP server that serves it (and scripts the tests);
``limits`` shares model and server-start slots between the workers of a run; ``adaptive``
finds each model's rate limit from the provider's 429s and headers (AIMD concurrency,
per-minute windows, waits until the turn's deadline, shared by the workers); ``spend`` is the
run's known cost for ``max_run_cost_usd``; ``preflight`` finds missing provider keys before
the first scenario; ``embeddings`` embeds texts, offline (wordllama's weights shipped in its
wheel, the ``[similarity]`` extra) or through ``litellm.aembedding`` (docs/checks-meaning-safety.md).

May import: ``errors``, ``text``, ``config``. Nothing here knows about MCP, records or behave.
"""
