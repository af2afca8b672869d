"""Pipedrive webhooks v2 (``meta``, ``data``, ``previous``) -> canonical events.

``meta.action`` create/change/delete becomes create/update/delete; a delete whose
``meta`` (or ``data``/``previous``) carries ``merged_to_id`` is a merge into that id (v2
sends a merge as a delete of the loser plus a change of the survivor). ``data`` holds the
entity's current values, all published (last writer wins per field downstream).
``version`` is ``meta.timestamp`` (ISO string, epoch seconds or ms) in epoch ms, else
``data.update_time``. v1 payloads (``current``, ``meta.object``, added/updated/deleted)
are accepted too.

>>> from streams.gateway.mappings import load_mappings
>>> body = {"meta": {"action": "change", "entity": "deal", "entity_id": "7",
...     "id": "5b1d3c0e-0f2a-4c44-9d0b-6e2f3a1b2c3d", "timestamp": "2024-09-27T14:25:28.000Z",
...     "attempt": 1}, "data": {"id": 7, "status": "won", "value": 2, "currency": "USD",
...     "owner_id": 18487521, "won_time": "2024-09-27T14:25:28Z"}, "previous": {"status": "open"}}
>>> [(e.key, e.change, e.version, e.fields["status"]) for e in
...     parse_pipedrive(body, load_mappings()["pipedrive"]).events]
[('deal:7', 'update', 1727447128000, 'won')]
"""

from __future__ import annotations

import re
from typing import Any

from streams.gateway.adapters.common import Parsed, build_event, require
from streams.gateway.errors import Invalid
from streams.gateway.mappings import SourceMapping
from streams.gateway.normalize import STATUSES, check_identifier, check_instant_ms
from streams.schema import CrmEvent

SOURCE = "pipedrive"
_ACTIONS = {
    "create": "create",
    "change": "update",
    "delete": "delete",
    "added": "create",
    "updated": "update",
    "deleted": "delete",
    "merged": "merge",
}
_NAIVE_UTC = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
_TIME_FIELDS = ("add_time", "update_time", "close_time", "won_time", "lost_time",
                "marked_as_done_time")  # fmt: skip


def _utc(value: Any) -> Any:
    """Pipedrive's ``YYYY-MM-DD HH:MM:SS`` times are UTC; say so explicitly."""
    if isinstance(value, str) and _NAIVE_UTC.fullmatch(value):
        return value.replace(" ", "T") + "Z"
    return value


def _version(meta: dict[str, Any], data: Any) -> int:
    stamp = meta.get("timestamp")
    if isinstance(stamp, int | float) and not isinstance(stamp, bool) and 0 < stamp < 10**11:
        stamp = int(stamp * 1000)  # epoch seconds
    elif isinstance(stamp, str) and stamp.isdigit() and len(stamp) <= 11:
        stamp = int(stamp) * 1000
    if stamp in (None, "") and isinstance(data, dict):
        return check_instant_ms(_utc(data.get("update_time")), "data.update_time")
    return check_instant_ms(_utc(stamp), "meta.timestamp")


def _merged_to(meta: dict[str, Any], data: Any, previous: Any) -> Any:
    for obj in (meta, data, previous):
        if isinstance(obj, dict) and obj.get("merged_to_id") not in (None, ""):
            return obj["merged_to_id"]
    return None


def parse_pipedrive(payload: Any, mapping: SourceMapping) -> Parsed:
    """Canonical events of one Pipedrive webhook body (already JSON-decoded)."""
    parsed = Parsed()
    if not isinstance(payload, dict):
        raise Invalid("body", "must be a JSON object with meta and data")
    meta = require(payload, "meta", "")
    if not isinstance(meta, dict):
        raise Invalid("meta", "must be an object")
    action = require(meta, "action", "meta")
    if not isinstance(action, str) or action not in _ACTIONS:  # a list is unhashable
        raise Invalid("meta.action", f"must be one of {', '.join(_ACTIONS)}")
    vendor_entity = meta.get("entity") or meta.get("object")
    if not isinstance(vendor_entity, str):
        raise Invalid("meta.entity", "required")
    data = payload.get("data", payload.get("current"))
    previous = payload.get("previous")
    for name, obj in (("data", data), ("previous", previous)):
        if obj is not None and not isinstance(obj, dict):
            raise Invalid(name, "must be an object or null")
    entity = mapping.entity(vendor_entity)
    if entity is None:
        parsed.ignore("unmapped_object")
        return parsed
    parsed.events.extend(_event(meta, action, entity, data, previous, mapping))
    return parsed


def _event(
    meta: dict[str, Any],
    action: str,
    entity: str,
    data: dict[str, Any] | None,
    previous: dict[str, Any] | None,
    mapping: SourceMapping,
) -> list[CrmEvent]:
    entity_id = meta.get("entity_id")
    if entity_id in (None, ""):
        entity_id = (data or {}).get("id") or (previous or {}).get("id") or meta.get("id")
    if entity_id in (None, ""):
        raise Invalid("meta.entity_id", "required")
    entity_id = check_identifier(entity_id, "meta.entity_id")
    version = _version(meta, data)
    change = _ACTIONS[action]
    merged_into = _merged_to(meta, data, previous)
    if change == "delete" and merged_into is not None:
        change = "merge"
    if change == "merge" and merged_into is None:
        raise Invalid("meta.merged_to_id", "required for a merge")
    fields: dict[str, Any] = {}
    if change in ("create", "update") and data:
        raw = {k: _utc(v) if k in _TIME_FIELDS else v for k, v in data.items()}
        fields = mapping.map_fields(entity, raw)
        status = fields.get("status")
        if isinstance(status, str) and status.lower() not in STATUSES:
            del fields["status"]  # e.g. "deleted": the delete event says it
    # v2 gives every delivery its own meta.id; v1's meta.id is the entity id.
    if meta.get("entity_id") not in (None, "") and meta.get("id") not in (None, ""):
        event_id = f"pipedrive:{check_identifier(meta['id'], 'meta.id')}"
    else:
        event_id = f"pipedrive:{entity}:{entity_id}:{change}:{version}"
    return [
        build_event(
            source=SOURCE,
            entity=entity,
            entity_id=entity_id,
            change=change,
            version_ms=version,
            event_id=event_id,
            fields=fields,
            where="",
            merged_into=merged_into if change == "merge" else None,
        )
    ]
