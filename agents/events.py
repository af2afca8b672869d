"""The events agent: applies CRM events to snapshots and keeps partition aggregates.

One :class:`state.processor.PartitionState` per assigned partition. Aggregates are
rebuilt from the snapshot table whenever recovery completes (start, rebalance), and
published to Redis by a timer: dirty partitions every ``publish_interval_s`` (less often
when encoding would take more than 5 % of the time of a worker that is behind), all of them
every few seconds so a flushed Redis heals by itself.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections import defaultdict
from typing import Any, cast

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as KafkaTP
from aiokafka.errors import KafkaError
from faust.types import TP

from agents import checkpoint
from agents.app import app, dead_letter_topic, events_topic, settings, snapshots, worker_id
from agents.link_buffer import LINK_INTERVAL_S, SEND_AT, LinkBuffer
from agents.restore import restored
from agents.store import PartitionStore
from state.dirty import publish_marked
from state.pacing import LastPublish, publish_due
from state.partition_stats import PartitionStats
from state.processor import PartitionState
from state.publisher import publish_partitions, publisher_client
from state.rules import Rules
from streams.records import Undecodable, decode_record, group_by_partition

log = logging.getLogger(__name__)

rules = Rules.load()
states: dict[int, PartitionState] = {}
stats: dict[int, PartitionStats] = defaultdict(PartitionStats)
dirty: set[int] = set()
WRITE_ALL_EVERY_S = 5.0
_last_write_all = 0.0
CAUGHT_UP_RECORDS = 50  # a partition at most this far behind is caught up (state.pacing)
CAUGHT_UP_SWITCH_INTERVAL_S = 0.001
BEHIND_SWITCH_INTERVAL_S = 0.005  # Python's default
_last_publish: LastPublish | None = None
_redis: aioredis.Redis | None = None
_assigned_at: dict[int, float] = {}  # partition -> when the last rebalance assigned it
CLAIMED = checkpoint.claimed_dir(app.conf.datadir)  # this start's (agents.run claims it)
SAVED = checkpoint.saved_dir(app.conf.datadir)  # where a graceful stop saves
FINGERPRINT = checkpoint.fingerprint(rules)  # of these rules and this engine code


def assigned_partitions() -> set[int]:
    """Partitions of the events topic this worker owns now."""
    return {tp.partition for tp in app.consumer.assignment() if tp.topic == events_topic.topics[0]}


def _fresh_state(partition: int) -> PartitionState:
    """A partition's state with aggregates from the checkpoint of a graceful stop if it
    matches the snapshots (:mod:`agents.checkpoint`), else rebuilt from them."""
    started = time.monotonic()
    store = PartitionStore(snapshots, partition)
    state = PartitionState(rules, store)
    part_stats = stats[partition]
    saved = checkpoint.take(
        CLAIMED, partition, store.persisted_offset(), FINGERPRINT, rules.retention_cutoff
    )
    if saved is None:
        state.rebuild()
        part_stats.rebuilds += 1
    else:
        # with the last publish's mark, if it may still stand in Redis: keep its epoch
        state.aggregates.load(saved.shards, saved.published, saved.unpublished)
        part_stats.checkpoint_loads += 1
        log.info("partition %d: aggregates from the checkpoint of the last stop", partition)
    part_stats.rebuild_seconds = time.monotonic() - started
    assigned = _assigned_at.pop(partition, None)
    if assigned is not None:  # changelog recovery + rebuild: how long the partition stalled
        part_stats.recovery_seconds = time.monotonic() - assigned
    part_stats.restored_records += restored.pop(partition, (0, 0.0))[0]
    return state


def _kafka_producer() -> Any:
    """The aiokafka producer under Faust's producer (started with the app)."""
    return cast(Any, app.producer)._ensure_producer()


async def drain_stores(partitions: Any = None) -> None:
    """Send pending snapshot writes and wait until they are acknowledged and in RocksDB."""
    producer = _kafka_producer()
    for partition, state in list(states.items()):
        if partitions is None or partition in partitions:
            await state.store.drain(producer, changelog)  # type: ignore[attr-defined]


async def flush_stores() -> None:
    """Hand every pending snapshot write to the producer (before it is flushed)."""
    producer = _kafka_producer()
    for state in list(states.values()):
        await state.store.flush(producer, changelog)  # type: ignore[attr-defined]


def hook_producer_flush() -> None:
    """Make the producer's flush send pending snapshot writes first.

    Faust flushes the producer right before it commits source offsets (and on
    rebalance and shutdown): so no offset is committed before the changelog writes of
    the events up to it were sent and acknowledged, while the agent itself never waits
    for the broker.
    """
    producer: Any = app.producer
    if getattr(producer, "_salespulse_flush_hooked", False):
        return
    original = producer.flush

    async def flush() -> None:
        await send_links()
        await flush_stores()
        await original()

    producer.flush = flush
    producer._salespulse_flush_hooked = True


_recovered_generation = -1  # consumer generation whose snapshot recovery completed
RECOVERY_WAIT_S = 120.0


async def rebuild_assigned() -> None:
    """Recompute every owned partition's aggregates from the snapshot table."""
    global _recovered_generation
    owned = assigned_partitions()
    await drain_stores()
    states.clear()
    states.update({p: _fresh_state(p) for p in sorted(owned)})
    dirty.update(owned)
    _recovered_generation = app.consumer_generation_id
    log.info("rebuilt aggregates of partitions %s", sorted(owned))
    for partition in sorted(owned):
        # Everything before the committed offset is in the recovered snapshots: count
        # it as processed, or a partition that moved with nothing left to process
        # would report its whole length as consumer lag until its next record.
        try:
            resume = await asyncio.wait_for(_resume_offset(partition), 10)
        except (TimeoutError, KafkaError) as exc:
            log.warning("partition %d: committed offset unknown (%r)", partition, exc)
            continue
        _next_offset.setdefault(partition, resume)
        stats[partition].last_offset = max(stats[partition].last_offset, resume - 1)


async def _await_recovery(partition: int) -> bool:
    """Wait until the snapshots of the current assignment are recovered; False if the
    partition is not ours any more.

    A record applied before the recovery of its partition's snapshots would read an
    empty or stale snapshot and write a partial one over the recovered entity (seen in
    tests/reliability when a worker joined: Faust can deliver a record early).
    """
    if _recovered_generation == app.consumer_generation_id:
        return partition in assigned_partitions()
    log.warning("partition %d: record before the recovery of its snapshots; waiting", partition)
    deadline = time.monotonic() + RECOVERY_WAIT_S
    while _recovered_generation != app.consumer_generation_id:
        if time.monotonic() > deadline:  # e.g. another rebalance waits for this record
            log.critical("partition %d: snapshots not recovered; exiting", partition)
            os._exit(73)  # nothing committed past this record: a restart resumes it
        await asyncio.sleep(0.05)
    return partition in assigned_partitions()


snapshots.on_recover(rebuild_assigned)


@app.on_partitions_assigned.connect  # type: ignore[arg-type]
async def note_assigned(app: Any, assigned: set[Any], **kwargs: Any) -> None:
    """Remember when partitions were assigned: their recovery time starts there."""
    now = time.monotonic()
    for tp in assigned:
        if tp.topic == events_topic.topics[0]:
            _assigned_at[tp.partition] = now
            _next_offset.pop(tp.partition, None)  # resume where the group committed


@app.on_partitions_revoked.connect  # type: ignore[arg-type]
async def forget_revoked(app: Any, revoked: set[Any], **kwargs: Any) -> None:
    """Stop publishing partitions this worker no longer owns (their writes drained)."""
    gone = {tp.partition for tp in revoked if tp.topic == events_topic.topics[0]}
    await send_links()
    await drain_stores(gone)
    for partition in gone:
        states.pop(partition, None)
        dirty.discard(partition)
        _next_offset.pop(partition, None)


@app.on_before_shutdown.connect  # type: ignore[arg-type]
async def save_aggregates(app: Any, **kwargs: Any) -> None:
    """At a graceful stop (streams stopped), drain every snapshot write into RocksDB and
    save each partition's aggregates with RocksDB's persisted offset, so the next start
    need not rebuild them (:mod:`agents.checkpoint`)."""
    started = time.monotonic()
    try:
        await drain_stores()
    except Exception as exc:  # the next start rebuilds; nothing is lost
        log.warning("aggregates not saved: snapshot writes not drained (%r)", exc)
        return
    saved = 0
    for partition, state in sorted(states.items()):
        store = state.store
        if store.unsent or store.in_flight:  # type: ignore[attr-defined]
            log.warning("partition %d: snapshot writes pending; aggregates not saved", partition)
            continue
        try:
            store.sync()  # type: ignore[attr-defined]  # on disk before the offset is saved
            saved += checkpoint.save(
                SAVED,
                partition,
                store.persisted_offset(),  # type: ignore[attr-defined]
                FINGERPRINT,
                rules.retention_cutoff,
                state.aggregates.shards,
                state.aggregates.published,
                state.aggregates.dirty,
            )
        except Exception as exc:
            log.warning("partition %d: aggregates not saved (%r)", partition, exc)
    log.info(
        "saved the aggregates of partitions %s (%d bytes, %.2f s)",
        sorted(states),
        saved,
        time.monotonic() - started,
    )


async def _dead_letter(raw: Any, reason: str, partition: int, offset: int) -> None:
    stats[partition].dead_letters += 1
    payload = {"reason": reason, "record": raw, "partition": partition, "offset": offset}
    await dead_letter_topic.send(value=orjson.dumps(payload, default=str))


changelog = cast(Any, snapshots).changelog_topic_name
MAX_UNSENT = 20_000  # snapshot writes kept per partition before they are sent anyway


def _state(partition: int) -> PartitionState:
    state = states.get(partition)
    if state is None:
        state = states[partition] = _fresh_state(partition)
    return state


async def _apply_record(partition: int, offset: int, value: Any) -> PartitionState:
    """Apply every event of one record; queue the link facts for their owners' partitions."""
    state = _state(partition)
    part_stats = stats[partition]
    for raw in decode_record(value):
        if isinstance(raw, Undecodable):
            await _dead_letter(raw.raw, raw.reason, partition, offset)
            continue
        outcome = state.apply(raw)
        if outcome.status == "invalid":
            await _dead_letter(raw, outcome.reason, partition, offset)
            continue
        if outcome.status == "applied":
            part_stats.applied += 1
            if outcome.source and outcome.source != "link":
                part_stats.saw_event(outcome.source, outcome.event_time_ms)
        else:
            part_stats.duplicates += 1
        for link in outcome.links:
            pending_links.add(link)
    if len(pending_links) >= SEND_AT:
        await send_links()
    part_stats.last_offset = offset
    dirty.add(partition)
    return state


pending_links = LinkBuffer()  # link facts not yet sent (agents.link_buffer)


async def send_links() -> None:
    """Send the pending link facts, one batch record per target partition.

    Straight to aiokafka's accumulator (waits only for a full batch): Faust's send_soon
    buffer sends one message per event-loop turn and, past 100 pending, stops feeding
    every stream until it drains (seen as the agent idling with a growing lag). The
    producer flush before each offset commit sends these first, then waits for them as
    for any batch.
    """
    facts = pending_links.take()
    if not facts:
        return
    producer = _kafka_producer()
    for target_partition, record in group_by_partition(facts, settings.partitions):
        delivery = await producer.send(events_topic.topics[0], record, partition=target_partition)
        delivery.add_done_callback(_check_delivery)


@app.timer(LINK_INTERVAL_S)
async def send_links_soon() -> None:
    """Send pending link facts a few times a second (their KPIs wait at most this long)."""
    await send_links()


def _check_delivery(delivery: asyncio.Future[Any]) -> None:
    """Exit if a link record could not be written: its source offset must not be committed."""
    if delivery.cancelled() or delivery.exception() is not None:
        log.critical(
            "link record write failed (%s); exiting to keep state exact",
            "cancelled" if delivery.cancelled() else delivery.exception(),
        )
        os._exit(71)


# Skipped-record guard. Around rebalances Faust 0.15 / aiokafka 0.14 can deliver a
# partition from past its committed offset (and then commit past the records skipped):
# seen in tests/reliability after a crash and a broker restart. The agent checks that
# each assignment resumes where the group's committed offset says, and applies any
# records it was not given, read directly from Kafka (transaction markers are no records),
# then marks them done for Faust's commit.
_next_offset: dict[int, int] = {}  # partition -> next offset, since the last assignment
_reader: AIOKafkaConsumer | None = None


async def _kafka_reader() -> AIOKafkaConsumer:
    global _reader
    if _reader is None:
        _reader = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=settings.app_id,  # to read the group's committed offsets; never joins
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await _reader.start()
    return _reader


async def _resume_offset(partition: int) -> int:
    """The group's committed offset of ``partition`` (or its first offset if none)."""
    reader = await _kafka_reader()
    tp = KafkaTP(events_topic.topics[0], partition)
    committed = await reader.committed(tp)
    if committed is not None:
        return int(committed)
    return int((await reader.beginning_offsets([tp]))[tp])


async def _read_range(partition: int, start: int, end: int) -> list[tuple[int, Any]]:
    """The records of ``partition`` with offsets in ``[start, end)``, read directly."""
    reader = await _kafka_reader()
    tp = KafkaTP(events_topic.topics[0], partition)
    reader.assign([tp])
    reader.seek(tp, start)
    found: list[tuple[int, Any]] = []
    deadline = time.monotonic() + 120
    while await reader.position(tp) < end:
        if time.monotonic() > deadline:
            log.critical("cannot read records %d..%d of partition %d", start, end, partition)
            os._exit(72)  # a restart resumes from the committed offset
        batch = await reader.getmany(tp, timeout_ms=1000)
        found += [(m.offset, m.value) for m in batch.get(tp, []) if m.offset < end]
    return found


@app.agent(events_topic)
async def process_events(stream: Any) -> None:
    """Apply every event of every record; route link facts to their owners' partitions."""
    hook_producer_flush()
    async for event in stream.events():
        partition, offset = event.message.partition, event.message.offset
        if not await _await_recovery(partition):
            continue  # revoked meanwhile: Faust does not commit revoked partitions
        expected = _next_offset.get(partition)
        if expected is None:
            expected = await _resume_offset(partition)
        if offset > expected:
            missed = await _read_range(partition, expected, offset)
            log.warning(
                "partition %d: the consumer skipped offsets %d..%d; applying %d records "
                "read directly",
                partition,
                expected,
                offset - 1,
                len(missed),
            )
            for missed_offset, value in missed:
                await _apply_record(partition, missed_offset, value)
            # Let Faust commit past them (it would wait for their acks forever).
            await cast(Any, app.consumer)._add_gap(event.message.tp, expected, offset - 1)
        state = await _apply_record(partition, offset, event.value)
        _next_offset[partition] = max(expected, offset + 1)
        if len(state.store.unsent) >= MAX_UNSENT:  # type: ignore[attr-defined]
            await state.store.flush(_kafka_producer(), changelog)  # type: ignore[attr-defined]


def _note_lag() -> bool:
    """Update each owned partition's lag (records); whether the worker is caught up.

    Also sets the GIL switch interval: Faust's consumer runs in its own thread, which
    waits for the GIL while the agent computes. Caught up, records waited in that thread
    (agent idle 40 % of the time at 10,000 events/s, fetched records 0.1-1 s old); with a
    1 ms interval short bench latency runs gave a p99 to visible of 0.67-0.83 s against
    0.78-1.01 s with 5 ms (full runs vary more with the machine's load). Behind, the
    consumer always has records buffered and the default 5 ms keeps switching costs low.
    """
    topic = events_topic.topics[0]
    for partition in states:
        highwater = app.consumer.highwater(TP(topic, partition))
        if highwater is not None:
            stats[partition].lag = max(0, highwater - stats[partition].last_offset - 1)
    caught_up = all(stats[p].lag <= CAUGHT_UP_RECORDS for p in states)
    sys.setswitchinterval(CAUGHT_UP_SWITCH_INTERVAL_S if caught_up else BEHIND_SWITCH_INTERVAL_S)
    return caught_up


@app.timer(settings.publish_interval_s)
async def publish_aggregates() -> None:
    """Publish absolute aggregates of dirty (or, periodically, all) owned partitions."""
    global _redis, _last_write_all, _last_publish
    caught_up = _note_lag()
    now = time.monotonic()
    if not publish_due(_last_publish, now, caught_up):
        return
    write_all = now - _last_write_all >= WRITE_ALL_EVERY_S
    chosen = set(states) if write_all else dirty & set(states)
    if not chosen:
        return
    if _redis is None:
        _redis = publisher_client(settings.redis_url)
    client = _redis
    batch = {p: (states[p].aggregates, stats[p]) for p in chosen}
    full = any(aggregates.published.full for aggregates, _ in batch.values())
    spent: list[float] = []
    written = False
    try:
        stale = await publish_marked(
            dirty,
            chosen,
            lambda: publish_partitions(
                client,
                settings.redis_key_prefix,
                f"worker-{worker_id}",
                batch,
                app.consumer_generation_id,
                spent,
            ),
        )
        written = True
    except (aioredis.RedisError, OSError) as exc:
        log.warning("redis publish failed (will retry): %s", exc)
        return
    finally:
        _last_publish = LastPublish(now, sum(spent), caught_up, full and written)
    if stale:
        log.info("partitions %s have a newer owner; no longer publishing them", stale)
    if write_all:
        _last_write_all = now
