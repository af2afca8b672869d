"""The local stack: config rendering (no services) and real round trips (services)."""

from __future__ import annotations

import socket
import time
import uuid

import pytest
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from salespulse import stack
from salespulse.config import Settings
from salespulse.stack import kafka, process, prometheus
from tests.conftest import TEST_HOME, make_test_settings
from tests.helpers import await_until, http_json, http_status, process_exists

services = pytest.mark.services


# --- rendering, no services needed -------------------------------------------------------


def test_server_properties_follow_node() -> None:
    settings = make_test_settings()
    node = kafka.KafkaNode(2, 29093, 29095, "1@127.0.0.1:1,2@127.0.0.1:29095", "kafka-2")
    props = kafka.server_properties(settings, node)
    assert props["node.id"] == "2"
    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:29093,CONTROLLER://127.0.0.1:29095"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:29093"
    assert props["controller.quorum.voters"] == node.voters
    assert props["log.dirs"].endswith("kafka/data-2/logs")
    assert props["auto.create.topics.enable"] == "true"
    single = kafka.single_node(settings)
    assert single.voters == "1@127.0.0.1:19094"


def test_prometheus_config_renders(tmp_path) -> None:
    settings = make_test_settings(home=tmp_path)
    config = yaml.safe_load(prometheus.render_prometheus_config(settings).read_text())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert jobs["salespulse"]["static_configs"][0]["targets"] == ["127.0.0.1:18000"]
    assert jobs["salespulse"]["metrics_path"] == "/metrics"
    assert jobs["salespulse"]["scrape_interval"] == "2s"
    assert jobs["salespulse-gateway"]["static_configs"][0]["targets"] == ["127.0.0.1:18080"]
    assert config["rule_files"][0].endswith("/deploy/prometheus/rules/*.yml")
    targets = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets == ["127.0.0.1:19095"]


def test_status_of_empty_home(tmp_path) -> None:
    result = stack.status(make_test_settings(home=tmp_path))
    assert set(result) == {"kafka", "redis", "prometheus", "alertmanager"}
    assert all(s["state"] == "stopped" and s["pid"] is None for s in result.values())


# --- the running stack -------------------------------------------------------------------


@services
def test_status_reports_running(stack_settings: Settings) -> None:
    result = stack.status(stack_settings)
    for name, port in [("kafka", 19092), ("redis", 16379), ("prometheus", 19090),
                       ("alertmanager", 19095)]:  # fmt: skip
        assert result[name]["state"] == "running", result
        assert result[name]["port"] == port
        assert process_exists(result[name]["pid"])


@services
async def test_default_topics_exist(stack_settings: Settings) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=stack_settings.kafka_bootstrap)
    await admin.start()
    try:
        names = [stack_settings.topic_events, stack_settings.topic_dead_letters]
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    assert {t["topic"]: len(t["partitions"]) for t in described} == dict.fromkeys(
        names, stack_settings.partitions
    )


@services
async def test_kafka_round_trip(stack_settings: Settings) -> None:
    topic = f"test-roundtrip-{uuid.uuid4().hex[:8]}"
    created = await stack.ensure_topics(stack_settings, {topic: 3})
    assert created == [topic]
    assert await stack.ensure_topics(stack_settings, {topic: 3}) == []  # idempotent

    producer = AIOKafkaProducer(bootstrap_servers=stack_settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(30):
            await producer.send_and_wait(topic, f"v{i}".encode(), key=f"k{i}".encode())
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=stack_settings.kafka_bootstrap,
        group_id=f"test-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    seen: dict[bytes, int] = {}
    try:
        deadline = time.monotonic() + 30
        while len(seen) < 30 and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for tp, records in batches.items():
                seen.update({r.value: tp.partition for r in records})
        await consumer.commit()
    finally:
        await consumer.stop()
    assert set(seen) == {f"v{i}".encode() for i in range(30)}
    assert set(seen.values()) == {0, 1, 2}  # keys spread over all partitions


@services
async def test_redis_ping_set_get(redis_client) -> None:
    assert await redis_client.ping()
    await redis_client.set("salespulse:test", "42")
    assert await redis_client.get("salespulse:test") == b"42"


@services
async def test_prometheus_ready_and_scrapes(stack_settings: Settings) -> None:
    base = f"http://{stack_settings.host}:{stack_settings.prometheus_port}"
    assert http_status(f"{base}/-/ready") == 200

    def scraped() -> bool:
        result = http_json(f"{base}/api/v1/query?query=up")["data"]["result"]
        up = {r["metric"]["job"]: r["value"][1] for r in result}
        # The app jobs exist (down: nothing listens yet); Prometheus scrapes itself.
        expected = {"salespulse", "salespulse-gateway", "prometheus", "alertmanager"}
        return expected <= set(up) and up["prometheus"] == "1"

    await await_until(scraped, timeout=20, interval=0.5, what="scrape of every job")


@services
async def test_alertmanager_ready_and_wired(stack_settings: Settings) -> None:
    am = f"http://{stack_settings.host}:{stack_settings.alertmanager_port}"
    assert http_status(f"{am}/-/ready") == 200
    prom = f"http://{stack_settings.host}:{stack_settings.prometheus_port}"

    def wired() -> bool:
        active = http_json(f"{prom}/api/v1/alertmanagers")["data"]["activeAlertmanagers"]
        return any(str(stack_settings.alertmanager_port) in a["url"] for a in active)

    await await_until(wired, timeout=20, interval=0.5, what="prometheus -> alertmanager")


@services
def test_up_is_idempotent(stack_settings: Settings) -> None:
    before = {n: s["pid"] for n, s in stack.status(stack_settings).items()}
    t0 = time.monotonic()
    stack.up(stack_settings)
    assert time.monotonic() - t0 < 10
    assert {n: s["pid"] for n, s in stack.status(stack_settings).items()} == before


@services
def test_down_leaves_no_process() -> None:
    """A second stack on its own home and ports: up, then down leaves nothing behind."""
    settings = make_test_settings(
        home=TEST_HOME / "down-test", kafka_port=19192, kafka_controller_port=19194,
        redis_port=16479, prometheus_port=19190, alertmanager_port=19195,
    )  # fmt: skip
    stack.down(settings)
    stack.reset(settings)
    stack.up(settings)
    try:
        pids = {n: s["pid"] for n, s in stack.status(settings).items()}
        assert all(pids.values()), pids
    finally:
        stack.down(settings)
    assert not [n for n, pid in pids.items() if process_exists(pid)]
    assert all(s["state"] == "stopped" for s in stack.status(settings).values())
    assert not list(process.run_dir(settings).glob("*.pid"))
    ports = [19192, 19194, 16479, 19190, 19195]
    assert not [p for p in ports if process.port_open(settings.host, p)]


@services
def test_port_in_use_fails_cleanly() -> None:
    settings = make_test_settings(home=TEST_HOME / "conflict-test", redis_port=16579)
    with socket.socket() as squatter:
        squatter.bind((settings.host, settings.redis_port))
        squatter.listen()
        with pytest.raises(stack.StackError, match="in use"):
            stack.up(settings, services=("redis",))
    assert stack.status(settings)["redis"]["state"] == "stopped"
