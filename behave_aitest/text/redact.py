"""Secret redaction for everything written: reports and cassettes are shared (CI artifacts,
PR comments, commits), a key is not.

Reports and cassettes hold model, tool and user text verbatim, and any of it may echo a
credential: a tool that prints its environment, an error message quoting a header, a model
repeating what it was told. :class:`Redactor` (the one rule for both) replaces, in every
string:

- the values of environment variables whose names look secret (``*KEY*``, ``*TOKEN*``,
  ``*SECRET*``, ``*PASSWORD*``, ``*AUTH*``, ``*CREDENTIAL*``) that look like credentials
  (one word, not a path, with a digit, an inner capital or token punctuation, or 16+
  characters: ``AUTH_MODE=standard`` does not blank out every "standard");
- the value of every ``env`` and ``headers`` entry of every configured MCP server, after
  ``${VAR}`` expansion, and the values of the variables that ``env``, ``headers`` or
  ``url`` name;
- ``Authorization:``-style header values that look like credentials (not prose such as
  "Authorization: approved"), passwords in URLs and strings shaped like provider keys
  (``sk-...``, ``AKIA...``, ``Bearer ...``), wherever they appear.

It imports nothing but the standard library, so the formatters stay cheap to load.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

REDACTED = "[REDACTED]"

SECRET_NAME = re.compile(r"(?i)(key|token|secret|passw|auth|credential)")
MIN_LENGTH = 6  # shorter values ("1", "true", "prod") would blank out ordinary words

# Credential shapes, redacted wherever they appear (one alternation: one pass per string).
_SHAPES = re.compile(
    "|".join(
        (
            r"\bsk-[A-Za-z0-9_\-]{16,}",  # OpenAI (sk-, sk-proj-), Anthropic (sk-ant-)
            r"\bAKIA[0-9A-Z]{16}\b",  # AWS access key id
            r"\bAIza[0-9A-Za-z_\-]{35}",  # Google API key
            r"\bgh[pousr]_[A-Za-z0-9]{30,}",  # GitHub tokens
            r"\bxox[abpr]-[A-Za-z0-9\-]{10,}",  # Slack tokens
            r"\bhf_[A-Za-z0-9]{30,}",  # Hugging Face tokens
            r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)",  # user:password@ in a URL
        )
    )
)
# Header-like "name: value" / "name=value" pairs whose value is a credential; the name and
# the scheme ("Bearer ") stay readable, the value goes (not a sentence's final "." or ")").
_HEADER = re.compile(
    r"""(?i)(\b(?:proxy-)?authorization|\bx-api-key|\bapi[-_]?key|\bbearer|\bbasic)"""
    r"""(["']?\s*[:=]?\s*["']?)((?:bearer|basic|token)\s+)?([^\s"',;}&]{6,}?)(?=[.!?:)]*(?:[\s"',;}&]|$))"""
)


def _tokenish(value: str) -> bool:
    """Looks like a credential rather than a word: digits, inner capitals or token punctuation."""
    return any(c.isdigit() or c in "._-+/=" for c in value) or any(c.isupper() for c in value[1:])


def _credential(value: str) -> bool:
    """A header value that looks like a credential, not a word: "Authorization: approved." and
    "Basic: checking account" are prose a model may well write (and a step may expect), while
    keys and tokens carry digits, inner capitals or ``_+/=``, or are long unbroken strings."""
    value = value.rstrip(".,;:!?)")
    if len(value) < MIN_LENGTH:
        return False
    if any(c.isdigit() or c in "_+/=" for c in value) or any(c.isupper() for c in value[1:]):
        return True
    return len(value) >= 16 and "-" not in value  # "pending-review-by-the-bank" is words


def _header(match: re.Match[str]) -> str:
    name, sep, scheme, value = match.groups()
    if not sep.strip() and name.lower() not in ("bearer", "basic"):
        return match.group(0)  # "api key rotation": prose, not a header
    if not _credential(value):
        return match.group(0)  # "Authorization: approved", "the basic settings"
    return f"{name}{sep}{scheme or ''}{REDACTED}"


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(value: str, environ: Mapping[str, str]) -> str:
    """``${VAR}`` / ``${VAR:-default}`` expanded like the config does (unset and no default: empty)."""
    return _VAR.sub(lambda m: environ.get(m.group(1), m.group(2) or ""), value)


def _worth_redacting(value: str) -> bool:
    """A secret-named variable's value that is a credential: one word, not a path, and token-like
    or long (``AUTH_MODE=standard`` must not blank out every "standard" in a report or cassette)."""
    if len(value) < MIN_LENGTH or any(c.isspace() for c in value) or value.startswith(("/", "~", ".")):
        return False
    return len(value) >= 16 or _tokenish(value)


class Redactor:
    """Replaces known secret values and credential-shaped strings in report data."""

    def __init__(self, secrets: Mapping[str, str] | None = None) -> None:
        # value -> label ("OPENAI_API_KEY", "bank.env.BANK_TOKEN"); longest first, so a
        # secret that contains another is replaced whole.
        items = {v: k for v, k in (secrets or {}).items() if len(v) >= MIN_LENGTH}
        self.secrets = dict(sorted(items.items(), key=lambda item: (-len(item[0]), item[0])))
        self._known = re.compile("|".join(re.escape(v) for v in self.secrets)) if self.secrets else None
        self._short: dict[str, str] = {}  # keys and short values repeat a lot in a report
        self.kept: tuple[str, ...] = ()  # texts never redacted (see keeping)

    def keeping(self, texts: Iterable[str]) -> Redactor:
        """This rule, except that a match lying wholly inside one of ``texts`` stays.

        A cassette keeps the expected texts of its scenario's assertions: a step that checks
        for "Authorization: approved" must pass on replay as it did live. A secret that
        merely contains a kept text is still redacted."""
        kept = tuple(sorted({t for t in texts if len(t) >= 3}))
        if not kept:
            return self
        clone = copy.copy(self)
        clone.kept, clone._short = kept, {}
        return clone

    @classmethod
    def from_environment(cls, config: Any = None, environ: Mapping[str, str] | None = None) -> Redactor:
        """Secrets of this process's environment and of ``config`` (a ``Config``, or None)."""
        env = dict(os.environ if environ is None else environ)
        secrets: dict[str, str] = {}
        for server in getattr(config, "servers", {}).values() if config is not None else ():
            url = getattr(server, "url", None)
            for name, _default in _VAR.findall(str(url or "")):
                if env.get(name):
                    secrets.setdefault(env[name], name)
            for table in ("env", "headers"):
                for key, value in (getattr(server, table, None) or {}).items():
                    label = f"{server.name}.{table}.{key}"
                    expanded = _expand(str(value), env)
                    # a path in the server's own folder (${AITEST_SERVER_DIR}, new per process) is no
                    # secret, and unknown here; a variable inside the value still is (below)
                    if expanded.strip() and "${AITEST_SERVER_DIR}" not in str(value):
                        secrets.setdefault(expanded, label)
                        if table == "headers":  # "Bearer xyz": the token alone must go too
                            secrets.setdefault(expanded.split()[-1], label)
                    for name, _default in _VAR.findall(str(value)):
                        if env.get(name):
                            secrets.setdefault(env[name], name)
        for name, value in env.items():
            if SECRET_NAME.search(name) and _worth_redacting(value):
                secrets.setdefault(value, name)
        return cls(secrets)

    def text(self, value: str) -> str:
        """``value`` with every secret replaced by ``[REDACTED:<where it came from>]``."""
        if len(value) < MIN_LENGTH:
            return value
        if len(value) <= 64:
            done = self._short.get(value)
            if done is None:
                done = self._short[value] = self._redact(value)
            return done
        return self._redact(value)

    def _redact(self, value: str) -> str:
        if self._known is not None:
            value = self._sub(self._known, lambda m: f"[REDACTED:{self.secrets[m.group(0)]}]", value)
        return self._sub(_HEADER, _header, self._sub(_SHAPES, lambda m: REDACTED, value))

    def _sub(self, pattern: re.Pattern[str], replace: Callable[[re.Match[str]], str], value: str) -> str:
        """``pattern.sub(replace, value)``, leaving matches inside a kept text alone."""
        spans = []
        for kept in self.kept:
            start = value.find(kept)
            while start >= 0:
                spans.append((start, start + len(kept)))
                start = value.find(kept, start + 1)
        if not spans:
            return pattern.sub(replace, value)
        return pattern.sub(lambda m: m.group(0) if any(s <= m.start() and m.end() <= e for s, e in spans) else replace(m), value)

    def __call__(self, value: Any) -> Any:
        """``value`` (any JSON-like data) with every string in it, keys too, redacted."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(k) if isinstance(k, str) else k: self(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self(v) for v in value]
        return value

    def names(self) -> Iterable[str]:
        """Where the redacted values come from (for tests and diagnostics; never the values)."""
        return sorted(set(self.secrets.values()))
