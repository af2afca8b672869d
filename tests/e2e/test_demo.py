"""The README's run command: the whole demo stack comes up, moves, and stops cleanly."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from salespulse.commands.demo import WON_BY_REP, query_prometheus
from salespulse.config import Settings
from salespulse.stack import process
from tests.conftest import TEST_HOME
from tests.helpers import process_exists, wait_until

pytestmark = pytest.mark.services

DEMO_PORTS = {
    "kafka_port": 19292,
    "kafka_controller_port": 19294,
    "redis_port": 16579,
    "prometheus_port": 19290,
    "alertmanager_port": 19295,
    "collector_port": 18200,
    "gateway_port": 18280,
    "worker_web_port": 16266,
}


def test_demo_shows_changing_won_revenue_per_rep_and_down_leaves_nothing() -> None:
    home = TEST_HOME / "demo"
    shutil.rmtree(home, ignore_errors=True)
    settings = Settings(home=home, kafka_brokers="", **DEMO_PORTS)
    env = {
        **os.environ,
        "SALESPULSE_HOME": str(home),
        **{f"SALESPULSE_{k.upper()}": str(v) for k, v in DEMO_PORTS.items()},
    }
    # share the cached Kafka jars of the test stack instead of resolving them again
    jars = TEST_HOME / "kafka"
    if jars.is_dir():
        (home / "kafka").mkdir(parents=True, exist_ok=True)
        for version in jars.iterdir():
            if (version / "libs").is_dir():
                shutil.copytree(version / "libs", home / "kafka" / version.name / "libs")
    cli = [sys.executable, "-m", "salespulse.cli"]
    started = time.monotonic()
    pids: list[int | None] = []
    try:
        subprocess.run(
            [*cli, "demo", "--rate", "40", "--timeout", "110"], env=env, check=True, timeout=150
        )
        elapsed = time.monotonic() - started
        assert elapsed < 120, f"demo took {elapsed:.0f}s to show data"

        def total() -> float:
            return sum(float(r["value"][1]) for r in query_prometheus(settings, WON_BY_REP))

        first = total()
        assert first > 0
        wait_until(
            lambda: total() != first,
            timeout=30,
            interval=1,
            what="won revenue per rep to change while the generator runs",
        )
        pids = [
            process.running_pid(settings, n)
            for n in (
                "kafka",
                "redis",
                "prometheus",
                "alertmanager",
                "worker-1",
                "collector",
                "generator",
            )
        ]
        assert all(pids), pids
    finally:
        subprocess.run([*cli, "stack", "down"], env=env, check=True, timeout=120)
    assert not [p for p in pids if p and process_exists(p)]
