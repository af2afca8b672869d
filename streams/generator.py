"""A seeded generator of realistic CRM activity for demos, tests and benchmarks.

A small sales org (teams, reps, offices) works accounts and leads; leads qualify; deals
are created, move through stages and close won or lost; reps log calls, emails, meetings
and demos. A few changes are corrections (amount edited after close, a deal reopened) and
a few events are delivered twice, as real webhooks are.

>>> world = DemoWorld(seed=7)
>>> events = world.next_events(50, now_ms=1_700_000_000_000)
>>> len(events), {e["entity"] for e in events} <= {"lead", "deal", "activity", "account", "quota"}
(50, True)
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import click

log = logging.getLogger(__name__)

TEAMS = {
    "East": ("Avery Stone", ["Ana Lima", "Ben Okafor", "Chloe Park", "Dev Patel"]),
    "Central": ("Blake Reyes", ["Eli Novak", "Fay Chen", "Gus Moreau", "Hana Sato"]),
    "West": ("Casey Ward", ["Ivy Brooks", "Jon Berg", "Kim Alvarez", "Leo Rossi"]),
}
PRODUCTS = {"Core": 1200, "Plus": 3400, "Enterprise": 9800}
SOURCES = ["inbound", "outbound", "referral", "event"]
STAGES = ["prospecting", "qualification", "demo", "proposal", "negotiation"]
ACTIVITY_TYPES = ["call", "email", "meeting", "demo"]


@dataclass
class _Deal:
    id: str
    rep: str
    team: str
    office: str
    stage: int = 0
    version: int = 0
    amount: int = 0
    status: str = "open"


@dataclass
class DemoWorld:
    """Seeded state of a demo CRM; :meth:`next_events` advances it."""

    seed: int = 42
    rng: random.Random = field(init=False)
    deals: list[_Deal] = field(default_factory=list)
    counter: int = 0
    reps: list[tuple[str, str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.reps = [
            (rep, manager, office) for office, (manager, reps) in TEAMS.items() for rep in reps
        ]

    def _event(
        self,
        entity: str,
        entity_id: str,
        change: str,
        version: int,
        now_ms: int,
        fields: dict[str, Any],
    ) -> dict[str, Any]:
        self.counter += 1
        at = datetime.fromtimestamp(now_ms / 1000, UTC).isoformat().replace("+00:00", "Z")
        return {
            "v": 1,
            "event_id": f"demo-{self.seed}-{self.counter}",
            "source": "demo",
            "entity": entity,
            "entity_id": entity_id,
            "change": change,
            "occurred_at": at,
            "version": version,
            "fields": fields,
        }

    def _owner(self) -> dict[str, str]:
        rep, team, office = self.rng.choice(self.reps)
        return {"owner": rep, "team": team, "office": office}

    def _new_deal(self, now_ms: int) -> dict[str, Any]:
        owner = self._owner()
        product = self.rng.choice(list(PRODUCTS))
        deal = _Deal(
            f"D{self.seed}-{self.counter}",
            owner["owner"],
            owner["team"],
            owner["office"],
            version=1,
            amount=int(PRODUCTS[product] * self.rng.uniform(0.7, 1.3)),
        )
        self.deals.append(deal)
        day = datetime.fromtimestamp(now_ms / 1000, UTC).date().isoformat()
        return self._event(
            "deal",
            deal.id,
            "create",
            1,
            now_ms,
            {
                **owner,
                "product": product,
                "source": self.rng.choice(SOURCES),
                "stage": STAGES[0],
                "status": "open",
                "amount": deal.amount,
                "currency": "USD",
                "created_at": day,
                "expected_close": day,
            },
        )

    def _advance_deal(self, now_ms: int) -> dict[str, Any]:
        deal = self.rng.choice(self.deals)
        deal.version += 1
        day = datetime.fromtimestamp(now_ms / 1000, UTC).date().isoformat()
        if deal.status != "open":
            if self.rng.random() < 0.3:  # correction after close: amount edited
                deal.amount = int(deal.amount * self.rng.uniform(0.9, 1.1))
                return self._event(
                    "deal", deal.id, "update", deal.version, now_ms, {"amount": deal.amount}
                )
            deal.status, deal.stage = "open", len(STAGES) - 1  # reopened
            return self._event(
                "deal",
                deal.id,
                "update",
                deal.version,
                now_ms,
                {"status": "open", "stage": STAGES[-1]},
            )
        if deal.stage < len(STAGES) - 1 and self.rng.random() < 0.6:
            deal.stage += 1
            return self._event(
                "deal", deal.id, "update", deal.version, now_ms, {"stage": STAGES[deal.stage]}
            )
        deal.status = "won" if self.rng.random() < 0.55 else "lost"
        return self._event(
            "deal",
            deal.id,
            "update",
            deal.version,
            now_ms,
            {"status": deal.status, "stage": deal.status, "closed_at": day},
        )

    def _other(self, now_ms: int) -> dict[str, Any]:
        roll = self.rng.random()
        if roll < 0.6:
            return self._event(
                "activity",
                f"A{self.seed}-{self.counter}",
                "create",
                1,
                now_ms,
                {**self._owner(), "type": self.rng.choice(ACTIVITY_TYPES)},
            )
        stage = self.rng.choice(["new", "mql", "sql"])
        return self._event(
            "lead",
            f"L{self.seed}-{self.rng.randrange(5000)}",
            "update",
            now_ms,
            now_ms,
            {**self._owner(), "stage": stage, "source": self.rng.choice(SOURCES)},
        )

    def next_events(self, n: int, now_ms: int | None = None) -> list[dict[str, Any]]:
        """The next ``n`` events (about 2 % are redeliveries of an earlier one)."""
        now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
        out: list[dict[str, Any]] = []
        while len(out) < n:
            roll = self.rng.random()
            if out and roll < 0.02:
                out.append(dict(self.rng.choice(out)))
            elif not self.deals or roll < 0.2:
                out.append(self._new_deal(now_ms))
            elif roll < 0.6:
                out.append(self._advance_deal(now_ms))
            else:
                out.append(self._other(now_ms))
        return out


async def feed(
    bootstrap: str,
    topic: str,
    partitions: int,
    rate: float,
    seed: int,
    duration: float | None = None,
    max_events: int | None = None,
) -> int:
    """Produce generated events at ``rate`` per second; return how many were acked."""
    from aiokafka import AIOKafkaProducer

    from streams.records import group_by_partition

    world = DemoWorld(seed=seed)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    sent, started, tick = 0, time.monotonic(), 0.1
    try:
        while (duration is None or time.monotonic() - started < duration) and (
            max_events is None or sent < max_events
        ):
            due = int((time.monotonic() - started + tick) * rate) - sent
            if max_events is not None:
                due = min(due, max_events - sent)
            if due > 0:
                events = world.next_events(due)
                futures = [
                    await producer.send(topic, value, partition=p)
                    for p, value in group_by_partition(events, partitions)
                ]
                await asyncio.gather(*futures)
                sent += due
            await asyncio.sleep(tick)
    finally:
        await producer.stop()
    return sent


@click.command("generate-events")
@click.option("--rate", default=20.0, show_default=True, help="Events per second.")
@click.option("--seed", default=42, show_default=True)
@click.option("--duration", type=float, default=None, help="Seconds (default: forever).")
@click.option("--max-events", type=int, default=None)
def generate_command(
    rate: float, seed: int, duration: float | None, max_events: int | None
) -> None:
    """Feed live, realistic demo CRM events into Kafka."""
    from salespulse.config import get_settings

    s = get_settings()
    sent = asyncio.run(
        feed(s.kafka_bootstrap, s.topic_events, s.partitions, rate, seed, duration, max_events)
    )
    log.info("generator: %d events acknowledged", sent)
