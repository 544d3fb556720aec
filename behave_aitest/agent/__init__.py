"""What one turn of the agent under test is.

``loop`` is the built-in agent loop (model, then tool calls, until a text answer); ``toolbox``
offers the servers' tools to the model under provider-safe names; ``doubles`` are the test's
stand-ins for tools; ``judge`` and ``simulator`` are the other model roles of a scenario (the
LLM judge, the simulated user); ``checks`` are the pure checks the Then steps run over records;
``names`` says whether the agent has the tool a step names (did-you-mean), for the steps and doctor.
The checks that read meaning and safety (docs/checks-meaning-safety.md): ``similarity``
(embeddings, offline by default), ``grounding`` (numbers grounded in tool results),
``faithfulness`` (the judge's per-claim verdicts), ``injection`` (prompt-injection drills).
``external`` runs an agent that is not the built-in loop (a python callable, an HTTP service,
a CLI) on behave-aitest's model and MCP endpoints (docs/agents.md).

May import: ``errors``, ``text``, ``config``, ``model``, ``record``, ``mcp``.
"""
