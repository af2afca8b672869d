"""What every adapter shares: the parse result, event construction, JSON decoding.

>>> ev = build_event(source="hubspot", entity="deal", entity_id=7, change="update",
...                  version_ms=1488326400000, event_id="hubspot:1",
...                  fields={"amount": "10"}, where="[0]")
>>> ev.key, ev.occurred_at.isoformat(), ev.version
('deal:7', '2017-03-01T00:00:00+00:00', 1488326400000)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError

from streams.gateway.errors import Invalid, Malformed
from streams.gateway.normalize import check_identifier, join, normalize_fields
from streams.schema import CrmEvent

MAX_EVENTS = 1000  # per request
MAX_VERSION = 2**63 - 1


@dataclass
class Parsed:
    """Canonical events of one request, plus what was deliberately not ingested."""

    events: list[CrmEvent] = field(default_factory=list)
    ignored: dict[str, int] = field(default_factory=dict)  # reason -> count
    gaps: list[dict[str, Any]] = field(default_factory=list)  # Salesforce GAP_* notices

    def ignore(self, reason: str) -> None:
        self.ignored[reason] = self.ignored.get(reason, 0) + 1


def parse_json(body: bytes) -> Any:
    """Decode a JSON body; :class:`Malformed` if it is not JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Malformed("body", f"not valid JSON ({str(exc).split(':')[0]})") from None


def loc(where: str, parts: tuple[Any, ...]) -> str:
    """A field path like ``[0].fields.amount`` from a base and pydantic ``loc`` parts."""
    out = where
    for part in parts:
        out = f"{out}[{part}]" if isinstance(part, int) else join(out, str(part))
    return out


def build_event(
    *,
    source: str,
    entity: str,
    entity_id: Any,
    change: str,
    version_ms: int,
    event_id: str,
    fields: dict[str, Any],
    where: str,
    merged_into: Any = None,
    occurred_at: datetime | None = None,
) -> CrmEvent:
    """A validated :class:`CrmEvent`; :class:`Invalid` naming the field otherwise."""
    entity_id = check_identifier(entity_id, join(where, "entity_id"))
    event_id = check_identifier(event_id, join(where, "event_id"))
    if merged_into is not None:
        merged_into = check_identifier(merged_into, join(where, "merged_into"))
    if not 0 <= version_ms <= MAX_VERSION:
        raise Invalid(join(where, "version"), "must be between 0 and 2**63-1")
    try:
        if occurred_at is None:
            occurred_at = datetime.fromtimestamp(version_ms / 1000, tz=UTC)
        return CrmEvent(
            event_id=event_id,
            source=source,
            entity=entity,  # type: ignore[arg-type]
            entity_id=entity_id,
            change=change,  # type: ignore[arg-type]
            occurred_at=occurred_at,
            version=version_ms,
            fields=normalize_fields(fields, where),
            merged_into=merged_into,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise Invalid(loc(where, tuple(first["loc"])), first["msg"]) from None
    except (OverflowError, OSError, ValueError) as exc:
        raise Invalid(join(where, "occurred_at"), f"not a representable time: {exc}") from None


def as_list(payload: Any, what: str) -> list[Any]:
    """A JSON array (or one object, as a list of one), at most :data:`MAX_EVENTS` long."""
    items = payload if isinstance(payload, list) else [payload]
    if not items:
        raise Invalid("body", f"empty: expected at least one {what}")
    if len(items) > MAX_EVENTS:
        raise Invalid("body", f"more than {MAX_EVENTS} {what}s in one request")
    return items


def require(obj: Any, key: str, where: str) -> Any:
    """``obj[key]``, or :class:`Invalid` if ``obj`` is not an object or the key is blank."""
    if not isinstance(obj, dict):
        raise Invalid(where or "body", "must be an object")
    value = obj.get(key)
    if value is None or value == "":
        raise Invalid(join(where, key), "required")
    return value
