"""Orchestration of the local stack: ``up``, ``down``, ``status``, ``reset``.

Kafka is one node (process ``kafka``) or, with ``settings.kafka_cluster_size`` > 1, a
KRaft cluster of nodes ``kafka-1`` .. ``kafka-N``; :func:`stop_node` and
:func:`start_node` take one of them down and back for fault tests.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from salespulse.config import Settings, kafka_node_port
from salespulse.stack import kafka, process, prometheus, redis, topics
from salespulse.stack.process import StackError, log


@dataclass(frozen=True)
class Service:
    """How to start, await and describe one service of the stack."""

    name: str
    port: Callable[[Settings], int]
    launch: Callable[[Settings], int | None]
    wait: Callable[[Settings, float], None]
    # Process name -> port, when the service is several processes (a Kafka cluster).
    processes: Callable[[Settings], dict[str, int]] | None = None

    def process_ports(self, settings: Settings) -> dict[str, int]:
        """Every process of the service with its port."""
        if self.processes is not None:
            return self.processes(settings)
        return {self.name: self.port(settings)}


def _kafka_processes(settings: Settings) -> dict[str, int]:
    return {node.name: node.port for node in kafka.cluster_nodes(settings)}


SERVICES: dict[str, Service] = {
    s.name: s
    for s in (
        Service(
            "kafka",
            lambda s: s.kafka_port,
            kafka.launch_cluster,
            lambda s, t: kafka.wait_cluster(s, timeout=t),
            _kafka_processes,
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


def _stop_service(settings: Settings, name: str, timeout: float) -> list[str]:
    """Stop a service's processes; returns the process names that were running."""
    if name == "kafka":  # every node, whatever the configured cluster size
        return kafka.stop_cluster(settings, timeout)
    return [name] if process.stop(settings, name, timeout) else []


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
            _stop_service(settings, name, 30.0)
        raise
    log.info("stack up in %.1fs: %s", time.monotonic() - t0, ", ".join(names))


async def _prepare_kafka(settings: Settings) -> None:
    """Create the default topics and the consumer-offsets topic."""
    names = topics.default_topics(settings)
    replication = kafka.topic_replication(settings)
    if settings.replication_factor < replication:
        log.warning(
            "kafka: %d nodes; workers need SALESPULSE_REPLICATION_FACTOR=%d for their "
            "changelog topics (min.insync.replicas=2 refuses writes to fewer replicas)",
            settings.kafka_cluster_size,
            replication,
        )
    await topics.ensure_topics(settings, names, replication)
    await topics.warm_group_coordinator(settings)


def down(settings: Settings, timeout: float = 30.0) -> None:
    """Stop every process with a pid file in the stack home; infrastructure last."""
    run = process.run_dir(settings)
    names = sorted(p.stem for p in run.glob("*.pid")) if run.is_dir() else []
    others = [n for n in names if n not in STOP_ORDER and not kafka.NODE_NAME.fullmatch(n)]
    stopped = [n for n in others if process.stop(settings, n, timeout)]
    for name in STOP_ORDER:
        stopped += _stop_service(settings, name, timeout)
    log.info("stack down: %s", ", ".join(stopped) if stopped else "nothing was running")


def status(settings: Settings) -> dict[str, dict[str, Any]]:
    """Each service (and any other process with a pid file) -> state, pid, port, log."""
    run = process.run_dir(settings)
    extra = sorted(p.stem for p in run.glob("*.pid")) if run.is_dir() else []
    ports = {n: p for svc in SERVICES.values() for n, p in svc.process_ports(settings).items()}
    result: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys([*ports, *extra]):
        pid = process.running_pid(settings, name)
        port = ports.get(name)
        node = kafka.NODE_NAME.fullmatch(name)
        if port is None and node and node.group(1):  # a node of another cluster size
            port = kafka_node_port(settings.kafka_port, int(node.group(1)[1:]))
        result[name] = {
            "state": "running" if pid else "stopped",
            "pid": pid,
            "port": port,
            "log": str(process.log_path(settings, name)),
        }
    return result


def stop_node(settings: Settings, node_id: int, kill: bool = False, timeout: float = 30.0) -> bool:
    """Take Kafka node ``node_id`` of the local cluster down: a clean shutdown, or a
    crash with ``kill=True``. True if it was running."""
    return kafka.stop_node(settings, node_id, kill=kill, timeout=timeout)


def start_node(settings: Settings, node_id: int, timeout: float = 90.0) -> None:
    """Start Kafka node ``node_id`` of the local cluster again and wait until it serves."""
    kafka.start_node(settings, node_id, timeout)


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
        kafka.kafka_root(settings) / "voters",
        *kafka.kafka_root(settings).glob("data-*"),
    ]
    for path in doomed:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    log.info("stack reset: data removed under %s (jar cache kept)", home)
