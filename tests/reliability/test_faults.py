"""Crashes of workers and of a Kafka broker during a 200,000-event stream lose nothing.

Three workers consume a 6-partition topic replicated three times on a three-node KRaft
cluster (``min.insync.replicas=2``). While the stream is produced (``acks=all``,
idempotent producer, every acknowledgement recorded), one worker is killed with SIGKILL,
then a second one, both are restarted, and a broker is killed with SIGKILL and
restarted. When the workers have caught up, every KPI the collector serves equals the
batch oracle over the acknowledged events exactly, and every acknowledged event is on
the topic.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from typing import Any

import pytest

from salespulse import stack
from salespulse.config import Settings
from salespulse.stack import topics
from tests.e2e.test_pipeline import historical_events
from tests.reliability.harness import (
    StreamProducer,
    Supervisor,
    compare_with_oracle,
    read_published,
    read_topic_events,
    summarize_stats,
    wait_caught_up,
)

pytestmark = [pytest.mark.services, pytest.mark.slow]

EVENTS = 200_000
CHUNK = 10_000
PACE_S = 2.0  # seconds per chunk: the faults land while the workers still process
BROKER = 1  # the first bootstrap server and a partition leader


async def test_worker_and_broker_crashes_keep_every_kpi_exact(
    cluster_pipeline: Any, cluster_settings: Settings
) -> None:
    pipeline = cluster_pipeline("faults", collector_port=18401)
    supervisor = Supervisor(pipeline)
    for worker_id in ("1", "2", "3"):
        supervisor.start(worker_id)
    pipeline.start_collector()
    events = historical_events(EVENTS, seed=11)
    producer = StreamProducer(pipeline.settings)
    await producer.start()
    watchdog = asyncio.create_task(supervisor.run())
    broker_back: asyncio.Task[None] | None = None
    log: list[str] = []
    t0 = time.monotonic()

    def note(what: str) -> None:
        log.append(f"{time.monotonic() - t0:6.1f}s {what}")
        print(log[-1], flush=True)

    try:
        for index, start in enumerate(range(0, EVENTS, CHUNK)):
            chunk_started = time.monotonic()
            await producer.send(events[start : start + CHUNK])
            if index == 3:
                supervisor.kill("1", signal.SIGKILL)
                note("worker-1 killed (SIGKILL)")
            elif index == 6:
                supervisor.kill("2", signal.SIGKILL)
                note("worker-2 killed (SIGKILL)")
            elif index == 8:
                supervisor.start("1")
                supervisor.start("2")
                note("worker-1 and worker-2 restarted")
            elif index == 11:
                assert await asyncio.to_thread(stack.stop_node, cluster_settings, BROKER, True)
                note(f"kafka-{BROKER} killed (SIGKILL)")
            elif index == 15:
                broker_back = asyncio.create_task(
                    asyncio.to_thread(stack.start_node, cluster_settings, BROKER)
                )
                note(f"kafka-{BROKER} restarting")
            await asyncio.sleep(max(0.0, PACE_S - (time.monotonic() - chunk_started)))
        await producer.flush()
        produced_at = time.monotonic()
        note("every record acknowledged or failed")
        if broker_back is not None:
            await broker_back
            note(f"kafka-{BROKER} serving again")
        converge_s = await wait_caught_up(pipeline, timeout=150)
        converged_at = time.monotonic()
        note("workers caught up and republished")
    finally:
        watchdog.cancel()
        await producer.stop()

    parts = await read_published(pipeline.settings)
    supervisor.stats.observe(parts)
    in_sync_s = await topics.wait_in_sync(pipeline.settings, [pipeline.settings.topic_events])

    # Every acknowledged event is on the topic (the oracle's input is what Kafka has).
    on_topic = await read_topic_events(pipeline.settings)
    acked = producer.acked_events()
    missing = Counter(e["event_id"] for e in acked) - Counter(e["event_id"] for e in on_topic)
    unacked = producer.unacked()
    extra = Counter(e["event_id"] for e in on_topic) - Counter(e["event_id"] for e in acked)
    assert not missing, f"{sum(missing.values())} acknowledged events are not on the topic"
    unacked_ids = {e["event_id"] for r in unacked for e in r.events}
    assert set(extra) <= unacked_ids, "events on the topic that were never produced"

    result = await compare_with_oracle(pipeline, on_topic)
    final = summarize_stats(parts)
    overall = supervisor.stats.totals()
    lines = [
        *log,
        f"events produced: {len(events)} in {len(producer.records)} records; acknowledged "
        f"{len(acked)}; not acknowledged {sum(len(r.events) for r in unacked)} "
        f"({len(extra)} of them on the topic anyway)",
        f"events on the topic: {len(on_topic)}",
        f"applied+duplicates since each worker started (final owners): {final}",
        f"applied/duplicates summed over every owner (sampled every 0.5 s; events a killed "
        f"owner applied but never persisted are applied again by the next): {overall}",
        f"workers that exited on their own and were restarted: {len(supervisor.exits)}",
        *(f"  worker-{w}: {tail.splitlines()[-1] if tail else ''}" for w, tail in supervisor.exits),
        f"time to converge after the last acknowledgement: {converged_at - produced_at:.1f}s "
        f"(wait_caught_up {converge_s:.1f}s); whole run {converged_at - t0:.1f}s",
        "per partition (owner, rebuild s, recovery s = assignment to rebuilt, lag): "
        + ", ".join(
            f"{p}: ({m['owner']}, {m['stats']['rebuild_seconds']:.3f}, "
            f"{m['stats'].get('recovery_seconds', 0):.2f}, {m['stats'].get('lag')})"
            for p, m in sorted(parts.items())
        ),
        f"replicas back in sync {in_sync_s:.1f}s after convergence; "
        f"oracle computed in {result['oracle_s']:.1f}s",
    ]
    print("\n".join(["", "fault test:", *lines]))
    assert not result["problems"], "\n".join(result["problems"][:30])
    assert result["expected"]["totals"]["deals_won"] > 1000
