"""An agent under test that is not the built-in loop (docs/agents.md).

``base`` holds what every kind gets and may return (the interface names); ``python``,
``service`` and ``command`` are the kinds; ``messages`` reads what an agent returns (and the
tool calls it reports); ``wire`` attributes the model endpoint's and the MCP endpoints'
requests to the turn in flight and records them; ``turn`` runs one turn; ``session`` is what
the runtime holds (one set of endpoints and agents per worker).
"""
