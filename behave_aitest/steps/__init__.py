"""The step vocabulary. Import it from a step module: ``from behave_aitest.steps import *``.

``behave --steps-catalog`` prints every step with its docstring: it is the reference
product owners write scenarios from. Then-steps look at the latest turn (everything since
the last "When the user says"); the tool steps also have a form ending in "during the
conversation" that looks at every turn of the conversation (for a ``@session`` feature: of
the whole session so far).

One module per family of steps; importing this package registers them all, in the order
the catalogue shows them:

- :mod:`.conversation` — Given the agent, model, prompt, servers; When the user says.
- :mod:`.tools` — Then the agent called tool ...
- :mod:`.responses` — Then the response mentions / matches ...
- :mod:`.judge` — Then the response satisfies ... (a judge model's verdict).
- :mod:`.meaning` — Then the response is similar to ..., every number comes from the tool results, grounded; prompt-injection drills.
- :mod:`.budgets` — Then the turn cost less than ...
- :mod:`.doubles` — Given the tool ... returns / fails / takes; When the tool ... is called; Then the tool result ...
- :mod:`.mcp` — the user answers servers' questions, prompts, attached resources (docs/mcp.md).
- :mod:`.simulated` — When a simulated user talks to the agent; Then it reached its goal.

:mod:`.base` holds what they share (the redacting decorators, the step errors).
"""

from __future__ import annotations

# Registers the steps, in the catalogue's order (not alphabetical).
# isort: off
from . import conversation, tools, responses, judge, meaning, budgets, doubles, mcp, simulated  # noqa: F401
# isort: on
from .base import AgentError, StepError, runtime_of  # noqa: F401  (importable by name, as before the split)

__all__: list[str] = []  # `import *` only needs to run the decorators
