"""Orchestration of the local stack: ``up``, ``down``, ``status``, ``reset``."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from salespulse.config import Settings
from salespulse.stack import kafka, process, prometheus, redis, topics
from salespulse.stack.process import StackError, log


@dataclass(frozen=True)
class Service:
    """How to start, await and describe one service of the stack."""

    name: str
    port: Callable[[Settings], int]
    launch: Callable[[Settings], int | None]
    wait: Callable[[Settings, float], None]


SERVICES: dict[str, Service] = {
    s.name: s
    for s in (
        Service(
            "kafka",
            lambda s: s.kafka_port,
            kafka.launch,
            lambda s, t: kafka.wait_ready(s, timeout=t),
        ),
        Service("redis", lambda s: s.redis_port, redis.launch, redis.wait_ready),
        Service(
            "prometheus",
            lambda s: s.prometheus_port,
            prometheus.launch_prometheus,
            prometheus.wait_prometheus,
        ),
        Service(
            "alertmanager",
            lambda s: s.alertmanager_port,
            prometheus.launch_alertmanager,
            prometheus.wait_alertmanager,
        ),
    )
}
DEFAULT_SERVICES = tuple(SERVICES)
# Infrastructure is stopped last, in this order, after anything else with a pid file.
STOP_ORDER = ("prometheus", "alertmanager", "kafka", "redis")


def up(
    settings: Settings,
    services: Iterable[str] = DEFAULT_SERVICES,
    timeout: float = 60.0,
) -> None:
    """Start ``services`` (no-op for those running), await readiness, create topics.

    On failure the services started by this call are stopped again and
    :class:`StackError` is raised with the failing service's log tail.
    """
    names = list(services)
    unknown = set(names) - set(SERVICES)
    if unknown:
        raise StackError(f"unknown services {sorted(unknown)}; known: {sorted(SERVICES)}")
    t0 = time.monotonic()
    started: list[str] = []
    try:
        for name in names:  # launch all first, then wait: start-up overlaps
            if SERVICES[name].launch(settings) is not None:
                started.append(name)
        for name in names:
            SERVICES[name].wait(settings, timeout)
        if "kafka" in names:
            process.run_coro(_prepare_kafka(settings))
    except BaseException:
        for name in reversed(started):
            process.stop(settings, name)
        raise
    log.info("stack up in %.1fs: %s", time.monotonic() - t0, ", ".join(names))


async def _prepare_kafka(settings: Settings) -> None:
    """Create the default topics and the consumer-offsets topic."""
    names = topics.default_topics(settings)
    await topics.ensure_topics(settings, names, settings.replication_factor)
    await topics.warm_group_coordinator(settings)


def down(settings: Settings, timeout: float = 30.0) -> None:
    """Stop every process with a pid file in the stack home; infrastructure last."""
    run = process.run_dir(settings)
    names = sorted(p.stem for p in run.glob("*.pid")) if run.is_dir() else []
    others = [n for n in names if n not in STOP_ORDER]
    stopped = [n for n in [*others, *STOP_ORDER] if process.stop(settings, n, timeout)]
    log.info("stack down: %s", ", ".join(stopped) if stopped else "nothing was running")


def status(settings: Settings) -> dict[str, dict[str, Any]]:
    """Each service (and any other process with a pid file) -> state, pid, port, log."""
    run = process.run_dir(settings)
    extra = sorted(p.stem for p in run.glob("*.pid")) if run.is_dir() else []
    result: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys([*SERVICES, *extra]):
        pid = process.running_pid(settings, name)
        svc = SERVICES.get(name)
        result[name] = {
            "state": "running" if pid else "stopped",
            "pid": pid,
            "port": svc.port(settings) if svc else None,
            "log": str(process.log_path(settings, name)),
        }
    return result


def reset(settings: Settings) -> None:
    """Delete data, logs and pid files of the stopped stack; keep the Kafka jar cache."""
    running = [n for n, s in status(settings).items() if s["state"] == "running"]
    if running:
        raise StackError(f"stop the stack first; still running: {', '.join(running)}")
    home = process.home(settings)
    doomed = [
        home / "redis",
        home / "prometheus",
        home / "alertmanager",
        process.run_dir(settings),
        process.logs_dir(settings),
        kafka.kafka_root(settings) / "cluster.id",
        *kafka.kafka_root(settings).glob("data-*"),
    ]
    for path in doomed:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    log.info("stack reset: data removed under %s (jar cache kept)", home)
