"""Publishing absolute partition aggregates to Redis.

Each partition has one hash ``<prefix>:partition:<n>`` with fields ``aggregates`` (JSON),
``stats`` (JSON), ``owner`` and ``published_at``. Writing absolute values means a replay,
a restart or a partition move overwrites instead of double counting.
"""

from __future__ import annotations

import time

import orjson
import redis.asyncio as aioredis

from state.aggregates import PartitionAggregates
from state.partition_stats import PartitionStats


def partition_key(prefix: str, partition: int) -> str:
    """Redis key of one partition's published aggregates."""
    return f"{prefix}:partition:{partition}"


async def publish_partitions(
    client: aioredis.Redis,
    prefix: str,
    owner: str,
    partitions: dict[int, tuple[PartitionAggregates, PartitionStats]],
) -> None:
    """Write every given partition's absolute aggregates and stats in one round trip."""
    now = time.time()
    async with client.pipeline(transaction=False) as pipe:
        for partition, (aggregates, stats) in partitions.items():
            pipe.hset(
                partition_key(prefix, partition),
                mapping={
                    "aggregates": aggregates.to_json(),
                    "stats": orjson.dumps(stats.to_dict()),
                    "owner": owner,
                    "published_at": repr(now),
                },
            )
        await pipe.execute()
