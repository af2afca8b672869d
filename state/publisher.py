"""Publishing absolute partition aggregates to Redis.

Each partition has one hash ``<prefix>:partition:<n>`` with fields ``aggregates`` (JSON),
``stats`` (JSON), ``owner``, ``generation`` and ``published_at``. Writing absolute values
means a replay, a restart or a partition move overwrites instead of double counting.

A write carries the consumer-group generation of the publisher and is refused (atomically,
in Redis) when the stored one is newer: a worker that lost a partition in a rebalance can
never overwrite the new owner's fresher value.
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


PUBLISH_IF_NOT_STALE = """
local stored = redis.call('HGET', KEYS[1], 'generation')
if stored and tonumber(stored) > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'generation', ARGV[1], 'aggregates', ARGV[2], 'stats', ARGV[3],
           'owner', ARGV[4], 'published_at', ARGV[5])
return 1
"""


async def publish_partitions(
    client: aioredis.Redis,
    prefix: str,
    owner: str,
    partitions: dict[int, tuple[PartitionAggregates, PartitionStats]],
    generation: int = 0,
) -> list[int]:
    """Write every given partition's absolute aggregates and stats in one round trip.

    Returns the partitions whose write was refused because a newer owner published.
    """
    now = repr(time.time())
    script = client.register_script(PUBLISH_IF_NOT_STALE)
    async with client.pipeline(transaction=False) as pipe:
        order = sorted(partitions)
        for partition in order:
            aggregates, stats = partitions[partition]
            await script(
                keys=[partition_key(prefix, partition)],
                args=[generation, aggregates.to_json(), orjson.dumps(stats.to_dict()), owner, now],
                client=pipe,
            )
        results = await pipe.execute()
    return [p for p, ok in zip(order, results, strict=True) if not ok]
