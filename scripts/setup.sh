#!/usr/bin/env bash
# One-time setup on a fresh machine: system packages, the virtualenv, Python deps.
# Idempotent and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-system-deps.sh
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.salespulse-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ".[test,bench]"
  touch "$stamp"
fi
