"""The phases of a benchmark run: main comparison, latency, scaling.

Each phase uses its own topics, app ids and Redis prefixes (named after the run's tag),
so nothing is shared between systems or phases, and deletes its topics when done.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from bench import latency, peers
from bench import salespulse_run as sp
from bench.config import kill, run_settings
from bench.kpi_subset import Oracle, compare, figures, totals
from bench.measure import listening_pid, wait_until_quiet
from bench.produce import Target, Timings, delete_topics, produce_workload
from bench.workload import NATURAL_EVENTS_PER_ENTITY, Workload, WorkloadConfig
from salespulse import services
from salespulse.config import Settings
from salespulse.stack import ensure_topics, process

log = logging.getLogger("bench")


@dataclass
class Plan:
    """What to run; see ``python -m bench.run --help``."""

    mode: str
    entities: int
    events: int | None
    scale: list[int]
    rates: list[int]
    latency_s: float
    obvious_events: int
    time_cap: float
    scale_time_cap: float
    recovery_time_cap: float = 300.0
    quix_commit_interval: float = 1.0
    seed: int = 1
    skip: set[str] = field(default_factory=set)
    profile_dir: Path | None = None


def _topics(settings: Settings, names: list[str]) -> None:
    process.run_coro(ensure_topics(settings, dict.fromkeys(names, settings.partitions)))


def _log(name: str, x: dict[str, Any]) -> None:
    log.info(
        "%s: %s events, %s events/s, %s events/CPU-s, peak RSS %s MB%s",
        name,
        x.get("events"),
        x.get("events_per_s"),
        x.get("events_per_cpu_s"),
        x.get("peak_rss_mb"),
        "" if x.get("complete", True) else " (INCOMPLETE: time cap)",
    )


def _check(expected: dict, actual: dict, events: int) -> dict[str, Any]:
    diff = compare(expected, actual)
    return {"events": events, "groups": len(actual), "equal": not diff, "diff": diff}


def main_comparison(base: Settings, plan: Plan, tag: str, result: dict[str, Any]) -> None:
    """One workload, every system: raw, SalesPulse (+ figures, recovery), Quix, obvious."""
    s = run_settings(base, f"{tag}-main")
    config = WorkloadConfig(entities=plan.entities, events=plan.events, seed=plan.seed)
    work = Workload(config)
    n, m = config.total_events, min(plan.obvious_events, config.total_events)
    batched = Target(s.topic_events, batched=True)
    single = Target(f"bench-{tag}-main-single", batched=False)
    prefix = Target(f"bench-{tag}-main-prefix", batched=False, limit=m)
    _topics(s, [batched.topic, single.topic, prefix.topic, s.topic_dead_letters])
    timings, expected, expected_head = _produce_checked(s, work, [batched, single, prefix], m)
    result["workload"] = {
        **work.describe(),
        "generation": timings.as_dict(n),
        "topics": {
            name: {"topic": t.topic, "records": t.records, "bytes": t.bytes, "events": t.events}
            for name, t in (("batched", batched), ("single", single), ("prefix", prefix))
        },
    }
    result["figures_check"]["independent"] = totals(expected)
    log.info("workload: %s", result["workload"])
    through = result["throughput"]
    if "raw" not in plan.skip:
        through["raw_aiokafka_batched"] = peers.raw_baseline(s, batched.topic, batched.ends)
        through["raw_aiokafka_single"] = peers.raw_baseline(s, single.topic, single.ends)
        _log("raw aiokafka, batched", through["raw_aiokafka_batched"])
        _log("raw aiokafka, single", through["raw_aiokafka_single"])
    wid = f"{tag}-main"
    profiler = _Profiler(plan.profile_dir, tag)
    ours = sp.throughput(s, wid, batched.ends, n, plan.time_cap, on_start=profiler.start)
    result["profile"] = profiler.finish()
    through["salespulse"] = ours
    _log("SalesPulse", ours)
    sp.start_collector(s)
    months = sorted({month for _, month in expected} | set(_months(config)))
    result["figures_check"]["salespulse"] = _check(expected, sp.collector_figures(s, months), n)
    kill(s, "collector")
    if "recovery" not in plan.skip and ours["complete"]:
        for key, lose in (("restart", False), ("lost_state", True)):
            result["recovery"][key] = sp.recovery(s, wid, lose, plan.recovery_time_cap)
            log.info("recovery (%s): %s", key, result["recovery"][key])
    kill(s, f"worker-{wid}")
    shutil.rmtree(sp.worker_dir(s, wid), ignore_errors=True)
    if "quix" not in plan.skip:
        q, q_figs = peers.quix_peer(
            s,
            f"{tag}-main-quix",
            single.topic,
            n,
            expected,
            plan.time_cap,
            plan.quix_commit_interval,
        )
        through["quix"] = q
        _log("Quix", q)
        result["figures_check"]["quix"] = _check(expected, q_figs, n)
    if "obvious" not in plan.skip:
        o, o_figs = peers.obvious_faust(
            s, f"{tag}-main-obv", prefix.topic, prefix.ends, m, plan.time_cap
        )
        through["obvious_faust"] = o
        _log("obvious Faust", o)
        result["figures_check"]["obvious_faust"] = _check(expected_head, o_figs, m)
    delete_topics(s.kafka_bootstrap, f"bench-{tag}-main")


def _produce_checked(
    s: Settings, work: Workload, targets: list[Target], head_events: int
) -> tuple[Timings, dict, dict]:
    """Produce the workload; the independent figures of all of it and of its head."""
    full, head = Oracle(), Oracle()

    def check(at: int, chunk: list[tuple[int, dict]]) -> None:
        full.apply(e for _, e in chunk)
        head.apply(e for _, e in chunk[: max(0, head_events - at)])

    timings = produce_workload(s.kafka_bootstrap, work, targets, check)
    return timings, figures(full.components()), figures(head.components())


def _months(config: WorkloadConfig) -> list[str]:
    start = config.start.year * 12 + config.start.month - 1
    count = config.days // 28 + 2
    return [f"{(start + i) // 12}-{(start + i) % 12 + 1:02d}" for i in range(count)]


def latency_phase(base: Settings, plan: Plan, tag: str) -> list[dict[str, Any]]:
    """For each offered rate: a fresh worker and collector, then :func:`latency.offered_load`."""
    out = []
    for rate in plan.rates:
        s = run_settings(base, f"{tag}-lat{rate}")
        _topics(s, [s.topic_events, s.topic_dead_letters])
        wid = f"{tag}-lat{rate}"
        # Not while something the previous phase started still runs (the broker deleting
        # or compacting the main run's topics, say): that load is not this rate's.
        quiet = wait_until_quiet()
        log.info("latency at %d events/s: machine quiet after %s", rate, quiet)
        profiler = _Profiler(plan.profile_dir, wid)
        try:
            pids = {"worker": services.start_worker(s, wid)}
            _await_first_publish(s, 180)
            pids["collector"] = sp.start_collector(s)
            # whichever broker and Redis serve this run (the test stack's in the smoke test)
            for name, port in (("kafka", s.kafka_port), ("redis", s.redis_port)):
                if (pid := listening_pid(port)) is not None:
                    pids[name] = pid
            drain = max(30.0, 2 * plan.latency_s)
            profiler.start(pids["worker"])
            run = latency.offered_load(
                s, tag, rate, plan.latency_s, drain, plan.seed + rate, pids=pids
            )
            if profile := profiler.finish():
                run["profile"] = profile
            run["machine_quiet_before"] = quiet
            out.append(run)
            log.info("latency at %d events/s: %s", rate, out[-1])
        finally:
            kill(s, "collector")
            kill(s, f"worker-{wid}")
            shutil.rmtree(sp.worker_dir(s, wid), ignore_errors=True)
            delete_topics(s.kafka_bootstrap, f"bench-{tag}-lat{rate}")
    return out


def _await_first_publish(s: Settings, timeout: float) -> None:
    client = redis.Redis.from_url(s.redis_url)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if all(stats is not None for stats, _ in sp.read_stats(client, s)):
            return
        time.sleep(0.2)
    raise RuntimeError(f"worker on {s.topic_events} published nothing in {timeout:.0f}s")


def scaling_phase(
    base: Settings, plan: Plan, tag: str, result: dict[str, Any]
) -> list[dict[str, Any]]:
    """SalesPulse alone at each entity count (the main run is reused for its own count)."""
    out: list[dict[str, Any]] = []
    rate = (result["throughput"].get("salespulse") or {}).get("events_per_s")
    for entities in sorted(plan.scale):
        if entities == plan.entities and result["throughput"].get("salespulse"):
            ours, w = result["throughput"]["salespulse"], result["workload"]
            out.append(_scale_row(entities, w["entities"], w["events"], ours, plan.time_cap))
            rate = ours["events_per_s"] or rate
            continue
        natural = round(entities * NATURAL_EVENTS_PER_ENTITY)
        events = natural if not rate else min(natural, int(rate * plan.scale_time_cap * 1.2))
        s = run_settings(base, f"{tag}-s{entities}")
        work = Workload(WorkloadConfig(entities=entities, events=natural, seed=plan.seed))
        target = Target(s.topic_events, batched=True, limit=events)
        _topics(s, [s.topic_events, s.topic_dead_letters])
        timings = produce_workload(s.kafka_bootstrap, work, [target], max_events=events)
        wid = f"{tag}-s{entities}"
        profiler = _Profiler(plan.profile_dir, wid)
        try:
            ours = sp.throughput(
                s, wid, target.ends, events, plan.scale_time_cap, on_start=profiler.start
            )
        finally:
            profile = profiler.finish()
            kill(s, f"worker-{wid}")
            shutil.rmtree(sp.worker_dir(s, wid), ignore_errors=True)
            delete_topics(s.kafka_bootstrap, f"bench-{tag}-s{entities}")
        row = _scale_row(entities, work.created, events, ours, plan.scale_time_cap)
        row["workload_capped"] = events < natural
        if profile:
            row["profile"] = profile
        row["generate_events_per_s"] = timings.as_dict(events)["generate_events_per_s"]
        out.append(row)
        log.info("scaling: %s", row)
        rate = ours["events_per_s"] or rate
    return out


def _scale_row(
    target: int, entities: int, events: int, ours: dict[str, Any], cap: float
) -> dict[str, Any]:
    done = ours["events"] if not ours["complete"] else events
    reached = entities if ours["complete"] else int(entities * min(1.0, done / max(1, events)))
    grown = (ours["end_rss_mb"] - ours["rss_at_start_mb"]) * 2**20
    anon_grown = (ours["end_anon_rss_mb"] - ours["anon_rss_at_start_mb"]) * 2**20
    return {
        "entities_target": target,
        "entities": reached,
        "events": done,
        "complete": ours["complete"],
        "time_cap_s": cap,
        "events_per_s": ours["events_per_s"],
        "events_per_cpu_s": ours["events_per_cpu_s"],
        "peak_rss_mb": ours["peak_rss_mb"],
        "rss_bytes_per_entity": round(grown / reached) if reached else None,
        "peak_anon_rss_mb": ours["peak_anon_rss_mb"],
        "anon_rss_bytes_per_entity": round(anon_grown / reached) if reached else None,
        "state_dir_mb": ours["state_dir_mb"],
    }


class _Profiler:
    """py-spy sampling of a SalesPulse worker during a throughput run (``--profile``)."""

    def __init__(self, out_dir: Path | None, tag: str) -> None:
        self.out_dir, self.tag = out_dir, tag
        self.proc: subprocess.Popen[bytes] | None = None
        self.path: Path | None = None

    def start(self, pid: int) -> None:
        beside = Path(sys.executable).with_name("py-spy")
        binary = str(beside) if beside.exists() else shutil.which("py-spy")
        if self.out_dir is None or binary is None:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.out_dir / f"{self.tag}-worker.collapsed"
        # Without pausing the worker: py-spy's default stops every thread of the process
        # for each sample, which cost a 10^6 main run 16-19 % of its wall time (CPU
        # utilisation 0.81-0.84 against about 1.0 unsampled).
        argv = [binary, "record", "-p", str(pid), "-r", "100", "-f", "raw", "--nonblocking"]
        argv += ["-o", str(self.path)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def finish(self) -> dict[str, Any] | None:
        if self.proc is None or self.path is None:
            return None
        self.proc.send_signal(2)  # SIGINT: py-spy writes its output and exits
        self.proc.wait(30)
        return summarize_profile(self.path)


WAITING = ("select (selectors.py", "poll (selectors.py", "_run_once (asyncio/base_events.py")
NOISE = ("asyncio/", "<frozen", "click/core.py", "mode/", "salespulse/cli.py", "agents/run.py")


def summarize_profile(path: Path, top: int = 15) -> dict[str, Any]:
    """Where a py-spy raw (collapsed) profile spends its busy samples.

    Samples whose innermost frame waits in the event loop's selector count as waiting;
    the shares of the others are by innermost function (self) and by project or library
    function anywhere on the stack (inclusive, framework plumbing left out).
    """
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = waiting = 0
    lines = path.read_text().splitlines() if path.exists() else []
    for line in lines:
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count, frames = int(count_s), stack.split(";")
        total += count
        if frames[-1].startswith(WAITING) or "selectors.py" in frames[-1]:
            waiting += count
            continue
        own[frames[-1]] += count
        for frame in {re.sub(r":\d+\)$", ")", f) for f in frames}:  # per function
            if not any(n in frame for n in NOISE):
                inclusive[frame] += count
    busy = total - waiting

    def shares(counter: Counter[str]) -> dict[str, float]:
        return {k: round(v / busy, 3) for k, v in counter.most_common(top)} if busy else {}

    return {
        "file": path.name,
        "samples": total,
        "waiting_share": round(waiting / total, 3) if total else None,
        "busy_self": shares(own),
        "busy_inclusive": shares(inclusive),
    }
