"""Tools of the reliability tests: an acknowledging producer, a topic reader, convergence
waits, and the comparison of every KPI the collector serves with the batch oracle.

The oracle (:mod:`tests.oracle`) recomputes every KPI from the event log; here it is fed
the events that Kafka *acknowledged* (``acks=all``, idempotent producer). The collector
must then serve exactly the oracle's numbers: through ``/api/snapshot`` (the KPI snapshot
document, rebuilt below from the oracle in the same shape) and through ``/api/kpis`` for
every KPI, in total and grouped by rep.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from salespulse.config import Settings
from state.aggregates import SEPARATOR
from state.kpis import KPIS
from state.publisher import partition_key
from state.readout import Period, Readout
from state.rules import Rules
from state.snapshot_report import (
    CLOSED_KPIS,
    DEAL_KPIS,
    DIMENSIONS,
    NONE_GROUP,
    OPEN_KPIS,
    OTHER_TOTALS,
    SCHEMA,
)
from streams.records import encode_batch, partition_for
from tests.oracle import BatchOracle, Window

MAX_BATCH = 500  # events per Kafka record, as streams.records.group_by_partition


@dataclass
class Record:
    """One produced Kafka record (a batch of events of one partition) and its fate."""

    index: int  # order of the send call
    partition: int
    events: list[dict[str, Any]]
    offset: int | None = None  # set when Kafka acknowledged the record
    error: BaseException | None = None


@dataclass
class StreamProducer:
    """Produces events batched by partition with ``acks=all`` and idempotence, and keeps
    every record with its acknowledgement (offset) or its error."""

    settings: Settings
    records: list[Record] = field(default_factory=list)
    _producer: AIOKafkaProducer | None = None
    _pending: list[asyncio.Future[Any]] = field(default_factory=list)

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            request_timeout_ms=30000,
            retry_backoff_ms=200,
        )
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self.flush()
            await self._producer.stop()

    async def send(self, events: list[dict[str, Any]]) -> list[Record]:
        """Queue ``events`` (grouped by partition); returns the records, not yet acked."""
        assert self._producer is not None
        groups: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for event in events:
            key = f"{event['entity']}:{event['entity_id']}"
            groups[partition_for(key, self.settings.partitions)].append(event)
        made = []
        for partition, group in sorted(groups.items()):
            for start in range(0, len(group), MAX_BATCH):
                record = Record(len(self.records), partition, group[start : start + MAX_BATCH])
                self.records.append(record)
                made.append(record)
                try:
                    future = await self._producer.send(
                        self.settings.topic_events, encode_batch(record.events), partition=partition
                    )
                except Exception as exc:
                    record.error = exc
                    continue
                future.add_done_callback(lambda f, r=record: _settle(r, f))
                self._pending.append(future)
        return made

    async def flush(self) -> None:
        """Wait until every queued record is acknowledged or failed."""
        pending, self._pending = self._pending, []
        await asyncio.gather(*pending, return_exceptions=True)

    def acked_events(self) -> list[dict[str, Any]]:
        return [e for r in self.records if r.offset is not None for e in r.events]

    def unacked(self) -> list[Record]:
        return [r for r in self.records if r.offset is None]


def _settle(record: Record, future: asyncio.Future[Any]) -> None:
    if future.cancelled():
        record.error = asyncio.CancelledError()
    elif future.exception() is not None:
        record.error = future.exception()
    else:
        record.offset = future.result().offset


async def read_topic_events(settings: Settings) -> list[dict[str, Any]]:
    """Every canonical event on the events topic (link records skipped), read from the
    start of each partition to its current end."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(settings.topic_events, p) for p in range(settings.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        events: list[dict[str, Any]] = []
        done = {tp for tp in tps if ends[tp] == 0}
        while len(done) < len(tps):
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for tp, messages in batches.items():
                for message in messages:
                    if message.offset >= ends[tp]:
                        done.add(tp)
                        continue
                    value = orjson.loads(message.value)
                    batch = value["events"] if value.get("batch") == 1 else [value]
                    events.extend(e for e in batch if e.get("link") != 1)
                    if message.offset == ends[tp] - 1:
                        done.add(tp)
        return events
    finally:
        await consumer.stop()


async def group_lag(settings: Settings) -> dict[int, int]:
    """Per partition of the events topic: end offset minus the offset the workers'
    consumer group committed (0 everywhere: every record, links included, processed)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(settings.app_id)
        tps = [TopicPartition(settings.topic_events, p) for p in range(settings.partitions)]
        ends = await consumer.end_offsets(tps)
        return {
            tp.partition: ends[tp] - (committed[tp].offset if tp in committed else 0) for tp in tps
        }
    finally:
        await consumer.stop()
        await admin.close()


async def wait_caught_up(pipeline: Any, timeout: float) -> float:
    """Wait until the workers committed every record and then every partition was
    published again (so Redis holds the final state); returns the seconds waited."""
    started = time.monotonic()
    deadline = started + timeout
    lag: dict[int, int] = {}
    while time.monotonic() < deadline:
        try:
            lag = await group_lag(pipeline.settings)
        except Exception:
            lag = {-1: -1}
        if lag and not any(lag.values()):
            break
        await asyncio.sleep(0.5)
    else:
        raise AssertionError(
            f"workers did not catch up in {timeout:.0f}s; lag {lag}; "
            f"published: {await published_positions(pipeline)}"
        )
    caught_up = time.time()
    while time.monotonic() < deadline:
        parts = await read_published(pipeline.settings)
        if len(parts) == pipeline.settings.partitions and all(
            p["published_at"] >= caught_up for p in parts.values()
        ):
            return time.monotonic() - started
        await asyncio.sleep(0.3)
    raise AssertionError("partitions were not republished after catching up")


async def read_published(settings: Settings) -> dict[str, dict[str, Any]]:
    """What each partition's owner last published beside its aggregates (owner, stats,
    time), read from Redis directly: cheaper than ``/api/aggregates``, whose body holds
    every aggregate (megabytes after 200,000 events)."""
    client = aioredis.from_url(settings.redis_url, socket_timeout=5)
    try:
        async with client.pipeline(transaction=False) as pipe:
            for partition in range(settings.partitions):
                pipe.hmget(
                    partition_key(settings.redis_key_prefix, partition),
                    ["owner", "stats", "published_at"],
                )
            rows = await pipe.execute()
    finally:
        await client.aclose()
    return {
        str(partition): {
            "owner": owner.decode(),
            "stats": orjson.loads(stats),
            "published_at": float(published_at),
        }
        for partition, (owner, stats, published_at) in enumerate(rows)
        if owner is not None and stats is not None
    }


async def published_positions(pipeline: Any) -> dict[int, tuple[str, int, float]]:
    """Per partition: owner, last offset processed and age of the published value."""
    parts = await read_published(pipeline.settings)
    now = time.time()
    return {
        int(p): (m["owner"], m["stats"]["last_offset"], round(now - m["published_at"], 1))
        for p, m in sorted(parts.items())
    }


async def api(pipeline: Any, path: str) -> Any:
    """``pipeline.api(path)`` without blocking the event loop."""
    return await asyncio.to_thread(pipeline.api, path)


# --- the oracle's view of every KPI the collector serves ------------------------------


def _num(value: float | None) -> float | int | None:
    if value is None:
        return None
    return int(value) if float(value).is_integer() and abs(value) < 2**53 else value


def _quarter_window(key: str) -> Window:
    year, quarter = (int(x) for x in key.split("-Q"))
    start = date(year, 3 * quarter - 2, 1)
    end = date(year + 1, 1, 1) if quarter == 4 else date(year, 3 * quarter + 1, 1)
    return Window(start.isoformat(), end.isoformat(), "quarter")


def oracle_snapshot(oracle: BatchOracle) -> dict[str, Any]:
    """The KPI snapshot document (``state.snapshot_report`` shape) computed by the oracle.

    Groups are those of the alive deals (a dimension's empty value is ``(none)``);
    quarters those with a won or lost deal closed in them (calendar quarters: the rules
    of these tests start the fiscal year in January).
    """
    everything = Window()
    totals = {name: _num(oracle.value(name, everything)) for name in (*DEAL_KPIS, *OTHER_TOTALS)}
    by: dict[str, dict[str, dict[str, Any]]] = {}
    for dim in DIMENSIONS:
        groups = sorted({d.dims[dim] for d in oracle.deals})
        table = {}
        for group in groups:
            row = {n: _num(oracle.value(n, everything, {dim: group})) for n in DEAL_KPIS}
            for name in ("deals_won", "deals_lost", "won_revenue", *OPEN_KPIS):
                row[name] = row[name] or 0
            table[group or NONE_GROUP] = row
        by[dim] = dict(sorted(table.items()))
    quarters = sorted(
        {
            f"{d.day[:4]}-Q{(int(d.day[5:7]) - 1) // 3 + 1}"
            for d in oracle.deals
            if d.outcome != "open" and d.day
        }
    )
    return {
        "schema": SCHEMA,
        "reporting_currency": oracle.rules.reporting_currency,
        "timezone": oracle.rules.timezone,
        "totals": totals,
        "by": by,
        "by_close_quarter": {
            q: {n: _num(oracle.value(n, _quarter_window(q))) for n in CLOSED_KPIS} for q in quarters
        },
    }


def diff_documents(got: Any, want: Any, path: str = "") -> list[str]:
    """Paths where two JSON documents differ (exactly: no tolerance)."""
    if isinstance(got, dict) and isinstance(want, dict):
        out = []
        for key in sorted(got.keys() | want.keys(), key=str):
            if key not in got or key not in want:
                out.append(f"{path}/{key}: only in {'collector' if key in got else 'oracle'}")
            else:
                out += diff_documents(got[key], want[key], f"{path}/{key}")
        return out
    if got != want or (type(got) is not type(want) and not _same_number(got, want)):
        return [f"{path}: collector {got!r} != oracle {want!r}"]
    return []


def _same_number(a: Any, b: Any) -> bool:
    numbers = (int, float)
    return isinstance(a, numbers) and isinstance(b, numbers) and a == b


async def kpi_differences(pipeline: Any, oracle: BatchOracle) -> list[str]:
    """Every KPI of ``state.kpis.KPIS`` from ``/api/kpis``, all time, in total and per
    rep, against the oracle; returns the differences (empty: exact agreement)."""
    out = []
    everything = Window()
    body = await api(pipeline, "/api/kpis")
    # A KPI with no component at all (e.g. quota without quota events) has no value.
    totals = {k["kpi"]: k["values"][0]["value"] for k in body["kpis"] if k["values"]}
    body = await api(pipeline, "/api/kpis?group_by=rep")
    grouped = {k["kpi"]: {v["group"]["rep"]: v["value"] for v in k["values"]} for k in body["kpis"]}
    for kpi in KPIS:
        want = oracle.value(kpi.name, everything)
        empty = oracle.empty(kpi.name, everything)
        got_total = totals.get(kpi.name, empty)
        if got_total != want:
            out.append(f"{kpi.name}: collector {got_total!r} != oracle {want!r}")
        expected = {g[0]: v for g, v in oracle.grouped(kpi.name, everything, ("rep",)).items()}
        got = grouped.get(kpi.name, {})
        for rep in sorted(got.keys() | expected.keys()):
            # A group with nothing to count may be absent on either side.
            g, w = got.get(rep, empty), expected.get(rep, empty)
            if g != w:
                out.append(f"{kpi.name}[rep={rep!r}]: collector {g!r} != oracle {w!r}")
    return out


async def compare_with_oracle(pipeline: Any, events: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Build the oracle over ``events`` and compare the collector's snapshot and KPIs."""
    t0 = time.monotonic()
    oracle = await asyncio.to_thread(BatchOracle, list(events), Rules.load())
    expected = await asyncio.to_thread(oracle_snapshot, oracle)
    oracle_s = time.monotonic() - t0
    snapshot = await api(pipeline, "/api/snapshot")
    problems = diff_documents(snapshot, expected)
    problems.sort(key=lambda p: not p.startswith("/totals"))  # totals first
    problems += await kpi_differences(pipeline, oracle)
    if problems:  # keep both documents for a post-mortem
        path = pipeline.settings.home / "mismatch.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(orjson.dumps({"collector": snapshot, "oracle": expected}))
        problems.insert(0, f"(collector and oracle snapshots saved in {path})")
    return {"oracle": oracle, "expected": expected, "problems": problems, "oracle_s": oracle_s}


def summarize_stats(partitions: dict[str, Any]) -> dict[str, int]:
    """Sum of the published per-partition counters (since each owner started)."""
    keys = ("applied", "duplicates", "dead_letters", "rebuilds")
    return {k: sum(int(p["stats"].get(k, 0)) for p in partitions.values()) for k in keys}


@dataclass
class StatsAccumulator:
    """Applied/duplicate counts over the whole run, across owners and restarts.

    The workers publish counters *since the worker process started*, per partition. The
    last value seen per (partition, owner) is kept; when an owner is killed
    (:meth:`owner_restarted`) or its counters go backwards, its values are banked. This is
    the work done, not a count of distinct events: sampled (the work of a killed owner
    after its last publish is missed), and what a killed owner applied without persisting
    it is applied again by the next owner.
    """

    banked: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    last: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    restarted_at: dict[str, float] = field(default_factory=dict)

    def observe(self, partitions: dict[str, Any]) -> None:
        for partition, meta in partitions.items():
            if meta["published_at"] <= self.restarted_at.get(meta["owner"], 0.0):
                continue  # published by the previous process of that owner: banked
            stats = meta["stats"]
            now = (int(stats.get("applied", 0)), int(stats.get("duplicates", 0)))
            key = (partition, meta["owner"])
            before = self.last.get(key)
            if before and (now[0] < before[0] or now[1] < before[1]):
                self._bank(key)
            self.last[key] = now

    def owner_restarted(self, owner: str) -> None:
        self.restarted_at[owner] = time.time()
        for key in [k for k in self.last if k[1] == owner]:
            self._bank(key)

    def _bank(self, key: tuple[str, str]) -> None:
        applied, duplicates = self.last.pop(key)
        self.banked["applied"] += applied
        self.banked["duplicates"] += duplicates

    def totals(self) -> dict[str, int]:
        return {
            "applied": self.banked["applied"] + sum(v[0] for v in self.last.values()),
            "duplicates": self.banked["duplicates"] + sum(v[1] for v in self.last.values()),
        }


@dataclass
class Supervisor:
    """Keeps the wanted workers running, as systemd or Kubernetes would: a worker that
    exits on its own (e.g. it refuses to go on after a failed changelog write) is
    restarted and the exit is recorded. Also samples the published counters."""

    pipeline: Any
    wanted: set[str] = field(default_factory=set)
    exits: list[tuple[str, str]] = field(default_factory=list)
    stats: StatsAccumulator = field(default_factory=StatsAccumulator)
    samples: int = 0

    def start(self, worker_id: str) -> None:
        self.pipeline.start_worker(worker_id)
        self.wanted.add(worker_id)

    def kill(self, worker_id: str, sig: Any) -> None:
        self.wanted.discard(worker_id)
        self.pipeline.kill_worker(worker_id, sig)
        self.stats.owner_restarted(f"worker-{worker_id}")

    async def run(self) -> None:
        from salespulse.stack import process

        settings = self.pipeline.settings
        while True:
            for worker_id in sorted(self.wanted):
                name = f"worker-{worker_id}"
                if process.running_pid(settings, name) is None:
                    tail = process.log_tail(process.log_path(settings, name), 5)
                    self.exits.append((worker_id, tail))
                    self.stats.owner_restarted(name)
                    self.pipeline.start_worker(worker_id)
            try:
                self.stats.observe(await read_published(settings))
                self.samples += 1
            except (OSError, aioredis.RedisError):
                pass
            await asyncio.sleep(0.5)


# --- scrape-by-scrape bounds while the stream flows -------------------------------------


@dataclass
class Scrape:
    """One read of the collector's ``/api/aggregates`` (one summed view of Redis)."""

    at: float
    sent: int  # records whose send had begun when the response arrived (an upper bound)
    last_offsets: dict[int, int]  # per partition, as published with its aggregates
    owners: dict[int, str]
    deals: int  # open + won + lost deals, all time
    won: int
    activities: int


async def scrape(pipeline: Any, producer: StreamProducer) -> Scrape:
    """Read the collector once; the KPIs are read from the view's summed aggregates with
    the collector's own readout (``/api/aggregates`` is the one endpoint that returns the
    per-partition positions and the sums of the same Redis read)."""
    body = await api(pipeline, "/api/aggregates")
    sent = len(producer.records)
    aggregates = {tuple(k.split(SEPARATOR)): int(v) for k, v in body["aggregates"].items()}
    readout = Readout(aggregates)  # type: ignore[arg-type]
    everything = Period()

    def count(name: str) -> int:
        return int(readout.value(name, everything) or 0)

    parts = body["partitions"]
    return Scrape(
        at=time.monotonic(),
        sent=sent,
        last_offsets={int(p): int(m["stats"]["last_offset"]) for p, m in parts.items()},
        owners={int(p): m["owner"] for p, m in parts.items()},
        deals=count("open_deals") + count("deals_won") + count("deals_lost"),
        won=count("deals_won"),
        activities=count("activities"),
    )


async def scrape_until(
    pipeline: Any, producer: StreamProducer, done: asyncio.Event, interval: float = 0.3
) -> list[Scrape]:
    """Scrape every ``interval`` seconds until ``done`` is set."""
    scrapes: list[Scrape] = []
    while not done.is_set():
        with contextlib.suppress(OSError):  # no reading, nothing to check
            scrapes.append(await scrape(pipeline, producer))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), interval)
    return scrapes


@dataclass
class _Prefix:
    """Cumulative mini-oracle values after each record of one partition (offset order)."""

    offsets: list[int] = field(default_factory=list)
    deals: list[int] = field(default_factory=list)
    won: list[int] = field(default_factory=list)
    activities: list[int] = field(default_factory=list)
    deal_events: list[int] = field(default_factory=list)

    def at(self, offset: int) -> tuple[int, int, int, int]:
        """(deals, won, activities, deal events) over records with offsets <= offset."""
        i = bisect.bisect_right(self.offsets, offset)
        if i == 0:
            return 0, 0, 0, 0
        return self.deals[i - 1], self.won[i - 1], self.activities[i - 1], self.deal_events[i - 1]


def _prefixes(records: list[Record], partitions: int) -> dict[int, _Prefix]:
    """A tiny independent oracle of the monotone counts and of won deals (per field
    last-writer-wins on ``(version, event_id)``) after each record of each partition."""
    out = {p: _Prefix() for p in range(partitions)}
    deals: dict[int, set[str]] = defaultdict(set)
    acts: dict[int, set[str]] = defaultdict(set)
    status: dict[str, tuple[tuple[int, str], str]] = {}
    won = dict.fromkeys(range(partitions), 0)
    deal_events = dict.fromkeys(range(partitions), 0)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        p = record.partition
        for e in record.events:
            if e["entity"] == "activity":
                acts[p].add(e["entity_id"])
            if e["entity"] != "deal":
                continue
            deal_events[p] += 1
            deals[p].add(e["entity_id"])
            if "status" in e["fields"]:
                token = (int(e["version"]), str(e["event_id"]))
                before = status.get(e["entity_id"])
                if before is None or token > before[0]:
                    won[p] += (e["fields"]["status"] == "won") - (
                        before is not None and before[1] == "won"
                    )
                    status[e["entity_id"]] = (token, e["fields"]["status"])
        prefix = out[p]
        prefix.offsets.append(record.offset)  # type: ignore[arg-type]
        prefix.deals.append(len(deals[p]))
        prefix.won.append(won[p])
        prefix.activities.append(len(acts[p]))
        prefix.deal_events.append(deal_events[p])
    return out


def check_scrapes(scrapes: list[Scrape], records: list[Record], partitions: int) -> dict[str, Any]:
    """Check every scrape against the event log; returns violations and figures.

    For a scrape, *applied* means: in partition p, the records up to the offset p's
    owner published together with p's aggregates (a worker publishes a partition's
    aggregates and its last processed offset in one atomic Redis write; aggregates
    rebuilt from the changelog may be ahead of that offset, never behind). *Sent*: the
    records whose production had begun when the scrape's response arrived. Then:

    * deals and activities only grow with the log (no deletes in this stream), so
      ``oracle(applied) <= collector <= oracle(sent)``;
    * the won count can go down (deals reopen), but each deal event moves it by at most
      one, so ``|collector - oracle(applied)| <= deal events sent but not applied``.
    """
    assert all(r.offset is not None for r in records), "every record must be acknowledged"
    prefixes = _prefixes(records, partitions)
    ordered = sorted(records, key=lambda r: r.index)
    sent_deals, sent_acts = [0], [0]
    seen_deals: set[str] = set()
    seen_acts: set[str] = set()
    sent_deal_events: dict[int, list[int]] = {p: [0] for p in range(partitions)}
    for record in ordered:
        for e in record.events:
            if e["entity"] == "deal":
                seen_deals.add(e["entity_id"])
            elif e["entity"] == "activity":
                seen_acts.add(e["entity_id"])
        sent_deals.append(len(seen_deals))
        sent_acts.append(len(seen_acts))
        for p in range(partitions):
            extra = sum(1 for e in record.events if e["entity"] == "deal")
            sent_deal_events[p].append(
                sent_deal_events[p][-1] + (extra if record.partition == p else 0)
            )
    violations: list[str] = []
    max_unapplied = max_won_gap = 0
    for number, s in enumerate(scrapes):
        low_deals = low_won = low_acts = unapplied = 0
        for p in range(partitions):
            deals, won, acts, applied_deal_events = prefixes[p].at(s.last_offsets.get(p, -1))
            low_deals += deals
            low_won += won
            low_acts += acts
            unapplied += max(0, sent_deal_events[p][s.sent] - applied_deal_events)
        where = f"scrape {number} (sent {s.sent} records, offsets {s.last_offsets})"
        if not low_deals <= s.deals <= sent_deals[s.sent]:
            high = sent_deals[s.sent]
            violations.append(f"{where}: deals {s.deals} not in [{low_deals}, {high}]")
        if not low_acts <= s.activities <= sent_acts[s.sent]:
            violations.append(
                f"{where}: activities {s.activities} not in [{low_acts}, {sent_acts[s.sent]}]"
            )
        if abs(s.won - low_won) > unapplied:
            violations.append(
                f"{where}: won {s.won} is {s.won - low_won:+d} from the applied events' "
                f"{low_won}, more than the {unapplied} deal events not yet applied"
            )
        max_unapplied = max(max_unapplied, unapplied)
        max_won_gap = max(max_won_gap, abs(s.won - low_won))
    final = {p: prefixes[p].at(10**12) for p in range(partitions)}
    return {
        "violations": violations,
        "scrapes": len(scrapes),
        "max_unapplied_deal_events": max_unapplied,
        "max_won_gap": max_won_gap,
        "final_deals": sum(v[0] for v in final.values()),
        "final_won": sum(v[1] for v in final.values()),
        "final_activities": sum(v[2] for v in final.values()),
    }
