"""End to end on the real Kafka, Faust worker, Redis, collector and Prometheus."""

from __future__ import annotations

import asyncio
import shutil
import signal
from collections import deque
from typing import Any

import orjson
import pytest
import redis
from aiokafka import AIOKafkaConsumer, TopicPartition

from salespulse import services
from salespulse.stack import process
from salespulse.stack.topics import partition_ids
from state.processor import PartitionState
from state.publisher import partition_key
from state.rules import Rules
from streams.generator import DemoWorld
from tests.helpers import await_until, http_json

pytestmark = pytest.mark.services

DAY_MS = 86_400_000
START_MS = 1_488_326_400_000  # 2017-03-01T00:00Z


def historical_events(n: int, seed: int, start_ms: int = START_MS) -> list[dict[str, Any]]:
    """``n`` demo events spread over ~60 days of 2017 (event time advances every 25)."""
    world = DemoWorld(seed=seed)
    events: list[dict[str, Any]] = []
    while len(events) < n:
        at = start_ms + (len(events) // 25) * DAY_MS // 40
        events.extend(world.next_events(25, now_ms=at))
    return events[:n]


def expected_won_by_rep(events: list[dict[str, Any]]) -> dict[str, float]:
    """Independent batch recomputation: per deal, each field's value from the event with
    the greatest (version, event_id); won revenue summed per owner."""
    best: dict[str, dict[str, tuple[tuple[int, str], Any]]] = {}
    for e in events:
        if e["entity"] != "deal":
            continue
        deal = best.setdefault(e["entity_id"], {})
        token = (e["version"], e["event_id"])
        for name, value in e["fields"].items():
            if name not in deal or token > deal[name][0]:
                deal[name] = (token, value)
    totals: dict[str, float] = {}
    for deal in best.values():
        fields = {k: v for k, (_, v) in deal.items()}
        if fields.get("status") == "won":
            totals[fields["owner"]] = totals.get(fields["owner"], 0) + fields["amount"]
    return totals


def collector_won_by_rep(pipeline: Any) -> dict[str, float]:
    body = pipeline.api("/api/kpis?kpi=won_revenue&group_by=rep")
    return {v["group"]["rep"]: v["value"] for v in body["kpis"][0]["values"] if v["value"]}


async def converge(pipeline: Any, expected: dict[str, float], timeout: float = 90) -> None:
    def matches() -> bool:
        try:
            return collector_won_by_rep(pipeline) == expected
        except OSError:
            return False

    try:
        await await_until(matches, timeout=timeout, interval=0.5, what="collector == oracle")
    except AssertionError:
        assert collector_won_by_rep(pipeline) == expected


@pytest.fixture(scope="module")
def e2e(pipeline_factory: Any, stack_settings: Any) -> Any:
    """The pipeline whose collector the stack's Prometheus scrapes."""
    pipeline = pipeline_factory("e2e", collector_port=stack_settings.collector_port)
    pipeline.start_worker("1")
    pipeline.start_collector()
    return pipeline


async def test_events_reach_collector_json_and_prometheus_exactly(
    e2e: Any, stack_settings: Any
) -> None:
    events = historical_events(3000, seed=1)
    await e2e.produce(events[:1500], batched=True)
    await e2e.produce(events[1500:], batched=False)  # single-event records work too
    expected = expected_won_by_rep(events)
    assert len(expected) >= 10 and all(v > 0 for v in expected.values())
    await converge(e2e, expected)

    s = stack_settings
    query = 'salespulse_won_revenue{period="all",scope="rep"}'
    url = f"http://{s.host}:{s.prometheus_port}/api/v1/query?query="

    def prometheus_matches() -> bool:
        from urllib.parse import quote

        result = http_json(url + quote(query))["data"]["result"]
        got = {r["metric"]["rep"]: float(r["value"][1]) for r in result}
        return got == expected

    await await_until(prometheus_matches, timeout=30, interval=1, what="prometheus == oracle")


def test_the_stack_runs_workers_on_the_allocator_its_settings_name(e2e: Any) -> None:
    """The default is glibc's malloc (jemalloc is opt-in: tests/stack/test_worker_env.py)."""
    assert e2e.settings.worker_allocator == "system"
    pid = process.running_pid(e2e.settings, "worker-1")
    assert pid is not None
    assert services.allocator(pid) == "system"


async def test_worker_restarts_mid_stream_keep_won_revenue_exact(
    pipeline_factory: Any,
) -> None:
    pipeline = pipeline_factory("restart", collector_port=18101)
    pipeline.start_worker("1")
    pipeline.start_collector()
    events = historical_events(20000, seed=2)
    chunks = [events[i : i + 2000] for i in range(0, len(events), 2000)]

    def published(name: str) -> int:
        """``name`` summed over the partition stats the worker(s) last published."""
        partitions = pipeline.api("/api/aggregates")["partitions"]
        return sum(p["stats"][name] for p in partitions.values())

    for index, chunk in enumerate(chunks):
        await pipeline.produce(chunk)
        # Each kill waits until the worker it kills has taken over: a worker killed while
        # still importing has not claimed the checkpoint, and the next start would use it.
        if index == 3:
            await await_until(lambda: published("applied") > 0, timeout=60, what="applied")
            await asyncio.sleep(1.0)
            pipeline.kill_worker("1", signal.SIGTERM)  # saves the aggregates
            pipeline.start_worker("1")
        if index == 6:
            await await_until(
                lambda: published("checkpoint_loads") > 0, timeout=60, what="checkpoint used"
            )
            await asyncio.sleep(1.0)
            pipeline.kill_worker("1", signal.SIGKILL)  # saves nothing: the next start rebuilds
            pipeline.start_worker("1")
    await converge(pipeline, expected_won_by_rep(events), timeout=120)
    await await_until(
        lambda: published("rebuilds") >= 1 and published("checkpoint_loads") == 0,
        timeout=30,
        what="every partition rebuilt after the SIGKILL",
    )

    # the worker loses its local state (RocksDB): it recovers from the changelog
    pipeline.kill_worker("1", signal.SIGKILL)
    shutil.rmtree(pipeline.settings.home / "workers" / "1")
    more = historical_events(3000, seed=22)
    await pipeline.produce(more)
    name = f"{pipeline.settings.app_id}-snapshots-changelog"
    changelog = await _topic_records(pipeline.settings, name)
    pipeline.start_worker("1")
    await converge(pipeline, expected_won_by_rep(events + more), timeout=120)
    # ... the whole changelog copied by the fast restore (agents/restore.py), not record by
    # record by Faust's recovery
    stats = pipeline.api("/api/aggregates")["partitions"]
    assert sum(p["stats"]["restored_records"] for p in stats.values()) == changelog > 0


def engine_aggregates(settings: Any, events: list[dict[str, Any]]) -> dict[str, int]:
    """Every aggregate the events give, from an in-process engine (links applied at once)."""
    assert settings.rules is None
    rules = Rules(
        timezone=settings.business_timezone,
        fiscal_year_start_month=settings.fiscal_year_start_month,
        reporting_currency=settings.reporting_currency,
        retention_days=settings.retention_days,
    )
    state = PartitionState(rules, {})
    queue = deque(events)
    while queue:
        queue.extend(state.apply(queue.popleft()).links)
    return {"|".join(key): n for key, n in state.aggregates.values.items()}


async def test_a_graceful_restart_loads_saved_aggregates_and_every_aggregate_stays_exact(
    pipeline_factory: Any,
) -> None:
    """SIGTERM: the worker saves its aggregates (agents/checkpoint.py); the next start takes
    them instead of rebuilding, goes on from them to exactly the engine's figures, and
    keeps publishing under the epochs Redis held (no full write of every shard)."""
    pipeline = pipeline_factory("checkpoint", collector_port=18106)
    pipeline.start_worker("1")
    pipeline.start_collector()
    events = historical_events(6000, seed=5)

    async def converge_all(upto: int) -> None:
        expected = engine_aggregates(pipeline.settings, events[:upto])
        await await_until(
            lambda: pipeline.api("/api/aggregates")["aggregates"] == expected,
            timeout=120,
            interval=0.5,
            what="every aggregate == engine",
        )

    await pipeline.produce(events[:4000])
    await converge_all(4000)
    pipeline.kill_worker("1", signal.SIGTERM)
    client = redis.Redis.from_url(pipeline.settings.redis_url)
    prefix = pipeline.settings.redis_key_prefix
    epochs = [client.hget(partition_key(prefix, p), "epoch") for p in range(4)]
    assert all(epochs)
    saved = sorted((pipeline.settings.home / "workers" / "1" / "aggregates-checkpoint").iterdir())
    assert [p.name for p in saved] == [f"partition-{p}.json" for p in range(4)]
    pipeline.start_worker("1")
    await pipeline.produce(events[4000:])
    await converge_all(6000)
    stats = [p["stats"] for p in pipeline.api("/api/aggregates")["partitions"].values()]
    assert [(s["checkpoint_loads"], s["rebuilds"]) for s in stats] == [(1, 0)] * 4
    assert [client.hget(partition_key(prefix, p), "epoch") for p in range(4)] == epochs


async def _topic_records(settings: Any, topic: str) -> int:
    """Records in ``topic`` now (end minus start offsets, summed over partitions)."""
    tps = [TopicPartition(topic, p) for p in await partition_ids(settings, topic)]
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        ends, starts = await consumer.end_offsets(tps), await consumer.beginning_offsets(tps)
        return sum(ends[tp] - starts[tp] for tp in tps)
    finally:
        await consumer.stop()


async def test_malformed_records_go_to_dead_letters_and_valid_events_flow(
    pipeline_factory: Any,
) -> None:
    pipeline = pipeline_factory("malformed", collector_port=18102, partitions=1)
    pipeline.start_worker("1")
    pipeline.start_collector()
    good = historical_events(400, seed=3)
    wrong_version = {**good[0], "v": 2, "event_id": "bad-version"}
    missing = {k: v for k, v in good[1].items() if k != "entity_id"}
    batch_with_bad = orjson.dumps({"batch": 1, "events": [missing, good[2]]})
    await pipeline.produce_raw(
        [b"not json at all", orjson.dumps(wrong_version), batch_with_bad, b"[1, 2, 3]"]
    )
    await pipeline.produce(good)
    await converge(pipeline, expected_won_by_rep(good))

    consumer = AIOKafkaConsumer(
        pipeline.settings.topic_dead_letters,
        bootstrap_servers=pipeline.settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=5000)
        letters = [orjson.loads(m.value) for msgs in batches.values() for m in msgs]
    finally:
        await consumer.stop()
    reasons = sorted(letter["reason"] for letter in letters)
    assert len(letters) == 4, reasons
    assert any(r.startswith("not JSON") for r in reasons)
    assert any(r.startswith("v:") for r in reasons)
    assert any(r.startswith("entity_id:") for r in reasons)
    assert any(r == "not a JSON object" for r in reasons)
    metrics = pipeline.api("/api/aggregates")["partitions"]
    assert sum(p["stats"]["dead_letters"] for p in metrics.values()) == 4
