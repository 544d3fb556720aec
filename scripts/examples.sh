#!/usr/bin/env bash
# Set everything up in .venv and run the example features; the report is written to
# reports/aitest.html (and .json). Then the example agents built with other frameworks
# (examples/agents/: OpenAI Agents SDK, PydanticAI, LangGraph, an HTTP service, a CLI agent;
# docs/agents.md), with the same Gherkin; their report is examples/agents/reports/aitest.html.
#
#   bash scripts/examples.sh                  offline, always: every model call is replayed from the
#                                             cassettes committed in features/cassettes/ and
#                                             examples/agents/features/cassettes/ (recorded
#                                             against the built-in scripted model); the MCP servers
#                                             and the example agents run for real. A key in the
#                                             environment changes nothing.
#   bash scripts/examples.sh --record         re-record the cassettes against the scripted model
#   bash scripts/examples.sh --record-live    re-record them live against $AITEST_MODEL
#                                             (default openai/gpt-4.1-mini); needs OPENAI_API_KEY
#
# Recording rewrites the cassettes: review the diff, then commit it or `git checkout
# features/cassettes examples/agents/features/cassettes` to go back. Other arguments go to the
# first behave run (-D, --tags, paths); only the -D options go to the example agents' run.
# AITEST_EXAMPLES_AGENTS=0 skips the example agents, AITEST_EXAMPLES_LANGGRAPH=0 only the LangGraph
# one (its first run makes its own virtualenv, examples/agents/.venv-langgraph: a few minutes, once).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=(-D aitest.cassette=replay)
case "${1:-}" in
  --record)
    shift
    mode=(-D aitest.cassette=record)
    echo "behave-aitest examples: re-recording the example cassettes against the scripted model (features/cassettes/ is rewritten; review the diff)." >&2
    ;;
  --record-live)
    shift
    if [ -z "${OPENAI_API_KEY:-}" ]; then
      echo "behave-aitest examples: --record-live calls a real model and needs OPENAI_API_KEY (or run without --record-live to replay offline)." >&2
      exit 2
    fi
    model="${AITEST_MODEL:-openai/gpt-4.1-mini}"
    mode=(-D aitest.cassette=record -D "aitest.model=$model")
    echo "behave-aitest examples: re-recording the example cassettes LIVE against $model (features/cassettes/ is rewritten; review the diff)." >&2
    ;;
  *)
    if [ -n "${OPENAI_API_KEY:-}" ]; then
      echo "behave-aitest examples: OPENAI_API_KEY is set but not used: the examples replay their cassettes offline (re-record live with bash scripts/examples.sh --record-live)." >&2
    fi
    ;;
esac
python3 -m venv .venv
# [similarity]: the offline similarity model (features/inbox_drills.feature); [agents]: the example agents' frameworks
skip=()
if ! .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[similarity,agents]"; then
  echo "The [agents] extra (openai-agents, pydantic-ai-slim) did not install: the OpenAI Agents SDK and PydanticAI examples are skipped." >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[similarity]"
  skip+=(--tags "not @openai_agents and not @pydantic_ai")
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
