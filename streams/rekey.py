"""Re-key the events topic into a new topic with another partition count.

An entity's partition is murmur2 of its key modulo the partition count, so a topic with
more (or fewer) partitions needs every event written again to its new partition. This
copies every CRM event of the source topic, up to the end offsets seen when it starts,
into the target topic as batch records grouped by target partition (idempotent producer,
``acks=all``). Link facts (derived by the workers) are not copied: the workers derive
them again when they replay the new topic. Records that are not events (they went to the
dead-letter topic when first consumed) are counted and skipped.

Per-entity order is kept (an entity's events all come from one source partition, read
in order), although the engine does not need it: snapshots are order-independent.

    salespulse rekey --to salespulse-events-v2 --partitions 12
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import click
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from salespulse.config import Settings, get_settings
from salespulse.stack.process import StackError, run_coro
from salespulse.stack.topics import ensure_topics, partition_ids
from streams.records import Undecodable, decode_record, group_by_partition

LINK_MARKER = "link"  # state.processor.LINK_MARKER (not imported: streams stays below state)
MIB = 1024 * 1024


class RekeyError(click.ClickException):
    """The target topic cannot receive the re-keyed events."""


async def _check_target(settings: Settings, target: str, partitions: int) -> None:
    """Create ``target`` with ``partitions``; refuse one with another count or records."""
    await ensure_topics(settings, {target: partitions})
    count = len(await partition_ids(settings, target))
    if count != partitions:
        raise RekeyError(f"topic {target!r} exists with {count} partitions, not {partitions}")
    probe = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await probe.start()
    try:
        tps = [TopicPartition(target, p) for p in range(partitions)]
        ends = await probe.end_offsets(tps)
    finally:
        await probe.stop()
    if any(ends.values()):
        raise RekeyError(f"topic {target!r} already holds records: re-key into a new topic")


async def rekey(settings: Settings, source: str, target: str, partitions: int) -> dict[str, Any]:
    """Copy every event of ``source`` into ``target`` (``partitions`` partitions)."""
    if source == target:
        raise RekeyError("source and target topics must differ")
    try:
        source_parts = await partition_ids(settings, source)
    except StackError as exc:
        raise RekeyError(str(exc)) from exc
    await _check_target(settings, target, partitions)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",  # backfill chunks are transactions
        max_partition_fetch_bytes=8 * MIB,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        enable_idempotence=True,
        max_request_size=8 * MIB,
        linger_ms=20,
    )
    await consumer.start()
    await producer.start()
    counts: Counter[str] = Counter()
    written: Counter[int] = Counter()
    try:
        tps = [TopicPartition(source, p) for p in source_parts]
        ends = await consumer.end_offsets(tps)
        for tp in tps:  # one source partition at a time: per-entity order is kept
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=1000, max_records=2000)
                events: list[dict[str, Any]] = []
                for record in batch.get(tp, []):
                    if record.offset >= ends[tp]:
                        break
                    counts["records"] += 1
                    for item in decode_record(record.value):
                        if isinstance(item, Undecodable):
                            counts["skipped_not_events"] += 1
                        elif item.get(LINK_MARKER) == 1:
                            counts["skipped_link_facts"] += 1
                        elif "entity" not in item or "entity_id" not in item:
                            counts["skipped_not_events"] += 1
                        else:
                            events.append(item)
                for partition, value in group_by_partition(events, partitions):
                    await producer.send(target, value=value, partition=partition)
                    written[partition] += 1
                counts["events"] += len(events)
        await producer.flush()
    finally:
        await producer.stop()
        await consumer.stop()
    return {
        "source": source,
        "target": target,
        "partitions": partitions,
        **dict(counts),
        "records_written": dict(sorted(written.items())),
    }


@click.command("rekey")
@click.option("--from", "source", help="Source topic [SALESPULSE_TOPIC_EVENTS].")
@click.option("--to", "target", required=True, help="New topic (created; must be empty).")
@click.option("--partitions", type=click.IntRange(min=1), required=True)
def rekey_command(source: str | None, target: str, partitions: int) -> None:
    """Copy the events topic into a new topic with another partition count."""
    import orjson

    settings = get_settings()
    summary = run_coro(rekey(settings, source or settings.topic_events, target, partitions))
    click.echo(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
