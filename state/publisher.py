"""Publishing absolute partition aggregates to Redis, one day shard at a time.

Each partition has one hash ``<prefix>:partition:<n>`` with fields ``generation``,
``epoch``, ``stats`` (JSON), ``owner``, ``published_at``, ``versions`` (JSON: shard ->
publish sequence number), ``seq`` (the last publish's sequence number), ``shard_seq``
(the last publish that wrote shards), one field ``a:<shard>`` per day of aggregates
(JSON, see :meth:`state.aggregates.PartitionAggregates.encode_shard`) and the *change
sets* of the last :data:`CHANGE_SETS_KEPT` publishes, ``c:<seq>``: JSON of every key
changed by that publish with its new value (0: gone). Values are absolute, so a replay,
a restart or a partition move overwrites instead of double counting.

Every publish writes its change set; the days changed since the last shard write are
written only every :data:`SHARD_WRITE_EVERY` publishes (and at once when a change set
would exceed :data:`state.aggregates.MAX_CHANGED_KEYS` keys, which it then replaces). A
reader that holds one of the kept publishes applies the change sets since; any other
reads the shards whose version differs (the state at ``shard_seq``) and then the change
sets after ``shard_seq``. At 10,000 events/s a backfill-shaped stream dirties most days
of a year in every publish: re-encoding them every 0.2 s took the worker 15 % of its
time, and diffing them key by key took the collector most of its time.

A *full* write replaces the whole hash under a new random ``epoch``; later writes carry
only the shards changed since (a live stream touches a few days, not the years of
history) and are applied only if Redis still holds the writer's epoch at the writer's
previous publish: after a flushed Redis, a Redis restored from an older dump or another
owner's write the script answers "mismatch" and the publisher writes everything again. A
graceful restart keeps the epoch (:meth:`state.aggregates.PartitionAggregates.load`),
so its first publish is not a full one when Redis still holds the last one. Every write
carries the consumer-group generation of its writer and is refused (atomically, in
Redis) when the stored one is newer: a worker that lost a partition in a rebalance can
never overwrite the new owner's fresher value. Each write is one Lua script call, so
readers see a partition's stats and shards of one moment.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable

import orjson
import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection

from state.aggregates import PartitionAggregates, PublishMark
from state.partition_stats import PartitionStats

SHARD_PREFIX = "a:"
CHANGES_PREFIX = "c:"
CHANGE_SETS_KEPT = 8  # 1.6 s of publishes at the default 0.2 s interval
SHARD_WRITE_EVERY = 4  # < CHANGE_SETS_KEPT: the sets after the last shard write are kept
META_FIELDS = (
    "generation",
    "epoch",
    "stats",
    "owner",
    "published_at",
    "versions",
    "seq",
    "shard_seq",
)


# A publish must send its whole command and get Redis's answer within the client's socket
# timeout. A 10^7-entity backfill's publish is hundreds of megabytes: with 2 s every
# publish failed from about 4 M entities on ("Timeout writing to socket"), and each
# failure made the next one a full write, so the board stood still until the backfill
# ended. Connecting still fails fast.
PUBLISH_TIMEOUT_S = 60.0
CONNECT_TIMEOUT_S = 2.0


class ChunkedWrites(AbstractConnection):
    """Mixin for redis-py's asyncio connections: send a packed command chunk by chunk.

    redis-py hands a command's chunks to ``StreamWriter.writelines``, which in Python 3.11
    joins them into one bytes object; the transport then copies what the socket did not
    take at once (nearly all of it) into its buffer. A 10^7-entity backfill's publish
    (hundreds of MB of day shards) was copied three times and held twice (py-spy: socket
    writes 7 % of the worker's time at 10^7 entities, as much as the encoding). Each chunk
    written on its own, after the previous one drained, is copied at most once: redis-py
    packs a large argument (a shard's JSON) as a chunk of its own, without copying it.
    """

    async def _send_packed_command(self, command: Iterable[bytes]) -> None:
        writer = self._writer
        assert writer is not None  # connected by send_packed_command
        for chunk in command:
            writer.write(chunk)
            await writer.drain()


def publisher_client(url: str) -> aioredis.Redis:
    """The Redis client a worker publishes with (see :data:`PUBLISH_TIMEOUT_S` and
    :class:`ChunkedWrites`; TLS and Unix socket URLs keep their connection class)."""
    pool = aioredis.ConnectionPool.from_url(
        url, socket_timeout=PUBLISH_TIMEOUT_S, socket_connect_timeout=CONNECT_TIMEOUT_S
    )
    base = pool.connection_class
    pool.connection_class = type(f"Chunked{base.__name__}", (ChunkedWrites, base), {})
    return aioredis.Redis.from_pool(pool)


def partition_key(prefix: str, partition: int) -> str:
    """Redis key of one partition's published aggregates."""
    return f"{prefix}:partition:{partition}"


# KEYS[1] partition hash; ARGV: generation, epoch, stats, owner, published_at, versions,
# full (1/0), seq, change set JSON ('' on a full write), shard_seq, then shard field /
# JSON pairs (an empty JSON value deletes the field). Returns 1 written, 0 refused (newer
# generation stored), -1 when a write that is not full does not follow the stored one (its
# epoch, and the publish just before it: a Redis restored from an older dump holds the
# epoch at an older publish): the publisher then writes everything.
PUBLISH = """
local stored = redis.call('HMGET', KEYS[1], 'generation', 'epoch', 'seq')
if stored[1] and tonumber(stored[1]) > tonumber(ARGV[1]) then return 0 end
if ARGV[7] == '1' then
  redis.call('DEL', KEYS[1])
elseif stored[2] ~= ARGV[2] or tonumber(stored[3]) ~= tonumber(ARGV[8]) - 1 then
  return -1
end
redis.call('HSET', KEYS[1], 'generation', ARGV[1], 'epoch', ARGV[2], 'stats', ARGV[3],
           'owner', ARGV[4], 'published_at', ARGV[5], 'versions', ARGV[6], 'seq', ARGV[8],
           'shard_seq', ARGV[10])
if ARGV[9] ~= '' then redis.call('HSET', KEYS[1], 'CHANGES' .. ARGV[8], ARGV[9]) end
redis.call('HDEL', KEYS[1], 'CHANGES' .. (tonumber(ARGV[8]) - KEPT))
for i = 11, #ARGV, 2 do
  if ARGV[i + 1] == '' then redis.call('HDEL', KEYS[1], ARGV[i])
  else redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
return 1
""".replace("CHANGES", CHANGES_PREFIX).replace("KEPT", str(CHANGE_SETS_KEPT))


def _write_args(
    aggregates: PartitionAggregates, mark: PublishMark, full: bool
) -> tuple[list[str | bytes], bytes, PublishMark]:
    """The shard fields to write (the days changed since the last shard write, when it is
    time), the change set (``b""`` on a full write, or when too many keys changed: the
    shards are written instead) and the mark they leave (not yet applied to ``mark``)."""
    changes = aggregates.take_changes()  # taken on every publish, a full one included
    change_set = b"" if full or changes is None else orjson.dumps(changes)
    seq = mark.seq + 1
    pairs: list[str | bytes] = []
    if change_set and seq - mark.shard_seq < SHARD_WRITE_EVERY:
        return pairs, change_set, PublishMark(mark.epoch, seq, mark.versions, mark.shard_seq)
    dirty = aggregates.take_dirty()
    names = set(aggregates.shards) if full else dirty
    versions = {} if full else dict(mark.versions)
    for name in sorted(names):
        encoded = aggregates.encode_shard(name)
        if encoded == b"{}":
            versions.pop(name, None)
            if not full:
                pairs += [SHARD_PREFIX + name, b""]
            continue
        versions[name] = seq
        pairs += [SHARD_PREFIX + name, encoded]
    epoch = uuid.uuid4().hex if full else mark.epoch
    return pairs, change_set, PublishMark(epoch, seq, versions, seq)


async def publish_partitions(
    client: aioredis.Redis,
    prefix: str,
    owner: str,
    partitions: dict[int, tuple[PartitionAggregates, PartitionStats]],
    generation: int = 0,
    spent: list[float] | None = None,
) -> list[int]:
    """Write every given partition's changed shards and stats, in one round trip (two when
    a partition must be written whole again). Returns the partitions whose write was
    refused because a newer owner published; appends to ``spent`` the seconds spent
    encoding, also when the write then fails. That is the part measured of what holds the
    event loop; sending costs about as much again (py-spy of a 10^7-entity backfill:
    encoding 14 % of the worker's time, socket writes 15 %), waiting for Redis nothing."""
    stale: list[int] = []
    retry = set(partitions)
    for _ in range(2):
        now = repr(time.time())
        script = client.register_script(PUBLISH)
        order = sorted(retry)
        marks: list[PublishMark] = []
        started = time.perf_counter()
        async with client.pipeline(transaction=False) as pipe:
            for partition in order:
                aggregates, stats = partitions[partition]
                current = aggregates.published
                full = current.full
                pairs, changes, mark = _write_args(aggregates, current, full)
                marks.append(mark)
                aggregates.published = PublishMark()  # until Redis confirms: full next time
                args = [
                    generation,
                    mark.epoch or "",
                    orjson.dumps(stats.to_dict()),
                    owner,
                    now,
                    orjson.dumps(mark.versions),
                    "1" if full else "0",
                    mark.seq,
                    changes,
                    mark.shard_seq,
                    *pairs,
                ]
                await script(keys=[partition_key(prefix, partition)], args=args, client=pipe)
            if spent is not None:
                spent.append(time.perf_counter() - started)
            results = await pipe.execute()
        retry = set()
        for partition, mark, result in zip(order, marks, results, strict=True):
            aggregates = partitions[partition][0]
            if result == 1:
                aggregates.published = mark
            elif result == 0:
                stale.append(partition)
            else:  # epoch mismatch: Redis lost or replaced it; write it whole
                retry.add(partition)
        if not retry:
            break
    return sorted(stale)
