"""Given and When steps: the agent, its model, prompt and servers, and what the user says."""

from __future__ import annotations

from typing import Any

from ..agent import checks
from .base import AgentError, StepUsageError, ThrottledError, given, known_tools, live_of, runtime_of, step_text, when

__all__: list[str] = []


# --------------------------------------------------------------------------- Given


@given('the agent "{name}"')
def step_agent(context: Any, name: str) -> None:
    """Use the agent configured under [tool.behave_aitest.agents.<name>]: its MCP servers,
    system prompt, allowed tools and model settings. In a @session feature (e.g. in a
    Background) this sets the agent up again without dropping the conversation so far."""
    runtime_of(context).use_agent(name)


@given('the model "{model}"')
def step_model(context: Any, model: str) -> None:
    """Talk to this model (any litellm model string, e.g. "openai/gpt-4.1-mini") for the rest
    of the scenario. Beats @model tags and the config; -D aitest.model=... beats it."""
    live_of(context).agent.model = model


@given("the system prompt:")
def step_system_prompt(context: Any) -> None:
    """Replace the agent's system prompt with the doc string below the step."""
    if not context.text:
        raise StepUsageError('"Given the system prompt:" needs a doc string ("""...""") below it.')
    live = live_of(context)
    agent = runtime_of(context).config.agents.get(live.agent.name or "")
    if agent is not None and agent.kind != "builtin":  # it would change nothing: say so (docs/agents.md)
        raise StepUsageError(
            f'"Given the system prompt:" sets the prompt of behave-aitest\'s own agent loop; the agent {agent.name!r} '
            f"is a {agent.kind} agent with its own prompt."
        )
    live.agent.system_prompt = context.text


@given('the MCP server "{name}"')
def step_server(context: Any, name: str) -> None:
    """Give the agent the tools of this MCP server (configured under
    [tool.behave_aitest.servers.<name>]), in addition to its own."""
    runtime = runtime_of(context)
    if name not in runtime.config.servers:
        from ..config import unknown_name

        raise unknown_name("MCP server", name, runtime.config.servers, "servers", str(runtime.config.path or "pyproject.toml"))
    agent = live_of(context).agent
    if name not in agent.servers:
        agent.servers.append(name)


@given('the agent may only use the tools "{names}"')
def step_allowed_tools(context: Any, names: str) -> None:
    """Offer the model only these tools (comma-separated; "server.tool" picks one server's tool).
    A tool the model calls anyway is refused and recorded as an error. A name the agent's
    servers do not list is an error with a did-you-mean."""
    from ..agent.names import allowed_tools_problem

    entries = checks.split_names(names)
    problem = allowed_tools_problem(entries, known_tools(context), step_text(context, f'Given the agent may only use the tools "{names}"'))
    if problem:
        raise StepUsageError(problem)
    live_of(context).agent.allowed_tools = entries


# --------------------------------------------------------------------------- When


TURN_ERRORS = {
    "max_turns": "turn limit reached",
    "timeout": "timeout",
    "model": "model error",
    "server": "MCP server error",
    "unexpected": "unexpected error",
    "elicitation": "the scenario's answers do not fit a server's question",
    "throttled": "throttled by the provider's rate limit",
    "agent": "agent error",  # an external agent failed (docs/agents.md)
}


def _say(context: Any, text: str, user_messages: list[dict[str, Any]] | None = None, simulated: bool = False) -> Any:
    """One turn; the agent's trouble becomes this step's error (a turn limit: its failure)."""
    from ..errors import ServerError

    runtime = runtime_of(context)
    try:
        turn = runtime.say(text, user_messages, simulated=simulated)
    except ServerError as exc:
        runtime.drop_dead_servers()
        runtime.break_session("MCP server error")
        raise AgentError(str(exc)) from None
    if turn.error:
        runtime.drop_dead_servers()
        kind, _, detail = turn.error.partition(": ")
        label = TURN_ERRORS.get(kind, kind)
        message = f"The agent did not finish the turn ({label}): {detail}\n{checks.describe([turn])}"
        if kind == "elicitation":  # the agent finished; the scenario's own answers were wrong
            message = f"The scenario's answers do not fit a server's question: {detail}\n{checks.describe([turn])}"
        if kind in ("max_turns", "elicitation"):
            raise AssertionError(message)  # the agent misbehaved: a failure, not an error
        runtime.break_session(f"the turn did not finish ({label})")
        if kind == "throttled":
            raise ThrottledError(message)
        raise AgentError(message)
    return turn


@when('the user says "{text}"')
def step_user_says(context: Any, text: str) -> None:
    """Send this message to the agent and let it work (call tools, answer) until it replies.
    Adds to the conversation's history; later turns (and later scenarios of a @session
    feature) see everything said and done before."""
    _say(context, text)


@when("the user says:")
def step_user_says_text(context: Any) -> None:
    """Send the doc string below the step to the agent, like "When the user says", for long
    or multi-line messages."""
    if not context.text:
        raise StepUsageError('"When the user says:" needs a doc string ("""...""") below it.')
    _say(context, context.text)
