"""Salesforce Change Data Capture (JSON) and Outbound Messages (SOAP) -> canonical events.

CDC: each change event names its records in ``ChangeEventHeader.recordIds``; one
canonical event is made per record id. CREATE/UPDATE/DELETE/UNDELETE become
create/update/delete/restore; an UPDATE carries only the changed fields (plus
``nulledFields`` set to null); DELETE has none. ``GAP_*`` events say changes happened
that Salesforce could not describe: they are *not* guessed at, only recorded (metric,
log, Redis list) so an operator can re-sync those records. ``version`` and
``occurred_at`` are ``commitTimestamp`` (epoch ms), the same scale as the
``LastModifiedDate`` of Outbound Messages, so both paths order against each other.

Outbound Messages: a SOAP ``notifications`` envelope with the org id and one
``Notification`` (id + ``sObject``) per record; parsed with defusedxml (no DTDs, no
entities); the org id must match ``SALESPULSE_SALESFORCE_ORG_ID`` (first 15 characters).

>>> from streams.gateway.mappings import load_mappings
>>> body = {"data": {"payload": {"ChangeEventHeader": {"entityName": "Opportunity",
...     "recordIds": ["0065e000007fBvEAAU"], "changeType": "UPDATE",
...     "transactionKey": "0002343d-9d90", "sequenceNumber": 1,
...     "commitTimestamp": 1612912679000, "commitNumber": 10716249708617,
...     "changedFields": ["StageName", "IsClosed", "IsWon"]},
...     "StageName": "Closed Won", "IsClosed": True, "IsWon": True},
...     "event": {"replayId": 12345}}}
>>> [(e.key, e.change, e.fields) for e in parse_cdc(body, load_mappings()["salesforce"]).events]
[('deal:0065e000007fBvEAAU', 'update', {'stage': 'Closed Won', 'status': 'won'})]
"""

from __future__ import annotations

from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from streams.gateway.adapters.common import Parsed, as_list, build_event, require
from streams.gateway.errors import Forbidden, Invalid, Malformed
from streams.gateway.mappings import SourceMapping
from streams.gateway.normalize import check_identifier, check_instant_ms
from streams.schema import CrmEvent

SOURCE = "salesforce"
_CHANGES = {"CREATE": "create", "UPDATE": "update", "DELETE": "delete", "UNDELETE": "restore"}
_XSI = "{http://www.w3.org/2001/XMLSchema-instance}"
OUTBOUND_ACK = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
    "<soapenv:Body>"
    '<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">'
    "<Ack>true</Ack></notificationsResponse>"
    "</soapenv:Body></soapenv:Envelope>"
)


def _flag(raw: dict[str, Any], name: str, where: str) -> bool | None:
    value = raw.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise Invalid(f"{where}.{name}", "must be true or false")


def _fields(entity: str, raw: dict[str, Any], mapping: SourceMapping, where: str) -> dict[str, Any]:
    fields = mapping.map_fields(entity, raw)
    if entity == "deal":
        closed, won = _flag(raw, "IsClosed", where), _flag(raw, "IsWon", where)
        if closed is False:
            fields["status"] = "open"
        elif won is True:
            fields["status"] = "won"
        elif closed is True and won is False:
            fields["status"] = "lost"
    return fields


# --- Change Data Capture --------------------------------------------------------------


def _unwrap(item: Any, where: str) -> tuple[dict[str, Any], Any, str]:
    """(payload, replayId, path of the payload) of a CometD message or a bare payload."""
    if not isinstance(item, dict):
        raise Invalid(where, "must be an object")
    replay = None
    data = item.get("data")
    if isinstance(data, dict) and "payload" in data:
        event = data.get("event")
        replay = event.get("replayId") if isinstance(event, dict) else None
        item, where = data["payload"], f"{where}.data.payload"
    elif "payload" in item and "ChangeEventHeader" not in item:
        item, where = item["payload"], f"{where}.payload"
    if not isinstance(item, dict):
        raise Invalid(where, "must be an object")
    return item, replay, where


def parse_cdc(payload: Any, mapping: SourceMapping) -> Parsed:
    """Canonical events (and gap notices) of CDC change events (already JSON-decoded)."""
    parsed = Parsed()
    for i, item in enumerate(as_list(payload, "change event")):
        body, replay, where = _unwrap(item, f"[{i}]")
        parsed.events.extend(_cdc_event(body, replay, where, mapping, parsed))
    return parsed


def _cdc_event(
    body: dict[str, Any], replay: Any, where: str, mapping: SourceMapping, parsed: Parsed
) -> list[CrmEvent]:
    header = require(body, "ChangeEventHeader", where)
    hwhere = f"{where}.ChangeEventHeader"
    if not isinstance(header, dict):
        raise Invalid(hwhere, "must be an object")
    name = require(header, "entityName", hwhere)
    change_type = require(header, "changeType", hwhere)
    if not isinstance(name, str) or not isinstance(change_type, str):
        raise Invalid(f"{hwhere}.changeType", "entityName and changeType must be strings")
    record_ids = header.get("recordIds") or []
    if not isinstance(record_ids, list):
        raise Invalid(f"{hwhere}.recordIds", "must be a list")
    ids = [check_identifier(r, f"{hwhere}.recordIds[{j}]") for j, r in enumerate(record_ids)]
    if change_type.startswith("GAP_"):
        parsed.gaps.append(_gap(header, name, change_type, ids))
        return []
    if change_type not in _CHANGES:
        raise Invalid(f"{hwhere}.changeType", f"must be one of {', '.join(_CHANGES)} or GAP_*")
    if not ids:
        raise Invalid(f"{hwhere}.recordIds", "required")
    version = check_instant_ms(header.get("commitTimestamp"), f"{hwhere}.commitTimestamp")
    entity = mapping.entity(name)
    if entity is None:
        parsed.ignore("unmapped_object")
        return []
    raw: dict[str, Any] = {}
    if change_type != "DELETE":
        raw = {k: v for k, v in body.items() if k != "ChangeEventHeader" and v is not None}
        nulled = header.get("nulledFields") or []
        if isinstance(nulled, list):
            raw.update({n: None for n in nulled if isinstance(n, str)})
    fields = _fields(entity, raw, mapping, where)
    base = _cdc_base(header, replay, hwhere)
    return [
        build_event(
            source=SOURCE,
            entity=entity,
            entity_id=record,
            change=_CHANGES[change_type],
            version_ms=version,
            event_id=f"salesforce:{base}:{record}" if len(ids) > 1 else f"salesforce:{base}",
            fields=fields,
            where=where,
        )
        for record in ids
    ]


def _cdc_base(header: dict[str, Any], replay: Any, where: str) -> str:
    key, seq = header.get("transactionKey"), header.get("sequenceNumber")
    if key not in (None, "") and seq not in (None, ""):
        return check_identifier(f"{key}:{seq}", f"{where}.transactionKey")
    for name, value in (("replayId", replay), ("commitNumber", header.get("commitNumber"))):
        if value not in (None, ""):
            return check_identifier(f"{name[0]}{value}", f"{where}.{name}")
    raise Invalid(f"{where}.transactionKey", "required (or replayId or commitNumber)")


def _gap(header: dict[str, Any], name: str, change_type: str, ids: list[str]) -> dict[str, Any]:
    """A gap notice: what to re-sync, without any field data."""
    return {
        "entity_name": name[:80],
        "change_type": change_type[:40],
        "record_ids": ids[:200],
        "record_count": len(ids),
        "commit_timestamp": header.get("commitTimestamp")
        if isinstance(header.get("commitTimestamp"), int)
        else None,
        "transaction_key": str(header.get("transactionKey") or "")[:100],
    }


# --- Outbound Messages ----------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(element: Element, name: str) -> Element | None:
    return next((c for c in element if _local(c.tag) == name), None)


def _find(root: Element, name: str) -> Element | None:
    return next((e for e in root.iter() if _local(e.tag) == name), None)


def same_org(given: str, configured: str) -> bool:
    """Org ids match on their case-sensitive 15-character form (18-char ids add a suffix)."""
    return len(given) in (15, 18) and given[:15] == configured.strip()[:15]


def parse_outbound(body: bytes, mapping: SourceMapping, org_id: str) -> Parsed:
    """Canonical events of one Outbound Messages SOAP request from org ``org_id``."""
    try:
        root = fromstring(body, forbid_dtd=True)
    except (ParseError, DefusedXmlException, ValueError) as exc:
        raise Malformed("body", f"not acceptable XML ({type(exc).__name__})") from None
    notifications = _find(root, "notifications")
    if notifications is None:
        raise Invalid("notifications", "required")
    org = _child(notifications, "OrganizationId")
    if org is None or not (org.text or "").strip():
        raise Invalid("notifications.OrganizationId", "required")
    if not same_org(org.text.strip(), org_id):  # type: ignore[union-attr]
        raise Forbidden("notifications.OrganizationId", "not the configured organization")
    items = [c for c in notifications if _local(c.tag) == "Notification"]
    if not items:
        raise Invalid("notifications.Notification", "required")
    if len(items) > 1000:
        raise Invalid("notifications.Notification", "more than 1000 notifications")
    parsed = Parsed()
    for i, item in enumerate(items):
        parsed.events.extend(
            _notification(item, f"notifications.Notification[{i}]", mapping, parsed)
        )
    return parsed


def _notification(
    item: Element, where: str, mapping: SourceMapping, parsed: Parsed
) -> list[CrmEvent]:
    nid = _child(item, "Id")
    if nid is None or not (nid.text or "").strip():
        raise Invalid(f"{where}.Id", "required")
    notification_id = check_identifier(nid.text, f"{where}.Id")
    sobject = _child(item, "sObject")
    if sobject is None:
        raise Invalid(f"{where}.sObject", "required")
    swhere = f"{where}.sObject"
    kind = (sobject.get(f"{_XSI}type") or "").rsplit(":", 1)[-1]
    entity = mapping.entity(kind)
    if entity is None:
        parsed.ignore("unmapped_object")
        return []
    raw: dict[str, Any] = {}
    for child in sobject:
        if len(child):  # a related object (e.g. sf:Account inside an Opportunity)
            continue
        nil = (child.get(f"{_XSI}nil") or "").lower() == "true"
        raw[_local(child.tag)] = None if nil else (child.text or "").strip()
    record_id = raw.get("Id")
    if not record_id:
        raise Invalid(f"{swhere}.Id", "required")
    modified = raw.get("LastModifiedDate") or raw.get("SystemModstamp")
    version = check_instant_ms(modified, f"{swhere}.LastModifiedDate")
    created = raw.get("CreatedDate")
    change = "create" if created and created == raw.get("LastModifiedDate") else "update"
    return [
        build_event(
            source=SOURCE,
            entity=entity,
            entity_id=record_id,
            change=change,
            version_ms=version,
            event_id=f"salesforce:om:{notification_id}",
            fields=_fields(entity, {k: v for k, v in raw.items() if v != ""}, mapping, swhere),
            where=swhere,
        )
    ]
