"""Missing provider keys, found before the first scenario.

Without this a missing key shows up once per scenario, as a litellm traceback (Anthropic)
or as an "InternalServerError" retried three times (OpenAI's SDK refuses to send a request
without a key, and litellm maps that to a 500). litellm's own ``validate_environment``
knows which variables each provider reads, so the check never goes stale with our code.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..config import Config, ConfigError, is_scripted
from .llm import missing_keys


def _has_api_base(config: Config, model: str) -> bool:
    return bool(config.api_base) or any(a.api_base for a in config.agents.values() if a.model in (None, model))


def check_keys(models: Mapping[str, str], config: Config) -> None:
    """Stop the run once, naming every model whose key is missing and the variable to set.

    ``models`` maps each model to where it is named. Skipped for the scripted model (no key)
    and in replay and auto cassette modes (a replay never calls a provider; ``auto`` may not)."""
    if config.cassette in ("replay", "auto"):
        return
    problems, first_key = [], ""
    for model, where in models.items():
        if is_scripted(model) or "<" in model:
            continue
        keys = missing_keys(model, has_api_base=_has_api_base(config, model))
        if keys:
            problems.append(f"model {model!r} ({where}) needs {' / '.join(keys)}")
            first_key = first_key or keys[0]
    if problems:
        raise ConfigError(
            f"{'; '.join(problems)}: not set in the environment. Export the key before running behave "
            f"(e.g. export {first_key}=...), replay recorded cassettes with -D aitest.cassette=replay, "
            "or use the scripted model."
        )
