"""What one entity snapshot contributes to the additive KPI components.

Every KPI is a ratio or sum of additive *components* (counts, integer cents, seconds).
An entity's contribution is a pure function of its snapshot: a mapping from
the wire form of :data:`AggKey` ``"component|local day|rep|team|office|product|source|kind"`` to
an integer. Partition aggregates are the sum of contributions of the partition's
entities, maintained by adding ``new - old`` on every snapshot change and rebuilt from
the snapshot table on recovery. ``day`` is ``""`` for timeless components (open deals).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from typing import Any

from state.calendar import BusinessCalendar
from state.links import deal_status
from state.money import parse_amount
from state.rules import Rules
from state.snapshot import FIRST_SEEN, Snapshot, field_values, is_alive

AggKey = tuple[str, str, str, str, str, str, str, str]
# Contributions are keyed by the wire form of an AggKey: its parts joined by "|".
Contributions = dict[str, int]

ACTIVITY_TYPES = frozenset({"call", "email", "meeting", "demo", "task"})

DATE_FIELDS = frozenset(
    {
        "closed_at",
        "created_at",
        "expected_close",
        "qualified_at",
        "done_at",
        "churned_at",
        "started_at",
        "ended_at",
        "spent_at",
        "period_start",
    }
)
AMOUNT_FIELDS = frozenset({"amount", "mrr"})
SCALAR_FIELDS = frozenset(
    {
        "owner",
        "team",
        "office",
        "product",
        "source",
        "stage",
        "status",
        "type",
        "category",
        "kind",
        "period",
        "lead_id",
        "account_id",
    }
)
MAX_AMOUNT = Decimal(10) ** 15


_DATE, _AMOUNT, _CURRENCY, _PROBABILITY, _SCALAR = range(5)
# What check_fields verifies of each field it knows (names are in at most one set).
_CHECKS = {
    **dict.fromkeys(DATE_FIELDS, _DATE),
    **dict.fromkeys(AMOUNT_FIELDS, _AMOUNT),
    "currency": _CURRENCY,
    "probability": _PROBABILITY,
    **dict.fromkeys(SCALAR_FIELDS, _SCALAR),
}
_PLAIN_AMOUNT = float(MAX_AMOUNT)  # exact: 10**15 < 2**53


def check_fields(entity: str, fields: dict[str, Any], rules: Rules) -> None:
    """Raise ``ValueError`` if a field the KPIs read has a value they cannot use.

    Checked on the event alone (not the merged snapshot), so whether an event is rejected
    never depends on the order in which events arrive.
    """
    for name, value in fields.items():
        check = _CHECKS.get(name)
        if check is None:
            continue
        if check == _SCALAR:
            if isinstance(value, list | dict):
                raise ValueError(f"{name}: not a scalar")
        elif check == _AMOUNT:
            # a plain int or float in range is valid (as its exact decimal would be)
            if type(value) in (int, float) and -_PLAIN_AMOUNT < value < _PLAIN_AMOUNT:
                continue
            amount = parse_amount(value)
            if not amount.is_finite() or abs(amount) >= MAX_AMOUNT:
                raise ValueError(f"{name}: out of range: {value!r}")
        elif check == _DATE:
            rules.calendar.day_of_value(value)
            rules.calendar.instant_ms(value)
        elif check == _CURRENCY and value not in (None, ""):
            if not isinstance(value, str):
                raise ValueError(f"currency: not a code: {value!r}")
            rules.fx.rate(value, None)
        elif check == _PROBABILITY and value not in (None, ""):
            p = parse_amount(value)
            if not p.is_finite() or not 0 <= p <= 1:
                raise ValueError(f"probability: not in 0..1: {value!r}")


def _s(value: Any) -> str:
    return "" if value is None else str(value).replace("|", "/")


def _dims(f: dict[str, Any], kind: Any = "") -> str:
    """The dimension part of an aggregate key: ``rep|team|office|product|source|kind``."""
    return _joined_dims(
        f.get("owner"), f.get("team"), f.get("office"), f.get("product"), f.get("source"), kind
    )


@lru_cache(maxsize=1 << 14, typed=True)  # typed: 1, 1.0 and True print differently
def _joined_dims(*values: Any) -> str:
    return "|".join(_s(v) for v in values)


def _add(
    out: Contributions, component: str, day: str | None, dims: str, n: int, cutoff: str | None
) -> None:
    """Add ``n`` to a component, unless its day is before the retention ``cutoff``."""
    if cutoff is not None and day and day < cutoff:
        return
    key = f"{component}|{day or ''}|{dims}"
    out[key] = out.get(key, 0) + n


def _day(cal: BusinessCalendar, value: Any, snapshot: Snapshot, milestone: str = FIRST_SEEN) -> str:
    day = cal.day_of_value(value)
    if day is None and milestone in snapshot["m"]:
        day = cal.day_of_ms(snapshot["m"][milestone])
    return day or ""


def elapsed_seconds(rules: Rules, start: Any, end: Any) -> int | None:
    """Seconds from ``start`` to ``end``; two plain dates count whole local days."""
    if start in (None, "") or end in (None, ""):
        return None
    if isinstance(start, str) and isinstance(end, str) and len(start) == len(end) == 10:
        return _days_between(start, end) * 86400
    a, b = rules.calendar.instant_ms(start), rules.calendar.instant_ms(end)
    return None if a is None or b is None else (b - a) // 1000


@lru_cache(maxsize=1 << 16)
def _days_between(start: str, end: str) -> int:
    return (date.fromisoformat(end) - date.fromisoformat(start)).days


@lru_cache(maxsize=1 << 16, typed=True)
def _weighted(amount: int, probability: Any) -> int:
    """``amount`` times ``probability`` (a number or numeric string), rounded half-even."""
    exact = Decimal(amount) * Decimal(str(probability))
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def deal_contributions(snapshot: Snapshot, rules: Rules) -> Contributions:
    """Won/lost counts, amounts and cycle at the close day; open pipeline otherwise."""
    out: Contributions = {}
    if not is_alive(snapshot):
        return out
    cal, cutoff = rules.calendar, rules.retention_cutoff
    f = field_values(snapshot)
    dims = _dims(f)
    status = deal_status(f)
    _add(out, "deals_created", _day(cal, f.get("created_at"), snapshot), dims, 1, cutoff)
    if status in ("won", "lost"):
        day = _day(cal, f.get("closed_at"), snapshot, milestone="-")
        amount = rules.fx.to_cents(f.get("amount"), f.get("currency"), day or None)
        _add(out, f"{status}_count", day, dims, 1, cutoff)
        _add(out, f"{status}_amount", day, dims, amount, cutoff)
        cycle = elapsed_seconds(rules, f.get("created_at"), f.get("closed_at"))
        if cycle is not None:
            _add(out, f"{status}_cycle_seconds", day, dims, cycle, cutoff)
            _add(out, f"{status}_cycle_count", day, dims, 1, cutoff)
        return out
    expected = _day(cal, f.get("expected_close"), snapshot, milestone="-")
    amount = rules.fx.to_cents(f.get("amount"), f.get("currency"), expected or None)
    stage = str(f.get("stage") or "").lower()
    probability = f.get("probability")
    if probability in (None, ""):
        probability = rules.stage_probability.get(stage, 0)
    _add(out, "open_count", "", dims, 1, cutoff)
    _add(out, "open_amount", "", dims, amount, cutoff)
    _add(out, "pipeline_amount", expected, dims, amount, cutoff)
    _add(out, "pipeline_weighted_amount", expected, dims, _weighted(amount, probability), cutoff)
    return out


def _won_times(snapshot: Snapshot) -> list[int]:
    return [v for _, v in snapshot["l"].values() if v is not None]


def lead_contributions(snapshot: Snapshot, rules: Rules) -> Contributions:
    """Created, qualified, converted-to-won (period view) and cohort conversion."""
    out: Contributions = {}
    if not is_alive(snapshot) or FIRST_SEEN not in snapshot["m"]:
        return out
    cal, cutoff = rules.calendar, rules.retention_cutoff
    f = field_values(snapshot)
    dims = _dims(f)
    _add(out, "leads_created", _day(cal, f.get("created_at"), snapshot), dims, 1, cutoff)
    qualified = _day(cal, f.get("qualified_at"), snapshot, milestone="qualified")
    if qualified:
        _add(out, "leads_qualified", qualified, dims, 1, cutoff)
    won = _won_times(snapshot)
    if won:
        _add(out, "leads_converted", cal.day_of_ms(min(won)), dims, 1, cutoff)
        if qualified:
            _add(out, "cohort_converted", qualified, dims, 1, cutoff)
    return out


def activity_contributions(snapshot: Snapshot, rules: Rules) -> Contributions:
    """One activity of its type on its local day."""
    out: Contributions = {}
    if not is_alive(snapshot):
        return out
    f = field_values(snapshot)
    kind = str(f.get("type") or "other").lower()
    kind = kind if kind in ACTIVITY_TYPES else "other"
    day = _day(rules.calendar, f.get("done_at"), snapshot)
    _add(out, "activities", day, _dims(f, kind), 1, rules.retention_cutoff)
    return out


def account_contributions(snapshot: Snapshot, rules: Rules) -> Contributions:
    """New customer at its first won deal; churned customer at ``churned_at``."""
    out: Contributions = {}
    if not is_alive(snapshot):
        return out
    won = _won_times(snapshot)
    if not won:
        return out
    cal, cutoff = rules.calendar, rules.retention_cutoff
    f = field_values(snapshot)
    dims = _dims(f)
    first = cal.day_of_ms(min(won))
    _add(out, "customers_new", first, dims, 1, cutoff)
    churned = cal.day_of_value(f.get("churned_at"))
    if churned and churned >= first:
        _add(out, "customers_churned", churned, dims, 1, cutoff)
    return out


def subscription_contributions(snapshot: Snapshot, rules: Rules) -> Contributions:
    """Recurring revenue (MRR) started, expanded and ended, on local days."""
    out: Contributions = {}
    if not is_alive(snapshot):
        return out
    cal, cutoff = rules.calendar, rules.retention_cutoff
    f = field_values(snapshot)
    started = _day(cal, f.get("started_at"), snapshot)
    mrr = rules.fx.to_cents(f.get("mrr"), f.get("currency"), started or None)
    dims = _dims(f)
    _add(out, "mrr_started", started, dims, mrr, cutoff)
    if str(f.get("kind") or "new").lower() == "expansion":
        _add(out, "mrr_expansion", started, dims, mrr, cutoff)
    ended = cal.day_of_value(f.get("ended_at"))
    if ended:
        _add(out, "mrr_ended", ended, dims, mrr, cutoff)
    return out


def spend_contributions(snapshot: Snapshot, rules: Rules) -> Contributions:
    """Sales and marketing spend on its local day, by category."""
    out: Contributions = {}
    if not is_alive(snapshot):
        return out
    f = field_values(snapshot)
    day = _day(rules.calendar, f.get("spent_at"), snapshot)
    amount = rules.fx.to_cents(f.get("amount"), f.get("currency"), day or None)
    dims = _dims(f, str(f.get("category") or ""))
    _add(out, "spend_amount", day, dims, amount, rules.retention_cutoff)
    return out


def quota_contributions(snapshot: Snapshot, rules: Rules) -> Contributions:
    """A quota amount at its period's first day, with the period kind as ``kind``."""
    out: Contributions = {}
    if not is_alive(snapshot):
        return out
    f = field_values(snapshot)
    day = _day(rules.calendar, f.get("period_start"), snapshot, milestone="-")
    amount = rules.fx.to_cents(f.get("amount"), f.get("currency"), day or None)
    dims = _dims(f, str(f.get("period") or "month"))
    _add(out, "quota_amount", day, dims, amount, rules.retention_cutoff)
    return out


CONTRIBUTORS: dict[str, Callable[[Snapshot, Rules], Contributions]] = {
    "deal": deal_contributions,
    "lead": lead_contributions,
    "activity": activity_contributions,
    "account": account_contributions,
    "subscription": subscription_contributions,
    "spend": spend_contributions,
    "quota": quota_contributions,
}


def contributions(entity: str, snapshot: Snapshot | None, rules: Rules) -> Contributions:
    """The contribution of an entity's snapshot (empty for no snapshot).

    Day buckets before ``rules.retention_cutoff`` (if any) are left out: aggregates keep a
    bounded window of history.
    """
    return {} if snapshot is None else CONTRIBUTORS[entity](snapshot, rules)
