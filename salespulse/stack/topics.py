"""Kafka topic creation with aiokafka's admin client."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from salespulse.config import Settings
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
    replication: int = 1,
    timeout: float = 30.0,
) -> list[str]:
    """Create the missing topics of ``names`` (name -> partitions); return those created.

    Existing topics are left as they are (their partition count is not changed). Waits
    until every partition of the requested topics has a leader.
    """
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=int(timeout * 1000)
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, num_partitions=parts, replication_factor=replication)
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
