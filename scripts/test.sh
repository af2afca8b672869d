#!/usr/bin/env bash
# Installs everything and runs the whole test suite: lint, types, unit, services, e2e.
# The tests start (and stop) their own stack on test ports under .salespulse-test/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
exec .venv/bin/pytest "$@"
