"""A seeded, realistic CRM workload for the benchmark, with a controllable entity count.

The shapes follow :mod:`streams.generator` (DemoWorld) at any scale: a sales org of
``reps`` people in teams and offices works accounts and leads; leads move new -> mql ->
sql (or get disqualified); deals are created (with their account and, for converted
leads, their lead), move through the stages and close won or lost; reps log calls,
emails, meetings and demos. Closed deals get corrections at realistic rates (amount
edited, owner reassigned, close date moved, reopened, deleted, restored), and about 2 %
of deliveries are redeliveries of a recent event (some of them arrive after newer
versions, i.e. out of order) plus 0.3 % retries whose provider changed the event id.

The number of distinct entities is ``entities``; the number of events defaults to the
natural ~1.9 events per entity (creations are spread evenly over the stream, the rest are
updates of entities created earlier). Event time advances evenly over ``days`` days from
``start``, so KPIs land in every month of the span. Amounts are in USD, EUR or GBP
(converted with ``bench/rules.yaml``).

Generation is a tight loop over compact arrays (no per-entity objects), so 10^7
entities fit in a few hundred MB and a million events take a few seconds.

>>> w = Workload(WorkloadConfig(entities=1000, seed=3))
>>> events = [e for chunk in w.chunks(500) for _, e in chunk]
>>> len(events) == w.config.total_events, w.created <= 1000
(True, True)
>>> {e["entity"] for e in events} == {"deal", "lead", "activity", "account"}
True
"""

from __future__ import annotations

import random
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from bench.records import partition_for

STAGES = ("prospecting", "qualification", "demo", "proposal", "negotiation")
PRODUCTS = {"Core": 1200.0, "Plus": 3400.0, "Enterprise": 9800.0}
PRODUCT_NAMES = tuple(PRODUCTS)
SOURCES = ("inbound", "outbound", "referral", "event")
ACTIVITY_TYPES = ("call", "email", "meeting", "demo")
INDUSTRIES = ("software", "retail", "finance", "health", "manufacturing")
CURRENCIES = ("USD", "USD", "USD", "USD", "USD", "USD", "USD", "EUR", "EUR", "GBP")
OFFICES = ("East", "Central", "West")
FIRST = "Ana Ben Chloe Dev Eli Fay Gus Hana Ivy Jon Kim Leo Mia Noah Olga Pia Raj Sol Tom Uma"
LAST = "Lima Okafor Park Patel Novak Chen Moreau Sato Brooks Berg Alvarez Rossi Kaur Silva"
# Creations by entity type (shares of all entities) and updates by kind (relative weights).
CREATE_MIX = (("activity", 0.50), ("deal", 0.20), ("lead", 0.20), ("account", 0.10))
UPDATE_MIX = (
    ("deal_progress", 0.555),
    ("lead_progress", 0.267),
    ("deal_correction", 0.067),
    ("activity_edit", 0.056),
    ("account_update", 0.055),
)
NATURAL_EVENTS_PER_ENTITY = 1.9
OPEN, WON, LOST, DELETED = 0, 1, 2, 3


def default_reps(entities: int) -> int:
    """Sales org size for an entity count: 12 reps at 10^5, x4 per decade (192 at 10^7)."""
    reps, scale = 12, 100_000
    while scale * 10 <= entities:
        reps, scale = reps * 4, scale * 10
    return reps


@dataclass(frozen=True)
class WorkloadConfig:
    """What to generate; ``events`` defaults to the natural count for ``entities``."""

    entities: int = 100_000
    events: int | None = None
    seed: int = 1
    start: date = date(2024, 1, 1)
    days: int = 365
    reps: int | None = None
    partitions: int = 4
    duplicate_rate: float = 0.02
    retry_new_id_rate: float = 0.003
    lead_link_share: float = 0.4

    @property
    def total_events(self) -> int:
        return self.events or round(self.entities * NATURAL_EVENTS_PER_ENTITY)

    @property
    def rep_count(self) -> int:
        return self.reps or default_reps(self.entities)


def make_reps(n: int) -> list[dict[str, str]]:
    """``n`` reps as owner/team/office dimension dicts (4 reps a team)."""
    firsts, lasts = FIRST.split(), LAST.split()
    out = []
    for i in range(n):
        name = f"{firsts[i % len(firsts)]} {lasts[(i // len(firsts)) % len(lasts)]}"
        if i >= len(firsts) * len(lasts):
            name += f" {i}"
        team = f"Team {i // 4 + 1:03d}"
        out.append({"owner": name, "team": team, "office": OFFICES[(i // 4) % len(OFFICES)]})
    return out


def _cumulative(obj: Any, mix: tuple[tuple[str, float], ...], prefix: str) -> list[Any]:
    total, acc, out = sum(w for _, w in mix), 0.0, []
    for name, weight in mix:
        acc += weight / total
        out.append((acc, getattr(obj, prefix + name)))
    return out


@dataclass
class Workload:
    """The stream of (partition, wire event) of one :class:`WorkloadConfig`."""

    config: WorkloadConfig
    created: int = 0
    emitted: int = 0
    stats: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        c = self.config
        self.rng = random.Random(c.seed)
        self.reps = make_reps(c.rep_count)
        self._day_cache: dict[int, str] = {}
        self._start_ord = c.start.toordinal()
        self._ms_per_event = c.days * 86_400_000 / max(1, c.total_events)
        # Compact per-entity state: deals, leads, activities, accounts.
        self.deal_version, self.deal_status = array("l"), bytearray()
        self.deal_stage, self.deal_part = bytearray(), bytearray()
        self.deal_amount, self.deal_rep = array("d"), array("l")
        self.deal_currency = bytearray()
        self.deal_due: list[list[int]] = [[] for _ in range(c.days + 64)]
        self._due_ptr = 0
        self._today = 0
        self.closed_deals: list[int] = []
        self.deleted_deals: list[int] = []
        self.lead_version, self.lead_part, self.lead_stage = array("l"), bytearray(), bytearray()
        self.open_leads: list[int] = []
        self.activity_version, self.activity_part = array("l"), bytearray()
        self.account_version, self.account_part = array("l"), bytearray()
        self.recent: list[tuple[int, dict[str, Any]]] = []
        self._creators = _cumulative(self, CREATE_MIX, "_new_")
        self._updaters = _cumulative(self, UPDATE_MIX, "_")
        self._now_ms = 0
        self._day = ""

    # --- helpers -------------------------------------------------------------------

    def _iso_day(self, offset: int) -> str:
        day = self._day_cache.get(offset)
        if day is None:
            day = date.fromordinal(self._start_ord + offset).isoformat()
            self._day_cache[offset] = day
        return day

    def _event(
        self, entity: str, eid: str, change: str, version: int, fields: dict[str, Any]
    ) -> dict[str, Any]:
        self.emitted += 1
        ms = self._now_ms
        sec = (ms // 1000) % 86400
        at = f"{self._day}T{sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}Z"
        return {
            "v": 1,
            "event_id": f"b{self.config.seed}-{self.emitted}",
            "source": "bench",
            "entity": entity,
            "entity_id": eid,
            "change": change,
            "occurred_at": at,
            "version": version,
            "fields": fields,
        }

    def _rep(self) -> int:
        return int(self.rng.random() * len(self.reps))

    def _part(self, key: str) -> int:
        return partition_for(key, self.config.partitions)

    # --- creations -----------------------------------------------------------------

    def _create(self) -> tuple[int, dict[str, Any]]:
        roll = self.rng.random()
        self.created += 1
        for threshold, make in self._creators:
            if roll < threshold:
                return make()  # type: ignore[no-any-return]
        return self._creators[-1][1]()  # type: ignore[no-any-return]

    def _new_activity(self) -> tuple[int, dict[str, Any]]:
        n = len(self.activity_version)
        eid = f"T{n}"
        part = self._part(f"activity:{eid}")
        self.activity_version.append(1)
        self.activity_part.append(part)
        fields = {**self.reps[self._rep()], "type": ACTIVITY_TYPES[int(self.rng.random() * 4)]}
        fields["done_at"] = f"{self._day}T12:00:00Z"
        return part, self._event("activity", eid, "create", 1, fields)

    def _new_account(self) -> tuple[int, dict[str, Any]]:
        n = len(self.account_version)
        eid = f"C{n}"
        part = self._part(f"account:{eid}")
        self.account_version.append(1)
        self.account_part.append(part)
        fields = {
            **self.reps[self._rep()],
            "name": f"Account {n}",
            "industry": INDUSTRIES[int(self.rng.random() * len(INDUSTRIES))],
        }
        return part, self._event("account", eid, "create", 1, fields)

    def _new_lead(self) -> tuple[int, dict[str, Any]]:
        n = len(self.lead_version)
        eid = f"L{n}"
        part = self._part(f"lead:{eid}")
        self.lead_version.append(1)
        self.lead_part.append(part)
        self.lead_stage.append(0)
        self.open_leads.append(n)
        fields = {
            **self.reps[self._rep()],
            "stage": "new",
            "source": SOURCES[int(self.rng.random() * 4)],
            "created_at": self._day,
        }
        return part, self._event("lead", eid, "create", 1, fields)

    def _new_deal(self) -> tuple[int, dict[str, Any]]:
        rng, n = self.rng, len(self.deal_version)
        eid = f"D{n}"
        part = self._part(f"deal:{eid}")
        rep = self._rep()
        product = PRODUCT_NAMES[int(rng.random() * 3)]
        amount = round(PRODUCTS[product] * (0.7 + 0.6 * rng.random()), 2)
        currency = CURRENCIES[int(rng.random() * len(CURRENCIES))]
        self.deal_version.append(1)
        self.deal_status.append(OPEN)
        self.deal_stage.append(0)
        self.deal_part.append(part)
        self.deal_amount.append(amount)
        self.deal_rep.append(rep)
        self.deal_currency.append(CURRENCIES.index(currency))
        self._schedule(n)
        offset = self._today
        fields: dict[str, Any] = {
            **self.reps[rep],
            "product": product,
            "source": SOURCES[int(rng.random() * 4)],
            "stage": STAGES[0],
            "status": "open",
            "amount": amount,
            "currency": currency,
            "created_at": self._day,
            "expected_close": self._iso_day(offset + 30 + int(rng.random() * 60)),
        }
        if self.account_version:
            fields["account_id"] = f"C{int(rng.random() * len(self.account_version))}"
        if self.lead_version and rng.random() < self.config.lead_link_share:
            fields["lead_id"] = f"L{int(rng.random() * len(self.lead_version))}"
        return part, self._event("deal", eid, "create", 1, fields)

    # --- updates -------------------------------------------------------------------

    def _update(self) -> tuple[int, dict[str, Any]] | None:
        roll = self.rng.random()
        chosen = self._updaters[-1][1]
        for threshold, update in self._updaters:
            if roll < threshold:
                chosen = update
                break
        made = chosen()
        if made is None:  # nothing due in its pool: fall back to the others, in order
            for _, other in self._updaters:
                if other is not chosen and (made := other()) is not None:
                    break
        return made  # type: ignore[no-any-return]

    def _pick(self, pool: list[int]) -> tuple[int, int]:
        j = int(self.rng.random() * len(pool))
        return j, pool[j]

    @staticmethod
    def _drop(pool: list[int], j: int) -> None:
        pool[j] = pool[-1]
        pool.pop()

    def _deal_event(self, n: int, change: str, fields: dict[str, Any]) -> tuple[int, dict]:
        self.deal_version[n] += 1
        return self.deal_part[n], self._event("deal", f"D{n}", change, self.deal_version[n], fields)

    def _schedule(self, n: int) -> None:
        """The open deal ``n`` moves again in 2 to 19 days (event time)."""
        day = self._today + 2 + int(self.rng.random() * 18)
        self.deal_due[min(day, len(self.deal_due) - 1)].append(n)

    def _next_due(self) -> int | None:
        due = self.deal_due
        while self._due_ptr <= self._today:
            bucket = due[self._due_ptr]
            if bucket:
                return bucket.pop()
            self._due_ptr += 1
        return None

    def _deal_progress(self) -> tuple[int, dict[str, Any]] | None:
        n = self._next_due()
        if n is None:
            return None
        rng = self.rng
        stage = self.deal_stage[n]
        if stage < len(STAGES) - 1 and rng.random() < 0.6:
            self.deal_stage[n] = stage + 1
            self._schedule(n)
            fields: dict[str, Any] = {"stage": STAGES[stage + 1]}
            if rng.random() < 0.2:  # re-quoted while negotiating
                self.deal_amount[n] = round(self.deal_amount[n] * (0.9 + 0.2 * rng.random()), 2)
                fields["amount"] = self.deal_amount[n]
            return self._deal_event(n, "update", fields)
        status = WON if rng.random() < 0.4 else LOST
        self.deal_status[n] = status
        self.closed_deals.append(n)
        name = "won" if status == WON else "lost"
        return self._deal_event(
            n, "update", {"status": name, "stage": name, "closed_at": self._day}
        )

    def _deal_correction(self) -> tuple[int, dict[str, Any]] | None:
        if not self.closed_deals:
            return None
        rng = self.rng
        roll = rng.random()
        if roll < 0.05 and self.deleted_deals:  # restore a deleted deal
            j, n = self._pick(self.deleted_deals)
            self._drop(self.deleted_deals, j)
            self.closed_deals.append(n)
            return self._deal_event(n, "restore", {})
        j, n = self._pick(self.closed_deals)
        if roll < 0.40:  # amount edited after close
            self.deal_amount[n] = round(self.deal_amount[n] * (0.9 + 0.2 * rng.random()), 2)
            return self._deal_event(n, "update", {"amount": self.deal_amount[n]})
        if roll < 0.60:  # reassigned to another owner
            rep = self._rep()
            self.deal_rep[n] = rep
            return self._deal_event(n, "update", dict(self.reps[rep]))
        if roll < 0.75:  # close date moved (may change the month)
            offset = self._today - int(rng.random() * 20)
            return self._deal_event(n, "update", {"closed_at": self._iso_day(max(0, offset))})
        if roll < 0.90:  # moved back from won/lost to open
            self._drop(self.closed_deals, j)
            self.deal_status[n] = OPEN
            self.deal_stage[n] = len(STAGES) - 1
            self._schedule(n)
            return self._deal_event(n, "update", {"status": "open", "stage": STAGES[-1]})
        self._drop(self.closed_deals, j)  # deleted in the CRM
        self.deal_status[n] = DELETED
        self.deleted_deals.append(n)
        return self._deal_event(n, "delete", {})

    def _lead_progress(self) -> tuple[int, dict[str, Any]] | None:
        if not self.open_leads:
            return None
        j, n = self._pick(self.open_leads)
        stage = self.lead_stage[n] + 1
        name = ("new", "mql", "sql")[stage] if stage < 3 else "sql"
        if self.rng.random() < 0.12:
            name, stage = "disqualified", 3
        self.lead_stage[n] = stage
        if stage >= 2:
            self._drop(self.open_leads, j)
        self.lead_version[n] += 1
        return self.lead_part[n], self._event(
            "lead", f"L{n}", "update", self.lead_version[n], {"stage": name}
        )

    def _activity_edit(self) -> tuple[int, dict[str, Any]] | None:
        if not self.activity_version:
            return None
        n = int(self.rng.random() * len(self.activity_version))
        self.activity_version[n] += 1
        fields = {"type": ACTIVITY_TYPES[int(self.rng.random() * 4)]}
        return self.activity_part[n], self._event(
            "activity", f"T{n}", "update", self.activity_version[n], fields
        )

    def _account_update(self) -> tuple[int, dict[str, Any]] | None:
        if not self.account_version:
            return None
        n = int(self.rng.random() * len(self.account_version))
        self.account_version[n] += 1
        fields = {"industry": INDUSTRIES[int(self.rng.random() * len(INDUSTRIES))]}
        return self.account_part[n], self._event(
            "account", f"C{n}", "update", self.account_version[n], fields
        )

    # --- the stream ----------------------------------------------------------------

    def _redelivery(self) -> tuple[int, dict[str, Any]] | None:
        if not self.recent:
            return None
        part, event = self.recent[int(self.rng.random() * len(self.recent))]
        if self.rng.random() < self.config.retry_new_id_rate / self.config.duplicate_rate:
            event = {**event, "event_id": event["event_id"] + "-retry"}
            self.stats["retries_new_id"] = self.stats.get("retries_new_id", 0) + 1
        else:
            self.stats["redeliveries"] = self.stats.get("redeliveries", 0) + 1
        return part, event

    def chunks(self, size: int = 20_000) -> Iterator[list[tuple[int, dict[str, Any]]]]:
        """The whole workload as lists of ``(partition, event)`` of at most ``size``."""
        c, rng = self.config, self.rng
        total, fresh = c.total_events, 0
        ring = 10_000
        out: list[tuple[int, dict[str, Any]]] = []
        produced = 0
        while produced < total:
            self._now_ms = int(produced * self._ms_per_event)
            today = self._now_ms // 86_400_000
            if today != self._today or not self._day:
                self._today, self._day = today, self._iso_day(today)
            item = None
            if rng.random() < c.duplicate_rate + c.retry_new_id_rate:
                item = self._redelivery()
            if item is None:
                fresh += 1
                due = self.created < c.entities and self.created < c.entities * fresh / total
                item = self._create() if due or not self.created else self._update()
                if item is None:
                    item = self._create()
                if len(self.recent) < ring:
                    self.recent.append(item)
                else:
                    self.recent[int(rng.random() * ring)] = item
            out.append(item)
            produced += 1
            if len(out) >= size:
                yield out
                out = []
        if out:
            yield out

    def describe(self) -> dict[str, Any]:
        """Counts after generation: entities by type, redeliveries, reps, span."""
        c = self.config
        return {
            "events": c.total_events,
            "entities": self.created,
            "deals": len(self.deal_version),
            "leads": len(self.lead_version),
            "activities": len(self.activity_version),
            "accounts": len(self.account_version),
            "reps": c.rep_count,
            "days": c.days,
            "start": c.start.isoformat(),
            "end": (c.start + timedelta(days=c.days)).isoformat(),
            "seed": c.seed,
            **self.stats,
        }
