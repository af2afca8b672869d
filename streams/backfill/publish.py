"""Publish mode: the export's events onto the events topic, exactly once, resumably.

Events are cut into *chunks* of ``chunk_size`` consecutive events of the export's
deterministic event sequence (:meth:`streams.backfill.export.Export.events`); each chunk
is grouped by target partition into batch records (:func:`streams.records.
group_by_partition`) and published in **one Kafka transaction** that also commits the
checkpoint, "events 0..n of this export are on the topic", as the offset of a consumer
group owned by this backfill (``send_offsets_to_transaction``). The records and the
checkpoint become visible together or not at all:

* a crash before the commit leaves an open transaction; the next run's producer has the
  same ``transactional_id`` (derived from the export's fingerprint), so starting it
  fences the old one and aborts that transaction: its records are never visible to
  ``read_committed`` consumers, and the checkpoint still says n;
* a crash after the commit leaves the checkpoint at the chunk's end, so the next run
  starts after it.

A JSON checkpoint file (under ``Settings.home/backfill/``) is written after each commit
for people and as a fallback: it may lag Kafka's checkpoint by one chunk (crash between
commit and file write), so Kafka's wins whenever it exists. It only matters when Kafka
has forgotten the group's offset (``offsets.retention.minutes``, 7 days by default,
after the last commit); resuming from the file then re-sends at most that one chunk,
which the engine ignores (same event ids, same versions).

The fingerprint covers the mapping, the bytes of every input file, the topic and its
partition count: the same export resumes, a changed one starts a new backfill.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import OffsetAndMetadata
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from salespulse.config import Settings
from streams.backfill.export import Export
from streams.records import group_by_partition

log = logging.getLogger(__name__)

HEADER_RUN = "salespulse-backfill"
HEADER_CHUNK = "salespulse-backfill-chunk"
MAX_RECORD_BYTES = 900_000
DEFAULT_CHUNK = 1000
# Stages at which ``on_chunk`` is called (tests use it to simulate crashes).
STAGES = ("sent", "committed", "checkpointed")

ChunkHook = Callable[[str, int], None]


class PublishError(RuntimeError):
    """The backfill cannot be published (topic layout, checkpoint of another export)."""


@dataclass
class Identity:
    """Who this backfill is to Kafka: derived from the export's fingerprint."""

    fingerprint: str
    transactional_id: str
    group_id: str

    @classmethod
    def of(cls, export: Export, settings: Settings) -> Identity:
        fp = export.fingerprint(f"\ntopic={settings.topic_events}:{settings.partitions}")
        name = f"{settings.app_id}-backfill-{export.mapping.name}-{fp[:16]}"
        return cls(fp, name, name)


@dataclass
class Checkpoint:
    """The progress file: events committed, and the last committed line of each file."""

    path: Path
    fingerprint: str
    events: int = 0
    files: dict[str, int] = field(default_factory=dict)
    chunks: int = 0
    complete: bool = False
    updated_at: str = ""

    @classmethod
    def load(cls, path: Path, fingerprint: str) -> Checkpoint:
        """The saved checkpoint, or an empty one (missing file or another export's)."""
        fresh = cls(path, fingerprint)
        if not path.is_file():
            return fresh
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            log.warning("backfill: unreadable checkpoint %s ignored", path)
            return fresh
        if data.get("fingerprint") != fingerprint:
            log.warning("backfill: checkpoint %s is of another export; ignored", path)
            return fresh
        return cls(
            path,
            fingerprint,
            int(data.get("events", 0)),
            dict(data.get("files", {})),
            int(data.get("chunks", 0)),
            bool(data.get("complete", False)),
            str(data.get("updated_at", "")),
        )

    def save(self) -> None:
        """Write atomically (temporary file, fsync, rename)."""
        self.updated_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {k: v for k, v in asdict(self).items() if k != "path"}
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w") as handle:
            json.dump(data, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(self.path)


def default_checkpoint_path(settings: Settings, export: Export, identity: Identity) -> Path:
    """``<home>/backfill/<mapping>-<fingerprint prefix>.checkpoint.json``."""
    return (
        Path(settings.home)
        / "backfill"
        / f"{export.mapping.name}-{identity.fingerprint[:16]}.checkpoint.json"
    )


@dataclass
class PublishResult:
    """What a publish run did (printed as the summary, returned to tests)."""

    topic: str
    partitions: int
    transactional_id: str
    checkpoint: str
    events_total: int
    resumed_from: int
    events_sent: int = 0
    chunks: int = 0
    records: int = 0
    bytes: int = 0
    elapsed_s: float = 0.0
    resumed_from_source: str = "start"
    complete: bool = False


async def committed_events(settings: Settings, identity: Identity) -> tuple[int, int] | None:
    """(events, chunks) of this export committed on the topic, per Kafka (None: unknown)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(
            identity.group_id, partitions=[TopicPartition(settings.topic_events, 0)]
        )
    finally:
        await admin.close()
    for meta in offsets.values():
        if meta.offset < 0:
            continue
        try:
            info = json.loads(meta.metadata or "{}")
        except ValueError:
            info = {}
        if info.get("fp") != identity.fingerprint[:32]:
            raise PublishError(
                f"consumer group {identity.group_id} holds another export's checkpoint"
            )
        return int(meta.offset), int(info.get("chunk", 0))
    return None


async def check_topic(settings: Settings) -> None:
    """The events topic must exist with ``settings.partitions`` partitions (created if absent)."""
    from salespulse.stack.topics import ensure_topics

    await ensure_topics(
        settings, {settings.topic_events: settings.partitions}, settings.replication_factor
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        (topic,) = await admin.describe_topics([settings.topic_events])
    finally:
        await admin.close()
    found = len(topic["partitions"])
    if found != settings.partitions:
        raise PublishError(
            f"topic {settings.topic_events} has {found} partitions but SALESPULSE_PARTITIONS "
            f"is {settings.partitions}: events would land in the wrong partitions"
        )


def _records(chunk: list[dict[str, Any]], partitions: int) -> list[tuple[int, bytes]]:
    """Batch records of a chunk, each below the broker's default message size."""
    max_batch = 500
    while True:
        records = group_by_partition(chunk, partitions, max_batch)
        if max_batch == 1 or all(len(v) <= MAX_RECORD_BYTES for _, v in records):
            return records
        max_batch = max(1, max_batch // 4)


def _chunks(
    events: Iterator[tuple[dict[str, Any], str, int]], size: int
) -> Iterator[list[tuple[dict[str, Any], str, int]]]:
    chunk: list[tuple[dict[str, Any], str, int]] = []
    for item in events:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _numbered_events(export: Export) -> Iterator[tuple[dict[str, Any], str, int]]:
    for item in export.items():
        if item.event is not None:
            yield item.event, item.file, item.line


async def publish(
    export: Export,
    settings: Settings,
    *,
    events_total: int,
    chunk_size: int = DEFAULT_CHUNK,
    checkpoint_path: Path | None = None,
    restart: bool = False,
    on_chunk: ChunkHook | None = None,
    console: Console | None = None,
    progress: bool = True,
) -> PublishResult:
    """Publish the export's valid events (``events_total`` of them) exactly once."""
    console = console or Console(stderr=True)
    identity = Identity.of(export, settings)
    path = checkpoint_path or default_checkpoint_path(settings, export, identity)
    await check_topic(settings)
    started = time.monotonic()
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        enable_idempotence=True,
        transactional_id=identity.transactional_id,
        linger_ms=5,
    )
    # start() obtains the producer id for the transactional id: this fences any earlier
    # producer of the same backfill and waits until its open transaction is aborted.
    await producer.start()
    try:
        checkpoint = Checkpoint.load(path, identity.fingerprint)
        in_kafka = None if restart else await committed_events(settings, identity)
        if restart:
            done, source = 0, "restart"
            checkpoint = Checkpoint(path, identity.fingerprint)
        elif in_kafka is not None:
            (done, checkpoint.chunks), source = in_kafka, "kafka"
            if done != checkpoint.events:
                log.warning(
                    "backfill: Kafka's checkpoint (%d events) is ahead of the file's "
                    "(%d): the last run stopped between commit and file write; "
                    "resuming from Kafka's",
                    done,
                    checkpoint.events,
                )
        elif checkpoint.events:
            done, source = checkpoint.events, "file"
        else:
            done, source = 0, "start"
        checkpoint.events = done
        result = PublishResult(
            settings.topic_events,
            settings.partitions,
            identity.transactional_id,
            str(path),
            events_total,
            done,
            resumed_from_source=source,
        )
        await _publish_chunks(
            export,
            settings,
            producer,
            identity,
            checkpoint,
            result,
            chunk_size,
            restart,
            on_chunk,
            console,
            progress,
        )
        checkpoint.complete = True
        checkpoint.save()
        result.complete = True
    finally:
        await producer.stop()
    result.elapsed_s = round(time.monotonic() - started, 3)
    return result


async def _publish_chunks(
    export: Export,
    settings: Settings,
    producer: AIOKafkaProducer,
    identity: Identity,
    checkpoint: Checkpoint,
    result: PublishResult,
    chunk_size: int,
    restart: bool,
    on_chunk: ChunkHook | None,
    console: Console,
    show_progress: bool,
) -> None:
    topic, done = settings.topic_events, checkpoint.events
    columns = (
        TextColumn("[bold]backfill[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("events"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, disable=not show_progress) as bar:
        task = bar.add_task("publish", total=result.events_total, completed=done)
        remaining = (e for n, e in enumerate(_numbered_events(export)) if n >= done)
        chunks = _chunks(remaining, chunk_size)
        pending_restart = restart
        seq = checkpoint.chunks
        while True:
            chunk = next(chunks, None)
            if chunk is None and not pending_restart:
                break
            chunk = chunk or []
            seq += 1
            await producer.begin_transaction()
            try:
                records = _records([e for e, _, _ in chunk], settings.partitions)
                headers = [
                    (HEADER_RUN, identity.fingerprint[:16].encode()),
                    (HEADER_CHUNK, str(seq).encode()),
                ]
                futures = [
                    await producer.send(topic, value, partition=partition, headers=headers)
                    for partition, value in records
                ]
                await asyncio.gather(*futures)  # every record acknowledged (acks=all)
                if on_chunk:
                    on_chunk("sent", seq)
                end = done + len(chunk)
                meta = json.dumps({"fp": identity.fingerprint[:32], "events": end, "chunk": seq})
                await producer.send_offsets_to_transaction(
                    {TopicPartition(topic, 0): OffsetAndMetadata(end, meta)}, identity.group_id
                )
                await producer.commit_transaction()
            except BaseException:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(producer.abort_transaction(), 10)
                raise
            pending_restart = False
            if on_chunk:
                on_chunk("committed", seq)
            done = end
            result.events_sent += len(chunk)
            result.chunks += 1
            result.records += len(records)
            result.bytes += sum(len(v) for _, v in records)
            for _, file, line in chunk:
                checkpoint.files[file] = line
            checkpoint.events, checkpoint.chunks = done, seq
            checkpoint.save()
            if on_chunk:
                on_chunk("checkpointed", seq)
            bar.update(task, completed=done)


def format_summary(result: PublishResult) -> str:
    """The end-of-run summary."""
    rate = result.events_sent / result.elapsed_s if result.elapsed_s else 0.0
    lines = [
        f"published {result.events_sent} events in {result.chunks} transactions "
        f"({result.records} records, {result.bytes / 1e6:.1f} MB) to {result.topic} "
        f"[{result.partitions} partitions] in {result.elapsed_s:.1f}s ({rate:,.0f} events/s)",
    ]
    if result.resumed_from:
        lines.append(
            f"resumed after {result.resumed_from} events already on the topic "
            f"(checkpoint from {result.resumed_from_source})"
        )
    if result.events_sent == 0 and result.resumed_from >= result.events_total:
        lines.append(
            "nothing to do: this export is already on the topic (use --restart to publish it again)"
        )
    lines.append(
        f"total on the topic from this export: {result.resumed_from + result.events_sent}"
        f" of {result.events_total} events; checkpoint {result.checkpoint}"
    )
    return "\n".join(lines)
