"""Shared fixtures: the local stack on test ports, started once per session."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from salespulse import stack
from salespulse.config import Settings

REPO = Path(__file__).resolve().parents[1]
TEST_HOME = REPO / ".salespulse-test"
# Offset from the defaults so tests never collide with a developer's running demo.
TEST_PORTS: dict[str, int] = {
    "kafka_port": 19092,
    "kafka_controller_port": 19094,
    "redis_port": 16379,
    "prometheus_port": 19090,
    "alertmanager_port": 19095,
    "collector_port": 18000,
    "gateway_port": 18080,
    "worker_web_port": 16066,
}
log = logging.getLogger("tests")
# Most tests replay history (the 2017 CRM dataset, generated 2017 events): keep all of it.
# Retention itself is tested with explicit rules.
os.environ.setdefault("SALESPULSE_RETENTION_DAYS", "0")


def make_test_settings(**overrides: Any) -> Settings:
    """Settings for tests: test home and ports, local broker (env overrides ignored)."""
    values: dict[str, Any] = {
        "home": TEST_HOME,
        "kafka_brokers": "",
        "retention_days": 0,
        **TEST_PORTS,
    }
    return Settings(**{**values, **overrides})


@pytest.fixture(scope="session")
def stack_settings() -> Iterator[Settings]:
    """Settings of a fresh local stack (Kafka, Redis, Prometheus, Alertmanager).

    Started once per session with wiped data dirs (the Kafka jar cache is kept) and
    stopped at the end of the session.
    """
    settings = make_test_settings()
    stack.down(settings)  # leftovers of an interrupted run
    stack.reset(settings)
    t0 = time.monotonic()
    stack.up(settings)
    log.info("test stack up in %.1fs", time.monotonic() - t0)
    try:
        yield settings
    finally:
        stack.down(settings)


@pytest.fixture
async def redis_client(stack_settings: Settings) -> AsyncIterator[aioredis.Redis]:
    """A ``redis.asyncio`` client on the test Redis, database flushed first."""
    client = aioredis.from_url(stack_settings.redis_url)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.aclose()
