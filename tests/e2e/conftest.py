"""Fixtures for end-to-end tests: workers and collector as real processes on the stack."""

from __future__ import annotations

import asyncio
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from salespulse import services
from salespulse.config import Settings
from salespulse.stack import ensure_topics, process
from streams.records import encode_single, group_by_partition
from tests.conftest import TEST_HOME
from tests.helpers import http_json, pipeline_settings, process_exists


@dataclass
class Pipeline:
    """One isolated pipeline (own topics, app id, Redis prefix, home) on the test stack."""

    settings: Settings
    started: set[str] = field(default_factory=set)

    def start_worker(self, worker_id: str = "1") -> int:
        self.started.add(f"worker-{worker_id}")
        return services.start_worker(self.settings, worker_id)

    def start_collector(self) -> None:
        self.started.add("collector")
        services.start_collector(self.settings)
        services.wait_collector(self.settings)

    def kill_worker(self, worker_id: str = "1", sig: signal.Signals = signal.SIGTERM) -> None:
        """Signal a worker and wait until it is gone (SIGTERM: a clean shutdown)."""
        name = f"worker-{worker_id}"
        pid = process.running_pid(self.settings, name)
        assert pid is not None, f"{name} is not running"
        process._signal_group(pid, sig)
        deadline = time.monotonic() + 30
        while process_exists(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not process_exists(pid), f"{name} survived {sig.name}"
        process.pid_path(self.settings, name).unlink(missing_ok=True)

    async def produce(self, events: list[dict[str, Any]], batched: bool = True) -> None:
        """Produce events (batched by partition, or one record each) and await acks."""
        producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
        )
        await producer.start()
        try:
            topic = self.settings.topic_events
            if batched:
                futures = [
                    await producer.send(topic, value, partition=p)
                    for p, value in group_by_partition(events, self.settings.partitions)
                ]
            else:
                futures = [
                    await producer.send(
                        topic, encode_single(e), key=f"{e['entity']}:{e['entity_id']}".encode()
                    )
                    for e in events
                ]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    async def produce_raw(self, values: list[bytes], partition: int = 0) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap, acks="all")
        await producer.start()
        try:
            for value in values:
                await producer.send_and_wait(self.settings.topic_events, value, partition=partition)
        finally:
            await producer.stop()

    def api(self, path: str) -> Any:
        s = self.settings
        return http_json(f"http://{s.host}:{s.collector_port}{path}")

    def stop(self) -> None:
        for name in sorted(self.started):
            process.stop(self.settings, name, timeout=20)


@pytest.fixture(scope="module")
def pipeline_factory(stack_settings: Settings) -> Iterator[Any]:
    """Build isolated pipelines named after the test module; stopped at module end."""
    made: list[Pipeline] = []

    def make(name: str, collector_port: int | None = None, partitions: int = 4) -> Pipeline:
        settings = pipeline_settings(
            stack_settings,
            name,
            TEST_HOME,
            partitions=partitions,
            **({"collector_port": collector_port} if collector_port else {}),
        )
        shutil.rmtree(settings.home, ignore_errors=True)  # RocksDB of an earlier session
        process.run_coro(
            ensure_topics(
                settings, {settings.topic_events: partitions, settings.topic_dead_letters: 1}
            )
        )
        pipeline = Pipeline(settings)
        made.append(pipeline)
        return pipeline

    yield make
    for pipeline in made:
        pipeline.stop()
