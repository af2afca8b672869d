"""The generic endpoint: canonical events as JSON (one object or a list), signed.

The body is :class:`streams.schema.CrmEvent` JSON (``to_wire()`` form); each event is
validated and its field values checked like any adapter's output.

>>> parsed = parse_generic({"event_id": "e1", "source": "billing", "entity": "subscription",
...     "entity_id": "S1", "change": "create", "occurred_at": "2017-03-01T10:00:00Z",
...     "version": 3, "fields": {"mrr": 99, "currency": "usd"}})
>>> parsed.events[0].fields
{'mrr': 99, 'currency': 'USD'}
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from streams.gateway.adapters.common import MAX_VERSION, Parsed, as_list, build_event, loc
from streams.gateway.errors import Invalid
from streams.gateway.normalize import check_instant_ms
from streams.schema import CrmEvent


def parse_generic(payload: Any) -> Parsed:
    """Validated canonical events of a generic request body (already JSON-decoded)."""
    parsed = Parsed()
    for i, item in enumerate(as_list(payload, "event")):
        where = f"[{i}]"
        try:
            event = CrmEvent.model_validate(item)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise Invalid(loc(where, tuple(first["loc"])), first["msg"]) from None
        if event.version > MAX_VERSION:
            raise Invalid(f"{where}.version", "must be below 2**63")
        check_instant_ms(event.occurred_at.isoformat(), f"{where}.occurred_at")  # 1900-2200
        parsed.events.append(
            build_event(
                source=event.source,
                entity=event.entity,
                entity_id=event.entity_id,
                change=event.change,
                version_ms=event.version,
                event_id=event.event_id,
                fields=event.fields,
                where=where,
                merged_into=event.merged_into,
                occurred_at=event.occurred_at,
            )
        )
    return parsed
