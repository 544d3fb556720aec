#!/usr/bin/env bash
# Make examples/agents/.venv-langgraph, the LangGraph example agent's own virtualenv (its MCP
# adapters need mcp<2, behave-aitest needs mcp>=2). Bounded by a timeout
# (AITEST_LANGGRAPH_SETUP_TIMEOUT, default 600 s); kept once complete, and made again when
# langgraph/requirements.txt changes. Exit status 0 when the virtualenv is ready; otherwise
# one line on stderr saying why, and no half-made virtualenv left behind.
set -uo pipefail
cd "$(dirname "$0")/.."
venv=.venv-langgraph
limit="${AITEST_LANGGRAPH_SETUP_TIMEOUT:-600}"
python="${PYTHON:-python3}"
stamp="$venv/.requirements"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && cmp -s langgraph/requirements.txt "$stamp"; then
  exit 0
fi
rm -rf "$venv"
if ! "$python" -m venv "$venv" >/dev/null 2>&1; then
  echo "the LangGraph example's virtualenv cannot be made: '$python -m venv' failed" >&2
  rm -rf "$venv"
  exit 1
fi
log="$venv.log"
timeout "$limit" "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r langgraph/requirements.txt >"$log" 2>&1
status=$?
if [ "$status" -ne 0 ]; then
  if [ "$status" -eq 124 ]; then
    echo "the LangGraph example's packages did not install within ${limit} s (AITEST_LANGGRAPH_SETUP_TIMEOUT; pip log: examples/agents/$log)" >&2
  else
    echo "the LangGraph example's packages did not install: $(grep -m1 -E 'ERROR|error' "$log" || tail -n1 "$log")" >&2
  fi
  rm -rf "$venv"
  exit 1
fi
rm -f "$log"
cp langgraph/requirements.txt "$stamp"
