"""The Faust app singleton, its topics and its snapshot table (declarations only).

Workers run :mod:`agents.events`; this module has no side effects beyond declaring.
Record values are raw bytes (see :mod:`streams.records`); snapshot values are orjson
bytes, encoded by :class:`agents.store.SnapshotStore`.
"""

from __future__ import annotations

import logging
import os
from typing import Any, cast

import faust
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from agents import seek_fix
from agents.restore import SNAPSHOT_DB_OPTIONS, SnapshotTable
from salespulse.config import get_settings

settings = get_settings()
worker_id = os.environ.get("SALESPULSE_WORKER_ID", "1")

app = faust.App(
    settings.app_id,
    broker=[f"kafka://{b}" for b in settings.kafka_bootstrap.split(",")],
    store="rocksdb://",
    datadir=str(settings.home / "workers" / worker_id),
    topic_partitions=settings.partitions,
    topic_replication_factor=settings.replication_factor,
    value_serializer="raw",
    key_serializer="raw",
    consumer_auto_offset_reset="earliest",
    web_enabled=False,
    # Commit on the 1 s timer only: Faust's count-based commit (every N records) runs
    # inside its fetch loop, which then feeds no stream until the commit's producer flush
    # is acknowledged.
    broker_commit_every=1_000_000_000,
    broker_commit_interval=1.0,
    producer_acks=-1,
    stream_buffer_maxsize=256,  # records; a batched record carries up to 500 events
    # Up to 8 MiB per partition and fetch (Faust's default is 1 MiB): a batched record
    # holds up to 500 events (about 100 KiB), and aiokafka fetches a partition again only
    # when its buffered records are consumed, so small fetches leave the worker waiting.
    consumer_max_fetch_size=8 * 1024 * 1024,
    # Take at most 50 records per poll: aiokafka fetches a partition again only when its
    # buffered records are all taken, so taking everything at once left nothing in flight
    # while the agent worked through it (and then a whole fetch to wait for).
    broker_max_poll_records=50,
    # Snapshot writes go out as record batches (agents/store.py); aiokafka queues at most
    # one batch per partition and sends one request per broker at a time, so with its
    # default 16 KiB batches (about 30 snapshots) 20,000 writes took 660 round trips and
    # stalled the agent for seconds. Batches just under the broker's 1 MiB message limit.
    producer_max_batch_size=1_000_000,
    table_standby_replicas=0,
    autodiscover=False,
    # aiokafka 0.14 does not refresh metadata when a ListOffsets answer is "not leader"
    # (Fetcher._update_fetch_positions), so after a partition leader moves (a broker
    # restart, a preferred-leader election) a consumer can retry the old leader until the
    # periodic refresh: keep that period short (default 5 minutes).
    consumer_metadata_max_age_ms=10_000,
    producer_metadata_max_age_ms=10_000,
)


seek_fix.install()  # resume each source partition where the group committed

_create_worker_consumer = AIOKafkaConsumerThread._create_worker_consumer


FETCH_MAX_WAIT_MS = 100


def _worker_consumer(self: AIOKafkaConsumerThread, transport: Any) -> Any:
    """Faust's worker consumer with a 100 ms fetch wait instead of its fixed 1.5 s.

    Measured with the bench latency run (10,000 events/s offered, broker on the same
    machine): with 1.5 s, fetches of partitions with new records often came back only
    after most of that wait, and the agent idled for a third of the time while its lag
    grew; with 100 ms the worker keeps up. An idle worker sends ten fetches a second.
    """
    consumer = _create_worker_consumer(self, transport)
    consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
    return consumer


AIOKafkaConsumerThread._create_worker_consumer = _worker_consumer  # type: ignore[method-assign]

events_topic = app.topic(
    settings.topic_events,
    key_type=bytes,
    value_type=bytes,
    partitions=settings.partitions,
    internal=False,
)

dead_letter_topic = app.topic(
    settings.topic_dead_letters, key_type=bytes, value_type=bytes, internal=False
)

MIB = 1024 * 1024

# app.Table with our table class: its store restores changelog partitions with a plain
# consumer before Faust's much slower recovery (agents/restore.py).
snapshots = app.tables.add(
    SnapshotTable(
        app,
        name="snapshots",
        beacon=app.tables.beacon,
        partitions=settings.partitions,
        key_type=bytes,
        value_type=bytes,
        help="Per-entity snapshots (last-writer-wins per field), keyed by entity key.",
        # Faust takes keys out of the dict it is given
        options={**SNAPSHOT_DB_OPTIONS, "compression": settings.snapshot_compression},
        # Recovery applies the changelog in large batches; compaction keeps it near one
        # record per entity so losing local state costs a read of the live entities only.
        recovery_buffer_size=10_000,
        extra_topic_configs={"min.cleanable.dirty.ratio": "0.1", "segment.bytes": str(64 * MIB)},
    )
)


def ensure_changelog_topic() -> None:
    """Create the snapshot changelog (as Faust would declare it) if it does not exist.

    Faust declares it when the table starts, after its consumer subscribed: a worker
    started while it is missing leaves it out of its first assignment and does not
    recover the snapshots of partitions moved to it (seen after a replay, which deletes
    the changelog: half of the events were lost). Called before the worker starts.
    """
    from salespulse.stack.process import run_coro
    from salespulse.stack.topics import ensure_topics

    topic = cast(Any, snapshots).changelog_topic
    config = {"cleanup.policy": "compact" if topic.compacting else "delete"}
    config.update({k: str(v) for k, v in (topic.config or {}).items()})
    name = topic.get_topic_name()
    try:
        run_coro(
            ensure_topics(
                settings,
                {name: settings.partitions},
                settings.replication_factor,
                configs={name: config},
            )
        )
    except Exception as exc:  # Kafka unreachable yet: Faust declares it when it connects
        logging.getLogger(__name__).warning("could not create %s now: %r", name, exc)
