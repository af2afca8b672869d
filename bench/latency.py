"""Latency at a fixed offered rate: produce to visible, for SalesPulse.

A fresh worker (own topic, app id, Redis prefix) and the collector run while the harness
offers ``rate`` CRM events per second for ``duration`` seconds, as batched records every
50 ms (pre-generated, so generation does not disturb the run). Twenty times a second a
*probe* is produced in its own record: a new won deal owned by the probe rep
``probe-<k>``, with its produce time stamped. A probe is

* **published** when its partition's stats in Redis show a ``last_offset`` at or past the
  probe's offset (latency = the worker's publish time - produce time);
* **visible** when the collector's ``/api/kpis?kpi=deals_won&group_by=rep`` lists its rep
  (latency = the time the harness saw it - produce time; the harness polls every 100 ms
  and the collector reuses a Redis view for 0.1 s, both part of what a user sees).

Probes not visible ``drain_timeout`` seconds after production stopped are counted as
missing and make the maximum a lower bound. The clock starts once the harness's producer
has delivered a warm-up event to each partition (:func:`warm_up`).
"""

from __future__ import annotations

import threading
import time
import urllib.request
from typing import Any

import orjson
import redis
from confluent_kafka import Producer

from bench.measure import ProcessSampler, machine_busy_seconds
from bench.produce import MAX_BATCH, producer
from bench.records import batch_records, partition_for
from bench.salespulse_run import read_stats
from bench.workload import Workload, WorkloadConfig
from salespulse.config import Settings
from streams.records import encode_batch

TICK_S = 0.05
PROBE_EVERY_S = 0.05


def probe_event(tag: str, k: int, day: str = "2024-07-01") -> dict[str, Any]:
    eid = f"lat-{tag}-{k}"
    return {
        "v": 1,
        "event_id": eid,
        "source": "bench",
        "entity": "deal",
        "entity_id": eid,
        "change": "create",
        "occurred_at": f"{day}T09:00:00Z",
        "version": 1,
        "fields": {
            "owner": f"probe-{k}",
            "team": "Probe",
            "office": "Probe",
            "status": "won",
            "stage": "won",
            "amount": 1,
            "currency": "USD",
            "closed_at": day,
        },
    }


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_s": None, "p99_s": None, "max_s": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {"p50_s": at(0.50), "p99_s": at(0.99), "max_s": round(ordered[-1], 3)}


def _visible_reps(settings: Settings) -> set[str]:
    url = (
        f"http://{settings.host}:{settings.collector_port}/api/kpis"
        "?kpi=deals_won&group_by=rep&period=all"
    )
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = orjson.loads(response.read())
    except OSError:
        return set()
    return {v["group"]["rep"] for v in body["kpis"][0]["values"] if v["value"]}


def warm_up(prod: Producer, settings: Settings, tag: str) -> float:
    """Deliver one event to each partition before the clock starts; the seconds it took.

    A new producer's first delivery waits for its connection, the topic's metadata and
    its idempotent producer id: 0.55 s here, during which the first eleven probes were
    held in the harness and then counted as the worker's latency (they set the p99 of
    600 probes). A CRM gateway's producer is already running, so that start is not part
    of what a user waits for. The warm-up deals belong to their own rep, not a probe's.
    """
    started, failed = time.time(), []
    todo, i = set(range(settings.partitions)), 0
    while todo:
        event = probe_event(f"{tag}-warm-up", i)
        event["fields"]["owner"] = "bench-warm-up"
        p = partition_for(f"deal:{event['entity_id']}", settings.partitions)
        if p in todo:
            todo.discard(p)
            prod.produce(
                settings.topic_events,
                encode_batch([event]),
                partition=p,
                on_delivery=lambda err, msg: failed.append(err) if err is not None else None,
            )
        i += 1
    if prod.flush(30) or failed:
        raise RuntimeError(f"latency warm-up not delivered: {failed or 'timed out'}")
    return time.time() - started


def offered_load(
    settings: Settings,
    tag: str,
    rate: int,
    duration: float,
    drain_timeout: float,
    seed: int,
    pids: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Offer ``rate`` events/s for ``duration`` s to a running worker and collector.

    ``pids`` names processes (worker, collector, broker...) whose CPU use over the same
    window is reported as cores (``cpu_cores``) and, for the worker, as CPU microseconds
    per offered event."""
    total = int(rate * duration)
    work = Workload(WorkloadConfig(entities=max(1000, total // 2), events=total, seed=seed))
    events = [item for chunk in work.chunks() for item in chunk]
    prod = producer(settings.kafka_bootstrap, linger_ms=5, reports=True)
    warm_up_s = warm_up(prod, settings, tag)
    probes: dict[int, dict[str, Any]] = {}  # k -> partition, offset, sent, published, seen
    observer = Observer(settings, probes)
    observer.start()

    def delivered(err: Any, msg: Any, k: int) -> None:
        if err is None:
            probes[k]["offset"] = msg.offset()

    sent = k = 0
    samplers = {name: ProcessSampler(pid) for name, pid in (pids or {}).items()}
    cpu_before = {name: sampler.cpu_seconds() for name, sampler in samplers.items()}
    busy = machine_busy_seconds()
    started = time.time()
    next_probe = started
    try:
        while (now := time.time()) - started < duration or sent < total:
            due = min(total, int((now - started + TICK_S) * rate)) - sent
            if due > 0:
                for p, value in batch_records(events[sent : sent + due], MAX_BATCH):
                    prod.produce(settings.topic_events, value, partition=p)
                sent += due
            while now >= next_probe and now - started < duration:
                event = probe_event(tag, k)
                p = partition_for(f"deal:{event['entity_id']}", settings.partitions)
                probes[k] = {"partition": p, "sent": time.time()}
                prod.produce(
                    settings.topic_events,
                    encode_batch([event]),
                    partition=p,
                    on_delivery=lambda err, msg, k=k: delivered(err, msg, k),
                )
                k += 1
                next_probe += PROBE_EVERY_S
            prod.poll(0)
            time.sleep(max(0.0, TICK_S - (time.time() - now)))
        produced_at = time.time()
        prod.flush(30)
        while time.time() - produced_at < drain_timeout:
            if probes and all("seen" in p and "published" in p for p in probes.values()):
                break
            time.sleep(0.05)
    finally:
        observer.stop()
    summary = _summary(rate, duration, total, probes, time.time() - produced_at)
    summary["producer_warm_up_s"] = round(warm_up_s, 3)
    # every process's CPU while offering and draining (worker, broker, Redis, collector,
    # this harness): near 2.0 on two cores means the worker competed for a core
    window = time.time() - started
    summary["machine_busy_cores"] = round((machine_busy_seconds() - busy) / window, 2)
    spent = {name: s.cpu_seconds() - cpu_before[name] for name, s in samplers.items()}
    if spent:
        summary["cpu_cores"] = {name: round(cpu / window, 2) for name, cpu in spent.items()}
    if "worker" in spent:
        summary["worker_cpu_us_per_event"] = round(spent["worker"] / total * 1e6, 1)
    return summary


class Observer(threading.Thread):
    """Watches Redis (every 20 ms) and the collector (every 100 ms) for the probes."""

    def __init__(self, settings: Settings, probes: dict[int, dict[str, Any]]) -> None:
        super().__init__(daemon=True)
        self.settings, self.probes = settings, probes
        self.client = redis.Redis.from_url(settings.redis_url)
        self.stopping = threading.Event()

    def stop(self) -> None:
        self.stopping.set()
        self.join(10)

    def run(self) -> None:
        last_collector = 0.0
        while not self.stopping.is_set():
            self.published()
            if time.time() - last_collector >= 0.1:
                last_collector = time.time()
                self.visible()
            time.sleep(0.02)

    def published(self) -> None:
        rows = read_stats(self.client, self.settings)
        for probe in list(self.probes.values()):
            if "published" in probe or "offset" not in probe:
                continue
            stats, at = rows[probe["partition"]]
            if stats is not None and stats["last_offset"] >= probe["offset"]:
                probe["published"] = at

    def visible(self) -> None:
        reps, now = _visible_reps(self.settings), time.time()
        for k, probe in list(self.probes.items()):
            if "seen" not in probe and f"probe-{k}" in reps:
                probe["seen"] = now


def _summary(
    rate: int, duration: float, total: int, probes: dict[int, dict], drained_s: float
) -> dict[str, Any]:
    published = [p["published"] - p["sent"] for p in probes.values() if "published" in p]
    seen = [p["seen"] - p["sent"] for p in probes.values() if "seen" in p]
    return {
        "offered_events_per_s": rate,
        "duration_s": duration,
        "events": total,
        "probes": len(probes),
        "wait_after_production_s": round(drained_s, 2),
        "published": {**percentiles(published), "missing": len(probes) - len(published)},
        "visible_in_collector": {**percentiles(seen), "missing": len(probes) - len(seen)},
    }
