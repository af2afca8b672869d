"""The benchmark's workload and independent KPI computation, without any service."""

from __future__ import annotations

from collections import Counter
from datetime import date

import pytest

from bench.kpi_subset import KPI_NAMES, RULES_PATH, Oracle, figures
from bench.records import batch_records, murmur2
from bench.workload import Workload, WorkloadConfig
from state.calendar import BusinessCalendar
from state.rules import Rules
from streams.records import group_by_partition, partition_for
from streams.schema import CrmEvent
from tests.oracle.batch import BatchOracle, Window


def small_workload(entities: int = 3000, seed: int = 5) -> list[tuple[int, dict]]:
    work = Workload(WorkloadConfig(entities=entities, seed=seed))
    return [item for chunk in work.chunks(1000) for item in chunk]


def test_workload_is_seeded_and_has_the_requested_size() -> None:
    first, again = small_workload(), small_workload()
    assert first == again
    work = Workload(WorkloadConfig(entities=3000, seed=5))
    events = [e for chunk in work.chunks() for _, e in chunk]
    assert len(events) == work.config.total_events == 5700
    assert 2700 <= work.created <= 3000


def test_workload_events_are_valid_canonical_events_in_their_kafka_partition() -> None:
    for partition, event in small_workload():
        CrmEvent.model_validate(event)
        assert partition == partition_for(f"{event['entity']}:{event['entity_id']}", 4)


def test_fast_murmur2_is_kafkas() -> None:
    import random

    from aiokafka.partitioner import murmur2 as reference

    rng = random.Random(3)
    for _ in range(3000):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
        assert murmur2(data) & 0x7FFFFFFF == reference(data) & 0x7FFFFFFF


def test_batched_records_are_the_producers_records() -> None:
    chunk = small_workload()[:1800]
    assert batch_records(chunk) == group_by_partition([e for _, e in chunk], 4)


def test_workload_has_realistic_corrections_and_redeliveries() -> None:
    events = [e for _, e in small_workload(entities=20_000)]
    ids = Counter(e["event_id"] for e in events)
    redelivered = sum(n - 1 for n in ids.values())
    assert 0.01 < redelivered / len(events) < 0.03
    assert any(e["event_id"].endswith("-retry") for e in events)
    kinds = Counter((e["entity"], e["change"]) for e in events)
    assert kinds[("deal", "delete")] and kinds[("deal", "restore")]
    reopened = [e for e in events if e["fields"].get("status") == "open" and e["version"] > 1]
    moved = [e for e in events if set(e["fields"]) == {"closed_at"}]
    reassigned = [e for e in events if e["entity"] == "deal" and "owner" in e["fields"]]
    assert reopened and moved and len(reassigned) > kinds[("deal", "create")]
    assert {e["fields"].get("currency") for e in events} >= {"USD", "EUR", "GBP"}


@pytest.mark.parametrize("seed", [1, 2])
def test_independent_computation_agrees_with_the_batch_oracle(seed: int) -> None:
    events = [e for _, e in small_workload(entities=4000, seed=seed)]
    oracle = Oracle()
    oracle.apply(events)
    ours = figures(oracle.components())
    batch = BatchOracle(events, Rules.load(RULES_PATH))
    cal = BusinessCalendar()
    months = sorted({m for _, m in ours})
    assert len(months) >= 12
    for month in months:
        start, end = cal.period_range("month", date.fromisoformat(f"{month}-01"))
        window = Window(start.isoformat(), end.isoformat(), "month")
        for name in KPI_NAMES:
            expected = batch.grouped(name, window, ("rep",))
            for (rep,), value in expected.items():
                mine = ours.get((rep, month))
                if mine is None:
                    assert value in (0, 0.0, None), (name, rep, month, value)
                else:
                    assert mine[name] == value, (name, rep, month)


@pytest.mark.parametrize("name", ["bench.records", "bench.workload", "bench.kpi_subset"])
def test_docstring_examples_hold(name: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0
