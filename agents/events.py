"""The events agent: applies CRM events to snapshots and keeps partition aggregates.

One :class:`state.processor.PartitionState` per assigned partition. Aggregates are
rebuilt from the snapshot table whenever recovery completes (start, rebalance), and
published to Redis by a timer: dirty partitions every ``publish_interval_s``, all of them
every few seconds so a flushed Redis heals by itself.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import Any

import orjson
import redis.asyncio as aioredis
from faust.types import TP

from agents.app import app, dead_letter_topic, events_topic, settings, snapshots, worker_id
from agents.store import PartitionStore
from state.partition_stats import PartitionStats
from state.processor import PartitionState
from state.publisher import publish_partitions
from state.rules import Rules
from streams.records import Undecodable, decode_record, encode_batch, partition_for

log = logging.getLogger(__name__)

rules = Rules.load()
states: dict[int, PartitionState] = {}
stats: dict[int, PartitionStats] = defaultdict(PartitionStats)
dirty: set[int] = set()
FULL_PUBLISH_EVERY_S = 5.0
_last_full_publish = 0.0
_redis: aioredis.Redis | None = None


def assigned_partitions() -> set[int]:
    """Partitions of the events topic this worker owns now."""
    return {tp.partition for tp in app.consumer.assignment() if tp.topic == events_topic.topics[0]}


def _fresh_state(partition: int) -> PartitionState:
    """A partition's state with aggregates rebuilt from its snapshots."""
    started = time.monotonic()
    state = PartitionState(rules, PartitionStore(snapshots, partition))
    state.rebuild()
    part_stats = stats[partition]
    part_stats.rebuilds += 1
    part_stats.rebuild_seconds = time.monotonic() - started
    return state


async def rebuild_assigned() -> None:
    """Recompute every owned partition's aggregates from the snapshot table."""
    owned = assigned_partitions()
    states.clear()
    states.update({p: _fresh_state(p) for p in sorted(owned)})
    dirty.update(owned)
    log.info("rebuilt aggregates of partitions %s", sorted(owned))


snapshots.on_recover(rebuild_assigned)


@app.on_partitions_revoked.connect
async def forget_revoked(app: Any, revoked: set[Any], **kwargs: Any) -> None:
    """Stop publishing partitions this worker no longer owns."""
    for tp in revoked:
        if tp.topic == events_topic.topics[0]:
            states.pop(tp.partition, None)
            dirty.discard(tp.partition)


async def _dead_letter(raw: Any, reason: str, partition: int, offset: int) -> None:
    stats[partition].dead_letters += 1
    payload = {"reason": reason, "record": raw, "partition": partition, "offset": offset}
    await dead_letter_topic.send(value=orjson.dumps(payload, default=str))


changelog = snapshots.changelog_topic_name


@app.agent(events_topic)
async def process_events(stream: Any) -> None:
    """Apply every event of every record; route link facts to their owners' partitions."""
    async for event in stream.events():
        partition, offset = event.message.partition, event.message.offset
        state = states.get(partition)
        if state is None:
            state = states[partition] = _fresh_state(partition)
        part_stats = stats[partition]
        links: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for raw in decode_record(event.value):
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
                target = f"{link['entity']}:{link['entity_id']}"
                links[partition_for(target, settings.partitions)].append(link)
        for target_partition, records in links.items():
            events_topic.send_soon(value=encode_batch(records), partition=target_partition)
        await state.store.flush(app.producer._ensure_producer(), changelog)
        part_stats.last_offset = offset
        dirty.add(partition)


@app.timer(settings.publish_interval_s)
async def publish_aggregates() -> None:
    """Publish absolute aggregates of dirty (or, periodically, all) owned partitions."""
    global _redis, _last_full_publish
    now = time.monotonic()
    full = now - _last_full_publish >= FULL_PUBLISH_EVERY_S
    chosen = set(states) if full else dirty & set(states)
    if not chosen:
        return
    if _redis is None:
        _redis = aioredis.from_url(settings.redis_url, socket_timeout=2)
    topic = events_topic.topics[0]
    for partition in chosen:
        highwater = app.consumer.highwater(TP(topic, partition))
        if highwater is not None:
            stats[partition].lag = max(0, highwater - stats[partition].last_offset - 1)
    batch = {p: (states[p].aggregates, stats[p]) for p in chosen}
    try:
        stale = await publish_partitions(
            _redis,
            settings.redis_key_prefix,
            f"worker-{worker_id}",
            batch,
            app.consumer_generation_id,
        )
    except (aioredis.RedisError, OSError) as exc:
        log.warning("redis publish failed (will retry): %s", exc)
        return
    if stale:
        log.info("partitions %s have a newer owner; no longer publishing them", stale)
    dirty.difference_update(chosen)
    if full:
        _last_full_publish = now
