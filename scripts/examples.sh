#!/usr/bin/env bash
# Set everything up in .venv and run the example features. Offline; no API key needed: the
# model calls are replayed from the cassettes committed in features/cassettes/ (recorded
# against the built-in scripted model); the MCP servers run for real.
# Later -D options win, so the same command re-records:
#   bash scripts/examples.sh -D aitest.cassette=record                                  # scripted model
#   OPENAI_API_KEY=sk-... bash scripts/examples.sh -D aitest.cassette=record -D aitest.model=openai/gpt-4.1-mini
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
exec .venv/bin/python -m behave -D aitest.cassette=replay "$@"
