"""The canonical, versioned CRM change event (schema ``v1``).

Every source (webhooks, CSV backfill, the demo generator) maps into :class:`CrmEvent`.
An event is a *partial update* of one entity: ``fields`` holds only what changed, and
``version`` orders changes to the same entity (CRM version number, or the modified
timestamp in milliseconds). State applies fields last-writer-wins per field on
``(version, event_id)``, so duplicates and reordering cannot change the result.

>>> ev = CrmEvent.model_validate({
...     "event_id": "e1", "source": "demo", "entity": "deal", "entity_id": "D1",
...     "change": "update", "occurred_at": "2017-03-01T10:00:00Z", "version": 3,
...     "fields": {"status": "won", "amount": 1054}})
>>> ev.key
'deal:D1'
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

SCHEMA_VERSION = 1

EntityType = Literal["lead", "deal", "activity", "account", "subscription", "spend", "quota"]
ChangeType = Literal["create", "update", "delete", "merge", "restore"]

ENTITY_TYPES: tuple[str, ...] = EntityType.__args__  # type: ignore[attr-defined]
CHANGE_TYPES: tuple[str, ...] = ChangeType.__args__  # type: ignore[attr-defined]


class CrmEvent(BaseModel):
    """One change to one CRM entity, as published on the events topic."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    event_id: str = Field(min_length=1, max_length=200)
    source: str = Field(min_length=1, max_length=40)
    entity: EntityType
    entity_id: str = Field(min_length=1, max_length=200)
    change: ChangeType
    occurred_at: AwareDatetime
    version: int = Field(ge=0)
    fields: dict[str, Any] = Field(default_factory=dict)
    merged_into: str | None = None

    @field_validator("entity_id", "event_id")
    @classmethod
    def _no_separator(cls, value: str) -> str:
        if "|" in value or "\n" in value:
            raise ValueError("must not contain '|' or newlines")
        return value

    @property
    def key(self) -> str:
        """The partitioning key: entity type and id."""
        return entity_key(self.entity, self.entity_id)

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready dict written to Kafka (timestamps as ISO-8601 strings)."""
        return self.model_dump(mode="json", exclude_none=True)


def entity_key(entity: str, entity_id: str) -> str:
    """Kafka key and table key of an entity, e.g. ``deal:D1``."""
    return f"{entity}:{entity_id}"


def event_time_ms(occurred_at: datetime) -> int:
    """Event time as integer epoch milliseconds (exact, timezone-free)."""
    return int(occurred_at.timestamp() * 1000)


_ENTITIES = frozenset(ENTITY_TYPES)
_CHANGES = frozenset(CHANGE_TYPES)
_KEYS = frozenset(CrmEvent.model_fields)


_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:\d\d)")


@lru_cache(maxsize=1 << 16)
def _aware_iso_ms(text: str) -> int | None:
    if not _RFC3339.fullmatch(text):
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return None if parsed.tzinfo is None else event_time_ms(parsed)


def _ident(value: Any, limit: int) -> bool:
    return (
        type(value) is str and 0 < len(value) <= limit and "|" not in value and ("\n" not in value)
    )


def fast_event_time_ms(raw: dict[str, Any]) -> int | None:
    """Event time (ms) of a plainly valid wire event, or ``None`` to use the full validator.

    Accepts exactly a subset of what :class:`CrmEvent` accepts (strict types, ISO-8601
    time with an offset), so the worker skips pydantic for the common case; anything
    unusual goes through :meth:`CrmEvent.model_validate`, which decides and explains.
    """
    if raw.get("v", 1) != 1 or not raw.keys() <= _KEYS:
        return None
    version, fields, merged = raw.get("version"), raw.get("fields", {}), raw.get("merged_into")
    if not (
        _ident(raw.get("event_id"), 200)
        and _ident(raw.get("entity_id"), 200)
        and type(raw.get("source")) is str
        and 0 < len(raw["source"]) <= 40
        and raw.get("entity") in _ENTITIES
        and raw.get("change") in _CHANGES
        and type(version) is int
        and version >= 0
        and type(fields) is dict
        and (merged is None or type(merged) is str)
        and type(raw.get("occurred_at")) is str
    ):
        return None
    return _aware_iso_ms(raw["occurred_at"])
