"""Replaying the events topic from the beginning rebuilds every KPI exactly.

The procedure of docs/reliability.md ("Replay from the beginning"): stop every worker,
rewind the consumer group to the start of the events topic, delete the snapshot
changelog topic and the workers' local state, delete the published partitions in Redis,
start the workers again. Nothing of the old state survives, so exact KPIs afterwards
show the replay rebuilt them from the events alone.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import time
from typing import Any

import pytest
import redis.asyncio as aioredis

from salespulse.stack import topics
from state.publisher import partition_key
from tests.e2e.test_pipeline import historical_events
from tests.reliability.harness import (
    StreamProducer,
    compare_with_oracle,
    read_published,
    wait_caught_up,
)

pytestmark = [pytest.mark.services, pytest.mark.slow]


async def test_replay_from_the_beginning_rebuilds_every_kpi(cluster_pipeline: Any) -> None:
    pipeline = cluster_pipeline("replay", collector_port=18404)
    settings = pipeline.settings
    for worker_id in ("1", "2"):
        pipeline.start_worker(worker_id)
    pipeline.start_collector()
    events = historical_events(20_000, seed=41)
    producer = StreamProducer(settings)
    await producer.start()
    await producer.send(events)
    await producer.stop()
    await wait_caught_up(pipeline, timeout=120)

    t0 = time.monotonic()
    for worker_id in ("1", "2"):  # a clean stop: the workers leave the consumer group
        await asyncio.to_thread(pipeline.kill_worker, worker_id, signal.SIGTERM)
    rewound = await topics.rewind_group(settings)
    changelog = f"{settings.app_id}-snapshots-changelog"
    assert await topics.delete_topics(settings, [changelog]) == [changelog]
    shutil.rmtree(settings.home / "workers")
    client = aioredis.from_url(settings.redis_url)
    try:
        keys = [partition_key(settings.redis_key_prefix, p) for p in range(settings.partitions)]
        await client.delete(*keys)
    finally:
        await client.aclose()
    assert await read_published(settings) == {}
    for worker_id in ("1", "2"):
        pipeline.start_worker(worker_id)
    replay_s = await wait_caught_up(pipeline, timeout=180)
    total_s = time.monotonic() - t0

    result = await compare_with_oracle(pipeline, producer.acked_events())
    print(
        "\nreplay test:",
        f"rewound offsets {rewound}; replayed {len(events)} events in {replay_s:.1f}s "
        f"({total_s:.1f}s including the stop and the reset)",
        sep="\n",
    )
    assert set(rewound.values()) == {0}
    assert not result["problems"], "\n".join(result["problems"][:30])
