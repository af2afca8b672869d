"""Vendor-shaped webhook payloads and signing helpers for the gateway tests.

Shapes follow the vendors' documentation: HubSpot's webhook event array, Pipedrive
webhooks v2 (``meta``/``data``/``previous``), Salesforce CDC CometD messages and Outbound
Messages SOAP envelopes.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from streams.gateway.signatures import generic_signature, hubspot_v3_signature

HUBSPOT_SECRET = "hubspot-app-secret-for-tests"
GENERIC_SECRET = "generic-secret-for-tests"
PIPEDRIVE_USER = "pipedrive-hook"
PIPEDRIVE_PASSWORD = "pipedrive-password-for-tests"
SF_ORG = "00D5e000000abcdEAA"
T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z


def dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


# --- HubSpot ----------------------------------------------------------------------------


def hubspot_event(
    event_id: int,
    object_id: int | str,
    subscription: str = "deal.propertyChange",
    name: str | None = "dealstage",
    value: Any = "closedwon",
    occurred: int = T0,
    **extra: Any,
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "eventId": event_id,
        "subscriptionId": 4012345,
        "portalId": 62515,
        "appId": 54321,
        "occurredAt": occurred,
        "subscriptionType": subscription,
        "attemptNumber": 0,
        "objectId": object_id,
        "changeSource": "CRM",
    }
    if name is not None:
        event["propertyName"] = name
        event["propertyValue"] = value
    event.update(extra)
    return event


def hubspot_headers(
    uri: str, body: bytes, secret: str = HUBSPOT_SECRET, timestamp: int | None = None
) -> dict[str, str]:
    ts = str(int(time.time() * 1000) if timestamp is None else timestamp)
    return {
        "Content-Type": "application/json",
        "X-HubSpot-Signature-v3": hubspot_v3_signature(secret, "POST", uri, body, ts),
        "X-HubSpot-Request-Timestamp": ts,
    }


# --- Pipedrive --------------------------------------------------------------------------


def pipedrive_body(
    action: str,
    entity: str,
    entity_id: int | str,
    data: dict[str, Any] | None,
    previous: dict[str, Any] | None = None,
    delivery_id: str | None = None,
    timestamp: str = "2023-11-14T22:13:20.000Z",
    **meta: Any,
) -> dict[str, Any]:
    return {
        "meta": {
            "action": action,
            "entity": entity,
            "entity_id": str(entity_id),
            "id": delivery_id or f"d-{entity}-{entity_id}-{action}-{timestamp}",
            "company_id": "12882925",
            "correlation_id": "0c9e1b7a-3e41-4bd4-8a1c-5f3c2f9f1a11",
            "user_id": "18487521",
            "type": "general",
            "host": "company.pipedrive.com",
            "timestamp": timestamp,
            "version": "2.0",
            "webhook_id": "99",
            "webhook_owner_id": "18487521",
            "attempt": 1,
            "change_source": "app",
            "is_bulk_edit": False,
            **meta,
        },
        "data": data,
        "previous": previous,
    }


def basic_auth(user: str = PIPEDRIVE_USER, password: str = PIPEDRIVE_PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# --- Salesforce -------------------------------------------------------------------------


def cdc_message(
    entity: str,
    change: str,
    record_ids: list[str],
    fields: dict[str, Any] | None = None,
    commit_ts: int = T0,
    transaction: str = "0002343d-9d90-e395-ed20-cf416ba652ad",
    sequence: int = 1,
    replay: int = 1,
) -> dict[str, Any]:
    header = {
        "entityName": entity,
        "recordIds": record_ids,
        "changeType": change,
        "changeOrigin": "com/salesforce/api/soap/58.0;client=SfdcInternalAPI/",
        "transactionKey": transaction,
        "sequenceNumber": sequence,
        "commitTimestamp": commit_ts,
        "commitNumber": 10716249708617,
        "commitUser": "0055e000001aQEEAA2",
        "changedFields": sorted((fields or {}).keys()),
        "diffFields": [],
        "nulledFields": [],
    }
    return {
        "data": {
            "schema": "IeRuaY6cbI_HsV8Rv1Mc5g",
            "payload": {"ChangeEventHeader": header, **(fields or {})},
            "event": {"replayId": replay},
        },
        "channel": f"/data/{entity}ChangeEvent",
    }


def outbound_xml(
    notifications: list[tuple[str, str, dict[str, str | None]]],
    org: str = SF_ORG,
) -> bytes:
    """``notifications``: (notification id, sObject type, fields) triples."""
    parts = []
    for nid, kind, fields in notifications:
        body = "".join(
            f'<sf:{k} xsi:nil="true"/>' if v is None else f"<sf:{k}>{v}</sf:{k}>"
            for k, v in fields.items()
        )
        parts.append(
            f"<Notification><Id>{nid}</Id>"
            f'<sObject xsi:type="sf:{kind}" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
            f"{body}</sObject></Notification>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<soapenv:Body>"
        '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
        f"<OrganizationId>{org}</OrganizationId>"
        "<ActionId>04k5e000000CaS2AAK</ActionId>"
        '<SessionId xsi:nil="true"/>'
        "<EnterpriseUrl>https://example.my.salesforce.com/services/Soap/c/58.0/00D5e</EnterpriseUrl>"
        "<PartnerUrl>https://example.my.salesforce.com/services/Soap/u/58.0/00D5e</PartnerUrl>"
        + "".join(parts)
        + "</notifications></soapenv:Body></soapenv:Envelope>"
    ).encode()


# --- generic ----------------------------------------------------------------------------


def canonical(event_id: str, entity_id: str, version: int = 1, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "source": "billing",
        "entity": "deal",
        "entity_id": entity_id,
        "change": "update",
        "occurred_at": "2023-11-14T22:13:20Z",
        "version": version,
        "fields": fields,
    }


def generic_headers(
    body: bytes, secret: str = GENERIC_SECRET, timestamp: int | None = None
) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "Content-Type": "application/json",
        "X-SalesPulse-Timestamp": ts,
        "X-SalesPulse-Signature": generic_signature(secret, ts, body),
    }
