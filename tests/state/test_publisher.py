"""Sharded publishing to the real Redis and the collector's incremental reads.

Random contribution swaps on two partitions over many publish rounds, with Redis flushed
and a newer owner at times: after every round, the incremental view (only changed month
shards fetched, the total updated by differences) equals both the workers' own
aggregates and a view read from scratch.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
from typing import Any

import orjson
import pytest
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection

from salespulse.config import Settings
from salespulse.stack import process
from state import aggregates
from state.aggregates import PartitionAggregates, sum_aggregates
from state.partition_stats import PartitionStats
from state.publisher import (
    SHARD_PREFIX,
    SHARD_WRITE_EVERY,
    ChunkedWrites,
    partition_key,
    publish_partitions,
    publisher_client,
)
from state.view import ViewReader

pytestmark = pytest.mark.services

DAYS = ["2023-12-31", "2024-01-05", "2024-01-20", "2024-02-11", "2024-03-01", ""]


def _random_contribution(rnd: random.Random) -> dict[str, int]:
    out: dict[str, int] = {}
    for _ in range(rnd.randint(0, 3)):
        component = rnd.choice(["won_amount", "won_count", "activities"])
        key = f"{component}|{rnd.choice(DAYS)}|{rnd.choice(['Ann', 'Bob'])}|||||"
        out[key] = out.get(key, 0) + rnd.randint(1, 500)
    return out


async def test_incremental_view_equals_the_aggregates_after_every_round(
    stack_settings: Settings, redis_client: Any
) -> None:
    settings = stack_settings.model_copy(update={"partitions": 2})
    prefix = settings.redis_key_prefix
    rnd = random.Random(5)
    parts = {p: (PartitionAggregates(), PartitionStats()) for p in range(2)}
    entities: dict[int, dict[str, dict[str, int]]] = {0: {}, 1: {}}
    reader = ViewReader(redis_client, settings)
    # readers that read every 3rd round (within the change sets kept) and every 12th
    # (past them: the changed shards instead)
    slow = {3: ViewReader(redis_client, settings), 12: ViewReader(redis_client, settings)}
    modes: dict[bytes, int] = {}
    update = ViewReader._update

    def counting(self: ViewReader, partition: int, row: list[Any]) -> bool:
        if len(row) > 8:
            modes[row[8]] = modes.get(row[8], 0) + 1
        return update(self, partition, row)

    for round_ in range(60):
        for _ in range(rnd.randint(0, 8)):
            p = rnd.randrange(2)
            entity = f"e{rnd.randrange(12)}"
            old = entities[p].get(entity, {})
            new = {} if rnd.random() < 0.15 else _random_contribution(rnd)
            parts[p][0].replace(old, new)
            entities[p][entity] = new
            parts[p][1].applied += 1
        if round_ % 17 == 16:
            await redis_client.flushdb()  # the next delta write must notice and write all
        assert await publish_partitions(redis_client, prefix, "w", parts, generation=3) == []
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(ViewReader, "_update", counting)
            view = await reader.read()
        want = sum_aggregates(a.values for a, _ in parts.values())
        assert view.aggregates == want, round_
        for every, slow_reader in slow.items():
            if round_ % every == every - 1:
                assert (await slow_reader.read()).aggregates == want, (every, round_)
        assert (await ViewReader(redis_client, settings).read()).aggregates == want
        assert {p: m["stats"]["applied"] for p, m in view.partitions.items()} == {
            p: s.applied for p, (_, s) in parts.items()
        }
    assert modes[b"c"] > 60  # most reads applied change sets...
    assert modes[b"s"] >= 4  # ...and after each flush the shards were read again
    for p in range(2):  # the change sets of older publishes were deleted
        fields = await redis_client.hkeys(partition_key(prefix, p))
        assert sum(f.startswith(b"c:") for f in fields) <= 8


async def test_only_changed_shards_are_written(stack_settings: Settings, redis_client: Any) -> None:
    prefix = stack_settings.redis_key_prefix
    aggs, stats = PartitionAggregates(), PartitionStats()
    aggs.replace({}, {"won_count|2024-01-05|Ann|||||": 1, "won_count|2024-02-01|Ann|||||": 1})
    await publish_partitions(redis_client, prefix, "w", {0: (aggs, stats)}, generation=1)
    key = partition_key(prefix, 0)
    fields = await redis_client.hkeys(key)
    assert {f for f in fields if f.startswith(SHARD_PREFIX.encode())} == {
        b"a:2024-01-05",
        b"a:2024-02-01",
    }
    await redis_client.hset(key, "a:2024-01-05", b'{"marker|2024-01-05|||||||":1}')
    aggs.replace({"won_count|2024-02-01|Ann|||||": 1}, {})  # February 1 only: emptied
    for _ in range(SHARD_WRITE_EVERY - 1):  # change sets only
        await publish_partitions(redis_client, prefix, "w", {0: (aggs, stats)}, generation=1)
        assert await redis_client.hget(key, "a:2024-02-01") is not None
    await publish_partitions(redis_client, prefix, "w", {0: (aggs, stats)}, generation=1)
    assert await redis_client.hget(key, "a:2024-01-05") == b'{"marker|2024-01-05|||||||":1}'
    assert await redis_client.hget(key, "a:2024-02-01") is None

    newer = PartitionAggregates()
    newer.replace({}, {"won_count|2024-01-05|Bob|||||": 1})
    assert await publish_partitions(redis_client, prefix, "v", {0: (newer, stats)}, 2) == []
    # the old owner's next write is refused, whole or not
    aggs.replace({}, {"won_count|2024-03-01|Ann|||||": 1})
    assert await publish_partitions(redis_client, prefix, "w", {0: (aggs, stats)}, 1) == [0]
    assert await redis_client.hget(key, "owner") == b"v"


async def test_a_resumed_partition_keeps_its_epoch_only_while_redis_holds_its_last_publish(
    stack_settings: Settings, redis_client: Any
) -> None:
    """A graceful restart resumes the saved aggregates under the last publish's mark
    (agents.checkpoint): its first write keeps the epoch and writes only the shards
    changed since the last shard write; when Redis lost that publish (flushed) or holds
    an older one (restored from a dump), the write is refused and a full one follows.
    Readers holding the old publish and new readers see exactly the aggregates."""
    settings = stack_settings.model_copy(update={"partitions": 1})
    prefix, key = settings.redis_key_prefix, partition_key(stack_settings.redis_key_prefix, 0)
    rnd = random.Random(11)
    for case in ("kept", "flushed", "older"):
        await redis_client.flushdb()
        aggs, stats = PartitionAggregates(), PartitionStats()
        entities: dict[str, dict[str, int]] = {}
        reader = ViewReader(redis_client, settings)

        def change(
            target: PartitionAggregates, n: int, entities: dict[str, Any] = entities
        ) -> None:
            for _ in range(n):
                entity = f"e{rnd.randrange(30)}"
                new = _random_contribution(rnd)
                target.replace(entities.get(entity, {}), new)
                entities[entity] = new

        for _ in range(SHARD_WRITE_EVERY + 2):  # shards, then change sets since
            change(aggs, 5)
            await publish_partitions(redis_client, prefix, "w", {0: (aggs, stats)}, 1)
            assert (await reader.read()).aggregates == aggs.values
        older_seq = await redis_client.hget(key, "seq")
        change(aggs, 3)  # applied after the last publish, before the stop
        await publish_partitions(redis_client, prefix, "w", {0: (aggs, stats)}, 1)
        change(aggs, 2)
        epoch, versions = (
            await redis_client.hget(key, "epoch"),
            await redis_client.hget(key, "versions"),
        )
        resumed = PartitionAggregates()  # the restarted worker's
        resumed.load({d: dict(s) for d, s in aggs.shards.items()}, aggs.published, aggs.dirty)
        unpublished = set(aggs.dirty)
        if case == "flushed":
            await redis_client.flushdb()
        elif case == "older":
            await redis_client.hset(key, "seq", older_seq)
        change(resumed, 2)
        unpublished |= resumed.dirty
        assert await publish_partitions(redis_client, prefix, "w", {0: (resumed, stats)}, 2) == []
        assert (await reader.read()).aggregates == resumed.values
        assert (await ViewReader(redis_client, settings).read()).aggregates == resumed.values
        now = orjson.loads(await redis_client.hget(key, "versions"))
        if case == "kept":
            assert await redis_client.hget(key, "epoch") == epoch
            before = orjson.loads(versions)
            assert unpublished and {d for d in now if now[d] != before.get(d)} <= unpublished
            assert {d for d in before if d not in now} <= unpublished
        else:
            assert await redis_client.hget(key, "epoch") != epoch
            assert set(now.values()) == {resumed.published.seq}  # every shard written


async def test_a_publish_with_too_many_changes_has_no_change_set(
    stack_settings: Settings, redis_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aggregates, "MAX_CHANGED_KEYS", 3)
    settings = stack_settings.model_copy(update={"partitions": 1})
    prefix = settings.redis_key_prefix
    aggs, stats = PartitionAggregates(), PartitionStats()
    reader = ViewReader(redis_client, settings)
    modes: list[bytes] = []
    update = ViewReader._update

    def recording(self: ViewReader, partition: int, row: list[Any]) -> bool:
        modes.append(row[8])
        return update(self, partition, row)

    monkeypatch.setattr(ViewReader, "_update", recording)
    for size in (1, 2, 10, 1, 3, 4, 0):
        aggs.replace({}, {f"won_count|2024-01-{d + 1:02d}|r{size}|||||": 1 for d in range(size)})
        await publish_partitions(redis_client, prefix, "w", {0: (aggs, stats)}, generation=1)
        assert (await reader.read()).aggregates == aggs.values
    # the first read takes the shards; then a change set for each publish of at most 3
    # changed keys, and the shards again after one of more
    assert modes == [b"s", b"c", b"s", b"c", b"c", b"s", b"c"]
    fields = await redis_client.hkeys(partition_key(prefix, 0))
    assert sorted(f for f in fields if f.startswith(b"c:")) == [b"c:2", b"c:4", b"c:5", b"c:7"]


async def test_a_publish_reports_its_encoding_time_not_redis_time_even_when_it_fails(
    stack_settings: Settings, redis_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker's publish budget divides this time: what holds its event loop, also for
    a publish Redis then refuses; waiting for Redis's answer leaves the loop free."""
    prefix = stack_settings.redis_key_prefix
    aggs, stats = PartitionAggregates(), PartitionStats()
    aggs.replace({}, {"won_count|2024-01-05|Ann|||||": 1})
    execute = Pipeline.execute

    async def slow_execute(self: Pipeline, *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0.5)  # a Redis slow to take and answer the write
        return await execute(self, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "execute", slow_execute)
    spent: list[float] = []
    await publish_partitions(redis_client, prefix, "w", {0: (aggs, stats)}, 1, spent)
    assert len(spent) == 1 and 0 < spent[0] < 0.5
    assert await redis_client.hget(partition_key(prefix, 0), "owner") == b"w"

    async def failing_execute(self: Pipeline, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("Redis went away")

    monkeypatch.setattr(Pipeline, "execute", failing_execute)
    with pytest.raises(ConnectionError):
        await publish_partitions(redis_client, prefix, "w", {0: (aggs, stats)}, 1, spent)
    assert len(spent) == 2 and spent[1] > 0


async def test_a_publish_outlasts_a_redis_pause_longer_than_two_seconds(
    stack_settings: Settings, redis_client: Any
) -> None:
    """A big backfill publish takes Redis seconds to read and apply; a 2 s socket timeout
    failed every such publish (and made the next one a full write)."""
    prefix = stack_settings.redis_key_prefix
    aggs, stats = PartitionAggregates(), PartitionStats()
    aggs.replace({}, {"won_count|2024-01-05|Ann|||||": 1})
    client = publisher_client(stack_settings.redis_url)
    await client.ping()  # connected before Redis pauses
    pid = process.running_pid(stack_settings, "redis")
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    resume = asyncio.get_running_loop().call_later(3.0, os.kill, pid, signal.SIGCONT)
    try:
        assert await publish_partitions(client, prefix, "w", {0: (aggs, stats)}, 1) == []
    finally:
        resume.cancel()
        os.kill(pid, signal.SIGCONT)
        await client.aclose()
    assert await redis_client.hget(partition_key(prefix, 0), "owner") == b"w"


@pytest.mark.parametrize(
    ("url", "scheme_class"),
    [
        ("redis://localhost:1/0", Connection),
        ("rediss://localhost:1/0", SSLConnection),
        ("unix:///tmp/redis.sock", UnixDomainSocketConnection),
    ],
)
def test_the_publisher_client_writes_chunk_by_chunk_over_the_urls_connection_class(
    url: str, scheme_class: type
) -> None:
    client = publisher_client(url)
    connection_class = client.connection_pool.connection_class
    assert issubclass(connection_class, ChunkedWrites)
    assert issubclass(connection_class, scheme_class)  # TLS and Unix sockets kept


async def test_a_publish_of_a_backfills_size_arrives_whole(
    stack_settings: Settings, redis_client: Any
) -> None:
    """About 40 MB of day shards in one publish, sent chunk by chunk, read back equal."""
    prefix = stack_settings.redis_key_prefix
    aggs, stats = PartitionAggregates(), PartitionStats()
    days = [f"2024-{m:02d}-{d:02d}" for m in range(1, 13) for d in range(1, 29)]
    aggs.rebuild(
        {f"won_amount|{day}|Rep {r}|Team {r % 40}|East|Plus|web|": r + 1 for r in range(2500)}
        for day in days
    )
    client = publisher_client(stack_settings.redis_url)
    try:
        assert await publish_partitions(client, prefix, "w", {0: (aggs, stats)}, 1) == []
    finally:
        await client.aclose()
    fields = await redis_client.hgetall(partition_key(prefix, 0))
    shards = {k: v for k, v in fields.items() if k.startswith(SHARD_PREFIX.encode())}
    assert sum(len(v) for v in shards.values()) > 40 * 2**20
    published = sum_aggregates(aggregates.decode_aggregates(v) for v in shards.values())
    assert published == aggs.values
