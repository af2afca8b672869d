"""Kafka stops and comes back: 503 while it is down, nothing lost, nothing doubled.

Runs against a private single-node Kafka (its own home and ports, the session's jar
cache), so stopping it cannot disturb the session stack other tests use.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import shutil
import socket
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaConsumer, TopicPartition

from salespulse.config import Settings
from salespulse.stack import kafka, process, topics
from streams.gateway.app import make_app
from streams.gateway.publisher import Publisher
from streams.schema import CrmEvent
from tests.streams.gateway.conftest import configure, run_id
from tests.streams.gateway.payloads import (
    basic_auth,
    canonical,
    dumps,
    generic_headers,
    hubspot_event,
    hubspot_headers,
    pipedrive_body,
)

pytestmark = [pytest.mark.services, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def private_kafka(
    stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """A second, private Kafka node; the Redis of the session stack."""
    home = tmp_path_factory.mktemp("gateway-outage")
    settings = stack_settings.model_copy(
        update={
            "home": Path(home),
            "kafka_port": _free_port(),
            "kafka_controller_port": _free_port(),
        }
    )
    jars = kafka.libs_dir(stack_settings).parent  # reuse the session's jar cache
    (kafka.kafka_root(settings)).mkdir(parents=True, exist_ok=True)
    kafka.libs_dir(settings).parent.symlink_to(jars, target_is_directory=True)
    _start(settings)
    try:
        yield settings
    finally:
        process.stop(settings, "kafka")
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def no_unseen_failures(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """After the test (its event loop gone): every failure of a discarded producer was
    seen, not left for asyncio to log as an error ("Future exception was never retrieved")."""
    caplog.set_level(logging.ERROR, logger="asyncio")
    yield
    gc.collect()
    assert not [r.getMessage() for r in caplog.records if "never retrieved" in r.getMessage()]


def _start(settings: Settings) -> None:
    kafka.launch(settings)
    kafka.wait_ready(settings, timeout=90)
    process.run_coro(topics.ensure_topics(settings, topics.default_topics(settings)))


class Deliveries:
    """Webhook requests as a provider would (re)send them: same body, fresh signature."""

    def __init__(self, client: TestClient, rid: str) -> None:
        self.client = client
        self.rid = rid
        self.requests: list[tuple[str, str, Any]] = []  # (kind, path, payload)
        self.event_ids: dict[int, set[str]] = {}  # request index -> canonical event ids

    def add_batch(self, n: int, offset: int) -> list[int]:
        made = []
        for i in range(offset, offset + n):
            rid = self.rid
            kind = ("generic", "hubspot", "pipedrive")[i % 3]
            if kind == "generic":
                payload: Any = [
                    canonical(f"g{i}-{j}-{rid}", f"G{i}-{j}-{rid}", i) for j in range(3)
                ]
                ids = {e["event_id"] for e in payload}
                path = "/webhooks/generic"
            elif kind == "hubspot":
                payload = [hubspot_event(i * 10 + j, f"{rid}{i}{j}", name="amount", value=str(i))
                           for j in range(2)]  # fmt: skip
                ids = {f"hubspot:{e['eventId']}" for e in payload}
                path = "/webhooks/hubspot"
            else:
                payload = pipedrive_body("change", "deal", f"P{i}-{rid}", {"value": i},
                                         delivery_id=f"pd-{i}-{rid}")  # fmt: skip
                ids = {f"pipedrive:pd-{i}-{rid}"}
                path = "/webhooks/pipedrive"
            self.requests.append((kind, path, payload))
            self.event_ids[len(self.requests) - 1] = ids
            made.append(len(self.requests) - 1)
        return made

    async def send(self, index: int) -> int:
        kind, path, payload = self.requests[index]
        body = dumps(payload)
        if kind == "generic":
            headers = generic_headers(body)
        elif kind == "hubspot":
            headers = hubspot_headers(str(self.client.make_url(path)), body)
        else:
            headers = {"Content-Type": "application/json", "Authorization": basic_auth()}
        resp = await self.client.post(path, data=body, headers=headers)
        if resp.status == 503:
            assert int(resp.headers["Retry-After"]) > 0
        await resp.read()
        return resp.status


async def _read_all(settings: Settings, rid: str, expect: int, timeout: float = 30) -> list[dict]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(settings.topic_events, p) for p in range(settings.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        events: list[dict] = []
        deadline = time.monotonic() + timeout
        quiet_until = None
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for messages in batch.values():
                for m in messages:
                    event = orjson.loads(m.value)
                    CrmEvent.model_validate(event)
                    if rid in event["entity_id"]:
                        events.append(event)
            if len(events) >= expect:
                quiet_until = quiet_until or time.monotonic() + 1.0
                if time.monotonic() >= quiet_until:
                    break
        return events
    finally:
        await consumer.stop()


async def test_kafka_outage_503_then_every_redelivery_published_once(
    private_kafka: Settings, no_unseen_failures: None
) -> None:
    rid = run_id()
    settings = configure(private_kafka)
    publisher = Publisher(settings.kafka_bootstrap, settings.topic_events, timeout_s=3)
    async with TestClient(TestServer(make_app(settings, publisher=publisher))) as client:
        d = Deliveries(client, rid)
        before = d.add_batch(12, 0)
        assert [await d.send(i) for i in before] == [200] * len(before)

        await asyncio.to_thread(process.stop, private_kafka, "kafka")
        during = d.add_batch(12, 100)
        t0 = time.monotonic()
        statuses = await asyncio.gather(*(d.send(i) for i in during))  # concurrent, mid-flight
        statuses += [await d.send(i) for i in during]  # the providers' first retries
        assert set(statuses) == {503}, statuses
        assert time.monotonic() - t0 < 20
        health = await client.get("/healthz")
        assert health.status == 503 and (await health.json())["kafka"] == "down"

        await asyncio.to_thread(_start, private_kafka)
        # Providers retry: everything refused before is published now; the earlier
        # (accepted) deliveries retried too are recognised as duplicates.
        assert [await d.send(i) for i in during] == [200] * len(during)
        assert [await d.send(i) for i in before] == [200] * len(before)

    expected = set().union(*d.event_ids.values())
    events = await _read_all(private_kafka, rid, len(expected))
    counts = Counter(e["event_id"] for e in events)
    assert set(counts) == expected  # nothing that got a 2xx is missing, nothing else is there
    assert max(counts.values()) == 1, [k for k, n in counts.items() if n > 1]
