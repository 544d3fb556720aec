"""behave-aitest: test LLM agents (a model plus the tools of MCP servers) in plain Gherkin.

The package is imported by behave at start-up, so it imports nothing heavy: litellm and
the mcp SDK are loaded on the first model call and the first server start.
"""

__version__ = "0.1.0"
