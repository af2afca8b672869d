"""The gateway end to end: real HTTP app, real Redis, real Kafka (the test stack)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from salespulse.config import Settings
from streams.gateway.app import METRICS, make_app
from streams.gateway.publisher import Publisher
from tests.streams.gateway.conftest import TopicTail, configure, run_id
from tests.streams.gateway.payloads import (
    T0,
    basic_auth,
    canonical,
    cdc_message,
    dumps,
    generic_headers,
    hubspot_event,
    hubspot_headers,
    outbound_xml,
    pipedrive_body,
)

pytestmark = pytest.mark.services


def _mine(rid: str):
    return lambda e: rid in e["entity_id"]


async def _post_hubspot(client: TestClient, body: bytes, **kw: Any) -> Any:
    uri = str(client.make_url("/webhooks/hubspot"))
    return await client.post(
        "/webhooks/hubspot", data=body, headers=hubspot_headers(uri, body, **kw)
    )


async def _post_generic(client: TestClient, path: str, payload: Any) -> Any:
    body = dumps(payload)
    return await client.post(path, data=body, headers=generic_headers(body))


async def _post_pipedrive(client: TestClient, payload: Any, auth: str | None = None) -> Any:
    headers = {"Content-Type": "application/json", "Authorization": auth or basic_auth()}
    return await client.post("/webhooks/pipedrive", data=dumps(payload), headers=headers)


def _m(client: TestClient, name: str, labels: dict[str, str]) -> float:
    return client.server.app[METRICS].value(name, labels)


# --- each source: canonical events on the topic, retries and re-ids published once ------


async def test_hubspot_events_reach_the_topic_once(
    gateway: TestClient, topic_tail: TopicTail
) -> None:
    rid = run_id()
    batch = [
        hubspot_event(101, f"{rid}1", name="dealstage", value="closedwon"),
        hubspot_event(102, f"{rid}1", name="amount", value="1054.50", occurred=T0 + 1),
        hubspot_event(103, f"{rid}2", "contact.propertyChange", "lifecyclestage",
                      "salesqualifiedlead"),
        hubspot_event(104, f"{rid}3", "ticket.creation", None),
    ]  # fmt: skip
    resp = await _post_hubspot(gateway, dumps(batch))
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {
        "status": "accepted", "published": 3, "duplicates": 0, "ignored": 1, "gaps": 0,
    }  # fmt: skip
    # HubSpot retries the same delivery; and re-sends the same changes under new event ids.
    retry = await _post_hubspot(gateway, dumps(batch))
    assert (await retry.json())["duplicates"] == 3
    renamed = [{**e, "eventId": e["eventId"] + 1000, "attemptNumber": 1} for e in batch]
    again = await _post_hubspot(gateway, dumps(renamed))
    assert (await again.json())["duplicates"] == 3
    events = await topic_tail.wait_for(3, _mine(rid))
    assert len(events) == 3
    by_id = {(e["entity_id"], e["version"]): e for e in events}
    won = by_id[(f"{rid}1", T0)]
    assert won["event_id"] == "hubspot:101"
    assert won["fields"] == {"stage": "closedwon", "status": "won"}
    assert won["occurred_at"] == "2023-11-14T22:13:20Z"
    assert by_id[(f"{rid}1", T0 + 1)]["fields"] == {"amount": "1054.50"}
    lead = by_id[(f"{rid}2", T0)]
    assert (lead["entity"], lead["fields"]) == ("lead", {"stage": "sql"})
    assert _m(gateway, "salespulse_gateway_duplicates_dropped_total",
              {"source": "hubspot", "key": "provider_id"}) == 3  # fmt: skip
    assert _m(gateway, "salespulse_gateway_duplicates_dropped_total",
              {"source": "hubspot", "key": "business_key"}) == 3  # fmt: skip


async def test_pipedrive_events_reach_the_topic_once(
    gateway: TestClient, topic_tail: TopicTail
) -> None:
    rid = run_id()
    data = {"id": f"{rid}7", "status": "won", "value": 2500, "currency": "EUR",
            "owner_id": 18487521, "stage_id": 4, "won_time": "2023-11-14T22:13:20Z",
            "add_time": "2023-11-01T10:00:00Z"}  # fmt: skip
    change = pipedrive_body("change", "deal", f"{rid}7", data, {"status": "open"})
    merge = pipedrive_body("delete", "person", f"{rid}8", None, {"id": 8}, merged_to_id=f"{rid}9")
    for body in (change, merge, change, merge):
        resp = await _post_pipedrive(gateway, body)
        assert resp.status == 200, await resp.text()
    new_id = {**change, "meta": {**change["meta"], "id": "another-delivery-id", "attempt": 2}}
    assert (await (await _post_pipedrive(gateway, new_id)).json())["duplicates"] == 1
    events = await topic_tail.wait_for(2, _mine(rid))
    assert len(events) == 2
    deal = next(e for e in events if e["entity"] == "deal")
    assert deal["fields"]["status"] == "won" and deal["fields"]["amount"] == 2500
    assert deal["fields"]["closed_at"] == "2023-11-14T22:13:20Z"
    person = next(e for e in events if e["entity"] == "lead")
    assert (person["change"], person["merged_into"]) == ("merge", f"{rid}9")


async def test_salesforce_cdc_events_reach_the_topic_once_and_gaps_are_recorded(
    gateway: TestClient, topic_tail: TopicTail, gw_settings: Settings
) -> None:
    rid = run_id()
    update = cdc_message(
        "Opportunity",
        "UPDATE",
        [f"006{rid}A", f"006{rid}B"],
        {"StageName": "Closed Lost", "IsClosed": True, "IsWon": False},
    )
    resp = await _post_generic(gateway, "/webhooks/salesforce/cdc", update)
    assert (await resp.json())["published"] == 2
    assert (await (await _post_generic(gateway, "/webhooks/salesforce/cdc", update)).json())[
        "duplicates"
    ] == 2
    relayed = cdc_message(
        "Opportunity",
        "UPDATE",
        [f"006{rid}A", f"006{rid}B"],
        {"StageName": "Closed Lost", "IsClosed": True, "IsWon": False},
        transaction="another-transaction-key",
        replay=99,
    )
    assert (await (await _post_generic(gateway, "/webhooks/salesforce/cdc", relayed)).json())[
        "duplicates"
    ] == 2
    gap = cdc_message("Opportunity", "GAP_UPDATE", [f"006{rid}C"])
    resp = await _post_generic(gateway, "/webhooks/salesforce/cdc", gap)
    assert resp.status == 200
    assert await resp.json() == {
        "status": "gap recorded", "published": 0, "duplicates": 0, "ignored": 0, "gaps": 1,
    }  # fmt: skip
    events = await topic_tail.wait_for(2, _mine(rid))
    assert sorted(e["entity_id"] for e in events) == [f"006{rid}A", f"006{rid}B"]
    assert all(e["fields"] == {"stage": "Closed Lost", "status": "lost"} for e in events)
    assert _m(gateway, "salespulse_gateway_salesforce_gaps_total",
              {"change_type": "GAP_UPDATE"}) == 1  # fmt: skip
    redis = aioredis.from_url(gw_settings.redis_url)
    try:
        gaps = await redis.lrange(f"{gw_settings.redis_key_prefix}:gateway:salesforce_gaps", 0, -1)
    finally:
        await redis.aclose()
    assert [orjson.loads(g)["record_ids"] for g in gaps] == [[f"006{rid}C"]]


async def test_salesforce_outbound_messages_are_acked_and_published_once(
    gateway: TestClient, topic_tail: TopicTail
) -> None:
    rid = run_id()
    opp = {"Id": f"006{rid}", "Amount": "1200.0", "StageName": "Closed Won", "IsWon": "true",
           "IsClosed": "true", "CloseDate": "2023-11-14",
           "LastModifiedDate": "2023-11-14T22:13:20.000Z"}  # fmt: skip
    body = outbound_xml([(f"04l{rid}", "Opportunity", opp)])
    headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}
    for _ in range(2):
        resp = await gateway.post("/webhooks/salesforce/outbound", data=body, headers=headers)
        assert resp.status == 200
        assert resp.content_type == "text/xml"
        assert "<Ack>true</Ack>" in await resp.text()
    wrong_org = outbound_xml([(f"04l{rid}", "Opportunity", opp)], org="00D000000000001AAA")
    resp = await gateway.post("/webhooks/salesforce/outbound", data=wrong_org, headers=headers)
    assert resp.status == 403
    events = await topic_tail.wait_for(1, _mine(rid))
    assert len(events) == 1
    assert events[0]["fields"]["status"] == "won" and events[0]["entity"] == "deal"


async def test_generic_events_reach_the_topic_once(
    gateway: TestClient, topic_tail: TopicTail
) -> None:
    rid = run_id()
    batch = [canonical(f"e1-{rid}", f"D1-{rid}", 1, amount=5, currency="usd"),
             canonical(f"e2-{rid}", f"D2-{rid}", 2, status="won")]  # fmt: skip
    assert (await (await _post_generic(gateway, "/webhooks/generic", batch)).json())[
        "published"
    ] == 2
    renamed = [{**e, "event_id": e["event_id"] + "-retry"} for e in batch]
    for payload in (batch, renamed, batch[0]):
        resp = await _post_generic(gateway, "/webhooks/generic", payload)
        assert (await resp.json())["published"] == 0
    events = sorted(await topic_tail.wait_for(2, _mine(rid)), key=lambda e: e["entity_id"])
    assert len(events) == 2
    assert events[0]["fields"] == {"amount": 5, "currency": "USD"}


# --- refusals -----------------------------------------------------------------------------


async def test_refusals_have_the_right_status_and_name_the_field(
    gateway: TestClient, topic_tail: TopicTail
) -> None:
    rid = run_id()
    body = dumps([hubspot_event(1, f"{rid}1")])
    uri = str(gateway.make_url("/webhooks/hubspot"))
    cases = [
        (await gateway.post("/webhooks/hubspot", data=body,
                            headers={"Content-Type": "application/json"}),
         401, "X-HubSpot-Signature-v3"),
        (await _post_hubspot(gateway, body, secret="wrong"), 401, "X-HubSpot-Signature-v3"),
        (await _post_hubspot(gateway, body, timestamp=T0), 401, "X-HubSpot-Request-Timestamp"),
        (await gateway.post("/webhooks/hubspot", data=body,
                            headers={**hubspot_headers(uri, body), "Content-Type": "text/plain"}),
         415, "Content-Type"),
        (await _post_hubspot(gateway, b"[{"), 400, "body"),
        (await _post_hubspot(gateway, dumps([hubspot_event(1, f"{rid}|1")])), 422,
         "[0].entity_id"),
        (await _post_hubspot(gateway, dumps([hubspot_event(1, 1, name="amount", value="x")])),
         422, "[0].fields.amount"),
        (await _post_hubspot(gateway, b"[" + b" " * (1024 * 1024) + b"]"), 413, "body"),
        (await _post_pipedrive(gateway, {}, auth=basic_auth(password="nope")), 401,
         "Authorization"),
        (await _post_pipedrive(gateway, {"meta": {}}), 422, "meta.action"),
        (await _post_generic(gateway, "/webhooks/generic", {"event_id": "x"}), 422, "[0].source"),
        (await gateway.post("/webhooks/salesforce/outbound", data=b"<a>",
                            headers={"Content-Type": "text/xml"}), 400, "body"),
    ]  # fmt: skip
    for resp, status, field in cases:
        body_json = await resp.json()
        assert (resp.status, body_json["field"]) == (status, field), body_json
        assert set(body_json) == {"error", "field", "reason"}
    await topic_tail.poll(0.5)
    assert topic_tail.events(_mine(rid)) == []
    assert _m(gateway, "salespulse_gateway_requests_total",
              {"source": "hubspot", "outcome": "error"}) == 0  # fmt: skip


async def test_unconfigured_source_answers_503_so_the_provider_keeps_the_event(
    stack_settings: Settings,
) -> None:
    settings = configure(stack_settings, hubspot_app_secret=None)
    async with TestClient(TestServer(make_app(settings))) as client:
        resp = await _post_hubspot(client, dumps([hubspot_event(1, 1)]))
        assert resp.status == 503
        assert resp.headers["Retry-After"] == "60"
        assert (await resp.json())["error"] == "not_configured"


async def test_health_and_metrics_endpoints(gateway: TestClient) -> None:
    resp = await gateway.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok", "redis": "ok", "kafka": "ok"}
    await _post_hubspot(gateway, dumps([hubspot_event(1, f"{run_id()}1")]))
    text = await (await gateway.get("/metrics")).text()
    assert 'salespulse_gateway_requests_total{outcome="accepted",source="hubspot"} 1.0' in text
    assert 'salespulse_gateway_events_published_total{entity="deal",source="hubspot"} 1.0' in text
    assert "salespulse_gateway_publish_latency_seconds_bucket" in text


# --- dependencies down: 503 with Retry-After, nothing accepted, retries go through --------


async def test_redis_down_answers_503(stack_settings: Settings) -> None:
    settings = configure(stack_settings, redis_port=1)
    async with TestClient(TestServer(make_app(settings))) as client:
        resp = await _post_generic(client, "/webhooks/generic", canonical("e", f"D{run_id()}"))
        assert resp.status == 503 and "Retry-After" in resp.headers
        assert (await resp.json())["field"] == "redis"
        assert (await client.get("/healthz")).status == 503


async def test_kafka_unreachable_answers_503_and_the_retry_is_published(
    stack_settings: Settings, topic_tail: TopicTail
) -> None:
    rid = run_id()
    settings = configure(stack_settings)
    payload = [canonical(f"e{i}-{rid}", f"D{i}-{rid}", i) for i in range(3)]
    closed = Publisher("127.0.0.1:1", settings.topic_events, timeout_s=2)
    async with TestClient(TestServer(make_app(settings, publisher=closed))) as client:
        resp = await _post_generic(client, "/webhooks/generic", payload)
        assert resp.status == 503
        assert resp.headers["Retry-After"] == "5"
        assert (await resp.json())["field"] == "kafka"
    async with TestClient(TestServer(make_app(settings))) as client:  # same dedupe namespace
        resp = await _post_generic(client, "/webhooks/generic", payload)
        assert (await resp.json())["published"] == 3
    events = await topic_tail.wait_for(3, _mine(rid))
    assert sorted(e["event_id"] for e in events) == sorted(e["event_id"] for e in payload)


async def test_concurrent_deliveries_of_one_change_publish_it_once(
    gateway: TestClient, topic_tail: TopicTail
) -> None:
    rid = run_id()
    body = dumps([hubspot_event(7, f"{rid}1", name="amount", value="10")])
    renamed = dumps([hubspot_event(8, f"{rid}1", name="amount", value="10")])
    responses = await asyncio.gather(
        *(_post_hubspot(gateway, b) for b in [body, renamed] * 4)
    )  # fmt: skip
    results = [await r.json() for r in responses]
    assert [r.status for r in responses] == [200] * 8
    assert sum(r["published"] for r in results) == 1
    assert sum(r["duplicates"] for r in results) == 7
    events = await topic_tail.wait_for(1, _mine(rid), settle=1.0)
    assert len(events) == 1
