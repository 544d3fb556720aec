"""The built-in scripted model: a rules file that answers like an agent, with no LLM at all.

It lets the example features (and a new user's first run) work offline and for free,
through the same path a real model takes: litellm sends real HTTP requests to a local
OpenAI-compatible server (:mod:`behave_aitest.fakellm`) whose answers come from here.
It is deliberately simple and says so in its answers when no rule matches.

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
JSON type of its value (``"{amount}"`` -> 500).
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

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class RulesError(ValueError):
    """The rules file is malformed; the message names the file and the rule."""


@dataclass(frozen=True)
class Rule:
    when: re.Pattern[str]
    reply: str
    call: tuple[Mapping[str, Any], ...] = ()
    recall: Mapping[str, re.Pattern[str]] = field(default_factory=dict)


def _compile(pattern: Any, where: str) -> re.Pattern[str]:
    if not isinstance(pattern, str):
        raise RulesError(f"{where}: must be a string (a regular expression).")
    try:
        return re.compile(pattern, re.IGNORECASE | re.DOTALL)
    except re.error as exc:
        raise RulesError(f"{where}: not a valid regular expression: {exc}.") from None


def parse_rules(data: Mapping[str, Any], source: str) -> list[Rule]:
    """Validate the ``[[rule]]`` tables of a rules document."""
    rules = []
    for number, table in enumerate(data.get("rule", []), start=1):
        where = f"{source}: rule {number}"
        unknown = set(table) - {"when", "reply", "call", "recall"}
        if unknown:
            raise RulesError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (use when, recall, call, reply).")
        if "when" not in table or "reply" not in table:
            raise RulesError(f"{where}: needs 'when' (a regex) and 'reply' (a text template).")
        calls = tuple(table.get("call", ()))
        for call in calls:
            if not isinstance(call, dict) or "tool" not in call:
                raise RulesError(f"{where}: each 'call' entry needs a 'tool' name.")
        recall = {name: _compile(p, f"{where} recall.{name}") for name, p in table.get("recall", {}).items()}
        rules.append(Rule(_compile(table["when"], f"{where} when"), str(table["reply"]), calls, recall))
    if not rules:
        raise RulesError(f"{source}: no [[rule]] tables found.")
    return rules


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


class RulesBrain:
    """Answers chat requests from rules; stateless (everything comes from the messages)."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = list(rules)

    @classmethod
    def from_file(cls, path: Path) -> RulesBrain:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise RulesError(f"{path}: not valid TOML: {exc}.") from None
        return cls(parse_rules(data, str(path)))

    def _match(self, user_text: str, earlier: Sequence[Mapping[str, Any]]) -> tuple[Rule, dict[str, Any]] | None:
        for rule in self.rules:
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
        messages = list(request.get("messages", []))
        last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=None)
        if last_user is None:
            return {"content": "(scripted model: there is no user message to answer)"}
        user_text = _text(messages[last_user])
        matched = self._match(user_text, messages[:last_user])
        if matched is None:
            return {"content": f"(scripted model: no rule matches {user_text!r})"}
        rule, values = matched
        results = [_text(m) for m in messages[last_user + 1:] if m.get("role") == "tool"]
        offered = {t.get("function", {}).get("name") for t in request.get("tools") or []}
        if rule.call and not results:
            missing = [c["tool"] for c in rule.call if c["tool"] not in offered]
            if missing:
                return {"content": f"(scripted model: the rule for {user_text!r} needs tool(s) {', '.join(missing)}, which this agent does not offer)"}
            return {
                "tool_calls": [
                    (c["tool"], _render_argument(dict(c.get("arguments", {})), values)) for c in rule.call
                ]
            }
        return {"content": render(rule.reply, {**values, "result": "\n".join(results), "results": results})}
