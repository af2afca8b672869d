"""``curl -s <collector>/metrics | promtool check metrics`` is silent on live pipeline data."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from salespulse.config import Settings
from tests.e2e.test_dashboards_live import WON_ALL_TIME, current_events
from tests.e2e.test_pipeline import expected_won_by_rep, historical_events
from tests.helpers import await_until

pytestmark = pytest.mark.services

COLLECTOR_PORT = 18105  # not scraped by the stack's Prometheus; free of the other e2e modules


@pytest.fixture(scope="module")
async def promtool_pipeline(pipeline_factory: Any, stack_settings: Settings) -> Any:
    """Current events of every entity type, 2017 history and one dead letter, applied."""
    pipeline = pipeline_factory("promtool", collector_port=COLLECTOR_PORT)
    pipeline.start_worker("1")
    pipeline.start_collector()
    history = historical_events(500, seed=5)
    won = WON_ALL_TIME + sum(expected_won_by_rep(history).values())
    await pipeline.produce_raw([b"not json at all"])
    await pipeline.produce(current_events("promtool") + history)

    def applied() -> bool:
        stats = [p["stats"] for p in pipeline.api("/api/aggregates")["partitions"].values()]
        values = pipeline.api("/api/kpis?kpi=won_revenue")["kpis"][0]["values"]
        dead = sum(s["dead_letters"] for s in stats)
        return dead == 1 and bool(values) and values[0]["value"] == won

    await await_until(applied, timeout=60, interval=0.3, what="collector has every event")
    return pipeline


def test_promtool_check_metrics_is_silent(promtool_pipeline: Any) -> None:
    assert shutil.which("curl") and shutil.which("promtool")
    s = promtool_pipeline.settings
    url = f"http://{s.host}:{s.collector_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    samples = {
        family.name: [x.labels for x in family.samples]
        for family in text_string_to_metric_families(text)
    }
    # The exposition carries the live data: every KPI family and the health gauges.
    for name, labels in [
        ("salespulse_won_revenue", {"period": "month", "scope": "rep", "rep": "ann"}),
        ("salespulse_activities", {"period": "day", "rep": "ann", "kind": "task"}),
        ("salespulse_customer_lifetime_value", {"period": "month"}),
        ("salespulse_won_revenue_growth_ratio", {"comparison": "yoy"}),
        ("salespulse_quota_attainment_pace_ratio", {"period": "month", "scope": "team"}),
        ("salespulse_target", {"kpi": "won_revenue", "scope": "team", "team": "Avery Stone"}),
        ("salespulse_dead_letters", {}),
        ("salespulse_last_event_timestamp_seconds", {"source": "live-test"}),
    ]:
        assert any(labels.items() <= s.items() for s in samples.get(name, [])), (name, labels)
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", f"curl -s {url} | promtool check metrics"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
