#!/usr/bin/env bash
# Set everything up in .venv and run the example features. Offline; no API key needed:
# without -D aitest.model=... they talk to the built-in scripted model.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
exec .venv/bin/python -m behave "$@"
