#!/usr/bin/env bash
# Set everything up in .venv and run the example features; the report is written to
# reports/aitest.html (and .json). Then the example agents built with other frameworks
# (examples/agents/: OpenAI Agents SDK, PydanticAI, LangGraph, an HTTP service, a CLI agent;
# docs/agents.md), with the same Gherkin; their report is examples/agents/reports/aitest.html.
#
# Without a key (the default, and in CI): offline. Every model call is replayed from the
# committed cassettes (features/cassettes/, examples/agents/features/cassettes/), recorded
# against the built-in scripted model; the MCP servers and the example agents run for real.
# With OPENAI_API_KEY set: the same command re-records the cassettes live, against
# $AITEST_MODEL (default openai/gpt-4.1-mini). Review the diff, then commit it or
# `git checkout features/cassettes examples/agents/features/cassettes` to go back.
# AITEST_REPLAY=1 forces the replay.
# Later -D options win, e.g. re-record against the scripted model:
#   bash scripts/examples.sh -D aitest.cassette=record
# Other arguments (feature files, tags) go to the first run only; AITEST_EXAMPLES_AGENTS=0 skips
# the example agents, AITEST_EXAMPLES_LANGGRAPH=0 only the LangGraph one (the first run makes its
# own virtualenv, examples/agents/.venv-langgraph: a few minutes, once).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
# [similarity]: the offline similarity model (features/inbox_drills.feature); [agents]: the example agents' frameworks
skip=()
if ! .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[similarity,agents]"; then
  echo "The [agents] extra (openai-agents, pydantic-ai-slim) did not install: the OpenAI Agents SDK and PydanticAI examples are skipped." >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[similarity]"
  skip+=(--tags "not @openai_agents and not @pydantic_ai")
fi
mode=(-D aitest.cassette=replay)
if [ -n "${OPENAI_API_KEY:-}" ] && [ -z "${AITEST_REPLAY:-}" ]; then
  model="${AITEST_MODEL:-openai/gpt-4.1-mini}"
  echo "OPENAI_API_KEY is set: re-recording the example cassettes live against $model (AITEST_REPLAY=1 replays instead)." >&2
  mode=(-D aitest.cassette=record -D "aitest.model=$model")
fi

set +e
.venv/bin/python -m behave "${mode[@]}" "$@"
status=$?
set -e
if [ "${AITEST_EXAMPLES_AGENTS:-1}" = "0" ]; then
  exit "$status"
fi

# The example agents: only the -D options of this command go to their run.
defines=()
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    -D|--define) defines+=(-D "${args[i + 1]:-}"); i=$((i + 1)) ;;
    -D*) defines+=("${args[i]}") ;;
    --define=*) defines+=(-D "${args[i]#--define=}") ;;
  esac
done
if [ "${AITEST_EXAMPLES_LANGGRAPH:-1}" = "0" ]; then
  skip+=(--tags "not @langgraph")
else
  if [ ! -x examples/agents/.venv-langgraph/bin/python ]; then
    echo "Making the LangGraph example's own virtualenv (examples/agents/.venv-langgraph; once, up to ${AITEST_LANGGRAPH_SETUP_TIMEOUT:-600} s)..." >&2
  fi
  if ! bash examples/agents/langgraph/setup.sh; then
    echo "The LangGraph example is skipped (see the line above)." >&2
    skip+=(--tags "not @langgraph")
  fi
fi
echo "The example agents (examples/agents/, docs/agents.md):" >&2
set +e
(cd examples/agents && ../../.venv/bin/python -m behave "${mode[@]}" "${skip[@]}" "${defines[@]}")
agents=$?
set -e
[ "$status" -ne 0 ] && exit "$status"
exit "$agents"
