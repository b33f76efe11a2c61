#!/usr/bin/env bash
# The README's test command calls this: lint and type checks, then the default
# (fast) test suite. Extra arguments go to pytest, e.g. `-m slow` for the
# end-to-end runs.
set -euo pipefail
cd "$(dirname "$0")/.."
export DVC_NO_ANALYTICS=1
echo "run_tests: ruff check"
.venv/bin/ruff check --quiet .
echo "run_tests: mypy"
.venv/bin/mypy
# Torch on a 2-core machine: more threads than cores only adds contention.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
exec .venv/bin/python -m pytest "$@"
