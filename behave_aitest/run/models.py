"""Which model a conversation, its judge and its simulated user use, and how each is reached.

Model precedence (``-D aitest.model`` over the flow's ``@model`` over the agent's ``model`` ...),
the request each model gets, and the completer chain every call goes through: the built-in
scripted model started on first use, ``max_model_concurrency`` slots, prices, and the
conversation's cassette. A mixin of :class:`~behave_aitest.run.runtime.Runtime`, which it reads
(``config``, ``current``).
"""

from __future__ import annotations

import functools
from typing import Any

from ..agent.loop import TurnSettings
from ..config import (
    SCRIPTED_MODEL,
    Config,
    ConfigError,
    is_scripted,
)
from ..model.adaptive import AdaptiveLimiter, Limits, Usage
from ..model.spend import SpendMeter
from .conversation import AgentState, LiveConversation
from .tags import JUDGE_TAG, USER_MODEL_TAG, own_tags


class ModelChoice:
    """The runtime's model choices and completers."""

    config: Config
    current: Any
    log_dir: Any  # the runtime's temporary folder (removed when the run ends)

    def model_for(self, live: LiveConversation) -> str:
        """-D aitest.model > Given the model > scenario @model > feature @model > agent > config."""
        return (
            self.config.model_override
            or live.agent.model
            or live.scenario_model
            or live.feature_model
            or live.agent.config_model
            or self.config.model
        )

    def model_request(self, model: str, agent: AgentState) -> dict[str, Any]:
        """litellm keyword arguments that pick and reach ``model`` (no sampling parameters)."""
        if is_scripted(model):
            return {"model": f"openai/{model}", "api_base": self.scripted_base_url(model), "api_key": "scripted-needs-no-key"}
        request: dict[str, Any] = {"model": model}
        api_base = agent.api_base or self.config.api_base
        if api_base:
            request["api_base"] = api_base
        return request

    def turn_settings(self, live: LiveConversation) -> TurnSettings:
        model = self.model_for(live)
        request = self.model_request(model, live.agent)
        if live.agent.temperature is not None:
            request["temperature"] = live.agent.temperature
        if live.agent.max_tokens is not None:
            request["max_tokens"] = live.agent.max_tokens
        return TurnSettings(
            model=model,
            request=request,
            max_turns=self.config.max_turns,
            timeout_s=self.config.timeout_s,
            retries=self.config.retries,
            retry_backoff_s=self.config.retry_backoff_s,
            vision=self._vision(model, live.agent),
        )

    @staticmethod
    def _vision(model: str, agent: AgentState) -> bool:
        """The agent's ``vision`` setting, else whether litellm says the model sees images."""
        if agent.vision is not None:
            return agent.vision
        if is_scripted(model):
            return False
        try:
            from ..model.llm import litellm_module

            return bool(litellm_module().supports_vision(model=model))
        except Exception:  # a model litellm does not know: keep the text placeholder
            return False

    def judge_model_for(self, live: LiveConversation, scenario: Any = None) -> str:
        """@judge:... on the scenario > on the feature > judge_model (config, -D) > the agent's model."""
        for tags in (own_tags(scenario) if scenario is not None else [], [str(t) for t in getattr(getattr(scenario, "feature", None), "tags", [])]):
            judges = [t[len(JUDGE_TAG):] for t in tags if t.startswith(JUDGE_TAG)]
            if judges:
                return judges[0]
        return self.config.judge_model or self.model_for(live)

    def judge_settings(self, live: LiveConversation, scenario: Any = None) -> TurnSettings:
        """How judge calls are made: the judge model, through the same completer as the agent."""
        model = self.judge_model_for(live, scenario)
        return TurnSettings(model=model, request=self.model_request(model, live.agent), timeout_s=self.config.timeout_s)

    def user_model_for(self, live: LiveConversation, scenario: Any = None) -> str:
        """@user_model:... on the scenario > on the feature > user_model (config, -D) > the judge's model
        (which falls back to the agent's)."""
        for tags in (own_tags(scenario) if scenario is not None else [], [str(t) for t in getattr(getattr(scenario, "feature", None), "tags", [])]):
            models = [t[len(USER_MODEL_TAG):] for t in tags if t.startswith(USER_MODEL_TAG)]
            if models:
                return models[0]
        return self.config.user_model or self.judge_model_for(live, scenario)

    def scripted_base_url(self, model: str = SCRIPTED_MODEL) -> str:
        """Start the built-in scripted model (a local OpenAI-compatible server) on first use;
        one server plays every named scripted model (``scripted/<name>``) of the rules file."""
        if self._scripted is None:
            from ..model.fakellm import FakeOpenAI
            from ..model.scripted import ScriptedModels

            if self.config.scripted_rules is None:
                raise ConfigError(
                    f"The model is {model!r} (the built-in scripted model) but no rules file is configured: "
                    f'set scripted_rules = "features/scripted_model.toml" in {self._config_name()}, '
                    "or choose a real model with -D aitest.model=<provider/model>."
                )
            self._scripted = FakeOpenAI(brain=ScriptedModels.from_file(self.config.scripted_rules))
            self._scripted.start()
        if model not in self._scripted.brain.brains:
            from ..model.scripted import undefined_model

            raise ConfigError(undefined_model(model, self._scripted.brain.brains, self.config.scripted_rules))
        return str(self._scripted.base_url)

    def _completer(self, settings: TurnSettings) -> Any:
        """The completer for one turn or judgement: priced, and through the conversation's cassette."""
        complete = self._priced_completer(settings)
        cassette = self.current.cassette if self.current is not None else None
        if cassette is None or getattr(cassette, "mode", None) != "replay":
            # Start-up work never counts against a turn's timeout_s (it covers model and tool
            # calls): litellm's import and first-call set-up (seconds of CPU, more on a busy
            # machine) happen here, before the turn's deadline starts. A replay never calls a
            # provider, and does not import it.
            from ..model.llm import warm_up

            self.call(warm_up)
        return cassette.completer(complete, settings) if cassette is not None else complete

    def embedder(self, live: LiveConversation) -> Any:
        """How "the response is similar to" embeds texts: the offline model, or ``embedding_model``
        through litellm (with the agent's ``api_base``) and the conversation's cassette."""
        from ..model import embeddings

        model = self.config.embedding_model
        if not model:
            return embeddings.embed_offline
        embed = embeddings.litellm_embedder(model, self.model_request(model, live.agent), self.config.timeout_s)
        cassette = self.current.cassette if self.current is not None else None
        return cassette.embedder(embed, model) if cassette is not None else embed

    @functools.cached_property
    def model_limiter(self) -> AdaptiveLimiter:
        """Every model's rate limits (adaptive concurrency, per-minute windows), shared with the
        other workers of a parallel run (docs/rate-limits.md)."""
        return AdaptiveLimiter.for_run(self.model_limits, self.log_dir / "limits")  # log_dir: removed at the end

    def model_limits(self, model: str) -> Limits:
        """``model``'s limits from the configuration: its [rate_limits] table, else the run's keys."""
        found = self.config.rate_limit(model)
        return Limits(
            max_concurrency=found.max_concurrency,
            requests_per_minute=found.requests_per_minute,
            tokens_per_minute=found.tokens_per_minute,
            adaptive=self.config.adaptive_concurrency,
        )

    def _limited(self, complete: Any, model: str) -> Any:
        """``complete`` within the model's limits: a slot of its adaptive concurrency, its
        per-minute windows, a provider's 429 waited out until the turn's deadline. The built-in
        scripted model (local, it never refuses) is limited only when the user set a limit."""
        limits = self.model_limits(model)
        if is_scripted(model) and limits == Limits(adaptive=limits.adaptive):
            return complete
        limiter = self.model_limiter
        live = self.current

        async def limited(request: dict[str, Any], *, timeout_s: float | None = None) -> Any:
            usage = Usage()
            try:
                return await limiter.call(complete, request, model=model, timeout_s=timeout_s, usage=usage)
            finally:
                note_usage(live, model, usage)

        return limited

    @functools.cached_property
    def spend_meter(self) -> SpendMeter:
        """The run's known cost, shared with the other workers (``max_run_cost_usd``)."""
        return SpendMeter.for_run(self.log_dir / "spend")

    def _metered(self, complete: Any) -> Any:
        """``complete`` adding each answer's known cost to the run's spend (when a cap is set)."""
        if self.config.max_run_cost_usd is None:
            return complete
        meter = self.spend_meter

        async def metered(request: dict[str, Any], *, timeout_s: float | None = None) -> Any:
            reply = await complete(request, timeout_s=timeout_s)
            meter.add(reply.cost_usd)
            return reply

        return metered

    def _priced_completer(self, settings: TurnSettings) -> Any:
        return self._metered(self._priced(settings))

    def _priced(self, settings: TurnSettings) -> Any:
        from ..model import llm

        complete = self._limited(llm.complete, settings.model)
        price = self.config.prices.get(settings.model)
        if not is_scripted(settings.model) and price is None:
            return complete

        async def priced(request: dict[str, Any], *, timeout_s: float | None = None) -> llm.ModelReply:
            reply = await complete(request, timeout_s=timeout_s)
            if price is not None:  # the user's price beats litellm's table
                reply.cost_usd = price.cost(reply.input_tokens, reply.output_tokens)
            elif is_scripted(settings.model):
                reply.cost_usd = 0.0  # the scripted model costs nothing, and we know it
            return reply

        return priced


def note_usage(live: LiveConversation | None, model: str, usage: Usage) -> None:
    """Add one call's limiter use to the running scenario's record (the report's run totals)."""
    record = getattr(live, "scenario", None) if live is not None else None
    if record is None:
        return
    entry = record.rate_limits.setdefault(model, {"throttled": 0, "wait_s": 0.0, "limit": None, "at": 0.0})
    entry["throttled"] += usage.throttled
    entry["wait_s"] = round(entry["wait_s"] + usage.wait_s, 3)
    if usage.limit is not None and usage.at >= entry["at"]:
        entry["limit"], entry["at"] = usage.limit, usage.at
