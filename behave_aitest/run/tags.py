"""behave-aitest's own tags: ``@session``, ``@model:``, ``@judge:``, ``@user_model:``.

Read by the run (which model a scenario's flow uses) and by the report (which model a row
ran), so they live apart from the runtime and import only the config's error.
"""

from __future__ import annotations

from typing import Any

from ..config import ConfigError

SESSION_TAG = "session"
MODEL_TAG = "model:"
JUDGE_TAG = "judge:"
USER_MODEL_TAG = "user_model:"  # the simulated user's model (docs/simulated-user.md)


def model_tags(tags: Any) -> list[str]:
    """Models named by ``@model:...`` tags, in order, without duplicates."""
    seen: list[str] = []
    for tag in tags or ():
        if str(tag).startswith(MODEL_TAG):
            model = str(tag)[len(MODEL_TAG):].strip()
            if model and model not in seen:
                seen.append(model)
    return seen


def own_tags(scenario: Any) -> list[str]:
    """A scenario's own tags; for an Outline row, rendered from the templates unsanitised.

    behave strips characters such as ``/`` when it renders ``@model:<model>`` into a row's
    tags (``openai/gpt-4.1`` would become ``openaigpt-4.1``), so rows render them again.
    """
    row = getattr(scenario, "_row", None)
    outline = getattr(scenario, "parent", None)
    if row is None or outline is None or not hasattr(outline, "examples"):
        return [str(t) for t in scenario.tags]
    from behave.model import ScenarioOutlineBuilder

    templates = list(outline.tags)
    for examples in outline.examples:
        if examples.table is not None and any(r is row for r in examples.table.rows):
            templates += list(examples.tags)
    return [ScenarioOutlineBuilder.render_template(str(t), row) for t in templates]


def scenario_model(scenario: Any) -> str | None:
    """The model a scenario's own ``@model:`` tag names; several are a mistake worth stopping for."""
    models = model_tags(own_tags(scenario))
    if len(models) > 1:
        raise ConfigError(
            f"{scenario.location}: scenario has several @model tags ({', '.join(models)}). "
            "To compare models, use a Scenario Outline with @model:<model> and a 'model' Examples column, "
            "or put the @model tags on the Feature."
        )
    return models[0] if models else None
