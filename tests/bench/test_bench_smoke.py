"""A tiny run of the benchmark harness on the test stack: every system, every key.

Needs the ``bench`` extra (quixstreams, psutil); skipped without it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from salespulse.config import Settings
from salespulse.stack.process import log_tail, logs_dir
from tests.conftest import TEST_HOME

pytest.importorskip("quixstreams", reason="the bench extra is not installed")
pytest.importorskip("psutil", reason="the bench extra is not installed")

from bench.kpi_subset import RULES_PATH
from bench.report import REQUIRED_KEYS
from bench.run import make_plan, run_benchmark, save

pytestmark = pytest.mark.services


@pytest.fixture
def bench_base(stack_settings: Settings) -> Settings:
    settings = stack_settings.model_copy(
        update={
            "home": TEST_HOME / "bench-smoke",
            "rules": str(RULES_PATH),
            "partitions": 4,
            "publish_interval_s": 0.5,
            "collector_port": 18300,
        }
    )
    shutil.rmtree(settings.home, ignore_errors=True)
    return settings


def _logs(settings: Settings) -> str:
    """The tails of the run's service logs (what a system that stalled last said)."""
    logs = sorted(logs_dir(settings).glob("*.log"))
    return "\n".join(f"== {path.name}\n{log_tail(path, 40)}" for path in logs)


def test_harness_measures_every_system_and_they_agree_on_the_figures(
    bench_base: Settings, tmp_path: Path
) -> None:
    plan = make_plan(
        True,
        entities=1000,
        events=2000,
        scale=[1000],
        rates=[500],
        latency_seconds=2.0,
        obvious_events=1000,
        time_cap=120.0,
        skip=["recovery"],
    )
    result = run_benchmark(bench_base, plan, "smoke", "pytest")
    path = save(result, tmp_path, tmp_path / "BENCHMARKS.md")

    assert path.exists() and (tmp_path / "BENCHMARKS.md").read_text().startswith("# SalesPulse")
    assert set(REQUIRED_KEYS) <= set(result)
    through = result["throughput"]
    for name in ("raw_aiokafka_batched", "raw_aiokafka_single", "salespulse", "quix"):
        assert through[name]["events"] == 2000, name
        # 2000 events may all be done by a system's first publication: no sustained rate
        rate = through[name]["events_per_s"] or through[name]["events_per_s_incl_startup"]
        assert rate > 0, name
    for name in ("obvious_faust", "salespulse"):
        if not through[name]["complete"]:  # in full: an assertion's message is truncated
            pytest.fail(f"{name} did not complete; the services' logs end:\n{_logs(bench_base)}")
    checks = result["figures_check"]
    assert checks["independent"]["groups"] > 0
    for name in ("salespulse", "quix", "obvious_faust"):
        assert checks[name]["equal"], (name, checks[name]["diff"])
    for name in ("salespulse", "quix"):  # obvious Faust consumes only the first 1000 events
        assert checks[name]["groups"] == checks["independent"]["groups"], name
    assert checks["obvious_faust"]["events"] == 1000 and checks["obvious_faust"]["groups"] > 0
    assert set(result["ratios"]) >= {"vs_quix", "vs_obvious_faust", "vs_raw_aiokafka_batched"}
    (run,) = result["latency"]
    assert run["visible_in_collector"]["missing"] == 0 and run["published"]["missing"] == 0
    assert 0 < run["machine_busy_cores"] <= (os.cpu_count() or 1)  # the worker at least
    assert run["machine_quiet_before"]["waited_s"] >= 3.0
    # every named process was sampled; the worker applied the events, so it used CPU
    assert set(run["cpu_cores"]) == {"worker", "collector", "kafka", "redis"}
    assert run["cpu_cores"]["worker"] > 0 and run["worker_cpu_us_per_event"] > 0
    assert "| worker cores | worker CPU µs/event |" in (tmp_path / "BENCHMARKS.md").read_text()
    assert result["scaling"][0]["entities"] > 900
    assert set(result["targets"]) == {
        "events_per_s_per_worker",
        "share_of_raw",
        "times_obvious_faust",
        "times_quix_with_same_figures",
        "p99_visible_at_10k_per_s",
        "throughput_loss_1e5_to_1e7",
    }
    assert result["targets"]["throughput_loss_1e5_to_1e7"]["value"] is None  # no 10^5 run
