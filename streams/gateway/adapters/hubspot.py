"""HubSpot webhooks (JSON array of subscription events) -> canonical events.

One HubSpot event (``deal.propertyChange``, ``contact.creation``...) becomes one
canonical event, except a merge, which becomes one ``merge`` event per merged-away
record. ``version`` and ``occurred_at`` are ``occurredAt`` (epoch ms); ``event_id`` is
``hubspot:<eventId>``. Objects and properties without a mapping are ignored (counted), so
subscribing to more than SalesPulse reads is harmless.

>>> from streams.gateway.mappings import load_mappings
>>> parsed = parse_hubspot([{"eventId": 10, "subscriptionId": 1, "portalId": 62515,
...     "appId": 54321, "occurredAt": 1488326400000, "attemptNumber": 0, "objectId": 123,
...     "subscriptionType": "deal.propertyChange", "propertyName": "dealstage",
...     "propertyValue": "closedwon", "changeSource": "CRM"}],
...     load_mappings()["hubspot"])
>>> [(e.key, e.change, e.fields) for e in parsed.events]
[('deal:123', 'update', {'stage': 'closedwon', 'status': 'won'})]
"""

from __future__ import annotations

from typing import Any

from streams.gateway.adapters.common import Parsed, as_list, build_event, require
from streams.gateway.errors import Invalid
from streams.gateway.mappings import SourceMapping
from streams.gateway.normalize import check_identifier, check_instant_ms
from streams.schema import CrmEvent

SOURCE = "hubspot"
_CHANGES = {
    "creation": "create",
    "propertyChange": "update",
    "deletion": "delete",
    "privacyDeletion": "delete",
    "restore": "restore",
}


def parse_hubspot(payload: Any, mapping: SourceMapping) -> Parsed:
    """Canonical events of one HubSpot webhook request body (already JSON-decoded)."""
    parsed = Parsed()
    for i, item in enumerate(as_list(payload, "event")):
        parsed.events.extend(_event(item, f"[{i}]", mapping, parsed))
    return parsed


def _object_name(item: dict[str, Any], where: str, mapping: SourceMapping) -> tuple[str, str]:
    subscription = require(item, "subscriptionType", where)
    if not isinstance(subscription, str) or "." not in subscription:
        raise Invalid(f"{where}.subscriptionType", "must look like 'deal.propertyChange'")
    obj, _, action = subscription.partition(".")
    if obj == "object":  # the generic object.* subscriptions name the type by id
        type_ids = mapping.extra.get("object_type_ids", {})
        obj = type_ids.get(str(item.get("objectTypeId")), "")
    return obj, action


def _event(item: Any, where: str, mapping: SourceMapping, parsed: Parsed) -> list[CrmEvent]:
    if not isinstance(item, dict):
        raise Invalid(where, "must be an object")
    obj, action = _object_name(item, where, mapping)
    entity = mapping.entity(obj)
    event_id = check_identifier(require(item, "eventId", where), f"{where}.eventId")
    version = check_instant_ms(item.get("occurredAt"), f"{where}.occurredAt")
    if entity is None:
        parsed.ignore("unmapped_object")
        return []
    base: dict[str, Any] = {
        "source": SOURCE, "entity": entity, "version_ms": version, "where": where,
    }  # fmt: skip
    if action == "merge":
        return _merge(item, where, base, event_id)
    object_id = require(item, "objectId", where)
    if action == "associationChange":
        fields = _association(item, where, mapping)
        if fields is None:
            parsed.ignore("unmapped_association")
            return []
        change = "update"
    elif action in _CHANGES:
        change = _CHANGES[action]
        fields = _properties(item, where, entity, mapping)
        if action == "propertyChange" and not fields:
            parsed.ignore("unmapped_property")
            return []
    else:
        parsed.ignore("unknown_subscription")
        return []
    return [
        build_event(
            **base,
            entity_id=object_id,
            change=change,
            event_id=f"hubspot:{event_id}",
            fields=fields,
        )
    ]


def _properties(
    item: dict[str, Any], where: str, entity: str, mapping: SourceMapping
) -> dict[str, Any]:
    name = item.get("propertyName")
    if name is None:
        return {}
    if not isinstance(name, str):
        raise Invalid(f"{where}.propertyName", "must be a string")
    value = item.get("propertyValue")
    if value == "":
        value = None  # HubSpot sends an empty string for a cleared property
    return mapping.map_fields(entity, {name: value})


def _association(item: dict[str, Any], where: str, mapping: SourceMapping) -> dict[str, Any] | None:
    kind = item.get("associationType")
    if not isinstance(kind, str):
        raise Invalid(f"{where}.associationType", "required")
    target = mapping.extra.get("associations", {}).get(kind.lower())
    if target is None:
        return None
    removed = item.get("associationRemoved")
    if removed is not None and not isinstance(removed, bool):
        raise Invalid(f"{where}.associationRemoved", "must be a boolean")
    if removed:
        return {target: None}
    return {target: check_identifier(require(item, "toObjectId", where), f"{where}.toObjectId")}


def _merge(item: dict[str, Any], where: str, base: dict[str, Any], event_id: str) -> list[CrmEvent]:
    primary = item.get("primaryObjectId")
    survivor = item.get("newObjectId") or primary
    if survivor is None:
        raise Invalid(f"{where}.primaryObjectId", "required for a merge")
    survivor = check_identifier(survivor, f"{where}.newObjectId")
    merged = item.get("mergedObjectIds") or []
    if not isinstance(merged, list):
        raise Invalid(f"{where}.mergedObjectIds", "must be a list")
    losers: list[str] = []
    for j, raw in enumerate([*merged, primary]):
        if raw is None:
            continue
        loser = check_identifier(raw, f"{where}.mergedObjectIds[{j}]")
        if loser != survivor and loser not in losers:
            losers.append(loser)
    return [
        build_event(
            **base,
            entity_id=loser,
            change="merge",
            event_id=f"hubspot:{event_id}:{loser}",
            fields={},
            merged_into=survivor,
        )
        for loser in losers
    ]
