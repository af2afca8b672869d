"""The record format on the events topic: one event, or a batch of events.

A Kafka record value is UTF-8 JSON, either a single canonical event object, or
``{"batch": 1, "events": [event, ...]}`` where every event hashes to the record's
partition. Batching lets one Faust record carry hundreds of CRM events (Faust costs about
200 microseconds per record on a 2-core machine), while single events from third-party
producers are still accepted.

Partitioning: an event's partition is Kafka's default partitioner (murmur2 of the key
bytes) applied to :func:`streams.schema.entity_key`, so a single event keyed by entity and
a batch grouped by :func:`partition_for` land in the same partition, and the entity's
snapshot lives in that partition's table.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson
from aiokafka.partitioner import murmur2

BATCH_MARKER = "batch"


@dataclass(frozen=True, slots=True)
class Undecodable:
    """A record (or an event inside a batch) that could not be decoded."""

    reason: str
    raw: Any


@lru_cache(maxsize=1 << 16)
def partition_for(key: str, partitions: int) -> int:
    """Kafka's default partition for ``key`` (murmur2, as the Java client does; cached, as
    link facts go to the same leads and accounts again and again)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def encode_single(event: dict[str, Any]) -> bytes:
    """Encode one wire event as a record value."""
    return orjson.dumps(event)


def encode_batch(events: list[dict[str, Any]]) -> bytes:
    """Encode several wire events (all of one partition) as one record value."""
    return orjson.dumps({BATCH_MARKER: 1, "events": events})


def decode_record(value: bytes | None) -> list[dict[str, Any] | Undecodable]:
    """Decode a record value into raw event dicts (not yet validated).

    Returns one item per event; an item is :class:`Undecodable` when the record or the
    event is not a JSON object.
    """
    if value is None:
        return [Undecodable("empty record value", None)]
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return [Undecodable(f"not JSON: {exc}", value[:200].decode(errors="replace"))]
    if isinstance(obj, dict) and obj.get(BATCH_MARKER) == 1:
        events = obj.get("events")
        if not isinstance(events, list):
            return [Undecodable("batch without an 'events' list", obj)]
        return [e if isinstance(e, dict) else Undecodable("not a JSON object", e) for e in events]
    if isinstance(obj, dict):
        return [obj]
    return [Undecodable("not a JSON object", obj)]


def group_by_partition(
    events: Iterable[dict[str, Any]], partitions: int, max_batch: int = 500
) -> list[tuple[int, bytes]]:
    """Group wire events by their partition into batch records of at most ``max_batch``."""
    groups: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        key = f"{event['entity']}:{event['entity_id']}"
        groups[partition_for(key, partitions)].append(event)
    records: list[tuple[int, bytes]] = []
    for partition, group in sorted(groups.items()):
        for start in range(0, len(group), max_batch):
            records.append((partition, encode_batch(group[start : start + max_batch])))
    return records
