#!/usr/bin/env bash
# Set everything up in .venv and run all the tests. Offline; no API key needed.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests (exit code 5): treated as success"
  exit 0
fi
exit "$rc"
