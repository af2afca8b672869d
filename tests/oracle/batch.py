"""A batch oracle: every KPI of ``state.kpis.KPIS`` recomputed from the whole event log.

Written from the KPI definitions (``Kpi.definition`` / ``Kpi.counts``, DESIGN.md sections
2-4), not from the engine: it never imports ``state.snapshot``, ``state.links``,
``state.contributions``, ``state.aggregates``, ``state.readout``, ``state.processor`` or
``state.calendar``. It decides each entity's *final* state from all of its events at
once, then evaluates each KPI with plain loops and filters over those final entities.
From ``state`` it only reads the :class:`state.rules.Rules` settings.

Money: an amount in a currency is converted to reporting-currency cents with the rate in
force on the relevant local day (the newest rate dated on or before it; the oldest rate
for earlier days; the newest when there is no day), rounded half to even.

Time values: an ISO date is a local business day (its instant is local midnight), an
ISO datetime with an offset is an instant, one without is local wall time, a number is
epoch milliseconds. An instant's local day is its date in ``rules.timezone``.

Final state of an entity (all events with the same entity type and id):

* a field's value is the one carried by the event with the greatest
  ``(version, event_id)`` among the events that carry that field;
* the entity is alive unless the greatest ``(version, event_id)`` among its lifecycle
  events (create, restore: alive; delete, merge: gone) is a delete or a merge;
* *first seen* is the earliest ``occurred_at`` of any of its events, and a lead's
  *qualified milestone* the earliest ``occurred_at`` of an event whose ``fields.stage``
  is one of ``rules.qualified_lead_stages``.

Cross-entity facts: a deal counts for a lead (account) when it is alive, won, has a
``closed_at`` and its *current* ``lead_id`` (``account_id``) names that entity. A lead
converts at the earliest such close instant and must have events of its own; an account
becomes a customer at its earliest such close instant (an account known only from deals
counts, with empty dimensions).

Periods: a :class:`Window` is a range of local days ``[start, end)``. Dated facts count
when their local day is in the window. Three facts may have no date and then count in
every window, like the timeless open-deal counts: a closed deal without ``closed_at``, an
open deal without ``expected_close`` and a quota without ``period_start``. A grouped KPI
groups every counted entity by *its own* owner (rep), team, office or kind (activity
type, spend category, quota period).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from state.rules import Rules

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LIFECYCLE = {"create": True, "restore": True, "delete": False, "merge": False}
ACTIVITY_KINDS = frozenset({"call", "email", "meeting", "demo", "task"})
QUOTA_PERIODS = frozenset({"month", "quarter", "year"})
DIMENSION_FIELDS = {
    "rep": "owner",
    "team": "team",
    "office": "office",
    "product": "product",
    "source": "source",
}

Dims = Mapping[str, str]
Keep = Callable[[Dims], bool]


# --- time ----------------------------------------------------------------------------


class Clock:
    """Local days and instants of field values in the business timezone."""

    def __init__(self, timezone: str) -> None:
        self.tz = ZoneInfo(timezone)

    def instant(self, value: Any) -> datetime | None:
        if value is None or value == "":
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return EPOCH + timedelta(milliseconds=int(value))
        text = str(value)
        if _is_plain_date(text):
            return datetime(*date.fromisoformat(text).timetuple()[:3], tzinfo=self.tz)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return moment if moment.tzinfo else moment.replace(tzinfo=self.tz)

    def instant_ms(self, value: Any) -> int | None:
        moment = self.instant(value)
        return None if moment is None else (moment - EPOCH) // timedelta(milliseconds=1)

    def day(self, value: Any) -> str | None:
        """The local day of a field value (a plain date is that day)."""
        if _is_plain_date(value):
            return str(value)
        moment = self.instant(value)
        return None if moment is None else moment.astimezone(self.tz).date().isoformat()

    def day_of_ms(self, ms: int) -> str:
        return (EPOCH + timedelta(milliseconds=ms)).astimezone(self.tz).date().isoformat()


def to_cents(rules: Rules, amount: Any, currency: Any, day: str | None) -> int:
    """``amount`` (number or numeric string, blank = 0) as reporting-currency cents."""
    value = Decimal(0) if amount in (None, "") else Decimal(str(amount))
    code = str(currency or rules.reporting_currency).upper()
    rate = Decimal(1)
    if code != rules.reporting_currency.upper():
        table = {c.upper(): r for c, r in rules.fx_rates.items()}[code]
        dated = sorted(table.items())
        usable = [r for d, r in dated if day is not None and d <= day]
        rate = Decimal(str(usable[-1] if usable else dated[0 if day else -1][1]))
    return int((value * rate * 100).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


# --- final state of every entity ------------------------------------------------------


def _order(event: Mapping[str, Any]) -> tuple[int, str]:
    return int(event["version"]), str(event["event_id"])


def event_ms(event: Mapping[str, Any]) -> int:
    """``occurred_at`` as exact integer epoch milliseconds."""
    at = event["occurred_at"]
    moment = (
        at if isinstance(at, datetime) else datetime.fromisoformat(str(at).replace("Z", "+00:00"))
    )
    return (moment - EPOCH) // timedelta(milliseconds=1)


@dataclass
class Entity:
    """The final state of one entity after the whole log."""

    entity: str
    entity_id: str
    fields: dict[str, Any] = field(default_factory=dict)
    alive: bool = True
    first_seen_ms: int | None = None
    qualified_stage_ms: int | None = None


def final_entities(
    events: Iterable[Mapping[str, Any]], rules: Rules
) -> dict[tuple[str, str], Entity]:
    """Every entity of the log in its final state (order and duplicates are irrelevant)."""
    by_entity: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for event in events:
        by_entity[(event["entity"], str(event["entity_id"]))].append(event)
    out = {}
    for (kind, entity_id), history in by_entity.items():
        entity = Entity(kind, entity_id)
        names = {name for event in history for name in event.get("fields", {})}
        for name in names:
            newest = max((e for e in history if name in e.get("fields", {})), key=_order)
            entity.fields[name] = newest["fields"][name]
        lifecycle = [e for e in history if e["change"] in LIFECYCLE]
        if lifecycle:
            entity.alive = LIFECYCLE[max(lifecycle, key=_order)["change"]]
        entity.first_seen_ms = min(event_ms(e) for e in history)
        qualified = [
            event_ms(e)
            for e in history
            if e.get("fields", {}).get("stage") in rules.qualified_lead_stages
        ]
        entity.qualified_stage_ms = min(qualified, default=None)
        out[(kind, entity_id)] = entity
    return out


# --- what each final entity is, for the KPIs ------------------------------------------


def _label(value: Any) -> str:
    """A dimension label as exported: empty when unset, ``|`` (key separator) as ``/``."""
    return "" if value is None else str(value).replace("|", "/")


def _dims(fields: Mapping[str, Any], kind: str = "") -> dict[str, str]:
    dims = {dim: _label(fields.get(name)) for dim, name in DIMENSION_FIELDS.items()}
    dims["kind"] = _label(kind)
    return dims


def deal_outcome(fields: Mapping[str, Any]) -> str:
    """``won``/``lost``/``open``: the status field, else the stage name (spaces ignored)."""
    text = str(fields.get("status") or fields.get("stage") or "open")
    name = text.lower().replace(" ", "")
    return {"won": "won", "closedwon": "won", "lost": "lost", "closedlost": "lost"}.get(
        name, "open"
    )


def _is_plain_date(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 10


@dataclass(frozen=True)
class Deal:
    dims: Dims
    outcome: str
    day: str | None  # close day (closed deals) or expected close day (open deals)
    cents: int
    weighted_cents: int
    cycle_seconds: int | None
    close_ms: int | None  # won deals with a closed_at
    lead_id: str | None
    account_id: str | None


@dataclass(frozen=True)
class Lead:
    dims: Dims
    qualified_day: str | None
    converted_day: str | None


@dataclass(frozen=True)
class Customer:
    dims: Dims
    first_day: str
    churn_day: str | None  # only when on or after the first won day


@dataclass(frozen=True)
class Dated:
    """An activity, spend, subscription or quota: a day, an amount and dimensions."""

    dims: Dims
    day: str | None
    cents: int = 0
    end_day: str | None = None
    expansion: bool = False


def _cycle_seconds(rules: Rules, created: Any, closed: Any) -> int | None:
    """Creation to close; two plain ISO dates count whole days."""
    if created in (None, "") or closed in (None, ""):
        return None
    if _is_plain_date(created) and _is_plain_date(closed):
        return (date.fromisoformat(closed) - date.fromisoformat(created)).days * 86400
    start, end = Clock(rules.timezone).instant_ms(created), Clock(rules.timezone).instant_ms(closed)
    assert start is not None and end is not None
    return (end - start) // 1000


def _deal(entity: Entity, rules: Rules) -> Deal:
    f = entity.fields
    outcome = deal_outcome(f)
    cal = Clock(rules.timezone)
    closed = outcome != "open"
    day = cal.day(f.get("closed_at") if closed else f.get("expected_close"))
    cents = to_cents(rules, f.get("amount"), f.get("currency"), day)
    weighted = 0
    if not closed:
        probability = f.get("probability")
        if probability in (None, ""):
            probability = rules.stage_probability.get(str(f.get("stage") or "").lower(), 0)
        weighted = int(
            (Decimal(cents) * Decimal(str(probability))).quantize(
                Decimal(1), rounding=ROUND_HALF_EVEN
            )
        )
    return Deal(
        dims=_dims(f),
        outcome=outcome,
        day=day,
        cents=cents,
        weighted_cents=weighted,
        cycle_seconds=_cycle_seconds(rules, f.get("created_at"), f.get("closed_at"))
        if closed
        else None,
        close_ms=cal.instant_ms(f.get("closed_at")) if outcome == "won" else None,
        lead_id=str(f["lead_id"]) if f.get("lead_id") else None,
        account_id=str(f["account_id"]) if f.get("account_id") else None,
    )


# --- the oracle -----------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """Local days ``[start, end)`` (``None``: unbounded); ``kind`` selects quota periods."""

    start: str | None = None
    end: str | None = None
    kind: str = "all"

    def has(self, day: str | None) -> bool:
        """A dated fact on ``day`` is in the window (an undated one is not)."""
        if day is None:
            return False
        return (self.start is None or day >= self.start) and (self.end is None or day < self.end)

    def has_or_undated(self, day: str | None) -> bool:
        """For facts that count in every window when they have no date."""
        return day is None or self.has(day)

    def before_start(self, day: str | None) -> bool:
        return day is not None and self.start is not None and day < self.start

    def before_end(self, day: str | None) -> bool:
        return day is not None and (self.end is None or day < self.end)


class BatchOracle:
    """KPIs of a whole event log, computed in batch.

    >>> from state.rules import Rules
    >>> log = [{"event_id": "e1", "source": "t", "entity": "deal", "entity_id": "D1",
    ...         "change": "create", "occurred_at": "2017-03-01T10:00:00Z", "version": 1,
    ...         "fields": {"status": "won", "amount": 10, "closed_at": "2017-03-01"}}]
    >>> BatchOracle(log, Rules()).value("won_revenue", Window("2017-03-01", "2017-04-01"))
    10.0
    """

    def __init__(self, events: Iterable[Mapping[str, Any]], rules: Rules) -> None:
        self.rules = rules
        self.clock = Clock(rules.timezone)
        self.entities = final_entities(events, rules)
        alive: dict[str, list[Entity]] = defaultdict(list)
        for entity in self.entities.values():
            if entity.alive:
                alive[entity.entity].append(entity)
        self.deals = [_deal(e, rules) for e in alive["deal"]]
        wins = [
            (d, d.close_ms) for d in self.deals if d.outcome == "won" and d.close_ms is not None
        ]
        self.leads = [self._lead(e, wins) for e in alive["lead"]]
        self.customers = self._customers(wins)
        self.activities = [self._activity(e) for e in alive["activity"]]
        self.subscriptions = [self._subscription(e) for e in alive["subscription"]]
        self.spend = [self._spend(e) for e in alive["spend"]]
        self.quotas = [self._quota(e) for e in alive["quota"]]

    def _lead(self, lead: Entity, wins: list[tuple[Deal, int]]) -> Lead:
        """Qualified on ``qualified_at``, else at the first event in a qualified stage;
        converted at the first close of an alive won deal naming it."""
        qualified = self.clock.day(lead.fields.get("qualified_at"))
        if qualified is None and lead.qualified_stage_ms is not None:
            qualified = self.clock.day_of_ms(lead.qualified_stage_ms)
        closes = [ms for deal, ms in wins if deal.lead_id == lead.entity_id]
        converted = self.clock.day_of_ms(min(closes)) if closes else None
        return Lead(_dims(lead.fields), qualified, converted)

    def _customers(self, wins: list[tuple[Deal, int]]) -> list[Customer]:
        """Alive accounts named by an alive won deal, from their first won close; churned
        on ``churned_at`` unless that is before the first win."""
        first_close: dict[str, int] = {}
        for deal, ms in wins:
            if deal.account_id is not None:
                first_close[deal.account_id] = min(ms, first_close.get(deal.account_id, ms))
        customers = []
        for account_id, ms in sorted(first_close.items()):
            account = self.entities.get(("account", account_id), Entity("account", account_id))
            if not account.alive:
                continue
            first = self.clock.day_of_ms(ms)
            churn = self.clock.day(account.fields.get("churned_at"))
            customers.append(
                Customer(_dims(account.fields), first, churn if churn and churn >= first else None)
            )
        return customers

    def _first_seen_day(self, value: Any, entity: Entity) -> str:
        """The local day of ``value``, else of the entity's first event."""
        day = self.clock.day(value)
        if day is None:
            assert entity.first_seen_ms is not None
            day = self.clock.day_of_ms(entity.first_seen_ms)
        return day

    def _activity(self, activity: Entity) -> Dated:
        kind = str(activity.fields.get("type") or "other").lower()
        kind = kind if kind in ACTIVITY_KINDS else "other"
        return Dated(
            _dims(activity.fields, kind),
            self._first_seen_day(activity.fields.get("done_at"), activity),
        )

    def _subscription(self, sub: Entity) -> Dated:
        f = sub.fields
        started = self._first_seen_day(f.get("started_at"), sub)
        return Dated(
            _dims(f),
            started,
            to_cents(self.rules, f.get("mrr"), f.get("currency"), started),
            end_day=self.clock.day(f.get("ended_at")),
            expansion=str(f.get("kind") or "new").lower() == "expansion",
        )

    def _spend(self, spend: Entity) -> Dated:
        f = spend.fields
        day = self._first_seen_day(f.get("spent_at"), spend)
        return Dated(
            _dims(f, str(f.get("category") or "")),
            day,
            to_cents(self.rules, f.get("amount"), f.get("currency"), day),
        )

    def _quota(self, quota: Entity) -> Dated:
        f = quota.fields
        day = self.clock.day(f.get("period_start"))
        return Dated(
            _dims(f, str(f.get("period") or "month")),
            day,
            to_cents(self.rules, f.get("amount"), f.get("currency"), day),
        )

    def _all(self) -> list[Any]:
        return [
            *self.deals,
            *self.leads,
            *self.customers,
            *self.activities,
            *self.subscriptions,
            *self.spend,
            *self.quotas,
        ]

    def value(
        self, name: str, window: Window | None = None, where: Mapping[str, str] | None = None
    ) -> float | None:
        """One KPI over a window, for the entities whose dimensions match ``where``."""
        wanted = dict(where or {})

        def keep(dims: Dims) -> bool:
            return all(dims[d] == v for d, v in wanted.items())

        return ORACLE_KPIS[name](self, window or Window(), keep)

    def grouped(
        self, name: str, window: Window, group_by: tuple[str, ...]
    ) -> dict[tuple[str, ...], float | None]:
        """The KPI for every combination of ``group_by`` labels found in the log."""
        groups = {tuple(r.dims[d] for d in group_by) for r in self._all()}
        return {
            g: self.value(name, window, dict(zip(group_by, g, strict=True))) for g in sorted(groups)
        }

    def empty(self, name: str, window: Window) -> float | None:
        """The KPI of a group with nothing in it (what an absent group means)."""
        return self.value(name, window, {"rep": "\x00no such rep"})

    def growth_month_to_date(self, name: str, today: date, lag: str) -> float | None:
        """Month to date vs the same number of days from the start of the month before
        (``mom``) or of the same month a year before (``yoy``), clipped to that month."""
        first = today.replace(day=1)
        if lag == "mom":
            earlier = (first - timedelta(days=1)).replace(day=1)
        else:
            earlier = first.replace(year=first.year - 1)
        after = (earlier + timedelta(days=32)).replace(day=1)
        earlier_end = min(earlier + timedelta(days=today.day), after)
        now = self.value(name, Window(first.isoformat(), (today + timedelta(1)).isoformat()))
        before = self.value(name, Window(earlier.isoformat(), earlier_end.isoformat()))
        if now is None or not before:
            return None
        return (now - before) / before

    def sales_velocity(self, today: date, days: int = 90) -> float | None:
        """Open deals x average deal size x win rate / sales cycle days, trailing window."""
        window = Window(
            (today - timedelta(days=days - 1)).isoformat(),
            (today + timedelta(days=1)).isoformat(),
            f"trailing_{days}d",
        )
        open_deals = self.value("open_deals")
        size = self.value("average_deal_size", window)
        rate = self.value("win_rate", window)
        cycle = self.value("sales_cycle", window)
        if open_deals is None or size is None or rate is None or not cycle:
            return None
        return open_deals * size * rate / cycle


# --- one oracle function per KPI ------------------------------------------------------


def _ratio(num: float, den: float) -> float | None:
    return None if den == 0 else num / den


def _closed(o: BatchOracle, w: Window, keep: Keep, outcome: str) -> list[Deal]:
    return [d for d in o.deals if keep(d.dims) and d.outcome == outcome and w.has_or_undated(d.day)]


def _open(o: BatchOracle, keep: Keep) -> list[Deal]:
    return [d for d in o.deals if keep(d.dims) and d.outcome == "open"]


def _cents(items: Iterable[Deal | Dated]) -> int:
    return sum(i.cents for i in items)


def _cycles(deals: Iterable[Deal]) -> list[int]:
    return [d.cycle_seconds for d in deals if d.cycle_seconds is not None]


def _qualified(o: BatchOracle, w: Window, keep: Keep) -> list[Lead]:
    return [lead for lead in o.leads if keep(lead.dims) and w.has(lead.qualified_day)]


def _quota_cents(o: BatchOracle, w: Window, keep: Keep) -> int:
    """Quotas starting in the window; for a month, quarter or year (calendar or fiscal),
    only the quotas set for a period of that kind."""
    kind = w.kind.removeprefix("fiscal_")
    return _cents(
        q
        for q in o.quotas
        if keep(q.dims)
        and w.has_or_undated(q.day)
        and (kind not in QUOTA_PERIODS or q.dims["kind"] == kind)
    )


def _new_customers(o: BatchOracle, w: Window, keep: Keep) -> int:
    return sum(1 for c in o.customers if keep(c.dims) and w.has(c.first_day))


def _churned(o: BatchOracle, w: Window, keep: Keep) -> int:
    return sum(1 for c in o.customers if keep(c.dims) and w.has(c.churn_day))


def _customers_at_start(o: BatchOracle, w: Window, keep: Keep) -> int:
    """Customers whose first win is before the window and who had not churned by then."""
    return sum(
        1
        for c in o.customers
        if keep(c.dims) and w.before_start(c.first_day) and not w.before_start(c.churn_day)
    )


def _customers_at_end(o: BatchOracle, w: Window, keep: Keep) -> int:
    return sum(
        1
        for c in o.customers
        if keep(c.dims) and w.before_end(c.first_day) and not w.before_end(c.churn_day)
    )


def _mrr_at_start(o: BatchOracle, w: Window, keep: Keep) -> int:
    """MRR started before the window minus MRR ended before it (the KPI's definition)."""
    subs = [s for s in o.subscriptions if keep(s.dims)]
    return sum(s.cents for s in subs if w.before_start(s.day)) - sum(
        s.cents for s in subs if w.before_start(s.end_day)
    )


def _mrr_at_end(o: BatchOracle, w: Window, keep: Keep) -> int:
    subs = [s for s in o.subscriptions if keep(s.dims)]
    return sum(s.cents for s in subs if w.before_end(s.day)) - sum(
        s.cents for s in subs if w.before_end(s.end_day)
    )


def _mrr_ended(o: BatchOracle, w: Window, keep: Keep) -> int:
    return sum(s.cents for s in o.subscriptions if keep(s.dims) and w.has(s.end_day))


def won_revenue(o: BatchOracle, w: Window, keep: Keep) -> float | None:
    return _cents(_closed(o, w, keep, "won")) / 100


def deals_won(o: BatchOracle, w: Window, keep: Keep) -> float | None:
    return len(_closed(o, w, keep, "won"))


def deals_lost(o: BatchOracle, w: Window, keep: Keep) -> float | None:
    return len(_closed(o, w, keep, "lost"))


def win_rate(o: BatchOracle, w: Window, keep: Keep) -> float | None:
    won, lost = len(_closed(o, w, keep, "won")), len(_closed(o, w, keep, "lost"))
    return _ratio(won, won + lost)


def win_rate_by_value(o: BatchOracle, w: Window, keep: Keep) -> float | None:
    won, lost = _cents(_closed(o, w, keep, "won")), _cents(_closed(o, w, keep, "lost"))
    return _ratio(won, won + lost)


def average_deal_size(o: BatchOracle, w: Window, keep: Keep) -> float | None:
    won = _closed(o, w, keep, "won")
    return _ratio(_cents(won) / 100, len(won))


def sales_cycle(o: BatchOracle, w: Window, keep: Keep) -> float | None:
    cycles = _cycles(_closed(o, w, keep, "won"))
    return _ratio(sum(cycles) / 86400, len(cycles))


def sales_cycle_closed(o: BatchOracle, w: Window, keep: Keep) -> float | None:
    cycles = _cycles(_closed(o, w, keep, "won") + _closed(o, w, keep, "lost"))
    return _ratio(sum(cycles) / 86400, len(cycles))


def open_deals(o: BatchOracle, w: Window, keep: Keep) -> float | None:
    return len(_open(o, keep))


def open_pipeline(o: BatchOracle, w: Window, keep: Keep) -> float | None:
    return _cents(_open(o, keep)) / 100


def weighted_pipeline(o: BatchOracle, w: Window, keep: Keep) -> float | None:
    return sum(d.weighted_cents for d in _open(o, keep) if w.has_or_undated(d.day)) / 100


def qualified_leads(o: BatchOracle, w: Window, keep: Keep) -> float | None:
    return len(_qualified(o, w, keep))


def lead_conversion_rate(o: BatchOracle, w: Window, keep: Keep) -> float | None:
    converted = [lead for lead in o.leads if keep(lead.dims) and w.has(lead.converted_day)]
    return _ratio(len(converted), len(_qualified(o, w, keep)))


def cohort_conversion_rate(o: BatchOracle, w: Window, keep: Keep) -> float | None:
    cohort = _qualified(o, w, keep)
    return _ratio(sum(1 for lead in cohort if lead.converted_day is not None), len(cohort))


def activities(o: BatchOracle, w: Window, keep: Keep) -> float | None:
    return sum(1 for a in o.activities if keep(a.dims) and w.has(a.day))


def quota(o: BatchOracle, w: Window, keep: Keep) -> float | None:
    return _quota_cents(o, w, keep) / 100


def quota_attainment(o: BatchOracle, w: Window, keep: Keep) -> float | None:
    return _ratio(_cents(_closed(o, w, keep, "won")), _quota_cents(o, w, keep))


def new_customers(o: BatchOracle, w: Window, keep: Keep) -> float | None:
    return _new_customers(o, w, keep)


def customer_acquisition_cost(o: BatchOracle, w: Window, keep: Keep) -> float | None:
    spend = _cents(s for s in o.spend if keep(s.dims) and w.has(s.day))
    return _ratio(spend / 100, _new_customers(o, w, keep))


def logo_churn_rate(o: BatchOracle, w: Window, keep: Keep) -> float | None:
    return _ratio(_churned(o, w, keep), _customers_at_start(o, w, keep))


def retention_rate(o: BatchOracle, w: Window, keep: Keep) -> float | None:
    end, new = _customers_at_end(o, w, keep), _new_customers(o, w, keep)
    return _ratio(end - new, _customers_at_start(o, w, keep))


def revenue_churn_rate(o: BatchOracle, w: Window, keep: Keep) -> float | None:
    return _ratio(_mrr_ended(o, w, keep), _mrr_at_start(o, w, keep))


def net_revenue_retention(o: BatchOracle, w: Window, keep: Keep) -> float | None:
    start = _mrr_at_start(o, w, keep)
    expansion = sum(
        s.cents for s in o.subscriptions if keep(s.dims) and s.expansion and w.has(s.day)
    )
    return _ratio(start + expansion - _mrr_ended(o, w, keep), start)


def customer_lifetime_value(o: BatchOracle, w: Window, keep: Keep) -> float | None:
    customers = _customers_at_end(o, w, keep)
    if customers <= 0:
        return None
    start = _customers_at_start(o, w, keep)
    rate = _churned(o, w, keep) / start if start else 0.0
    churn = max(rate, o.rules.churn_rate_floor)
    return _mrr_at_end(o, w, keep) / 100 / customers * o.rules.gross_margin / churn


ORACLE_KPIS: dict[str, Callable[[BatchOracle, Window, Keep], float | None]] = {
    f.__name__: f
    for f in (
        won_revenue,
        deals_won,
        deals_lost,
        win_rate,
        win_rate_by_value,
        average_deal_size,
        sales_cycle,
        sales_cycle_closed,
        open_deals,
        open_pipeline,
        weighted_pipeline,
        qualified_leads,
        lead_conversion_rate,
        cohort_conversion_rate,
        activities,
        quota,
        quota_attainment,
        new_customers,
        customer_acquisition_cost,
        logo_churn_rate,
        retention_rate,
        revenue_churn_rate,
        net_revenue_retention,
        customer_lifetime_value,
    )
}
