"""Kafka in KRaft mode (combined broker+controller) from Maven Central jars.

The jars of ``settings.kafka_version`` are resolved once with Maven into
``<home>/kafka/<version>/libs``; each node keeps its config and data in
``<home>/kafka/data-<node_id>``. A node is described by :class:`KafkaNode`.

``settings.kafka_cluster_size`` nodes make the local cluster: one node (the default,
process ``kafka``) or N combined broker+controller nodes ``kafka-1`` .. ``kafka-N``, all
of them quorum voters, node n on ports ``kafka_port + 10 (n - 1)`` and
``kafka_controller_port + 10 (n - 1)``. A cluster of three replicates every topic three
times with ``min.insync.replicas=2``, so it keeps serving (and loses no acknowledged
write) with one node down.

>>> from salespulse.config import Settings
>>> [(n.name, n.port, n.controller_port) for n in cluster_nodes(Settings(kafka_cluster_size=3))]
[('kafka-1', 9092, 9094), ('kafka-2', 9102, 9104), ('kafka-3', 9112, 9114)]
>>> cluster_nodes(Settings())[0].voters
'1@127.0.0.1:9094'
"""

from __future__ import annotations

import base64
import concurrent.futures
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from salespulse.config import Settings, kafka_node_port
from salespulse.stack import process
from salespulse.stack.process import StackError, log

JVM_OPTS = (
    "-Xmx512m",
    "-Xms256m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)


@dataclass(frozen=True)
class KafkaNode:
    """One KRaft node: its id, client and controller ports, and the quorum voters."""

    node_id: int
    port: int
    controller_port: int
    voters: str  # "1@127.0.0.1:9094,2@..."
    name: str = "kafka"


def single_node(settings: Settings) -> KafkaNode:
    """The one-node cluster of the local stack."""
    cport = settings.kafka_controller_port
    return KafkaNode(1, settings.kafka_port, cport, f"1@{settings.host}:{cport}")


NODE_NAME = re.compile(r"kafka(-[0-9]+)?")


def cluster_nodes(settings: Settings) -> list[KafkaNode]:
    """Every node of the local cluster (``settings.kafka_cluster_size`` of them)."""
    size = settings.kafka_cluster_size
    if size < 1:
        raise StackError(f"kafka_cluster_size must be at least 1, not {size}")
    if size == 1:
        return [single_node(settings)]
    ids = range(1, size + 1)
    ports = {n: kafka_node_port(settings.kafka_port, n) for n in ids}
    cports = {n: kafka_node_port(settings.kafka_controller_port, n) for n in ids}
    every = [*ports.values(), *cports.values()]
    if len(set(every)) != len(every):
        raise StackError(
            f"kafka: the ports of a {size}-node cluster overlap ({sorted(every)}); "
            "move kafka_controller_port away from kafka_port"
        )
    voters = ",".join(f"{n}@{settings.host}:{cports[n]}" for n in ids)
    return [KafkaNode(n, ports[n], cports[n], voters, f"kafka-{n}") for n in ids]


def cluster_node(settings: Settings, node_id: int) -> KafkaNode:
    """The node ``node_id`` (1-based) of the local cluster."""
    for node in cluster_nodes(settings):
        if node.node_id == node_id:
            return node
    raise StackError(f"kafka: no node {node_id} in a cluster of {settings.kafka_cluster_size}")


def topic_replication(settings: Settings) -> int:
    """Replicas of the topics the stack creates: ``settings.replication_factor``, at
    least ``min(3, nodes)`` on a cluster (a one-replica topic survives no node loss), and
    never more than the nodes."""
    size = settings.kafka_cluster_size
    wanted = settings.replication_factor if size == 1 else max(settings.replication_factor, 3)
    return max(1, min(wanted, size))


def kafka_root(settings: Settings) -> Path:
    """``<home>/kafka``: jar cache per version, data per node, cluster id."""
    return process.home(settings) / "kafka"


def data_dir(settings: Settings, node: KafkaNode) -> Path:
    """Config and data directory of ``node``."""
    return kafka_root(settings) / f"data-{node.node_id}"


def libs_dir(settings: Settings) -> Path:
    """Jar cache of the configured Kafka version."""
    return kafka_root(settings) / settings.kafka_version / "libs"


def resolve_jars(settings: Settings) -> Path:
    """Download the broker jars with Maven unless cached; returns the libs directory."""
    libs = libs_dir(settings)
    if (libs / ".complete").exists():
        return libs
    mvn = process.require_binary("mvn")
    pom = process.deploy_dir() / "local" / "kafka" / "pom.xml"
    tmp = libs.with_name(f"libs.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(pom),
        f"-Dkafka.version={settings.kafka_version}",
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={tmp}",
    ]
    repo = os.environ.get("SALESPULSE_MAVEN_REPO")
    if repo:
        cmd.append(f"-Dmaven.repo.local={Path(repo).expanduser().resolve()}")
    log.info("kafka: resolving jars for %s (one-time download)", settings.kafka_version)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
    if res.returncode != 0 or not any(tmp.glob("kafka_*.jar")):
        shutil.rmtree(tmp, ignore_errors=True)
        out = (res.stdout + res.stderr)[-4000:]
        raise StackError(f"kafka: maven could not resolve {settings.kafka_version}:\n{out}")
    (tmp / ".complete").write_text(settings.kafka_version + "\n")
    if libs.exists():  # an incomplete earlier attempt
        shutil.rmtree(libs)
    tmp.rename(libs)
    return libs


def cluster_id(settings: Settings) -> str:
    """The KRaft cluster id, generated once and stored in ``<home>/kafka/cluster.id``."""
    path = kafka_root(settings) / "cluster.id"
    if path.exists():
        return path.read_text().strip()
    cid = "-"
    while cid.startswith("-"):  # the storage tool would read a leading "-" as an option
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"cluster.id.tmp-{os.getpid()}")
    tmp.write_text(cid + "\n")
    tmp.rename(path)  # atomic: a concurrent reader never sees an empty file
    return cid


def server_properties(settings: Settings, node: KafkaNode) -> dict[str, str]:
    """Broker configuration of ``node``."""
    host = settings.host
    small = str(max(1, settings.partitions))
    props = {
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        "controller.quorum.voters": node.voters,
        "listeners": f"PLAINTEXT://{host}:{node.port},CONTROLLER://{host}:{node.controller_port}",
        "advertised.listeners": f"PLAINTEXT://{host}:{node.port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(data_dir(settings, node) / "logs"),
        "num.partitions": str(settings.partitions),
        "default.replication.factor": str(settings.replication_factor),
        "offsets.topic.replication.factor": str(settings.replication_factor),
        "offsets.topic.num.partitions": small,
        "transaction.state.log.replication.factor": str(settings.replication_factor),
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": small,
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "true",
        "delete.topic.enable": "true",
        "log.retention.hours": "24",
        "num.network.threads": "2",
        "num.io.threads": "4",
    }
    size = settings.kafka_cluster_size
    if size > 1:  # every internal topic on up to three nodes; acks=all needs two of them
        internal, isr = str(min(3, size)), str(2 if size >= 3 else 1)
        props.update(
            {
                "default.replication.factor": str(topic_replication(settings)),
                "min.insync.replicas": isr,
                "offsets.topic.replication.factor": internal,
                "transaction.state.log.replication.factor": internal,
                "transaction.state.log.min.isr": isr,
                # A node that comes back takes its partitions' leadership back quickly.
                "leader.imbalance.check.interval.seconds": "10",
                # A restarted node must not become leader of a partition it lags behind.
                "unclean.leader.election.enable": "false",
            }
        )
    return props


def write_server_properties(settings: Settings, node: KafkaNode) -> Path:
    """Render ``server.properties`` of ``node`` into its data directory."""
    path = data_dir(settings, node) / "server.properties"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# Generated by salespulse.stack.kafka; edits are overwritten on start."]
    lines += [f"{k}={v}" for k, v in server_properties(settings, node).items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _java_cmd(settings: Settings, libs: Path, main: str, *args: str) -> list[str]:
    log4j = process.deploy_dir() / "local" / "kafka" / "log4j.properties"
    return [
        process.require_binary("java"),
        *JVM_OPTS,
        f"-Dlog4j.configuration=file:{log4j}",
        f"-Dkafka.logs.dir={process.logs_dir(settings)}",
        "-cp",
        str(libs / "*"),
        main,
        *args,
    ]


def check_topology(settings: Settings, node: KafkaNode) -> None:
    """Refuse to start a node whose storage was formatted for another quorum."""
    marker = kafka_root(settings) / "voters"
    if marker.exists() and any(kafka_root(settings).glob("data-*/logs/meta.properties")):
        formatted = marker.read_text().strip()
        if formatted != node.voters:
            raise StackError(
                f"kafka: the stack home was formatted for the quorum {formatted!r}, not "
                f"{node.voters!r} (kafka_cluster_size changed?); run `salespulse stack down` "
                "and `salespulse stack reset` first"
            )
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(node.voters + "\n")


def format_storage(settings: Settings, node: KafkaNode, libs: Path, config: Path) -> None:
    """Format the node's log dir with the cluster id, once."""
    if (data_dir(settings, node) / "logs" / "meta.properties").exists():
        return
    log.info("%s: formatting storage", node.name)
    cmd = _java_cmd(
        settings,
        libs,
        "kafka.tools.StorageTool",
        "format",
        "-t",
        cluster_id(settings),
        "-c",
        str(config),
        "--ignore-formatted",
    )
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if res.returncode != 0:
        raise StackError(f"{node.name}: storage format failed:\n{res.stdout}{res.stderr}")


def launch(settings: Settings, node: KafkaNode | None = None) -> int | None:
    """Start ``node`` (default: the single local node) unless running; returns its new pid."""
    node = node or single_node(settings)
    if process.running_pid(settings, node.name) is not None:
        log.info("%s: already running", node.name)
        return None
    for port in (node.port, node.controller_port):
        if process.port_open(settings.host, port):
            raise StackError(f"{node.name}: port {port} is in use by another process")
    check_topology(settings, node)
    libs = resolve_jars(settings)
    config = write_server_properties(settings, node)
    format_storage(settings, node, libs, config)
    log.info("%s: starting on %s:%d", node.name, settings.host, node.port)
    cmd = _java_cmd(settings, libs, "kafka.Kafka", str(config))
    return process.spawn(settings, node.name, cmd, cwd=data_dir(settings, node))


async def _broker_registered(host: str, node: KafkaNode) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=f"{host}:{node.port}", request_timeout_ms=3000)
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        return any(b["node_id"] == node.node_id for b in cluster["brokers"])
    finally:
        await admin.close()


def is_ready(settings: Settings, node: KafkaNode | None = None) -> bool:
    """True once ``node`` accepts connections and serves metadata that lists itself."""
    node = node or single_node(settings)
    if not process.port_open(settings.host, node.port):
        return False
    return process.run_coro(_broker_registered(settings.host, node))


def wait_ready(settings: Settings, node: KafkaNode | None = None, timeout: float = 60) -> None:
    """Block until ``node`` is ready; :class:`StackError` with the log tail otherwise."""
    node = node or single_node(settings)
    process.wait_ready(settings, node.name, lambda: is_ready(settings, node), timeout, 0.5)
    log.info("%s: ready on %s:%d", node.name, settings.host, node.port)


def launch_cluster(settings: Settings) -> int | None:
    """Start every node of the local cluster that is not running (storage formatted in
    parallel: each format is a JVM start); returns a new pid if any node was started."""
    nodes = cluster_nodes(settings)
    if len(nodes) == 1:
        return launch(settings, nodes[0])
    resolve_jars(settings)  # once, before the parallel starts
    cluster_id(settings)
    idle = [n for n in nodes if process.running_pid(settings, n.name) is None]
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(idle))) as pool:
        futures = {n.name: pool.submit(launch, settings, n) for n in idle}
    started = {name: f.result() for name, f in futures.items() if not f.exception()}
    failed = [f.exception() for f in futures.values() if f.exception()]
    if failed:  # leave nothing half started
        for name, pid in started.items():
            if pid is not None:
                process.stop(settings, name)
        raise failed[0]  # type: ignore[misc]
    pids = [p for p in started.values() if p is not None]
    return pids[0] if pids else None


def wait_cluster(settings: Settings, timeout: float = 90) -> None:
    """Block until every node of the local cluster is ready."""
    deadline = time.monotonic() + timeout
    for node in cluster_nodes(settings):
        wait_ready(settings, node, max(1.0, deadline - time.monotonic()))


def running_nodes(settings: Settings) -> list[str]:
    """Names of the Kafka node processes with a pid file in the home (any cluster size)."""
    run = process.run_dir(settings)
    names = sorted(p.stem for p in run.glob("kafka*.pid")) if run.is_dir() else []
    return [n for n in names if NODE_NAME.fullmatch(n)]


def stop_cluster(settings: Settings, timeout: float = 30.0) -> list[str]:
    """Stop every Kafka node at once (one after the other, the last nodes would wait for
    a quorum that is gone); SIGKILL after ``timeout``. Returns the names stopped."""
    names = running_nodes(settings)
    if not names:
        return []
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(names)) as pool:
        stopped = list(pool.map(lambda n: process.stop(settings, n, timeout), names))
    return [n for n, ok in zip(names, stopped, strict=True) if ok]


def stop_node(settings: Settings, node_id: int, kill: bool = False, timeout: float = 30.0) -> bool:
    """Stop one node of the cluster: a clean shutdown, or ``kill=True`` for SIGKILL (a
    crash). True if it was running."""
    node = cluster_node(settings, node_id)
    if not kill:
        return process.stop(settings, node.name, timeout)
    pid = process.running_pid(settings, node.name)
    if pid is None:
        return False
    log.info("%s: killing (pid %d)", node.name, pid)
    process._signal_group(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while process.pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if process.pid_alive(pid):
        raise StackError(f"{node.name}: pid {pid} survived SIGKILL")
    process.pid_path(settings, node.name).unlink(missing_ok=True)
    # The JVM's main thread is a zombie before its last thread exits and closes sockets.
    while process.port_open(settings.host, node.port) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


def start_node(settings: Settings, node_id: int, timeout: float = 90.0) -> None:
    """Start one node of the cluster (if stopped) and wait until it serves again."""
    node = cluster_node(settings, node_id)
    launch(settings, node)
    wait_ready(settings, node, timeout)
