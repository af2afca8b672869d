"""The benchmark's own stack: home, ports, per-run names; started and stopped here.

The bench stack lives in ``.salespulse-bench/`` on ports distinct from the tests (19xxx)
and the default demo (9092, ...), so a benchmark never disturbs either. Only Kafka and
Redis are started: every measured path ends in Redis (published aggregates) or the
collector, which the harness starts itself; Prometheus and Alertmanager would only add
noise to the measurements.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.kpi_subset import RULES_PATH
from salespulse import stack
from salespulse.config import Settings
from salespulse.stack import process

REPO = Path(__file__).resolve().parents[1]
BENCH_HOME = REPO / ".salespulse-bench"
BENCH_PORTS: dict[str, int] = {
    "kafka_port": 29392,
    "kafka_controller_port": 29394,
    "redis_port": 26679,
    "prometheus_port": 29390,
    "alertmanager_port": 29395,
    "collector_port": 28300,
    "gateway_port": 28380,
    "worker_web_port": 26066,
}
SERVICES = ("kafka", "redis")


def bench_settings(**overrides: Any) -> Settings:
    """Settings of the bench stack (bench home and ports, local broker, bench rules)."""
    values: dict[str, Any] = {
        "home": BENCH_HOME,
        "kafka_brokers": "",
        "partitions": 4,
        "rules": str(RULES_PATH),
        "publish_interval_s": 0.2,
        "retention_days": 0,  # the workload's event times start in 2024: keep all history
        **BENCH_PORTS,
    }
    return Settings(**{**values, **overrides})


def run_settings(base: Settings, tag: str) -> Settings:
    """Settings of one measured SalesPulse run: its own topics, app id and Redis prefix."""
    return base.model_copy(
        update={
            "topic_events": f"bench-{tag}-events",
            "topic_dead_letters": f"bench-{tag}-dead-letters",
            "app_id": f"bench-{tag}",
            "redis_key_prefix": f"bench-{tag}",
        }
    )


def fresh_stack(settings: Settings) -> None:
    """Stop anything left in the bench home, wipe its data (jars kept), start Kafka+Redis."""
    stack.down(settings)
    stack.reset(settings)
    for leftover in ("workers", "peers"):
        shutil.rmtree(process.home(settings) / leftover, ignore_errors=True)
    stack.up(settings, services=SERVICES)


def stop_stack(settings: Settings) -> None:
    stack.down(settings)


def kill(settings: Settings, name: str, timeout: float = 10.0) -> None:
    """SIGKILL a measured process group started in the bench home (after measuring, no
    graceful shutdown is needed), wait until it is gone and clear its pid file."""
    pid = process.running_pid(settings, name)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while process.pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    process.stop(settings, name, timeout=timeout)


def python_argv(module: str, *args: str) -> list[str]:
    """``python -m module args`` with the harness's interpreter."""
    return [sys.executable, "-m", module, *args]


def run_json(argv: list[str], timeout: float) -> str:
    """Run a command to completion and return its stdout (raises on failure)."""
    res = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, check=False, cwd=REPO
    )
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{res.stderr[-3000:]}")
    return res.stdout
