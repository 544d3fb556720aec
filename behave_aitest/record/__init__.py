"""What is kept of a run.

``records`` holds the dataclasses of what happened (turns, tool and model calls, conversations)
and the plain types several layers hand each other (a tool as a server lists it, a tool call's
outcome); ``cassettes`` records model and tool calls and replays them; ``coverage`` and
``telemetry`` are read off the records (the tool-coverage gate, OpenTelemetry spans).

May import: ``errors``, ``text``, ``config``, ``model``. Never MCP, the agent loop or the run.
"""
