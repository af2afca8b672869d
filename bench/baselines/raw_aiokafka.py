"""Baseline "the limit": raw aiokafka consumption with JSON decoding and nothing else.

Reads a topic from the beginning with ``getmany`` up to the given end offsets, decodes
every record value with orjson and counts CRM events (a batch record counts its events).
Prints one JSON line: events, records, bytes, seconds from the first record to the last,
and the process's CPU seconds over that span.

    python -m bench.baselines.raw_aiokafka --bootstrap 127.0.0.1:29392 --topic T \
        --ends 0:120,1:98,2:131,3:101
"""

from __future__ import annotations

import asyncio
import sys
import time

import click
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition


async def consume(bootstrap: str, topic: str, ends: dict[int, int]) -> dict[str, float]:
    """Consume ``topic`` partitions up to ``ends`` (exclusive); return the figures."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
        fetch_max_wait_ms=0,  # the fastest of the settings tried on this machine
    )
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in sorted(ends)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        remaining = {tp: ends[tp.partition] for tp in parts if ends[tp.partition] > 0}
        events = records = size = 0
        first = 0.0
        cpu0 = 0.0
        while remaining:
            batches = await consumer.getmany(timeout_ms=1000, max_records=100_000)
            if batches and not first:
                first, cpu0 = time.perf_counter(), time.process_time()
            for tp, messages in batches.items():
                for message in messages:
                    value = message.value or b""
                    obj = orjson.loads(value)
                    events += len(obj["events"]) if "batch" in obj else 1
                    records += 1
                    size += len(value)
                if messages and messages[-1].offset + 1 >= remaining.get(tp, 0):
                    remaining.pop(tp, None)
        seconds = time.perf_counter() - first
        cpu = time.process_time() - cpu0
    finally:
        await consumer.stop()
    return {
        "events": events,
        "records": records,
        "bytes": size,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "events_per_s": events / seconds if seconds else 0.0,
    }


@click.command()
@click.option("--bootstrap", required=True)
@click.option("--topic", required=True)
@click.option("--ends", required=True, help="partition:end_offset,... (exclusive ends)")
def main(bootstrap: str, topic: str, ends: str) -> None:
    """Consume and decode; print the figures as one JSON line."""
    end_offsets = {int(p): int(o) for p, o in (item.split(":") for item in ends.split(","))}
    result = asyncio.run(consume(bootstrap, topic, end_offsets))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
