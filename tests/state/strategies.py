"""Factories for KPI-engine tests: events, event logs, deliveries, rules, engine runs.

* :func:`event_factory` builds one canonical wire event with sensible defaults;
* :func:`rules_factory` builds :class:`state.rules.Rules` with EUR/GBP rates by date;
* :func:`event_log_factory` is a hypothesis strategy for a CRM event log covering every
  entity type and change type, partial updates, ties on ``version``, owner moves,
  reopened deals, amounts edited after close, mixed currencies, links between deals,
  leads and accounts, and timestamps right at local month boundaries;
* :func:`delivery_factory` delivers a log at least once, out of order;
* :func:`run_engine` feeds a delivery to simulated partitions the way the workers do:
  every record (event or link fact) goes to the partition of its entity key, and the
  link facts an event produces are queued and delivered later, shuffled, maybe twice.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from state.aggregates import sum_aggregates
from state.contributions import AggKey
from state.processor import Outcome, PartitionState
from state.readout import Readout
from state.rules import Rules
from state.snapshot import Snapshot
from streams.records import decode_record, encode_single, partition_for

NEW_YORK = ZoneInfo("America/New_York")
FX_RATES = {
    "EUR": {"2017-01-01": "1.05", "2017-03-15": "1.0725", "2017-06-01": "1.10"},
    "GBP": {"2016-12-01": "1.25", "2017-04-01": "1.3125"},
}


def rules_factory(**overrides: Any) -> Rules:
    """Rules in New York with an April fiscal year, EUR/GBP rates and a CLV margin and
    churn floor other than the defaults, unless overridden."""
    values: dict[str, Any] = {
        "timezone": "America/New_York",
        "fiscal_year_start_month": 4,
        "fx_rates": FX_RATES,
        "gross_margin": 0.65,
        "churn_rate_floor": 0.02,
    }
    return Rules(**{**values, **overrides})


def event_factory(
    entity: str = "deal",
    entity_id: str = "D1",
    change: str = "create",
    version: int = 1,
    occurred_at: str = "2017-03-01T10:00:00Z",
    event_id: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """One canonical wire event; keyword arguments become its ``fields``."""
    merged_into = fields.pop("merged_into", None)
    event = {
        "event_id": event_id or f"{entity}-{entity_id}-{version}-{change}",
        "source": "test",
        "entity": entity,
        "entity_id": entity_id,
        "change": change,
        "occurred_at": occurred_at,
        "version": version,
        "fields": fields,
    }
    if merged_into:
        event["merged_into"] = merged_into
    return event


# --- hypothesis strategies ------------------------------------------------------------

BASE = datetime(2016, 12, 20, tzinfo=UTC)
SPAN_SECONDS = 200 * 86400
EDGE_INSTANTS = (
    "2016-12-31T23:30:00-05:00",  # 2017-01-01 in UTC, still December in New York
    "2017-03-31T23:30:00-04:00",  # last evening of March in New York, April in UTC
    "2017-04-01T03:59:59Z",  # ditto
    "2017-04-01T04:00:00Z",  # midnight April 1 in New York
    "2017-03-12T06:30:00Z",  # the day New York moves to daylight time
    "2017-06-30T23:59:59-04:00",
    "2017-06-30T19:00:00-07:00",  # 02:00 UTC July 1
)
REPS = ("ann", "bob", "cy|z")  # '|' is the aggregate-key separator: labels must escape it
TEAMS = ("east", "west", None)
OFFICES = ("nyc", "ldn")
CURRENCIES = ("USD", "EUR", "GBP", "eur", None)
LEAD_IDS = ("L0", "L1", "L2", "L3")
ACCOUNT_IDS = ("A0", "A1", "A2", "A3")


@cache
def instants() -> st.SearchStrategy[datetime]:
    """Instants over ~6.5 months, with extra weight on local month and DST boundaries."""
    return st.one_of(
        st.integers(0, SPAN_SECONDS).map(lambda s: BASE + timedelta(seconds=s)),
        st.sampled_from(EDGE_INSTANTS).map(datetime.fromisoformat),
    )


def _as_value(moment: datetime, form: str) -> Any:
    if form == "date":
        return moment.astimezone(NEW_YORK).date().isoformat()
    if form == "utc":
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if form == "offset":
        return moment.astimezone(NEW_YORK).isoformat()
    if form == "naive":
        return moment.astimezone(NEW_YORK).replace(tzinfo=None).isoformat()
    return int(moment.timestamp() * 1000)


@cache
def time_values() -> st.SearchStrategy[Any]:
    """A time-valued field as CRMs send it: ISO date, ISO datetime (UTC, offset, naive)
    or epoch milliseconds."""
    return st.builds(
        _as_value, instants(), st.sampled_from(("date", "utc", "offset", "naive", "ms"))
    )


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The value (three times in four), or explicitly cleared (``None``)."""
    return st.tuples(strategy, st.integers(0, 3)).map(lambda pair: pair[0] if pair[1] else None)


@cache
def amounts() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.integers(0, 50_000),
        st.decimals(min_value=0, max_value=50_000, places=3).map(str),
        st.sampled_from(["", "0.005", "0.015", "1054.10"]),
    )


OWNED = {
    "owner": maybe(st.sampled_from(REPS)),
    "team": st.sampled_from(TEAMS),
    "office": st.sampled_from(OFFICES),
}
FIELDS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "deal": {
        **OWNED,
        "product": st.sampled_from(("basic", "pro")),
        "source": st.sampled_from(("web", "partner", "a|b")),
        "status": st.sampled_from(("open", "won", "won", "lost", "Won", "", None)),
        "stage": st.sampled_from(
            (
                "prospecting",
                "proposal",
                "negotiation",
                "Closed Won",
                "closedlost",
                "demo",
                "mystery",
                None,
            )
        ),
        "amount": amounts(),
        "currency": st.sampled_from(CURRENCIES),
        "closed_at": maybe(time_values()),
        "created_at": maybe(time_values()),
        "expected_close": maybe(time_values()),
        "probability": st.sampled_from((None, "", 0.25, "0.5", 1, 0.333)),
        "lead_id": st.sampled_from((*LEAD_IDS, *LEAD_IDS, None, "")),
        "account_id": st.sampled_from((*ACCOUNT_IDS, *ACCOUNT_IDS, None)),
    },
    "lead": {
        **OWNED,
        "stage": st.sampled_from(("new", "mql", "sql", "qualified", "MQL", "unqualified", None)),
        "qualified_at": maybe(time_values()),
        "created_at": time_values(),
    },
    "activity": {
        **OWNED,
        "type": st.sampled_from(("call", "email", "meeting", "demo", "task", "Call", "note", None)),
        "done_at": maybe(time_values()),
    },
    "account": {**OWNED, "churned_at": maybe(time_values())},
    "subscription": {
        **OWNED,
        "mrr": amounts(),
        "currency": st.sampled_from(CURRENCIES),
        "started_at": maybe(time_values()),
        "ended_at": maybe(time_values()),
        "kind": st.sampled_from(("new", "expansion", "Expansion", None)),
    },
    "spend": {
        "team": st.sampled_from(TEAMS),
        "office": st.sampled_from(OFFICES),
        "amount": amounts(),
        "currency": st.sampled_from(CURRENCIES),
        "spent_at": maybe(time_values()),
        "category": st.sampled_from(("ads", "events", "paid|search", None)),
    },
    "quota": {
        **OWNED,
        "amount": amounts(),
        "currency": st.sampled_from(CURRENCIES),
        "period_start": st.one_of(
            st.sampled_from(("2017-01-01", "2017-02-01", "2017-03-01", "2017-04-01", "2017-07-01")),
            time_values(),
            st.none(),
        ),
        "period": st.sampled_from(("month", "quarter", "year", None)),
    },
}
ENTITY_IDS = {
    "deal": ("D0", "D1", "D2", "D3", "D4", "D5"),
    "lead": LEAD_IDS,
    "account": ACCOUNT_IDS,
    "activity": ("T0", "T1", "T2"),
    "subscription": ("S0", "S1", "S2"),
    "spend": ("P0", "P1"),
    "quota": ("Q0", "Q1", "Q2"),
}
FIRST_CHANGES = ("create", "create", "create", "update")
LATER_CHANGES = ("update",) * 6 + ("delete", "merge", "restore", "create")
HISTORY_LENGTHS = st.integers(1, 4)


@cache
def _event_parts(entity: str, first: bool) -> st.SearchStrategy[tuple[Any, ...]]:
    """(change, fields, occurred_at, event id salt, version) of one event: a first event
    sets any fields, a later one (a partial update) up to three."""
    spec = FIELDS[entity]
    if first:
        fields = st.fixed_dictionaries({}, optional=spec)
    else:
        fields = st.lists(st.sampled_from(sorted(spec)), unique=True, max_size=3).flatmap(
            lambda names: st.fixed_dictionaries({name: spec[name] for name in names})
        )
    return st.tuples(
        st.sampled_from(FIRST_CHANGES if first else LATER_CHANGES),
        fields,
        instants(),
        st.integers(0, 9),
        st.integers(0, 6),
    )


@st.composite
def history_factory(draw: st.DrawFn, entity: str, entity_id: str) -> list[dict[str, Any]]:
    """Every event of one entity: a creation (usually), then partial updates and
    lifecycle changes, with versions that may tie (the event id breaks ties)."""
    events = []
    for i in range(draw(HISTORY_LENGTHS)):
        change, fields, occurred, salt, version = draw(_event_parts(entity, i == 0))
        event = {
            "event_id": f"{entity_id}.{salt}.{i}",
            "source": "test",
            "entity": entity,
            "entity_id": entity_id,
            "change": change,
            "occurred_at": occurred.isoformat().replace("+00:00", "Z"),
            "version": version,
            "fields": fields,
        }
        if change == "merge":
            event["merged_into"] = f"{entity_id}-survivor"
        events.append(event)
    return events


@st.composite
def funnel_factory(draw: st.DrawFn, n: int) -> list[dict[str, Any]]:
    """A coherent customer story, so that conversion and churn KPIs see data: a lead
    qualifies (and may requalify), its deal is won some days later for a new account
    that subscribes and may churn, usually months later."""
    anchor = draw(instants())
    form = st.sampled_from(("date", "utc", "offset", "naive", "ms"))
    rep, team = draw(st.sampled_from(REPS)), draw(st.sampled_from(TEAMS))

    def later(low: int, high: int) -> datetime:
        return anchor + timedelta(
            days=draw(st.integers(low, high)), seconds=draw(st.integers(0, 86399))
        )

    lead, deal, account, sub = f"FL{n}", f"FD{n}", f"FA{n}", f"FS{n}"
    qualified, closed = later(0, 10), later(5, 40)
    steps: list[tuple[str, str, str, datetime, dict[str, Any]]] = [
        ("lead", lead, "create", anchor, {"owner": rep, "team": team, "stage": "new"}),
        ("lead", lead, "update", qualified, {"stage": draw(st.sampled_from(("mql", "sql")))}),
        (
            "deal",
            deal,
            "create",
            qualified,
            {
                "owner": rep,
                "team": team,
                "status": "open",
                "stage": "proposal",
                "amount": draw(amounts()),
                "currency": draw(st.sampled_from(CURRENCIES)),
                "lead_id": lead,
                "account_id": account,
                "created_at": _as_value(qualified, draw(form)),
            },
        ),
        (
            "deal",
            deal,
            "update",
            closed,
            {"status": "won", "closed_at": _as_value(closed, draw(form))},
        ),
        ("account", account, "create", closed, {"owner": rep, "team": team}),
        (
            "subscription",
            sub,
            "create",
            closed,
            {
                "owner": rep,
                "team": team,
                "mrr": draw(amounts()),
                "kind": draw(st.sampled_from(("new", "expansion"))),
                "started_at": _as_value(closed, draw(form)),
            },
        ),
    ]
    if draw(st.integers(0, 2)) == 0:  # the won deal is moved to another lead or account
        moved = draw(st.sampled_from(("lead_id", "account_id")))
        target = draw(st.sampled_from((*LEAD_IDS, None) if moved == "lead_id" else ACCOUNT_IDS))
        steps.append(("deal", deal, "update", later(5, 60), {moved: target}))
    if draw(st.booleans()):  # moves on to SQL later: the lead stays qualified since MQL
        steps.append(("lead", lead, "update", later(0, 60), {"stage": "sql"}))
    if draw(st.booleans()):  # churns, usually months later (rarely before the win)
        churned = _as_value(later(0, 150), draw(form))
        steps.append(("account", account, "update", later(30, 150), {"churned_at": churned}))
        steps.append(("subscription", sub, "update", later(30, 150), {"ended_at": churned}))
    return [
        {
            "event_id": f"F{n}.{i}",
            "source": "test",
            "entity": entity,
            "entity_id": eid,
            "change": change,
            "occurred_at": at.isoformat(),
            "version": i,
            "fields": fields,
        }
        for i, (entity, eid, change, at, fields) in enumerate(steps)
    ]


@st.composite
def event_log_factory(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A CRM event log over every entity type (each entity's events in creation order),
    plus up to two coherent customer stories."""
    log: list[dict[str, Any]] = []
    for entity, ids in ENTITY_IDS.items():
        for entity_id in draw(st.lists(st.sampled_from(ids), unique=True, min_size=1)):
            log.extend(draw(history_factory(entity, entity_id)))
    for n in range(draw(st.integers(0, 2))):
        log.extend(draw(funnel_factory(n)))
    return log


@st.composite
def delivery_factory(draw: st.DrawFn, log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The log delivered at least once, in any order (some events redelivered)."""
    extra = draw(st.lists(st.sampled_from(log), max_size=len(log) // 2)) if log else []
    return draw(st.permutations(log + extra))


# --- the engine, partitioned as in the workers ----------------------------------------


@dataclass
class EngineRun:
    """The partitions after a delivery, and what happened on the way."""

    partitions: dict[int, PartitionState]
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def aggregates(self) -> dict[AggKey, int]:
        """The partitions' aggregates as the collector sees them: published as JSON shards
        (what goes to Redis), decoded and summed."""
        published = [ps.aggregates.decode_published() for ps in self.partitions.values()]
        for ps, seen in zip(self.partitions.values(), published, strict=True):
            assert seen == ps.aggregates.values, "aggregates changed on their way to Redis"
        return sum_aggregates(published)

    @property
    def readout(self) -> Readout:
        rules = next(iter(self.partitions.values())).rules
        return Readout(self.aggregates, rules.kpi_params)

    @property
    def snapshots(self) -> dict[str, Snapshot]:
        merged: dict[str, Snapshot] = {}
        for ps in self.partitions.values():
            assert not merged.keys() & ps.store.keys(), "an entity in two partitions"
            merged.update(ps.store)
        return merged


def _record_key(record: Mapping[str, Any]) -> str:
    return f"{record['entity']}:{record['entity_id']}"


def run_engine(
    delivery: Iterable[dict[str, Any]],
    rules: Rules,
    rnd: random.Random,
    partitions: int = 3,
    link_copies: int = 1,
) -> EngineRun:
    """Apply a delivery to ``partitions`` partition states, routing every record (event or
    link fact) by its entity key; link facts travel as JSON, are interleaved with later
    events at random and the rest delivered at the end, shuffled, ``link_copies`` times."""
    run = EngineRun({p: PartitionState(rules, {}) for p in range(partitions)})
    pending: list[dict[str, Any]] = []

    def deliver(record: dict[str, Any]) -> None:
        (decoded,) = decode_record(encode_single(record))  # through the wire format
        assert isinstance(decoded, dict)
        outcome = run.partitions[partition_for(_record_key(decoded), partitions)].apply(decoded)
        assert outcome.status != "invalid", outcome.reason
        run.outcomes.append(outcome)
        pending.extend(link for link in outcome.links for _ in range(link_copies))

    for event in delivery:
        while pending and rnd.random() < 0.3:
            deliver(pending.pop(rnd.randrange(len(pending))))
        deliver(event)
    while pending:
        deliver(pending.pop(rnd.randrange(len(pending))))
    return run
