#!/usr/bin/env bash
# Set everything up in .venv and run the example features; the report is written to
# reports/aitest.html (and .json).
#
#   bash scripts/examples.sh                  offline, always: every model call is replayed from the
#                                             cassettes committed in features/cassettes/ (recorded
#                                             against the built-in scripted model); the MCP servers
#                                             run for real. A key in the environment changes nothing.
#   bash scripts/examples.sh --record         re-record the cassettes against the scripted model
#   bash scripts/examples.sh --record-live    re-record them live against $AITEST_MODEL
#                                             (default openai/gpt-4.1-mini); needs OPENAI_API_KEY
#
# Recording rewrites features/cassettes/: review the diff, then commit it or
# `git checkout features/cassettes` to go back. Other arguments go to behave (-D, --tags, paths).
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
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[similarity]"   # the offline similarity model (features/inbox_drills.feature)
exec .venv/bin/python -m behave "${mode[@]}" "$@"
