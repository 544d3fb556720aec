"""Example banking agents, each built the way a team would ship it, tested with behave-aitest.

Every module here is an agent under test of ``examples/agents/pyproject.toml``: it reaches its
model through behave-aitest's model endpoint and the bank through its MCP endpoint, never
directly, so the same Gherkin and the same cassettes work for all of them (docs/agents.md).
"""
