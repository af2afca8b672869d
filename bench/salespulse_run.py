"""Measuring SalesPulse itself: one worker process started as production starts it
(:func:`salespulse.services.start_worker`), read back through Redis and the collector.

* throughput: from the worker's start to the publication, in Redis, of partition stats
  whose ``last_offset`` reaches the end offsets of the topic, the link records the worker
  wrote into it included (every workload record and every derived fact applied and its
  aggregates published); startup (start to first publication) is reported apart from
  the sustained rate;
* figures: won revenue, deals won/lost, win rate and average deal size per rep and month
  from the collector's ``/api/kpis`` (what users read);
* recovery: stop and restart the worker (keeping, or deleting, its local RocksDB state in
  ``<home>/workers/<id>``) and time until it publishes again and until a probe event
  produced at restart is applied and published, in every partition.
"""

from __future__ import annotations

import shutil
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import orjson
import redis

from bench.kpi_subset import KPI_NAMES, Group
from bench.measure import ProcessSampler, Snapshot, dir_size_mb, follow
from bench.produce import end_offsets, producer
from salespulse import services
from salespulse.config import Settings
from salespulse.stack import process
from state.publisher import partition_key
from streams.records import encode_batch, partition_for


def worker_dir(settings: Settings, worker_id: str) -> Any:
    return process.home(settings) / "workers" / worker_id


def read_stats(client: redis.Redis, settings: Settings) -> list[tuple[dict | None, float]]:
    """Each partition's published stats and publish time (None if never published)."""
    pipe = client.pipeline(transaction=False)
    for p in range(settings.partitions):
        pipe.hmget(partition_key(settings.redis_key_prefix, p), "stats", "published_at")
    out = []
    for stats, at in pipe.execute():
        out.append((None, 0.0) if stats is None else (orjson.loads(stats), float(at)))
    return out


# How long the topic's end offsets must stay put, every partition's published last_offset
# covering them, before the worker's own link records are taken to be all applied: it
# sends pending link facts every 50 ms (agents.link_buffer) and publishes every 0.2 s.
LINKS_SETTLED_S = 0.5


def stats_poll(
    client: redis.Redis,
    settings: Settings,
    ends: dict[int, int],
    topic: str | None = None,
    marks: dict[str, float] | None = None,
) -> Any:
    """A poll: events counted (applied + duplicates + dead letters, links included), done
    when every partition's published ``last_offset`` reaches its end offset.

    With ``topic`` (the worker's events topic), done only once it has also applied the
    link records it wrote into that topic after the workload's records: the topic's end
    offsets are read again and must stay covered for :data:`LINKS_SETTLED_S`; the
    snapshot returned is the first that covered them. Without that, a 10^6-entity run
    ended with about 1,900 link records (a lead's or an account's derived facts) still
    to apply, about 10 % of its time (23 s of 218), which the next restart then processed
    before its probe. ``marks["workload_applied_at"]`` gets the publish time of the first snapshot
    that covered the workload's own end offsets.
    """
    settled: tuple[dict[int, int], Snapshot, float] | None = None

    def covers(rows: list[tuple[dict | None, float]], upto: dict[int, int]) -> bool:
        return all(
            upto.get(p, 0) == 0 if stats is None else stats["last_offset"] >= upto.get(p, 0) - 1
            for p, (stats, _) in enumerate(rows)
        )

    def poll() -> Snapshot:
        nonlocal settled
        count, newest, published = 0, 0.0, False
        rows = read_stats(client, settings)
        for stats, at in rows:
            if stats is not None:
                published = True
                count += stats["applied"] + stats["duplicates"] + stats["dead_letters"]
                newest = max(newest, at)
        snap = Snapshot(count, newest, published, published and covers(rows, ends))
        if snap.done and marks is not None:
            marks.setdefault("workload_applied_at", snap.published_at)
        if topic is None or not snap.done:
            return snap
        now_ends = end_offsets(settings.kafka_bootstrap, topic, settings.partitions)
        if not covers(rows, now_ends):
            settled = None
        elif settled is None or settled[0] != now_ends:
            settled = (now_ends, snap, time.time())
        elif time.time() - settled[2] >= LINKS_SETTLED_S:
            return settled[1]
        return Snapshot(count, newest, published, False)

    return poll


def throughput(
    settings: Settings,
    worker_id: str,
    ends: dict[int, int],
    events: int,
    timeout: float,
    on_start: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Start a worker on the pre-produced topic and follow it to completion."""
    client = redis.Redis.from_url(settings.redis_url)
    prefix = settings.redis_key_prefix
    client.delete(*(partition_key(prefix, p) for p in range(settings.partitions)))
    name = f"worker-{worker_id}"
    started = time.time()
    pid = services.start_worker(settings, worker_id)
    if on_start is not None:
        on_start(pid)
    marks: dict[str, float] = {}
    seen = follow(
        stats_poll(client, settings, ends, settings.topic_events, marks),
        ProcessSampler(pid),
        started,
        timeout,
        alive=lambda: process.running_pid(settings, name) is not None,
    )
    result = seen.figures(events, counted_total=seen.last.count)
    result["allocator"] = services.allocator(pid)  # the worker still runs
    result["engine_events_counted"] = seen.last.count
    if "workload_applied_at" in marks and seen.last.done:  # then the link records left
        result["link_tail_s"] = round(seen.last.published_at - marks["workload_applied_at"], 3)
    result["state_dir_mb"] = dir_size_mb(worker_dir(settings, worker_id))
    result["pid"] = pid
    return result


def collector_figures(settings: Settings, months: list[str]) -> dict[Group, dict[str, Any]]:
    """Per (rep, month) KPI values as the collector serves them."""
    query = "&".join(f"kpi={k}" for k in KPI_NAMES)
    out: dict[Group, dict[str, Any]] = {}
    for month in months:
        url = (
            f"http://{settings.host}:{settings.collector_port}/api/kpis?{query}"
            f"&group_by=rep&period=month&date={month}-01"
        )
        with urllib.request.urlopen(url, timeout=60) as response:
            body = orjson.loads(response.read())
        per_rep: dict[str, dict[str, Any]] = defaultdict(dict)
        for kpi in body["kpis"]:
            for value in kpi["values"]:
                per_rep[value["group"]["rep"]][kpi["kpi"]] = value["value"]
        for rep, values in per_rep.items():
            if values.get("won_revenue") or values.get("deals_won") or values.get("deals_lost"):
                out[(rep, month)] = {k: values.get(k) for k in KPI_NAMES}
    return out


def start_collector(settings: Settings) -> int:
    """Start the collector and wait until it serves; its pid."""
    pid = services.start_collector(settings)
    services.wait_collector(settings, timeout=60)
    return pid


def probe_events(tag: str, partitions: int, day: str = "2024-06-15") -> dict[int, dict]:
    """One won deal per partition, owned by a probe rep (a marker for "applied")."""
    out: dict[int, dict[str, Any]] = {}
    n = 0
    while len(out) < partitions:
        eid = f"probe-{tag}-{n}"
        p = partition_for(f"deal:{eid}", partitions)
        out.setdefault(
            p,
            {
                "v": 1,
                "event_id": eid,
                "source": "bench",
                "entity": "deal",
                "entity_id": eid,
                "change": "create",
                "occurred_at": f"{day}T12:00:00Z",
                "version": 1,
                "fields": {
                    "owner": f"probe-{tag}",
                    "team": "Probe",
                    "office": "Probe",
                    "status": "won",
                    "stage": "won",
                    "amount": 1,
                    "currency": "USD",
                    "closed_at": day,
                },
            },
        )
        n += 1
    return out


def produce_probes(settings: Settings, tag: str) -> dict[int, int]:
    """Produce one probe record per partition; their offsets."""
    offsets: dict[int, int] = {}
    prod = producer(settings.kafka_bootstrap, linger_ms=0, reports=True)
    for p, event in probe_events(tag, settings.partitions).items():

        def delivered(err: Any, msg: Any, p: int = p) -> None:
            if err is None:
                offsets[p] = msg.offset()

        value = encode_batch([event])
        prod.produce(settings.topic_events, value, partition=p, on_delivery=delivered)
    prod.flush(30)
    return offsets


def recovery(
    settings: Settings, worker_id: str, lose_state: bool, timeout: float
) -> dict[str, Any]:
    """Restart the worker (optionally without its local state); time until it publishes
    again and until probes produced at restart are applied in every partition."""
    client = redis.Redis.from_url(settings.redis_url)
    name = f"worker-{worker_id}"
    t_stop = time.time()
    process.stop(settings, name, timeout=60)
    stop_s = time.time() - t_stop
    if lose_state:
        shutil.rmtree(worker_dir(settings, worker_id), ignore_errors=True)
    started = time.time()
    pid = services.start_worker(settings, worker_id)
    sampler = ProcessSampler(pid)
    probes = produce_probes(settings, f"{worker_id}-{'lost' if lose_state else 'kept'}")
    if len(probes) != settings.partitions:
        raise RuntimeError(f"probe records not all delivered: {probes}")
    first_publish = visible = None
    rebuild_s, loaded = 0.0, 0
    while time.time() - started < timeout:
        sampler.sample()
        rows = read_stats(client, settings)
        fresh = [(s, at) for s, at in rows if s is not None and at > started]
        if fresh and first_publish is None:
            first_publish = min(at for _, at in fresh) - started
        if len(fresh) == settings.partitions and all(
            s["last_offset"] >= probes[p] for p, (s, _) in enumerate(fresh)
        ):
            visible = max(at for _, at in fresh) - started
            # partitions are rebuilt one after another: the worker stalls for the sum
            rebuild_s = sum(s.get("rebuild_seconds", 0.0) for s, _ in fresh)
            loaded = sum(s.get("checkpoint_loads", 0) for s, _ in fresh)
            break
        if process.running_pid(settings, name) is None:
            raise RuntimeError(f"{name} exited during recovery; see its log")
        time.sleep(0.05)
    return {
        "lose_local_state": lose_state,
        "stop_s": round(stop_s, 2),
        "first_publish_s": None if first_publish is None else round(first_publish, 2),
        "probe_visible_s": None if visible is None else round(visible, 2),
        "aggregate_rebuild_s": None if visible is None else round(rebuild_s, 3),
        "checkpoint_loads": loaded,  # partitions that took a graceful stop's aggregates
        "peak_rss_mb": round(sampler.peak_rss / 2**20, 1),
        "time_cap_s": timeout,
        "timed_out": visible is None,
    }
