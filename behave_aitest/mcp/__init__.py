"""The MCP client: one connection per server, with the official SDK.

``connection`` starts or reaches a server (stdio, streamable HTTP, SSE) and calls its tools;
``clientside`` answers what a server asks of the client (elicitation, sampling, roots, logs,
notifications) and attributes it to a call; ``elicitation`` and ``sampling`` hold those answers;
``content`` turns MCP content blocks into model text, image parts and report items.
``endpoint`` is the server side: the agent's servers served to an external agent over
streamable HTTP, each call handed to the run (docs/agents.md).

May import: ``errors``, ``text``, ``config``, ``model``, ``record``.
"""
