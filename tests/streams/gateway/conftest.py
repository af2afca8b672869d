"""Fixtures of the gateway tests: configured settings, the app on a test client, a topic tail."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import SecretStr

from salespulse.config import Settings
from streams.gateway.app import make_app
from streams.schema import CrmEvent
from tests.streams.gateway.payloads import (
    GENERIC_SECRET,
    HUBSPOT_SECRET,
    PIPEDRIVE_PASSWORD,
    PIPEDRIVE_USER,
    SF_ORG,
)


def configure(settings: Settings, **overrides: Any) -> Settings:
    """``settings`` with every webhook secret set and a fresh dedupe key prefix."""
    values: dict[str, Any] = {
        "hubspot_app_secret": SecretStr(HUBSPOT_SECRET),
        "pipedrive_basic_user": PIPEDRIVE_USER,
        "pipedrive_basic_password": SecretStr(PIPEDRIVE_PASSWORD),
        "generic_webhook_secret": SecretStr(GENERIC_SECRET),
        "salesforce_org_id": SF_ORG,
        "redis_key_prefix": f"gwtest-{uuid.uuid4().hex[:10]}",
        **overrides,
    }
    return settings.model_copy(update=values)


@pytest.fixture
def gw_settings(stack_settings: Settings) -> Settings:
    """The test stack's settings with the gateway's secrets and a fresh dedupe namespace."""
    return configure(stack_settings)


@pytest.fixture
async def gateway(gw_settings: Settings) -> AsyncIterator[TestClient]:
    """The gateway app (real Redis and Kafka of the test stack) behind a test client."""
    async with TestClient(TestServer(make_app(gw_settings))) as client:
        yield client


class TopicTail:
    """Reads what was appended to the events topic after :meth:`start`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False
        )
        self.start_offsets: dict[TopicPartition, int] = {}
        self.records: list[tuple[bytes | None, bytes | None]] = []

    async def start(self) -> None:
        await self.consumer.start()
        topic = self.settings.topic_events
        tps = [TopicPartition(topic, p) for p in range(self.settings.partitions)]
        self.consumer.assign(tps)
        self.start_offsets = await self.consumer.end_offsets(tps)
        for tp, offset in self.start_offsets.items():
            self.consumer.seek(tp, offset)

    async def stop(self) -> None:
        await self.consumer.stop()

    async def poll(self, timeout: float = 0.2) -> None:
        batches = await self.consumer.getmany(timeout_ms=int(timeout * 1000))
        for messages in batches.values():
            self.records.extend((m.key, m.value) for m in messages)

    def events(
        self, keep: Callable[[dict[str, Any]], bool] = lambda e: True
    ) -> list[dict[str, Any]]:
        """Decoded events read so far (each record must be one valid canonical event)."""
        out = []
        for key, value in self.records:
            event = orjson.loads(value or b"null")
            CrmEvent.model_validate(event)
            assert key == f"{event['entity']}:{event['entity_id']}".encode()
            if keep(event):
                out.append(event)
        return out

    async def wait_for(
        self,
        count: int,
        keep: Callable[[dict[str, Any]], bool] = lambda e: True,
        timeout: float = 15.0,
        settle: float = 0.5,
    ) -> list[dict[str, Any]]:
        """At least ``count`` matching events; then reads ``settle`` seconds more for extras."""
        deadline = time.monotonic() + timeout
        while len(self.events(keep)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.events(keep))} of {count} events after {timeout}s")
            await self.poll()
        end = time.monotonic() + settle
        while time.monotonic() < end:
            await self.poll(0.1)
        return self.events(keep)


@pytest.fixture
async def topic_tail(stack_settings: Settings) -> AsyncIterator[TopicTail]:
    """A :class:`TopicTail` on the events topic, positioned at its current end."""
    tail = TopicTail(stack_settings)
    await tail.start()
    try:
        yield tail
    finally:
        await asyncio.shield(tail.stop())


def run_id() -> str:
    """A short unique id to tell this test's entities from any other's."""
    return uuid.uuid4().hex[:10]
