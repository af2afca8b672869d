"""Producing the workload into Kafka before any system consumes it (produce first, then
consume, so generation never limits a measurement).

Two record formats, as the systems' producers write them:

* **batched** (SalesPulse): events grouped by their partition (Kafka's murmur2 of the
  entity key, as :func:`streams.records.group_by_partition`) into ``{"batch": 1,
  "events": [...]}`` records of at most 500 events, sent to that partition;
* **single** (raw baseline, obvious Faust, Quix): one event per record, keyed
  ``entity:id``, sent to the same partition.

The producer is librdkafka's (``confluent_kafka``, installed with quixstreams): it is
not under test and is several times faster than aiokafka for millions of records.
Generation, encoding and producing times are measured separately.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from bench.records import batch_records
from bench.workload import Workload

MAX_BATCH = 500


@dataclass
class Target:
    """One topic being written, and what was written to it."""

    topic: str
    batched: bool
    limit: int | None = None  # only the first ``limit`` events (a prefix of the stream)
    records: int = 0
    events: int = 0
    bytes: int = 0
    ends: dict[int, int] = field(default_factory=dict)


@dataclass
class Timings:
    generate_s: float = 0.0
    check_s: float = 0.0
    encode_produce_s: float = 0.0
    flush_s: float = 0.0

    def as_dict(self, events: int) -> dict[str, Any]:
        gen = self.generate_s
        return {
            "generate_s": round(gen, 2),
            "generate_events_per_s": round(events / gen) if gen else None,
            "independent_computation_s": round(self.check_s, 2),
            "encode_produce_s": round(self.encode_produce_s + self.flush_s, 2),
        }


def producer(bootstrap: str, linger_ms: int = 20, reports: bool = False) -> Producer:
    """An idempotent librdkafka producer; ``reports``: per-message delivery callbacks
    also run on success (otherwise only failures are reported, and raise)."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": linger_ms,
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
        "batch.num.messages": 10_000,
        "error_cb": _error,
        "log_level": 3,  # errors only: no startup retries on the console
    }
    if not reports:
        config.update({"delivery.report.only.error": True, "on_delivery": _delivery_failed})
    return Producer(config)


def _delivery_failed(err: Any, msg: Any) -> None:
    if err is not None:
        raise RuntimeError(f"kafka delivery failed: {err}")


def _error(err: Any) -> None:
    if err.fatal():
        raise RuntimeError(f"kafka producer error: {err}")


def send(prod: Producer, topic: str, value: bytes, partition: int, key: bytes | None) -> None:
    """Produce one record, waiting for queue space when librdkafka's queue is full."""
    while True:
        try:
            prod.produce(topic, value, key=key, partition=partition)
            return
        except BufferError:
            prod.poll(0.05)


def write_chunk(
    prod: Producer, targets: list[Target], chunk: list[tuple[int, dict]], at: int
) -> None:
    """Write one chunk of ``(partition, event)`` (starting at stream index ``at``)."""
    for target in targets:
        part = chunk if target.limit is None else chunk[: max(0, target.limit - at)]
        if not part:
            continue
        if target.batched:
            for p, value in batch_records(part, MAX_BATCH):
                send(prod, target.topic, value, p, None)
                target.records += 1
                target.bytes += len(value)
        else:
            for p, event in part:
                value = orjson.dumps(event)
                key = f"{event['entity']}:{event['entity_id']}".encode()
                send(prod, target.topic, value, p, key)
                target.bytes += len(value)
            target.records += len(part)
        target.events += len(part)
    prod.poll(0)


def produce_workload(
    bootstrap: str,
    workload: Workload,
    targets: list[Target],
    on_chunk: Callable[[int, list[tuple[int, dict]]], None] | None = None,
    chunk_size: int = 20_000,
    max_events: int | None = None,
) -> Timings:
    """Generate the workload once and write it to every target; fill their end offsets.

    ``on_chunk(start_index, chunk)`` sees every chunk (the independent computation);
    ``max_events`` stops after that many events (a prefix of the workload).
    """
    timings = Timings()
    prod = producer(bootstrap)
    at = 0
    chunks = workload.chunks(chunk_size)
    while max_events is None or at < max_events:
        t0 = time.perf_counter()
        chunk = next(chunks, None)
        t1 = time.perf_counter()
        timings.generate_s += t1 - t0
        if chunk is None:
            break
        if max_events is not None:
            chunk = chunk[: max_events - at]
        if on_chunk is not None:
            on_chunk(at, chunk)
        t2 = time.perf_counter()
        timings.check_s += t2 - t1
        write_chunk(prod, targets, chunk, at)
        timings.encode_produce_s += time.perf_counter() - t2
        at += len(chunk)
    t3 = time.perf_counter()
    if prod.flush(300) != 0:
        raise RuntimeError("kafka producer could not deliver everything in 300 s")
    timings.flush_s = time.perf_counter() - t3
    for target in targets:
        target.ends = end_offsets(bootstrap, target.topic, workload.config.partitions)
    return timings


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """High watermark of each partition (the offset after the last record)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-watermarks"})
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        }
    finally:
        consumer.close()


def delete_topics(bootstrap: str, contains: str) -> list[str]:
    """Delete every topic whose name contains ``contains`` (a run's tag)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [t for t in admin.list_topics(timeout=10).topics if contains in t]
    if names:
        for future in admin.delete_topics(names, operation_timeout=30).values():
            with contextlib.suppress(Exception):  # already gone
                future.result()
    return names
