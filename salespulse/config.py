"""Runtime settings, read from the environment (prefix ``SALESPULSE_``).

Secrets (webhook secrets, bearer tokens) are only ever read from the environment and are
typed as :class:`pydantic.SecretStr`, so they never appear in logs or reprs.

>>> s = Settings(kafka_port=19092)
>>> s.kafka_bootstrap
'127.0.0.1:19092'
>>> Settings(kafka_port=19092, kafka_cluster_size=3).kafka_bootstrap
'127.0.0.1:19092,127.0.0.1:19102,127.0.0.1:19112'
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# Local cluster mode: node n listens on ``base + KAFKA_NODE_PORT_STRIDE * (n - 1)`` for
# clients and controllers alike (a stride of 1 would put node 3's client port on the
# default controller port, 9092 + 2 = 9094).
KAFKA_NODE_PORT_STRIDE = 10


def kafka_node_port(base: int, node_id: int) -> int:
    """Port of local Kafka node ``node_id`` (1-based) given node 1's port ``base``."""
    return base + KAFKA_NODE_PORT_STRIDE * (node_id - 1)


class Settings(BaseSettings):
    """Every knob of SalesPulse; each field maps to ``SALESPULSE_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="SALESPULSE_", extra="ignore")

    # Where the local stack keeps jars, data, logs and pid files.
    home: Path = Path(".salespulse")
    host: str = "127.0.0.1"

    # Ports of the local stack (all on loopback).
    kafka_port: int = 9092
    kafka_controller_port: int = 9094
    redis_port: int = 6379
    prometheus_port: int = 9090
    alertmanager_port: int = 9095
    collector_port: int = 8000
    gateway_port: int = 8080
    worker_web_port: int = 6066

    # Kafka topology.
    kafka_version: str = "3.9.1"
    kafka_brokers: str = ""  # overrides the local bootstrap when set (comma-separated)
    kafka_cluster_size: int = 1  # local stack: KRaft nodes (3 = the fault-tolerant cluster)
    topic_events: str = "salespulse-events"
    topic_dead_letters: str = "salespulse-dead-letters"
    partitions: int = 4
    replication_factor: int = 1
    app_id: str = "salespulse"

    # Business calendar.
    business_timezone: str = "UTC"
    fiscal_year_start_month: int = 1
    reporting_currency: str = "USD"
    # Days of history the KPI aggregates keep (0 = all). 1,100 covers year-over-year
    # comparisons of every day of the previous two years.
    retention_days: int = 1100
    rules: str | None = None  # YAML file with FX rates, stage probabilities, ...
    targets: str | None = None  # targets/thresholds YAML (default: deploy/targets.yaml)

    # Memory allocator of the worker processes the local stack starts: "system" (glibc's
    # malloc) or "jemalloc" (if libjemalloc2 is installed; else the system's, with a
    # warning). glibc's heap kept the space of the megabytes a worker encodes and sends per
    # publish (two thirds of it free at 3 M entities, malloc_info): peak anonymous memory
    # 9.4 GB at 9.77 M entities against 5.5 GB on jemalloc, at the same throughput. At
    # 10^6 entities jemalloc cost 6-10 % of the throughput in two back-to-back bench pairs,
    # so it is the choice for workers with large state, not the default.
    worker_allocator: Literal["jemalloc", "system"] = "system"
    # Compression of the workers' local snapshot store (RocksDB). "none" is the fastest (a
    # backfill reads snapshots at random while RocksDB rewrites them in compactions) and
    # takes about 3x the disk of "snappy" (JSON snapshots compress well): 3.8 GB at 10^7
    # entities in the bench. See agents/restore.py.
    snapshot_compression: Literal["none", "snappy", "lz4", "zstd"] = "none"

    # Publishing of partition aggregates.
    publish_interval_s: float = 0.2
    redis_key_prefix: str = "salespulse"

    # Secrets (never logged).
    collector_token: SecretStr | None = None
    hubspot_app_secret: SecretStr | None = None
    pipedrive_basic_user: str | None = None
    pipedrive_basic_password: SecretStr | None = None
    generic_webhook_secret: SecretStr | None = None
    salesforce_org_id: str | None = None

    @property
    def kafka_bootstrap(self) -> str:
        """Bootstrap servers: explicit ``kafka_brokers`` or every local broker."""
        if self.kafka_brokers:
            return self.kafka_brokers
        ports = (kafka_node_port(self.kafka_port, n) for n in range(1, self.kafka_cluster_size + 1))
        return ",".join(f"{self.host}:{port}" for port in ports)

    @property
    def redis_url(self) -> str:
        """URL of the Redis server beside the workers."""
        return f"redis://{self.host}:{self.redis_port}/0"

    @cached_property
    def tz(self) -> ZoneInfo:
        """The business timezone as a :class:`ZoneInfo`."""
        return ZoneInfo(self.business_timezone)


def get_settings() -> Settings:
    """Settings from the current environment."""
    return Settings()
