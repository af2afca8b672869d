"""The performance targets computed from a result document (pure, no services)."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("psutil", reason="the bench extra is not installed")

from bench.markdown import ENGINE_FRAME, _latency_cpu, _targets, engine_bound
from bench.report import scaling_loss


def _row(entities: int, rate: float, complete: bool = True) -> dict[str, Any]:
    return {"entities_target": entities, "events_per_s": rate, "complete": complete}


def test_scaling_loss_is_the_share_of_events_per_second_lost_from_1e5_to_1e7() -> None:
    rows = [_row(10**5, 25_000.0), _row(10**6, 18_000.0), _row(10**7, 21_000.0)]
    assert scaling_loss(rows) == {"value": 0.16, "target": 0.2, "met": True}
    rows[2] = _row(10**7, 15_000.0)
    assert scaling_loss(rows) == {"value": 0.4, "target": 0.2, "met": False}


def test_a_capped_1e7_run_gives_a_lower_bound_of_the_loss() -> None:
    # its first entities are the fast ones: a loss above the goal is a miss, below unknown
    missed = scaling_loss([_row(10**5, 25_000.0), _row(10**7, 16_000.0, complete=False)])
    assert missed == {"value": 0.36, "target": 0.2, "met": False, "lower_bound": True}
    unknown = scaling_loss([_row(10**5, 25_000.0), _row(10**7, 24_000.0, complete=False)])
    assert unknown["met"] is None and unknown["lower_bound"]


def test_no_loss_without_both_entity_counts() -> None:
    assert scaling_loss([_row(10**5, 25_000.0), _row(10**6, 18_000.0)])["value"] is None
    assert scaling_loss([])["met"] is None


def test_the_targets_table_names_each_goal_and_its_direction() -> None:
    targets = {
        "p99_visible_at_10k_per_s": {"value": 0.57, "target": 1.0, "met": True},
        "throughput_loss_1e5_to_1e7": scaling_loss(
            [_row(10**5, 25_000.0), _row(10**7, 16_000.0, complete=False)]
        ),
    }
    table = "\n".join(_targets({"targets": targets}))
    assert "| p99 produce-to-collector at 10k/s (s) | 0.57 | <= 1.00 | yes |" in table
    assert "| events/s lost from 10^5 to 10^7 entities (share) | >= 0.360 | <= 0.20 | no |" in (
        table
    )


def test_the_engine_bound_is_the_speed_left_when_the_engines_share_costs_nothing() -> None:
    profile = {"busy_inclusive": {"process_events (agents/events.py)": 0.8, ENGINE_FRAME: 0.75}}
    text = engine_bound(profile, 10_000.0)
    assert "75.0% of the busy samples" in text
    assert "at most 4.0 times as fast, about 40,000 events/s" in text
    assert engine_bound({"busy_inclusive": {}}, 10_000.0) == ""


def test_each_rates_cpu_is_listed_by_process_with_the_workers_profile() -> None:
    profile = {
        "samples": 3000,
        "waiting_share": 0.1,
        "busy_self": {"PartitionStore._raw (agents/store.py:76)": 0.08},
        "busy_inclusive": {ENGINE_FRAME: 0.62},
    }
    runs = [
        {"offered_events_per_s": 1000},  # an older result: no CPU figures, no line
        {
            "offered_events_per_s": 10000,
            "cpu_cores": {"worker": 0.98, "kafka": 0.4},
            "profile": profile,
        },
    ]
    text = "\n".join(_latency_cpu(runs))
    assert "At 1,000 events/s" not in text
    assert "At 10,000 events/s, cores used: worker 0.98, kafka 0.40." in text
    assert f"the engine (`{ENGINE_FRAME}`) 62.0% of the busy ones" in text
    assert "`PartitionStore._raw (agents/store.py:76)` 8.0%" in text
    assert _latency_cpu([{"offered_events_per_s": 1000}]) == []
