"""Example MCP servers used by behave-aitest's own features and tests.

Each module is a small, deterministic MCP server built with the official ``mcp`` SDK,
with its state held in memory for the life of the process (so a server that lives across
scenarios remembers what happened in earlier ones):

* ``bank_server``    - two accounts, balances, transfers and a transaction history.
* ``todo_server``    - task lists: add, list, complete and delete tasks.
* ``weather_server`` - fake current weather and forecasts for a few cities (no network).
* ``notes_server``   - notes kept in a JSON file (``NOTES_FILE``), not in memory: state
  that outlives the process, for ``${AITEST_SERVER_DIR}`` (docs/sessions.md).
* ``faulty_server``  - fails in chosen ways (crashes, hangs, errors, huge results).
* ``studio_server``  - the rest of the protocol: elicitation, sampling, roots, images, ...
* ``hostile_server`` - attacks its client: catastrophic patterns, floods, greedy sampling,
  questions during parallel calls (docs/reliability.md, round three).

Run one with ``python -m behave_aitest.testing.bank_server`` (stdio), or over HTTP with
``--transport streamable-http --port 8000`` (see ``_serve.py`` for all options).
"""
