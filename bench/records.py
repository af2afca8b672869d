"""Kafka partitioning and the batched record format, fast enough for millions of events.

>>> [partition_for(f"deal:D{n}", 4) for n in range(6)]
[1, 3, 3, 1, 0, 0]
"""

from __future__ import annotations

import struct
from typing import Any

from streams.records import encode_batch


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (as ``aiokafka.partitioner.murmur2``), about 4x faster for short keys."""
    length, m = len(data), 0x5BD1E995
    h = 0x9747B28C ^ length
    n4 = length >> 2
    for k in struct.unpack_from(f"<{n4}I", data):
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        h = ((h * m) & 0xFFFFFFFF) ^ ((k * m) & 0xFFFFFFFF)
    rest = data[n4 << 2 :]
    if rest:
        for i in range(len(rest) - 1, -1, -1):
            h ^= rest[i] << (8 * i)
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def partition_for(key: str, partitions: int) -> int:
    """Kafka's default partition of ``key`` (same as :func:`streams.records.partition_for`)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def batch_records(
    chunk: list[tuple[int, dict[str, Any]]], max_batch: int = 500
) -> list[tuple[int, bytes]]:
    """Batched records of a chunk, exactly as :func:`streams.records.group_by_partition`
    makes them (grouped by partition, in partition order, at most ``max_batch`` each),
    using the partitions computed at generation."""
    groups: dict[int, list[dict[str, Any]]] = {}
    for p, event in chunk:
        groups.setdefault(p, []).append(event)
    return [
        (p, encode_batch(events[start : start + max_batch]))
        for p, events in sorted(groups.items())
        for start in range(0, len(events), max_batch)
    ]
