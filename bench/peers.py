"""Running the baselines and the peer as processes and reading back what they publish.

* raw aiokafka: a subprocess that prints its figures;
* obvious Faust and Quix: spawned detached in the bench home (pid files, so ``stack
  down`` stops leftovers), followed through what they publish to Redis, and stopped.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import redis

from bench.config import REPO, kill, python_argv, run_json
from bench.kpi_subset import Group, add_components, figures
from bench.measure import ProcessSampler, Snapshot, dir_size_mb, follow
from salespulse.config import Settings
from salespulse.stack import process


def raw_baseline(
    settings: Settings, topic: str, ends: dict[int, int], repeats: int = 3
) -> dict[str, Any]:
    """Raw aiokafka getmany + orjson over ``topic`` (a separate process each time); the
    fastest of ``repeats`` runs (it is the limit), with every run's rate."""
    runs = [_raw_once(settings, topic, ends) for _ in range(repeats)]
    best = max(runs, key=lambda r: r["events_per_s"])
    return {**best, "runs_events_per_s": [round(r["events_per_s"]) for r in runs]}


def _raw_once(settings: Settings, topic: str, ends: dict[int, int]) -> dict[str, Any]:
    argv = python_argv(
        "bench.baselines.raw_aiokafka",
        "--bootstrap",
        settings.kafka_bootstrap,
        "--topic",
        topic,
        "--ends",
        ",".join(f"{p}:{o}" for p, o in sorted(ends.items())),
    )
    result: dict[str, Any] = orjson.loads(run_json(argv, timeout=1800))
    result["events_per_cpu_s"] = (
        round(result["events"] / result["cpu_seconds"], 1) if result["cpu_seconds"] else None
    )
    return result


def _spawn(settings: Settings, name: str, module: str, args: list[str], env: dict) -> int:
    datadir = Path(env["BENCH_DATADIR"])
    datadir.mkdir(parents=True, exist_ok=True)
    base = {
        "BENCH_BOOTSTRAP": settings.kafka_bootstrap,
        "BENCH_REDIS_URL": settings.redis_url,
        "BENCH_PARTITIONS": str(settings.partitions),
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(REPO),
    }
    return process.spawn(settings, name, python_argv(module, *args), env={**base, **env})


def _peer_env(settings: Settings, tag: str, topic: str) -> dict[str, str]:
    return {
        "BENCH_TOPIC": topic,
        "BENCH_APP_ID": f"bench-{tag}",
        "BENCH_PREFIX": f"bench-{tag}",
        "BENCH_DATADIR": str(process.home(settings) / "peers" / tag),
    }


def obvious_faust(
    settings: Settings, tag: str, topic: str, ends: dict[int, int], events: int, timeout: float
) -> tuple[dict[str, Any], dict[Group, dict[str, Any]]]:
    """Run the obvious Faust app to completion; its figures and its KPI values."""
    client = redis.Redis.from_url(settings.redis_url)
    env = _peer_env(settings, tag, topic)
    keys = [f"{env['BENCH_PREFIX']}:partition:{p}" for p in range(settings.partitions)]

    def poll() -> Snapshot:
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.hmget(key, "stats", "published_at")
        count, newest, published, done = 0, 0.0, False, True
        for p, (stats, at) in enumerate(pipe.execute()):
            if stats is None:
                done = done and ends.get(p, 0) == 0
                continue
            s = orjson.loads(stats)
            published = True
            count += s["count"]
            newest = max(newest, float(at))
            done = done and s["last_offset"] >= ends.get(p, 0) - 1
        return Snapshot(count, newest, published, done and published)

    client.delete(*keys)  # nothing stale from an earlier run with the same tag
    name = f"obvious-{tag}"
    started = time.time()
    pid = _spawn(settings, name, "bench.baselines.obvious_faust", ["worker", "-l", "info"], env)
    try:
        seen = follow(
            poll,
            ProcessSampler(pid),
            started,
            timeout,
            alive=lambda: process.running_pid(settings, name) is not None,
        )
        result = seen.figures(events)
        components: dict[Group, list[int]] = {}
        for key in keys:
            raw = client.hget(key, "aggregates")
            for group, values in orjson.loads(raw or b"{}").items():
                add_components(components, group, values)
        result["state_dir_mb"] = dir_size_mb(Path(env["BENCH_DATADIR"]))
    finally:
        kill(settings, name)
    return result, figures(components)


def quix_peer(
    settings: Settings,
    tag: str,
    topic: str,
    events: int,
    expected: dict[Group, dict[str, Any]],
    timeout: float,
    commit_interval: float,
) -> tuple[dict[str, Any], dict[Group, dict[str, Any]]]:
    """Run the Quix app until it has counted every event and its published figures are
    complete (equal to ``expected``, or unchanged for 10 s after the last event)."""
    client = redis.Redis.from_url(settings.redis_url)
    env = {**_peer_env(settings, tag, topic), "BENCH_COMMIT_INTERVAL": str(commit_interval)}
    prefix = env["BENCH_PREFIX"]
    state: dict[str, Any] = {"figures": {}, "stable_since": None, "last_raw": None}

    def read_figures() -> dict[Group, dict[str, Any]]:
        components: dict[Group, list[int]] = {}
        for group, values in client.hgetall(f"{prefix}:aggregates").items():
            add_components(components, group.decode(), orjson.loads(values))
        return figures(components)

    def poll() -> Snapshot:
        progress = client.hgetall(f"{prefix}:progress")
        if not progress:
            return Snapshot()
        count, at = int(progress[b"count"]), float(progress[b"published_at"])
        done = False
        if count >= events:
            figs = read_figures()
            state["figures"] = figs
            if figs == expected:
                done = True
            elif figs != state["last_raw"]:
                state["last_raw"], state["stable_since"] = figs, time.time()
            elif time.time() - state["stable_since"] > max(10.0, 3 * commit_interval):
                done = True
        return Snapshot(count, at, True, done)

    client.delete(f"{prefix}:progress", f"{prefix}:aggregates")
    name = f"quix-{tag}"
    started = time.time()
    pid = _spawn(settings, name, "bench.baselines.quix_peer", [], env)
    try:
        seen = follow(
            poll,
            ProcessSampler(pid),
            started,
            timeout,
            alive=lambda: process.running_pid(settings, name) is not None,
        )
        result = seen.figures(events)
        result["commit_interval_s"] = commit_interval
        result["state_dir_mb"] = dir_size_mb(Path(env["BENCH_DATADIR"]))
    finally:
        kill(settings, name)
    return result, state["figures"] or read_figures()
