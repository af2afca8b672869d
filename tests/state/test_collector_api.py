"""The collector against the real Redis: JSON API, metrics, auth, stale publishers."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from salespulse.config import Settings
from state.aggregates import PartitionAggregates
from state.collector import Collector
from state.partition_stats import PartitionStats
from state.publisher import publish_partitions
from state.rules import Rules

pytestmark = pytest.mark.services

ANN = ("won_amount", "2017-03-01", "Ann", "East", "NY", "Core", "web", "")


def _aggs(values: dict[tuple[str, ...], int]) -> PartitionAggregates:
    aggs = PartitionAggregates()
    aggs.replace({}, values)  # type: ignore[arg-type]
    return aggs


async def _client(settings: Settings) -> TestClient:  # type: ignore[type-arg]
    client = TestClient(TestServer(Collector(settings, Rules(timezone="UTC")).app()))
    await client.start_server()
    return client


async def _publish(redis_client: Any, settings: Settings) -> None:
    stats = PartitionStats(applied=3, last_event_ms={"demo": 1_488_362_400_000})
    count = ("won_count", *ANN[1:])
    lost = ("lost_count", "2017-03-02", "Bob", "East", "NY", "Core", "web", "")
    await publish_partitions(
        redis_client,
        settings.redis_key_prefix,
        "w1",
        {0: (_aggs({ANN: 150000, count: 1}), stats), 1: (_aggs({lost: 1}), PartitionStats())},
        generation=5,
    )


async def test_kpis_are_summed_over_partitions_and_filtered(
    stack_settings: Settings, redis_client: Any
) -> None:
    await _publish(redis_client, stack_settings)
    client = await _client(stack_settings)
    try:
        resp = await client.get(
            "/api/kpis", params={"kpi": "win_rate", "period": "month", "date": "2017-03-15"}
        )
        body = await resp.json()
        assert body["kpis"][0]["values"] == [{"group": {}, "value": 0.5}]
        resp = await client.get(
            "/api/kpis", params=[("kpi", "won_revenue"), ("group_by", "rep"), ("team", "East")]
        )
        values = (await resp.json())["kpis"][0]["values"]
        assert {"group": {"rep": "Ann"}, "value": 1500.0} in values
        assert (await client.get("/api/kpis", params={"kpi": "nope"})).status == 400
        assert (await client.get("/api/kpis", params={"period": "decade"})).status == 400
        spec = await (await client.get("/api/openapi.json")).json()
        assert "/api/kpis" in spec["paths"]
    finally:
        await client.close()


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
async def test_metrics_pass_promtool_check_metrics(
    stack_settings: Settings, redis_client: Any
) -> None:
    await _publish(redis_client, stack_settings)
    client = await _client(stack_settings)
    try:
        text = await (await client.get("/metrics")).text()
    finally:
        await client.close()
    assert 'salespulse_won_revenue{office="NY",period="all",rep="Ann",scope="rep"' in text
    assert "salespulse_last_event_timestamp_seconds" in text
    check = subprocess.run(
        ["promtool", "check", "metrics"], input=text, text=True, capture_output=True, check=False
    )
    assert check.returncode == 0 and check.stdout == "" and check.stderr == "", (
        check.stdout + check.stderr
    )


async def test_bearer_token_is_required_when_configured(
    stack_settings: Settings, redis_client: Any
) -> None:
    settings = stack_settings.model_copy(update={"collector_token": SecretStr("s3cret")})
    client = await _client(settings)
    try:
        assert (await client.get("/api/kpis")).status == 401
        assert (await client.get("/metrics", headers={"Authorization": "Bearer no"})).status == 401
        ok = await client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
        assert ok.status == 200
        assert (await client.get("/healthz")).status == 200
    finally:
        await client.close()


async def test_stale_owner_cannot_overwrite_newer_generation(
    stack_settings: Settings, redis_client: Any
) -> None:
    prefix = stack_settings.redis_key_prefix
    new = {0: (_aggs({ANN: 200}), PartitionStats())}
    old = {0: (_aggs({ANN: 100}), PartitionStats())}
    assert await publish_partitions(redis_client, prefix, "new", new, generation=7) == []
    assert await publish_partitions(redis_client, prefix, "old", old, generation=6) == [0]
    assert await redis_client.hget(f"{prefix}:partition:0", "owner") == b"new"
