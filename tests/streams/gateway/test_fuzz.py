"""Fuzzing every endpoint: the gateway never answers 500 and never publishes a bad event.

Thousands of plausible-then-mutated payloads per endpoint, mostly correctly signed (so
they reach the parsers), some with wrong signatures, stale timestamps, odd content types
or oversized bodies. A real gateway (real Redis and Kafka of the test stack) publishes to
a topic of its own; afterwards every record on it must be a valid canonical event whose
field values the state layer can read, and exactly as many as the gateway reported.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiokafka import AIOKafkaConsumer, TopicPartition
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from salespulse.config import Settings
from salespulse.stack import topics
from state.calendar import BusinessCalendar
from state.money import parse_amount
from streams.gateway.app import MAX_BODY_ENV, METRICS, make_app
from streams.gateway.metrics import SOURCES
from streams.gateway.normalize import KINDS, normalize_fields
from streams.gateway.publisher import Publisher
from streams.schema import ENTITY_TYPES, CrmEvent
from tests.streams.gateway import payloads as p
from tests.streams.gateway import strategies as s
from tests.streams.gateway.conftest import configure

pytestmark = pytest.mark.services

# Per endpoint: with a recording publisher (real Redis), and through the real Kafka.
EXAMPLES = int(os.environ.get("SALESPULSE_FUZZ_EXAMPLES", "2000"))
STACK_EXAMPLES = int(os.environ.get("SALESPULSE_FUZZ_STACK_EXAMPLES", "150"))
# Seconds per endpoint after which no further batch of examples is started.
BUDGET_S = float(os.environ.get("SALESPULSE_FUZZ_BUDGET_S", "25"))
STACK_BUDGET_S = float(os.environ.get("SALESPULSE_FUZZ_STACK_BUDGET_S", "3"))
MAX_BODY = 8192
ALLOWED = {200, 400, 401, 403, 413, 415, 422}


class ThreadedGateway:
    """The gateway app served on a real port by its own event loop in a thread."""

    def __init__(self, settings: Settings, publisher: Publisher | None = None) -> None:
        self.settings = settings
        self.publisher = publisher
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.app = make_app(self.settings, publisher=self.publisher)
        runner = web.AppRunner(self.app, access_log=None)
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(runner.cleanup())
        self.loop.close()

    def __enter__(self) -> ThreadedGateway:
        old = os.environ.get(MAX_BODY_ENV)
        os.environ[MAX_BODY_ENV] = str(MAX_BODY)
        try:
            self.thread.start()
            assert self.ready.wait(30), "gateway did not start"
        finally:
            if old is None:
                os.environ.pop(MAX_BODY_ENV, None)
            else:
                os.environ[MAX_BODY_ENV] = old
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)

    def run(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def metric(self, name: str, **labels: str) -> float:
        return self.app[METRICS].value(name, labels)


class Client:
    """A keep-alive HTTP client that reconnects when the server closed the connection."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
        for attempt in range(2):
            try:
                self.conn.request("POST", path, body=body, headers=headers)
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                return resp.status, resp.getheader("Content-Type", ""), data
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                if attempt:
                    raise
        raise AssertionError("unreachable")


class RecordingPublisher(Publisher):
    """Keeps what would be published (Kafka's round trip dominates a fuzz example)."""

    def __init__(self) -> None:
        super().__init__("unused:9092", "unused")
        self.records: list[tuple[bytes, bytes]] = []

    async def publish(self, records: Sequence[tuple[bytes, bytes]]) -> None:
        self.records.extend(records)

    async def ready(self) -> bool:
        return True

    async def close(self) -> None:
        return None


@pytest.fixture(scope="module")
def fuzz_gateway(stack_settings: Settings) -> Iterator[ThreadedGateway]:
    """The gateway on real Redis and Kafka, publishing to a topic of its own."""
    topic = f"salespulse-gateway-fuzz-{uuid.uuid4().hex[:8]}"
    settings = configure(stack_settings, topic_events=topic)
    asyncio.run(_create_topic(settings))
    with ThreadedGateway(settings) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def fast_gateway(stack_settings: Settings) -> Iterator[ThreadedGateway]:
    """The gateway on real Redis with a recording publisher."""
    with ThreadedGateway(configure(stack_settings), RecordingPublisher()) as gateway:
        yield gateway


async def _create_topic(settings: Settings) -> None:
    await topics.ensure_topics(settings, {settings.topic_events: settings.partitions})


# --- requests: body + headers per endpoint ----------------------------------------------

CONTENT_TYPES = ["application/json", "application/json; charset=utf-8", "text/plain",
                 "text/xml", "", "application/x-www-form-urlencoded"]  # fmt: skip


@st.composite
def headers_for(draw: st.DrawFn, kind: str, uri: str, body: bytes) -> dict[str, str]:
    mode = draw(st.sampled_from([0] * 12 + [1, 2, 3, 4, 5, 6]))
    now_ms = int(time.time() * 1000)
    if kind == "hubspot":
        ts = {1: now_ms - 400_000, 2: now_ms + 400_000}.get(mode, now_ms)
        secret = "wrong" if mode == 3 else p.HUBSPOT_SECRET
        headers = p.hubspot_headers(uri, body, secret=secret, timestamp=ts)
        if mode == 4:
            headers["X-HubSpot-Signature-v3"] = draw(st.text(max_size=50))
        if mode == 5:
            headers["X-HubSpot-Request-Timestamp"] = draw(st.text(max_size=20))
    elif kind == "pipedrive":
        headers = {"Content-Type": "application/json", "Authorization": p.basic_auth()}
        if mode == 1:
            headers["Authorization"] = p.basic_auth(password="wrong")
        if mode == 2:
            headers["Authorization"] = draw(st.text(max_size=40))
        if mode == 3:
            del headers["Authorization"]
    elif kind == "outbound":
        headers = {"Content-Type": draw(st.sampled_from(["text/xml", "text/xml; charset=utf-8",
                                                          "application/soap+xml"]))}  # fmt: skip
    else:
        ts = {1: int(time.time()) - 400, 2: int(time.time()) + 400}.get(mode)
        secret = "wrong" if mode == 3 else p.GENERIC_SECRET
        headers = p.generic_headers(body, secret=secret, timestamp=ts)
        if mode == 4:
            headers["X-SalesPulse-Signature"] = draw(st.text(max_size=70))
    if mode == 6:
        headers["Content-Type"] = draw(st.sampled_from(CONTENT_TYPES))
    cleaned = {}
    for k, v in headers.items():  # http.client sends latin-1 headers only
        value = v.encode("latin-1", "replace").decode("latin-1").replace("\r", "").replace("\n", "")
        cleaned[k] = value
    return cleaned


ENDPOINTS = {
    "hubspot": ("/webhooks/hubspot", s.hubspot_payload()),
    "pipedrive": ("/webhooks/pipedrive", s.pipedrive_payload()),
    "salesforce_cdc": ("/webhooks/salesforce/cdc", s.cdc_payload()),
    "generic": ("/webhooks/generic", s.generic_payload()),
}


@st.composite
def request_for(draw: st.DrawFn, name: str, port: int) -> tuple[str, bytes, dict[str, str]]:
    if name == "salesforce_outbound":
        path, body, kind = "/webhooks/salesforce/outbound", draw(s.outbound_body()), "outbound"
    else:
        path, strategy = ENDPOINTS[name]
        body, kind = s.encode(draw, draw(strategy)), name
        kind = "generic" if name in ("salesforce_cdc", "generic") else kind
    if draw(s.rare) and draw(s.rare):
        body = body + b" " * MAX_BODY  # over the limit
    return path, body, draw(headers_for(kind, f"http://127.0.0.1:{port}{path}", body))


# --- the fuzz tests -----------------------------------------------------------------------


def _fuzz(gateway: ThreadedGateway, name: str, examples: int, budget_s: float, chunk: int) -> None:
    """Up to ``examples`` requests, in hypothesis runs of ``chunk``, while the budget lasts.

    The budget keeps the suite's time bounded on a loaded machine; on an idle one (about
    6 ms an example) every example runs.
    """
    client = Client(gateway.port)
    statuses: dict[int, int] = {}

    def check(request: tuple[str, bytes, dict[str, str]]) -> None:
        path, body, headers = request
        status, content_type, data = client.post(path, body, headers)
        statuses[status] = statuses.get(status, 0) + 1
        assert status in ALLOWED, (status, data[:300], body[:300])
        if status != 200 and content_type.startswith("application/json"):
            assert set(orjson.loads(data)) == {"error", "field", "reason"}
        elif status != 200:  # refused by aiohttp's HTTP parser (e.g. a control char in a header)
            assert status == 400, (status, data[:300])

    started = time.monotonic()
    done = 0
    while done < examples and (done == 0 or time.monotonic() - started < budget_s):
        run = settings(max_examples=min(chunk, examples - done), deadline=None, database=None,
                       suppress_health_check=list(HealthCheck))  # fmt: skip
        run(given(request=request_for(name, gateway.port))(check))()
        done += min(chunk, examples - done)
    elapsed = time.monotonic() - started
    counts = dict(sorted(statuses.items()))
    print(f"fuzz {name}: {sum(statuses.values())} requests in {elapsed:.1f}s {counts}")
    assert gateway.metric("salespulse_gateway_requests_total", source=name, outcome="error") == 0
    assert statuses.get(200, 0) > 0, statuses


@pytest.mark.parametrize("name", SOURCES)
def test_fuzzed_requests_never_answer_500_nor_publish_bad_events(
    fast_gateway: ThreadedGateway, name: str
) -> None:
    assert isinstance(fast_gateway.publisher, RecordingPublisher)
    before = len(fast_gateway.publisher.records)
    _fuzz(fast_gateway, name, EXAMPLES, BUDGET_S, 100)
    check_records(fast_gateway.publisher.records[before:])


@pytest.mark.parametrize("name", SOURCES)
def test_fuzzed_requests_through_real_kafka_publish_only_valid_events(
    fuzz_gateway: ThreadedGateway, name: str
) -> None:
    _fuzz(fuzz_gateway, name, STACK_EXAMPLES, STACK_BUDGET_S, 50)
    entities = (*ENTITY_TYPES, "other")
    published = sum(
        fuzz_gateway.metric("salespulse_gateway_events_published_total", source=src, entity=ent)
        for src in SOURCES
        for ent in entities
    )
    records = fuzz_gateway.run(_read_topic(fuzz_gateway.settings))
    assert len(records) == published  # the gateway's own topic: exactly what it reported
    check_records(records)


def check_records(records: list[tuple[bytes, bytes]]) -> None:
    """Each record is one canonical event, keyed by its entity, readable by the state layer."""
    calendar = BusinessCalendar("America/New_York")
    for key, value in records:
        event = CrmEvent.model_validate(orjson.loads(value))
        assert key == event.key.encode()
        assert normalize_fields(event.fields, "") == event.fields  # already canonical
        for name, field_value in event.fields.items():
            if field_value is None or KINDS.get(name) is None:
                continue
            kind = KINDS[name].__name__
            if kind == "_instant":
                calendar.instant_ms(field_value)
                calendar.day_of_value(field_value)
            if kind == "_number":
                parse_amount(field_value)


async def _read_topic(settings: Settings) -> list[tuple[bytes, bytes]]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(settings.topic_events, i) for i in range(settings.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[tuple[bytes, bytes]] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            positions = {tp: await consumer.position(tp) for tp in tps}
            if all(positions[tp] >= end for tp, end in ends.items()):
                break
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                records.extend((m.key, m.value) for m in messages)
        return records
    finally:
        await consumer.stop()
