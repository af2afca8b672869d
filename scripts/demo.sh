#!/usr/bin/env bash
# Installs everything, starts the local stack (Kafka, Redis, Prometheus, Alertmanager),
# a worker, the collector and the demo event generator, and prints where to look.
# Stop it all with: .venv/bin/salespulse stack down
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/salespulse demo "$@"
