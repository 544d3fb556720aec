#!/usr/bin/env bash
# Set everything up in .venv and run the example features; the report is written to
# reports/aitest.html (and .json).
#
# Without a key (the default, and in CI): offline. Every model call is replayed from the
# cassettes committed in features/cassettes/ (recorded against the built-in scripted
# model); the MCP servers run for real.
# With OPENAI_API_KEY set: the same command re-records the cassettes live, against
# $AITEST_MODEL (default openai/gpt-4.1-mini). Review the diff, then commit it or
# `git checkout features/cassettes` to go back. AITEST_REPLAY=1 forces the replay.
# Later -D options win, e.g. re-record against the scripted model:
#   bash scripts/examples.sh -D aitest.cassette=record
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[similarity]"   # the offline similarity model (features/inbox_drills.feature)
mode=(-D aitest.cassette=replay)
if [ -n "${OPENAI_API_KEY:-}" ] && [ -z "${AITEST_REPLAY:-}" ]; then
  model="${AITEST_MODEL:-openai/gpt-4.1-mini}"
  echo "OPENAI_API_KEY is set: re-recording the example cassettes live against $model (AITEST_REPLAY=1 replays instead)." >&2
  mode=(-D aitest.cassette=record -D "aitest.model=$model")
fi
exec .venv/bin/python -m behave "${mode[@]}" "$@"
