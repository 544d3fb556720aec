"""Agents for the tests of external agents (docs/agents.md): a small ReAct agent (``react``) that
uses behave-aitest's model endpoint and MCP endpoints like a real agent would, as a python
callable (``python_agent``), an HTTP agent service (``service``) and a CLI agent (``cli``).
Standard library, httpx and the MCP client only; nothing of behave-aitest itself.
"""
