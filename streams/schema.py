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
from datetime import date, datetime
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
_ISO_DAY = re.compile(r"[0-9]{4}-[0-9][0-9]-[0-9][0-9]")
_TWO_DIGITS = {f"{n:02d}": n for n in range(60)}
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


@lru_cache(maxsize=1 << 16)
def _parsed_iso_ms(text: str) -> int | None:
    if not _RFC3339.fullmatch(text):
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return None if parsed.tzinfo is None else event_time_ms(parsed)


@lru_cache(maxsize=1 << 14)
def _utc_day_ms(text: str) -> int | None:
    """Epoch ms of midnight UTC of a plain ASCII ``YYYY-MM-DD`` date, else None."""
    if not _ISO_DAY.fullmatch(text):
        return None
    try:
        return (date.fromisoformat(text).toordinal() - _EPOCH_ORDINAL) * 86_400_000
    except ValueError:
        return None


def _aware_iso_ms(text: str) -> int | None:
    """Epoch ms of an aware ISO-8601 time; ``YYYY-MM-DDTHH:MM:SSZ`` without parsing."""
    if len(text) == 20 and text[19] == "Z" and text[10] == "T" and text[13] == text[16] == ":":
        day = _utc_day_ms(text[:10])
        h, m, s = (
            _TWO_DIGITS.get(text[11:13]),
            _TWO_DIGITS.get(text[14:16]),
            _TWO_DIGITS.get(text[17:19]),
        )
        if day is not None and h is not None and h < 24 and m is not None and s is not None:
            return day + ((h * 60 + m) * 60 + s) * 1000
    return _parsed_iso_ms(text)


def fast_event_time_ms(raw: dict[str, Any]) -> int | None:
    """Event time (ms) of a plainly valid wire event, or ``None`` to use the full validator.

    Accepts exactly a subset of what :class:`CrmEvent` accepts (strict types, ISO-8601
    time with an offset), so the worker skips pydantic for the common case; anything
    unusual goes through :meth:`CrmEvent.model_validate`, which decides and explains.
    """
    get = raw.get
    if get("v", 1) != 1 or not raw.keys() <= _KEYS:
        return None
    event_id, entity_id, source = get("event_id"), get("entity_id"), get("source")
    version, occurred, merged = get("version"), get("occurred_at"), get("merged_into")
    if (
        type(event_id) is str
        and 0 < len(event_id) <= 200
        and "|" not in event_id
        and "\n" not in event_id
        and type(entity_id) is str
        and 0 < len(entity_id) <= 200
        and "|" not in entity_id
        and "\n" not in entity_id
        and type(source) is str
        and 0 < len(source) <= 40
        and get("entity") in _ENTITIES
        and get("change") in _CHANGES
        and type(version) is int
        and version >= 0
        and type(get("fields", {})) is dict
        and (merged is None or type(merged) is str)
        and type(occurred) is str
    ):
        return _aware_iso_ms(occurred)
    return None
