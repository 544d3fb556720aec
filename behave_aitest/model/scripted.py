"""The built-in scripted model: a rules file that answers like an agent, with no LLM at all.

It lets the example features (and a new user's first run) work offline and for free,
through the same path a real model takes: litellm sends real HTTP requests to a local
OpenAI-compatible server (:mod:`behave_aitest.fakellm`) whose answers come from here.
It is deliberately simple. A message no rule matches is the turn's error, never an answer:
an answer could repeat the user's words and let ``Then the response mentions`` pass by
accident (see :func:`no_rule`).

A rules file (TOML) is a list of ``[[rule]]`` tables, tried in order against the latest
user message::

    [[rule]]
    when = 'transfer \\$?(?P<amount>[\\d.]+) to (?P<to>\\w+)'   # regex, case-insensitive
    recall = { goal = 'saving for (?P<goal>[^.?!]+)' }         # searched in earlier statements
    call = [{ tool = "transfer", arguments = { to_account = "{to}", amount = "{amount}" } }]
    reply = "Done: moved ${amount} to {to} for {goal}. {result}"

``when`` groups and ``recall`` groups become ``{placeholders}``; a rule whose recall
finds nothing in the conversation does not apply. ``recall`` searches what the user and the
assistant said earlier, newest message first, without their questions (see
:func:`statements`). docs/scripted-model.md describes every key with a worked example. ``call`` makes the model call tools
first (all at once); ``reply`` is then rendered with ``{result}`` (all results, one per
line) and ``{results[0]}``, ... An argument that is exactly one placeholder keeps the
JSON type of its value (``"{amount}"`` -> 500). ``system`` (a regex) limits a rule to
conversations whose system prompt matches it (e.g. one simulated user's persona).

Several named models in one file: ``[[models.careful.rule]]`` tables are the rules of
``scripted/careful``, each model with its own rules only; the top-level ``[[rule]]``
tables are those of plain ``scripted``. :class:`ScriptedModels` picks the rules by the
request's model, so one local server plays them all (the agents being compared, and the
simulated user).
"""

from __future__ import annotations

import json
import re
import string
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..text.patterns import Pattern, PatternError, PatternTimeout, compile_pattern

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class RulesError(ValueError):
    """The rules file is malformed; the message names the file and the rule."""


@dataclass(frozen=True)
class Rule:
    when: Pattern
    reply: str
    call: tuple[Mapping[str, Any], ...] = ()
    recall: Mapping[str, Pattern] = field(default_factory=dict)
    system: Pattern | None = None  # the rule applies only when the system prompt matches
    follow: tuple[Follow, ...] = ()  # what to do after each round of tool results (see Follow)


@dataclass(frozen=True)
class Follow:
    """One ``follow`` step of a rule: after round N of tool results, if ``result`` (a regex)
    matches them, make the calls ``call`` (round N+1) or answer ``reply``. Its named groups
    become placeholders. It lets a scripted agent obey an instruction found in a tool result
    (a prompt-injection drill) or refuse it."""

    result: Pattern
    call: tuple[Mapping[str, Any], ...] = ()
    reply: str | None = None


RULE_KEYS = ("when", "system", "recall", "call", "follow", "reply")
FOLLOW_KEYS = ("result", "call", "reply")
SCRIPTED_PREFIX = "scripted"  # "scripted" (the top-level rules) or "scripted/<name>" (a named model)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _compile(pattern: Any, where: str) -> Pattern:
    """A rule's pattern; it searches user messages and tool results, untrusted text, so its
    searches end within a second (``text.patterns``)."""
    if not isinstance(pattern, str):
        raise RulesError(f"{where}: must be a string (a regular expression).")
    try:
        return compile_pattern(pattern)
    except PatternError as exc:
        raise RulesError(f"{where}: not a valid regular expression: {exc}.") from None


def parse_rules(data: Mapping[str, Any], source: str) -> list[Rule]:
    """Validate the ``[[rule]]`` tables of a rules document."""
    rules = []
    tables = data.get("rule", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise RulesError(f"{source}: 'rule' must be a list of tables: write each rule as [[rule]].")
    for number, table in enumerate(tables, start=1):
        where = f"{source}: rule {number}"
        unknown = set(table) - set(RULE_KEYS)
        if unknown:
            raise RulesError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (use {', '.join(RULE_KEYS)}).")
        if "when" not in table or "reply" not in table:
            raise RulesError(f"{where}: needs 'when' (a regex) and 'reply' (a text template).")
        calls = tuple(table.get("call", ()))
        for call in calls:
            if not isinstance(call, dict) or "tool" not in call:
                raise RulesError(f"{where}: each 'call' entry needs a 'tool' name.")
        recall = {name: _compile(p, f"{where} recall.{name}") for name, p in table.get("recall", {}).items()}
        system = _compile(table["system"], f"{where} system") if "system" in table else None
        follow = _follow(table.get("follow", []), calls, where)
        rules.append(Rule(_compile(table["when"], f"{where} when"), str(table["reply"]), calls, recall, system, follow))
    if not rules:
        raise RulesError(f"{source}: no [[rule]] tables found.")
    return rules


def _follow(entries: Any, calls: Sequence[Any], where: str) -> tuple[Follow, ...]:
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise RulesError(f"{where}: 'follow' must be a list of tables, e.g. follow = [{{ result = '...', call = [...] }}].")
    if entries and not calls:
        raise RulesError(f"{where}: 'follow' acts on tool results, so the rule needs a 'call' too.")
    found = []
    for number, entry in enumerate(entries, start=1):
        at = f"{where} follow {number}"
        unknown = set(entry) - set(FOLLOW_KEYS)
        if unknown:
            raise RulesError(f"{at}: unknown key(s) {', '.join(sorted(unknown))} (use {', '.join(FOLLOW_KEYS)}).")
        if "result" not in entry or ("call" in entry) == ("reply" in entry):
            raise RulesError(f"{at}: needs 'result' (a regex) and either 'call' or 'reply'.")
        follow_calls = tuple(entry.get("call", ()))
        if any(not isinstance(c, dict) or "tool" not in c for c in follow_calls):
            raise RulesError(f"{at}: each 'call' entry needs a 'tool' name.")
        reply = str(entry["reply"]) if "reply" in entry else None
        found.append(Follow(_compile(entry["result"], f"{at} result"), follow_calls, reply))
    return tuple(found)


def parse_models(data: Mapping[str, Any], source: str) -> dict[str, list[Rule]]:
    """Every model of a rules document: ``"scripted"`` (top-level ``[[rule]]``, if any) and
    ``"scripted/<name>"`` for each ``[models.<name>]`` table (its own ``[[models.<name>.rule]]``)."""
    models: dict[str, list[Rule]] = {}
    if "rule" in data:
        models[SCRIPTED_PREFIX] = parse_rules(data, source)
    named = data.get("models", {})
    if not isinstance(named, dict):
        raise RulesError(f"{source}: 'models' must be a table of named models, e.g. [[models.careful.rule]].")
    for name, table in named.items():
        where = f"{source} [models.{name}]"
        if not _NAME.match(name):
            raise RulesError(f"{where}: a model name may hold letters, digits, '_', '-' and '.' only.")
        if not isinstance(table, dict) or set(table) - {"rule"}:
            raise RulesError(f"{where}: holds only [[models.{name}.rule]] tables.")
        models[f"{SCRIPTED_PREFIX}/{name}"] = parse_rules(table, where)
    if not models:
        raise RulesError(f"{source}: no [[rule]] tables found (and no [[models.<name>.rule]] either).")
    return models


def read_models(path: Path) -> dict[str, list[Rule]]:
    """The models of a rules file; every mistake a :class:`RulesError` naming the file."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"{path}: not valid TOML: {exc}.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(f"{path}: cannot be read: {exc}.") from None
    return parse_models(data, str(path))


def undefined_model(model: str, models: Mapping[str, Any], path: Path) -> str:
    """The message for a scripted model the rules file does not define."""
    import difflib

    known = ", ".join(sorted(models)) or "none"
    close = difflib.get_close_matches(model, list(models), n=1)
    if close:
        known += f"; did you mean {close[0]!r}?"
    if model == SCRIPTED_PREFIX:
        how = "add top-level [[rule]] tables"
    else:
        how = f"add [[models.{model.partition('/')[2]}.rule]] tables"
    return f"the scripted model {model!r} is not defined in {path} (it defines: {known}); {how} to the file."


def _text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):  # content parts
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return content or ""


# A question: a sentence (after the start, a sentence end or a line break) ending in "?"
# followed by a space or the end, so "?q=1" in a URL is not one.
_QUESTION = re.compile(r"[^.!?\n]*\?+(?=\s|$)")
_SAID = ("user", "assistant")


def statements(messages: Sequence[Mapping[str, Any]]) -> list[str]:
    """What ``recall`` searches: the user's and the assistant's earlier messages, newest first,
    each without its questions.

    A question states nothing: recalling ``my sister (?P<name>\\w+)`` from "Where does my
    sister live?" would give "live". Tool results (raw data; an answer quotes what matters)
    and the system prompt are not something said in the conversation, so they are left out.
    """
    texts = (_QUESTION.sub("", _text(m)) for m in reversed(messages) if m.get("role") in _SAID)
    return [t for t in texts if t.strip()]


class _Values(dict):  # type: ignore[type-arg]
    """Template values; a missing placeholder renders visibly instead of raising."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def render(template: str, values: Mapping[str, Any]) -> str:
    return string.Formatter().vformat(template, (), _Values(values))


def _render_argument(value: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        text = render(value, values)
        if re.fullmatch(r"\{\w+\}", value):
            try:
                return json.loads(text.replace(",", ""))
            except json.JSONDecodeError:
                return text
        return text
    if isinstance(value, dict):
        return {k: _render_argument(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_argument(v, values) for v in value]
    return value


# The HTTP status of the scripted model's refusals: litellm maps it to BadRequestError, which
# is never retried, so the turn ends at once with the message as its error.
REFUSAL_STATUS = 400


def refusal(text: str) -> dict[str, Any]:
    """A reply the local server sends as an HTTP error: the turn's error, not an answer."""
    return {"status": REFUSAL_STATUS, "message": text, "type": "invalid_request_error", "code": "scripted_no_rule"}


def no_rule(model: str, user_text: str, source: str) -> str:
    """Why the scripted model gives no answer to ``user_text``: the message and the rules file.

    Never an answer: "(no rule matches 'Tell me a joke')" contains the user's words, so
    ``Then the response mentions "joke"`` (or ``Then the agent answered``) would pass on a
    turn nobody scripted. As an error the turn stops and the step says what to add.
    """
    return (
        f"the scripted model {model!r} has no rule for the user's message {user_text!r} in {source}: "
        "add a [[rule]] whose 'when' matches it, or check the rules above it (docs/scripted-model.md)."
    )


def tool_images(message: Mapping[str, Any]) -> bool:
    """A user message that only carries tool images to a vision model (after the tool results):
    part of the tool results, not something the user said, so never "the latest user message"."""
    content = message.get("content")
    if not isinstance(content, list) or not content:
        return False
    texts = [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
    from .llm import TOOL_IMAGE_TEXT

    return bool(texts) and all(str(t).startswith(TOOL_IMAGE_TEXT) for t in texts)


class RulesBrain:
    """Answers chat requests from rules; stateless (everything comes from the messages)."""

    def __init__(self, rules: Sequence[Rule], model: str = SCRIPTED_PREFIX, source: str = "the rules file") -> None:
        self.rules = list(rules)
        self.model = model
        self.source = source

    @classmethod
    def from_file(cls, path: Path) -> RulesBrain:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise RulesError(f"{path}: not valid TOML: {exc}.") from None
        return cls(parse_rules(data, str(path)), source=str(path))

    def _match(
        self, user_text: str, earlier: Sequence[Mapping[str, Any]], system: str = ""
    ) -> tuple[Rule, dict[str, Any]] | None:
        for rule in self.rules:
            if rule.system is not None and not rule.system.search(system):
                continue
            found = rule.when.search(user_text)
            if not found:
                continue
            values: dict[str, Any] = {k: v.strip() for k, v in found.groupdict().items() if v}
            said = statements(earlier) if rule.recall else []
            for name, pattern in rule.recall.items():
                recalled = next((m for m in (pattern.search(text) for text in said) if m), None)
                if recalled is None:
                    break
                groups = recalled.groupdict()
                values[name] = (groups.get(name) or (recalled.group(1) if recalled.groups() else recalled.group(0))).strip()
                values.update({k: v.strip() for k, v in groups.items() if v and k not in values})
            else:
                return rule, values
        return None

    def __call__(self, request: Mapping[str, Any]) -> dict[str, Any]:
        try:
            return self._answer(request)
        except PatternTimeout as exc:  # a rule's pattern on this message: the turn's error, at once
            return refusal(f"the scripted model {self.model!r} could not match a rule of {self.source}: {exc}.")

    def _answer(self, request: Mapping[str, Any]) -> dict[str, Any]:
        messages = list(request.get("messages", []))
        last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user" and not tool_images(m)), default=None)
        if last_user is None:
            return {"content": "(scripted model: there is no user message to answer)"}
        user_text = _text(messages[last_user])
        system = "\n".join(_text(m) for m in messages if m.get("role") == "system")
        matched = self._match(user_text, messages[:last_user], system)
        if matched is None:
            return refusal(no_rule(self.model, user_text, self.source))
        rule, values = matched
        after = messages[last_user + 1:]
        results = [_text(m) for m in after if m.get("role") == "tool"]
        rounds = sum(1 for m in after if m.get("role") == "assistant" and m.get("tool_calls"))
        offered = {t.get("function", {}).get("name") for t in request.get("tools") or []}
        reply = rule.reply
        if rule.call and not results:
            return _calls(rule.call, values, offered)
        if results and 0 < rounds <= len(rule.follow):
            step = rule.follow[rounds - 1]
            found = step.result.search("\n".join(results))
            if found:
                values = {**values, **{k: v.strip() for k, v in found.groupdict().items() if v}}
                if step.call:
                    return _calls(step.call, values, offered)
                reply = step.reply or ""
        return {"content": render(reply, {**values, "result": "\n".join(results), "results": results})}


def _calls(calls: Sequence[Mapping[str, Any]], values: Mapping[str, Any], offered: set[Any]) -> dict[str, Any]:
    """Ask for ``calls`` (tool names and arguments rendered with ``values``), or say which of
    the tools the agent does not offer — without the user's words, so that no check on the
    response can pass on them (issue 24)."""
    wanted = [(render(str(c["tool"]), values), _render_argument(dict(c.get("arguments", {})), values)) for c in calls]
    missing = [name for name, _ in wanted if name not in offered]
    if missing:
        return {"content": f"(scripted model: the rule that matched needs tool(s) {', '.join(missing)}, which this agent does not offer)"}
    return {"tool_calls": wanted}


class ScriptedModels:
    """Several scripted models behind one server: the request's model picks the rules.

    litellm sends ``openai/scripted/careful`` as ``scripted/careful``; plain ``scripted``
    is the top-level rules.
    """

    def __init__(self, models: Mapping[str, Sequence[Rule]], source: str = "the rules file") -> None:
        self.brains = {name: RulesBrain(rules, name, source) for name, rules in models.items()}
        self.source = source

    @classmethod
    def from_file(cls, path: Path) -> ScriptedModels:
        return cls(read_models(path), str(path))

    def __call__(self, request: Mapping[str, Any]) -> dict[str, Any]:
        model = str(request.get("model") or SCRIPTED_PREFIX)
        model = model[len("openai/"):] if model.startswith("openai/") else model
        brain = self.brains.get(model)
        if brain is None:
            return refusal(f"the scripted model {model!r} is not defined in {self.source}.")
        return brain(request)
