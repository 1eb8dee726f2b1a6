#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh), then runs every check CI runs: lint and format (ruff), types (mypy),
# drift of the generated protobuf code, and the test suite (pytest). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
echo "[test] ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "[test] mypy"
.venv/bin/mypy
echo "[test] generated protobuf code"
.venv/bin/python scripts/gen_protos.py --check
echo "[test] pytest"
status=0
.venv/bin/pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "[test] pytest collected no test: failing on purpose" >&2
    exit 1
fi
exit "$status"
