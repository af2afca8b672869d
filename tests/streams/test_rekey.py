"""Re-keying the events topic into another partition count, against the real Kafka."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from salespulse.config import Settings
from salespulse.stack import topics
from streams.records import (
    decode_record,
    encode_batch,
    encode_single,
    group_by_partition,
    partition_for,
)
from streams.rekey import RekeyError, rekey
from tests.e2e.test_pipeline import historical_events

pytestmark = pytest.mark.services


def _key(event: dict[str, Any]) -> str:
    return f"{event['entity']}:{event['entity_id']}"


async def _read(settings: Settings, topic: str, records: dict[int, int]) -> list[tuple[int, Any]]:
    """Every event of the first ``records[p]`` records of each partition ``p`` of ``topic``
    (read until they are all there, or 30 s)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(records)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        found: list[tuple[int, Any]] = []
        deadline = time.monotonic() + 30
        for tp in tps:
            seen = 0
            while seen < records[tp.partition] and time.monotonic() < deadline:
                for message in (await consumer.getmany(tp, timeout_ms=500)).get(tp, []):
                    seen += 1
                    found += [(tp.partition, item) for item in decode_record(message.value)]
        return found
    finally:
        await consumer.stop()


async def test_rekey_moves_every_event_to_its_new_partition_in_order(
    stack_settings: Settings,
) -> None:
    run = uuid.uuid4().hex[:8]
    source, target = f"rekey-src-{run}", f"rekey-dst-{run}"
    await topics.ensure_topics(stack_settings, {source: 3}, replication=1)
    events = historical_events(3000, seed=7)
    link = {
        "link": 1,
        "entity": "lead",
        "entity_id": "L1",
        "from": "deal:D1",
        "token": [1, "e"],
        "value": {"deal": "D1"},
    }
    producer = AIOKafkaProducer(bootstrap_servers=stack_settings.kafka_bootstrap)
    await producer.start()
    try:
        for partition, value in group_by_partition(events[:2000], 3):
            await producer.send_and_wait(source, value=value, partition=partition)
        for event in events[2000:]:  # single-event records too
            value = encode_single(event)
            await producer.send_and_wait(
                source, value=value, partition=partition_for(_key(event), 3)
            )
        await producer.send_and_wait(source, value=encode_batch([link]), partition=0)
        await producer.send_and_wait(source, value=b"not json", partition=1)
    finally:
        await producer.stop()

    summary = await rekey(stack_settings, source, target, 5)

    assert summary["events"] == len(events)
    assert summary["skipped_link_facts"] == 1
    assert summary["skipped_not_events"] == 1
    assert set(summary["records_written"]) == set(range(5))
    copied = await _read(stack_settings, target, summary["records_written"])
    assert Counter(orjson.dumps(e, option=orjson.OPT_SORT_KEYS) for _, e in copied) == Counter(
        orjson.dumps(e, option=orjson.OPT_SORT_KEYS) for e in events
    )
    assert all(p == partition_for(_key(e), 5) for p, e in copied)
    # each entity's events keep their order of the source topic
    order: dict[str, list[str]] = {}
    for _, e in copied:
        order.setdefault(_key(e), []).append(e["event_id"])
    original: dict[str, list[str]] = {}
    for e in events:
        original.setdefault(_key(e), []).append(e["event_id"])
    assert order == original

    with pytest.raises(RekeyError, match="already holds records"):
        await rekey(stack_settings, source, target, 5)
    with pytest.raises(RekeyError, match="exists with 5 partitions, not 4"):
        await rekey(stack_settings, source, target, 4)
