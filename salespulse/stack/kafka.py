"""Kafka in KRaft mode (combined broker+controller) from Maven Central jars.

The jars of ``settings.kafka_version`` are resolved once with Maven into
``<home>/kafka/<version>/libs``; each node keeps its config and data in
``<home>/kafka/data-<node_id>``. A node is described by :class:`KafkaNode`, so a later
multi-broker mode only needs more nodes with their own ids and ports.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from salespulse.config import Settings
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
    cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(cid + "\n")
    return cid


def server_properties(settings: Settings, node: KafkaNode) -> dict[str, str]:
    """Broker configuration of ``node``."""
    host = settings.host
    small = str(max(1, settings.partitions))
    return {
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
