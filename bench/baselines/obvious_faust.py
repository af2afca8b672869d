"""Baseline "the obvious Faust implementation": one event per record, one table write each.

A separate Faust app (its own app id, topic and state dir) that consumes single-event
records keyed ``entity:id``, keeps every entity's last state in a Table (per-field
last-writer-wins on ``(version, event_id)``, written once per event), and maintains won
revenue, won and lost counts per rep and month by contribution deltas of the deals
(:mod:`bench.kpi_subset`). Like SalesPulse it publishes each partition's absolute
aggregates and its progress (``count``, ``last_offset``) to Redis every 0.5 s, under
``<prefix>:partition:<n>``, and rebuilds the aggregates from the table on recovery.

Configured by environment (set by the harness): ``BENCH_BOOTSTRAP``, ``BENCH_TOPIC``,
``BENCH_APP_ID``, ``BENCH_PARTITIONS``, ``BENCH_DATADIR``, ``BENCH_REDIS_URL``,
``BENCH_PREFIX``. Run: ``python -m bench.baselines.obvious_faust worker -l info``.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from typing import Any

import faust
import orjson
import redis.asyncio as aioredis

from agents import seek_fix
from bench.kpi_subset import Fx, add_components, contribution, deltas, merge_deal
from state.dirty import publish_marked
from streams.records import partition_for

BOOTSTRAP = os.environ.get("BENCH_BOOTSTRAP", "127.0.0.1:29392")
TOPIC = os.environ.get("BENCH_TOPIC", "bench-obvious-events")
PARTITIONS = int(os.environ.get("BENCH_PARTITIONS", "4"))
PREFIX = os.environ.get("BENCH_PREFIX", "bench-obvious")
PUBLISH_INTERVAL_S = 0.5

# The Faust fix the worker has too (a correctness fix, not a speed-up): without it a
# rebalance at start can resume a partition past records it fetched and dropped. Most
# likely why a 1,000-event bench smoke run in CI applied 998 events and then waited out
# its 120 s cap (and why a full run once hung at the obvious baseline).
seek_fix.install()

app = faust.App(
    os.environ.get("BENCH_APP_ID", "bench-obvious"),
    broker=f"kafka://{BOOTSTRAP}",
    store="rocksdb://",
    datadir=os.environ.get("BENCH_DATADIR", ".salespulse-bench/obvious"),
    topic_partitions=PARTITIONS,
    value_serializer="raw",
    key_serializer="raw",
    consumer_auto_offset_reset="earliest",
    web_enabled=False,
    producer_acks=-1,
    table_standby_replicas=0,
    autodiscover=False,
)
events_topic = app.topic(TOPIC, key_type=bytes, value_type=bytes, partitions=PARTITIONS)
entities = app.Table("entities", partitions=PARTITIONS, key_type=bytes, value_type=bytes)

fx = Fx.load()
aggregates: dict[int, dict[tuple[str, str], list[int]]] = defaultdict(dict)
stats: dict[int, dict[str, int]] = defaultdict(lambda: {"count": 0, "last_offset": -1})
dirty: set[int] = set()
_redis: aioredis.Redis | None = None


async def rebuild() -> None:
    """Recompute every partition's aggregates from the entity table."""
    aggregates.clear()
    for key, raw in entities.items():
        text = key.decode()
        if text.startswith("deal:"):
            c = contribution(orjson.loads(raw), fx)
            if c is not None:
                add_components(aggregates[partition_for(text, PARTITIONS)], f"{c[0]}|{c[1]}", c[2:])
    dirty.update(range(PARTITIONS))


entities.on_recover(rebuild)


@app.agent(events_topic)
async def process(stream: Any) -> None:
    """Merge each event into its entity's state; deals update the partition's aggregates."""
    async for event in stream.events():
        value = orjson.loads(event.value)
        key = event.key
        raw = entities.get(key)
        old = None if raw is None else orjson.loads(raw)
        new, _ = merge_deal(old, value, names=None)
        partition = event.message.partition
        if value["entity"] == "deal":
            for group, *change in deltas(contribution(old, fx), contribution(new, fx)):
                add_components(aggregates[partition], group, change)
        entities[key] = orjson.dumps(new)
        counters = stats[partition]
        counters["count"] += 1
        counters["last_offset"] = event.message.offset
        dirty.add(partition)


@app.timer(PUBLISH_INTERVAL_S)
async def publish() -> None:
    """Publish absolute aggregates and progress of the partitions that changed."""
    global _redis
    if not dirty:
        return
    if _redis is None:
        _redis = aioredis.from_url(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:26679/0"))
    client, chosen, now = _redis, set(dirty), repr(time.time())

    async def write() -> None:
        async with client.pipeline(transaction=False) as pipe:
            for partition in chosen:
                aggs = {f"{rep}|{month}": v for (rep, month), v in aggregates[partition].items()}
                pipe.hset(
                    f"{PREFIX}:partition:{partition}",
                    mapping={
                        "aggregates": orjson.dumps(aggs),
                        "stats": orjson.dumps(stats[partition]),
                        "published_at": now,
                    },
                )
            await pipe.execute()

    await publish_marked(dirty, chosen, write)  # events applied meanwhile stay marked


if __name__ == "__main__":
    app.main()
