#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh), then runs every check CI runs: lint and format (ruff), types (mypy),
# drift of the generated protobuf code, and the test suite (pytest). Extra arguments go to pytest (one plain run).
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
# Without arguments: every test not marked `exclusive` in parallel workers (pytest-xdist, one file per worker;
# FACEREC_TEST_WORKERS, default 2), then the exclusive ones (tests that measure time or load, see
# tests/conftest.py) alone. With arguments, one plain pytest run of what they name. A run that collects no test
# (pytest's exit code 5) fails on purpose.
run_pytest() {
    local status=0
    .venv/bin/pytest "$@" || status=$?
    if [ "$status" -eq 5 ]; then
        echo "[test] pytest collected no test: failing on purpose" >&2
        return 1
    fi
    return "$status"
}
if [ "$#" -gt 0 ]; then
    echo "[test] pytest $*"
    run_pytest "$@"
    exit $?
fi
echo "[test] pytest: the parallel part"
parallel=0
run_pytest -n "${FACEREC_TEST_WORKERS:-2}" --dist loadfile -m "not exclusive" || parallel=$?
echo "[test] pytest: the exclusive part (tests that measure time or load)"
exclusive=0
run_pytest -m exclusive || exclusive=$?
if [ "$parallel" -ne 0 ]; then
    exit "$parallel"
fi
exit "$exclusive"
