"""Configuration loading: every mistake names the file, the table and the key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from behave_aitest.config import ConfigError, expand_env, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pyproject.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_full_config_loads(tmp_path: Path) -> None:
    (tmp_path / "prompt.md").write_text("Be careful.", encoding="utf-8")
    write(
        tmp_path,
        """
        [tool.behave_aitest]
        model = "openai/gpt-4.1-mini"
        max_turns = 4
        timeout_s = 30
        [tool.behave_aitest.servers.bank]
        command = ["python", "-m", "bank"]
        env = { BANK_DB = "${BANK_DB}" }
        scope = "run"
        [tool.behave_aitest.servers.web]
        url = "http://127.0.0.1:9/mcp"
        [tool.behave_aitest.servers.old]
        url = "http://127.0.0.1:9/sse"
        transport = "sse"
        [tool.behave_aitest.agents.banker]
        servers = ["bank", "web"]
        system_prompt_file = "prompt.md"
        allowed_tools = ["get_balance"]
        temperature = 0
        """,
    )
    config = load_config({}, cwd=tmp_path)
    assert config.model == "openai/gpt-4.1-mini"
    assert config.max_turns == 4 and config.timeout_s == 30.0
    assert config.servers["bank"].scope == "run"
    assert config.servers["bank"].transport == "stdio"
    assert config.servers["web"].transport == "streamable-http"
    assert config.servers["old"].transport == "sse"
    assert config.agents["banker"].system_prompt == "Be careful."
    assert config.agents["banker"].allowed_tools == ("get_balance",)


def test_userdata_overrides_file(tmp_path: Path) -> None:
    write(tmp_path, '[tool.behave_aitest]\nmodel = "a/b"\nmax_turns = 3\n')
    config = load_config({"aitest.model": "x/y", "aitest.max_turns": "7"}, cwd=tmp_path)
    assert config.model_override == "x/y"
    assert config.max_turns == 7
    config = load_config({"aitest.models": "m1, m2"}, cwd=tmp_path)
    assert config.models == ("m1", "m2")


def test_config_given_by_path(tmp_path: Path) -> None:
    other = tmp_path / "aitest.toml"
    other.write_text('model = "a/b"\n', encoding="utf-8")
    assert load_config({"aitest.config": str(other)}, cwd=tmp_path).model == "a/b"
    with pytest.raises(ConfigError, match="config file not found"):
        load_config({"aitest.config": "missing.toml"}, cwd=tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[tool.behave_aitest]\nmodle = "x"\n', r"pyproject.toml \[tool.behave_aitest\]: unknown key 'modle'. Did you mean 'model'\?"),
        ("[tool.behave_aitest]\nmax_turns = 0\n", r"'max_turns' must be a whole number of at least 1 \(got 0\)"),
        ('[tool.behave_aitest]\ntimeout_s = "soon"\n', r"'timeout_s' must be a number"),
        (
            '[tool.behave_aitest.servers.bank]\ncomand = ["x"]\n',
            r"\[tool.behave_aitest.servers.bank\]: unknown key 'comand'. Did you mean 'command'\?",
        ),
        ("[tool.behave_aitest.servers.bank]\nscope = \"forever\"\ncommand=[\"x\"]\n", r"'scope' must be one of 'conversation', 'feature', 'run'"),
        ("[tool.behave_aitest.servers.bank]\nenv = { A = \"1\" }\n", r"servers.bank\]: a stdio server needs 'command'"),
        ('[tool.behave_aitest.servers.bank]\ncommand = "python -m x"\n', r"'command' must be a list of strings"),
        ('[tool.behave_aitest.servers.web]\nurl = "ftp://x"\n', r"'url' must start with http"),
        ('[tool.behave_aitest.servers.web]\ntransport = "sse"\n', r"transport 'sse' needs 'url'"),
        ("[tool.behave_aitest.servers.bank]\ncommand = [\"x\"]\nenv = { PORT = 8 }\n", r"'PORT' must be a string"),
        (
            '[tool.behave_aitest.agents.banker]\nservers = ["bank"]\n',
            r"\[tool.behave_aitest.agents.banker\]: 'servers' names unknown server 'bank' \(known servers: none are defined\)",
        ),
        ('[tool.behave_aitest.agents.banker]\nsystem_prompt_file = "nope.md"\n', r"'system_prompt_file' 'nope.md' cannot be read"),
        ("[tool.behave_aitest.agents.banker]\ntemperature = 9\n", r"'temperature' must be between 0 and 2"),
        ("[tool.behave_aitest\n", r"pyproject.toml: not valid TOML"),
        # issue 24 item 22: a key under the wrong table says where it belongs, not a did-you-mean
        ('[tool.behave_aitest]\nallowed_tools = ["x"]\n', r"\[tool.behave_aitest\]: unknown key 'allowed_tools'. It belongs under \[tool.behave_aitest.agents.<name>\].$"),
        ('[tool.behave_aitest.servers.bank]\ncommand = ["x"]\nsystem_prompt = "hi"\n', r"servers.bank\]: unknown key 'system_prompt'. It belongs under \[tool.behave_aitest.agents.<name>\].$"),
        ('[tool.behave_aitest]\ninput_per_million = 3\n', r"unknown key 'input_per_million'. It belongs under \[tool.behave_aitest.prices.<model>\].$"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    write(tmp_path, text)
    with pytest.raises(ConfigError, match=message):
        load_config({}, cwd=tmp_path)


def test_bad_userdata_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"-D aitest.modle: unknown option. Did you mean 'model'\?"):
        load_config({"aitest.modle": "x"}, cwd=tmp_path)
    with pytest.raises(ConfigError, match=r"-D aitest.allowed_tools: not a command-line option \(-D sets run-wide keys only\). It belongs under \[tool.behave_aitest.agents.<name>\].$"):
        load_config({"aitest.allowed_tools": "x"}, cwd=tmp_path)
    with pytest.raises(ConfigError, match=r"-D aitest.max_turns: must be a whole number"):
        load_config({"aitest.max_turns": "many"}, cwd=tmp_path)


def test_env_expansion() -> None:
    env = {"A": "1"}
    assert expand_env("x${A}y", "w", env) == "x1y"
    assert expand_env("${B:-dflt}", "w", env) == "dflt"
    with pytest.raises(ConfigError, match=r"servers.bank env.B: environment variable B is not set"):
        expand_env("${B}", "servers.bank env.B", env)
