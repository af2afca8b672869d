"""Validation of canonical field values, so nothing the KPI engine cannot read is published.

:class:`streams.schema.CrmEvent` checks the envelope; the values inside ``fields`` are
checked here against the vocabulary the state layer reads (``amount``, ``currency``,
``status``, ``closed_at``...): amounts must be finite decimals, instants ISO dates,
ISO datetimes or epoch milliseconds between 1900 and 2200, currencies three letters,
statuses ``won``/``lost``/``open``. Other fields may carry JSON scalars only.

>>> normalize_fields({"amount": "1054.50", "currency": "eur", "closed_at": 1488326400000},
...                  "[0]")
{'amount': '1054.50', 'currency': 'EUR', 'closed_at': '2017-03-01T00:00:00.000Z'}
>>> normalize_fields({"status": "maybe"}, "[0]")
Traceback (most recent call last):
...
streams.gateway.errors.Invalid: [0].fields.status: must be one of won, lost, open
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from streams.gateway.errors import Invalid

MIN_MS = -2208988800000  # 1900-01-01T00:00:00Z
MAX_MS = 7258118400000  # 2200-01-01T00:00:00Z
MAX_TEXT = 500
MAX_FIELDS = 200
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")
_CURRENCY = re.compile(r"[A-Za-z]{3}")
_EPOCH_MS = re.compile(r"-?\d{1,14}")
STATUSES = ("won", "lost", "open")


class _Bad(ValueError):
    pass


def _text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _Bad("must be a string")
    text = str(value).strip()
    if len(text) > MAX_TEXT:
        raise _Bad(f"longer than {MAX_TEXT} characters")
    return text


def _identifier(value: Any) -> str:
    text = _text(value)
    if not text or len(text) > 200 or "|" in text or any(ord(c) < 32 for c in text):
        raise _Bad("must be 1-200 characters without '|' or control characters")
    return text


def _number(value: Any) -> Any:
    if isinstance(value, bool):
        raise _Bad("must be a number")
    if isinstance(value, int):
        if abs(value) >= 10**15:
            raise _Bad("out of range")
        return value
    if isinstance(value, float):
        if not math.isfinite(value) or abs(value) >= 1e15:
            raise _Bad("must be finite and below 1e15")
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = Decimal(text)
        except InvalidOperation:
            raise _Bad("not a decimal number") from None
        if not parsed.is_finite() or abs(parsed) >= Decimal(10) ** 15 or len(text) > 40:
            raise _Bad("must be finite and below 1e15")
        return text
    raise _Bad("must be a number")


def iso_from_ms(ms: int) -> str:
    """Epoch milliseconds as an ISO-8601 UTC string with a ``Z``."""
    stamp = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def instant_ms(value: Any) -> int:
    """Epoch milliseconds of an instant value (epoch ms number or string, ISO date/datetime).

    An ISO date or a datetime without offset counts as UTC here (for ordering only).
    """
    if isinstance(value, bool):
        raise _Bad("must be a timestamp")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise _Bad("must be a timestamp")
        ms = int(value)
    elif isinstance(value, str):
        text = value.strip()
        ms = int(text) if _EPOCH_MS.fullmatch(text) else _parse_iso_ms(text)
    else:
        raise _Bad("must be a timestamp")
    if not MIN_MS <= ms < MAX_MS:
        raise _Bad("outside 1900-2200")
    return ms


def _parse_iso_ms(text: str) -> int:
    try:
        if len(text) == 10:
            parsed = datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        else:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _Bad("not an ISO-8601 date or datetime") from None
    if not 1900 <= parsed.year < 2200:
        raise _Bad("outside 1900-2200")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def _instant(value: Any) -> Any:
    if isinstance(value, str) and not _EPOCH_MS.fullmatch(value.strip()):
        text = value.strip()
        _parse_iso_ms(text)  # validates exactly as the state's calendar parses
        return text
    return iso_from_ms(instant_ms(value))


def _currency(value: Any) -> str:
    if not isinstance(value, str) or not _CURRENCY.fullmatch(value.strip()):
        raise _Bad("must be a three-letter currency code")
    return value.strip().upper()


def _status(value: Any) -> str:
    text = value.strip().lower() if isinstance(value, str) else None
    if text not in STATUSES:
        raise _Bad("must be one of won, lost, open")
    return text


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _Bad("must be true or false")


def _scalar(value: Any) -> Any:
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise _Bad(f"longer than {MAX_TEXT} characters")
        return value
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return _number(value)
    raise _Bad("must be a JSON scalar (string, number, boolean or null)")


_INSTANTS = (
    "created_at", "closed_at", "qualified_at", "done_at", "churned_at", "started_at",
    "ended_at", "spent_at", "expected_close", "period_start",
)  # fmt: skip
_TEXTS = (
    "stage", "owner", "team", "office", "product", "source", "type", "category",
    "period", "kind",
)  # fmt: skip
KINDS: dict[str, Callable[[Any], Any]] = {
    "amount": _number,
    "mrr": _number,
    "probability": _number,
    "currency": _currency,
    "status": _status,
    "done": _flag,
    "lead_id": _identifier,
    "account_id": _identifier,
    **dict.fromkeys(_INSTANTS, _instant),
    **dict.fromkeys(_TEXTS, _text),
}


def join(where: str, name: str) -> str:
    """A field path: ``join("[0]", "fields")`` is ``[0].fields``, ``join("", "x")`` is ``x``."""
    return f"{where}.{name}" if where else name


def normalize_fields(fields: Any, where: str) -> dict[str, Any]:
    """Canonical field values, or :class:`Invalid` naming the first bad field."""
    where = join(where, "fields")
    if not isinstance(fields, Mapping):
        raise Invalid(where, "must be an object")
    if len(fields) > MAX_FIELDS:
        raise Invalid(where, f"more than {MAX_FIELDS} fields")
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise Invalid(where, "field names must match [A-Za-z_][A-Za-z0-9_.-]*")
        if value is None:
            out[name] = None
            continue
        try:
            out[name] = KINDS.get(name, _scalar)(value)
        except _Bad as exc:
            raise Invalid(f"{where}.{name}", str(exc)) from None
    return out


def check_identifier(value: Any, field: str) -> str:
    """An entity or event id as a string, or :class:`Invalid`."""
    try:
        return _identifier(value)
    except _Bad as exc:
        raise Invalid(field, str(exc)) from None


def check_instant_ms(value: Any, field: str) -> int:
    """Epoch milliseconds of a timestamp field, or :class:`Invalid`."""
    if value is None or value == "":
        raise Invalid(field, "required")
    try:
        return instant_ms(value)
    except _Bad as exc:
        raise Invalid(field, str(exc)) from None
