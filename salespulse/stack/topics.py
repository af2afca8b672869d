"""Kafka topic creation with aiokafka's admin client."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    KafkaError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
    for_code,
)
from aiokafka.structs import OffsetAndMetadata

from salespulse.config import Settings
from salespulse.stack.kafka import topic_replication
from salespulse.stack.process import StackError, log


def default_topics(settings: Settings) -> dict[str, int]:
    """The topics ``up`` creates: events and dead letters, ``settings.partitions`` each."""
    return {
        settings.topic_events: settings.partitions,
        settings.topic_dead_letters: settings.partitions,
    }


async def ensure_topics(
    settings: Settings,
    names: dict[str, int],
    replication: int | None = None,
    timeout: float = 30.0,
    configs: dict[str, dict[str, str]] | None = None,
) -> list[str]:
    """Create the missing topics of ``names`` (name -> partitions); return those created.

    ``replication`` defaults to :func:`salespulse.stack.kafka.topic_replication` (the
    settings' factor; three on a local cluster); ``configs`` gives topic configs by name
    (e.g. ``cleanup.policy``). Existing topics are left as they are (their partition count
    is not changed). Waits until every partition of the requested topics has a leader.
    """
    if replication is None:
        replication = topic_replication(settings)
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=int(timeout * 1000)
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name,
                num_partitions=parts,
                replication_factor=replication,
                topic_configs=(configs or {}).get(name),
            )
            for name, parts in names.items()
            if name not in existing
        ]
        created: list[str] = []
        if missing:
            resp = await admin.create_topics(missing, timeout_ms=int(timeout * 1000))
            for topic, code, *rest in resp.topic_errors:
                err = for_code(code) if code else None
                if err is None:
                    created.append(topic)
                elif err is not TopicAlreadyExistsError:
                    msg = rest[0] if rest else ""
                    raise StackError(f"kafka: cannot create topic {topic!r}: {err.__name__} {msg}")
            if created:
                log.info("kafka: created topics %s", ", ".join(sorted(created)))
        await _await_leaders(admin, list(names), timeout)
        return created
    finally:
        await admin.close()


async def _await_leaders(admin: AIOKafkaAdminClient, names: list[str], timeout: float) -> None:
    """Wait until each partition of ``names`` has a leader."""
    deadline = time.monotonic() + timeout
    while True:
        topics = await admin.describe_topics(names)
        if all(_has_leaders(t) for t in topics):
            return
        if time.monotonic() >= deadline:
            raise StackError(f"kafka: topics {names} have no leader after {timeout:.0f}s")
        await asyncio.sleep(0.2)


async def under_replicated(settings: Settings, names: list[str]) -> list[tuple[str, int]]:
    """Partitions of ``names`` whose in-sync replicas are fewer than their replicas."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    return [
        (t["topic"], p["partition"])
        for t in described
        for p in t["partitions"]
        if t["error_code"] or p["leader"] < 0 or len(p["isr"]) < len(p["replicas"])
    ]


async def wait_in_sync(settings: Settings, names: list[str], timeout: float = 60.0) -> float:
    """Wait until every replica of ``names`` is in sync again (e.g. after a node came
    back); returns the seconds waited."""
    started = time.monotonic()
    while True:
        try:
            lagging = await under_replicated(settings, names)
        except KafkaError as exc:
            lagging = [(repr(exc), -1)]
        if not lagging:
            return time.monotonic() - started
        if time.monotonic() - started >= timeout:
            raise StackError(f"kafka: replicas still out of sync after {timeout:.0f}s: {lagging}")
        await asyncio.sleep(0.5)


def _has_leaders(topic: dict[str, Any]) -> bool:
    """True if a described topic exists and each of its partitions has a leader."""
    parts = topic["partitions"]
    return topic["error_code"] == 0 and bool(parts) and all(p["leader"] >= 0 for p in parts)


async def warm_group_coordinator(settings: Settings, timeout: float = 30.0) -> None:
    """Wait until a group coordinator answers (creates ``__consumer_offsets`` up front).

    Without this the first consumer group (e.g. Faust's) races the creation of the
    offsets topic and logs ``GroupCoordinatorNotAvailableError`` while it retries.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                await admin.find_coordinator(f"{settings.app_id}-stack-warmup")
                return
            except KafkaError as exc:
                if time.monotonic() >= deadline:
                    raise StackError(f"kafka: no group coordinator after {timeout:.0f}s") from exc
                await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def partition_ids(settings: Settings, topic: str) -> list[int]:
    """The partition numbers of ``topic``; :class:`StackError` if it does not exist."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if described["error_code"] or not described["partitions"]:
        raise StackError(f"kafka: topic {topic!r} not found")
    return sorted(p["partition"] for p in described["partitions"])


async def rewind_group(settings: Settings, topic: str | None = None) -> dict[int, int]:
    """Commit the earliest offset of every partition of ``topic`` (default: the events
    topic) for the workers' consumer group (``settings.app_id``): the next workers start
    from the beginning. The group must have no members (stop every worker first; Kafka
    refuses the commit otherwise). Returns partition -> offset committed."""
    topic = topic or settings.topic_events
    partitions = await partition_ids(settings, topic)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=settings.app_id,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        start = await consumer.beginning_offsets(tps)
        await consumer.commit({tp: OffsetAndMetadata(start[tp], "") for tp in tps})
        return {tp.partition: start[tp] for tp in tps}
    finally:
        await consumer.stop()


async def delete_topics(settings: Settings, names: list[str], timeout: float = 30.0) -> list[str]:
    """Delete ``names`` (missing ones are ignored); returns those deleted."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=int(timeout * 1000)
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        doomed = [n for n in names if n in existing]
        if doomed:
            resp = await admin.delete_topics(doomed, timeout_ms=int(timeout * 1000))
            for topic, code, *_ in resp.topic_error_codes:
                err = for_code(code) if code else None
                if err is not None and err is not UnknownTopicOrPartitionError:
                    raise StackError(f"kafka: cannot delete topic {topic!r}: {err.__name__}")
            log.info("kafka: deleted topics %s", ", ".join(doomed))
        return doomed
    finally:
        await admin.close()
