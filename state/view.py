"""What the collector reads from Redis: every partition's published aggregates, summed.

:class:`ViewReader` asks Redis, per partition and in one pipelined round trip, for the
partition's stats and, if it holds one of the last publishes, only the change sets since
(the keys each publish changed, with their new values); else only the day shards
rewritten since its last read (a Lua script compares shard versions, see
:mod:`state.publisher`) and the change sets after the last shard write; and updates the
sum over partitions by the keys whose values differ from what it held. So the collector
can re-read on every request that comes more than :data:`FRESH_SECONDS` after the last
one, even when the aggregates hold years of history. Concurrent requests share one read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import orjson
import redis.asyncio as aioredis

from salespulse.config import Settings
from state.aggregates import SEPARATOR, shard_of
from state.contributions import AggKey
from state.kpis import KpiParams
from state.publisher import CHANGE_SETS_KEPT, CHANGES_PREFIX, SHARD_PREFIX, partition_key
from state.readout import Readout, index_names

FRESH_SECONDS = 0.1  # a view younger than this is served as it is


@dataclass
class View:
    """Everything read from Redis at one moment.

    A view from :class:`ViewReader` refers to the reader's running sums, not a copy: it
    holds until the reader's next read, so it is used without awaiting in between (as
    every collector handler does). Copying every key on each read that changed something
    was a fifth of the collector's CPU at ten requests a second.
    """

    aggregates: Mapping[AggKey, int]
    partitions: dict[int, dict[str, Any]] = field(default_factory=dict)
    read_at: float = 0.0
    params: KpiParams = field(default_factory=KpiParams)
    index: Mapping[str, Iterable[AggKey]] | None = None  # see Readout

    @cached_property
    def readout(self) -> Readout:
        return Readout(self.aggregates, self.params, self.index)


# KEYS[1] partition hash; ARGV[1] the epoch the reader holds, ARGV[2] its shard versions
# (JSON), ARGV[3] the publish sequence number it holds ('' if none). Returns the meta
# fields (state.publisher.META_FIELDS), then either "c" and the change sets of every
# publish since the reader's (if it holds the same epoch and they are all still kept), or
# "s", the number n of change sets after the last shard write, those n change sets, and
# field / value pairs of the shards whose version differs (all of them if the epoch did):
# one atomic read, so the stats, shards and change sets are of the same write.
READ_CHANGED = (
    """
local meta = redis.call('HMGET', KEYS[1], 'generation', 'epoch', 'stats', 'owner',
                        'published_at', 'versions', 'seq', 'shard_seq')
if not meta[6] then return meta end
local out = meta
local function sets_after(first, last)
  local sets = {}
  for seq = first + 1, last do
    local set = redis.call('HGET', KEYS[1], 'CHANGES' .. seq)
    if not set then return nil end
    table.insert(sets, set)
  end
  return sets
end
local now = tonumber(meta[7])
if meta[2] == ARGV[1] and ARGV[3] ~= '' then
  local have = tonumber(ARGV[3])
  if have <= now and now - have <= KEPT then
    local sets = sets_after(have, now)
    if sets then
      table.insert(out, 'c')
      for _, set in ipairs(sets) do table.insert(out, set) end
      return out
    end
  end
end
local sets = sets_after(tonumber(meta[8]), now)
if not sets then return redis.error_reply('change sets after the last shard write missing') end
table.insert(out, 's')
table.insert(out, #sets)
for _, set in ipairs(sets) do table.insert(out, set) end
local versions = cjson.decode(meta[6])
local known = {}
if meta[2] == ARGV[1] then known = cjson.decode(ARGV[2]) end
for shard, v in pairs(versions) do
  if known[shard] ~= v then
    local field = 'SHARDS' .. shard
    table.insert(out, field)
    table.insert(out, redis.call('HGET', KEYS[1], field))
  end
end
return out
""".replace("CHANGES", CHANGES_PREFIX)
    .replace("SHARDS", SHARD_PREFIX)
    .replace("KEPT", str(CHANGE_SETS_KEPT))
)


@dataclass
class _Partition:
    epoch: bytes
    versions: dict[str, int]
    shards: dict[str, dict[str, int]]  # as published: wire keys
    seq: bytes = b""  # the publish these shards are of


MAX_KEY_CACHE = 4_000_000
_agg_keys: dict[str, AggKey] = {}  # wire key -> tuple, shared by every reader


def agg_key(wire: str) -> AggKey:
    """The tuple of a wire key (cached: the same keys come back with every read)."""
    key = _agg_keys.get(wire)
    if key is None:
        if len(_agg_keys) >= MAX_KEY_CACHE:
            _agg_keys.clear()
        key = _agg_keys[wire] = tuple(wire.split(SEPARATOR))  # type: ignore[assignment]
    return key  # type: ignore[return-value]


class ViewReader:
    """Reads views, fetching and decoding only the shards republished since the last read,
    and keeping the sum over partitions up to date by those shards' differences."""

    def __init__(
        self, client: aioredis.Redis, settings: Settings, params: KpiParams | None = None
    ) -> None:
        self.client, self.settings = client, settings
        self.params = params or KpiParams()
        self._parts: dict[int, _Partition] = {}
        self._total: dict[AggKey, int] = {}
        self._index: dict[str, dict[AggKey, None]] = {}  # index_names -> keys in the total
        self._view: View | None = None
        self._lock = asyncio.Lock()
        self._bumps = 0  # changes applied to the total so far

    async def view(self, fresh_seconds: float = FRESH_SECONDS) -> View:
        """The current view; one younger than ``fresh_seconds`` is returned as it is."""
        async with self._lock:
            if self._view is None or time.time() - self._view.read_at > fresh_seconds:
                self._view = await self.read()
            return self._view

    async def read(self) -> View:
        """Read every partition now."""
        script = self.client.register_script(READ_CHANGED)
        async with self.client.pipeline(transaction=False) as pipe:
            for partition in range(self.settings.partitions):
                part = self._parts.get(partition)
                epoch = part.epoch.decode() if part else ""
                versions = orjson.dumps(part.versions if part else {})
                seq = part.seq if part else b""
                key = partition_key(self.settings.redis_key_prefix, partition)
                await script(keys=[key], args=[epoch, versions, seq], client=pipe)
            rows = await pipe.execute()
        changed = self._view is None
        meta: dict[int, dict[str, Any]] = {}
        for partition, row in enumerate(rows):
            changed |= self._update(partition, row)
            if row[5] is not None:
                meta[partition] = {
                    "stats": orjson.loads(row[2] or b"{}"),
                    "owner": (row[3] or b"").decode(),
                    "published_at": float(row[4] or b"0"),
                }
        view = View(self._total, meta, time.time(), self.params, self._index)
        if not changed and self._view is not None:  # same numbers: keep the computed readout
            view.__dict__["readout"] = self._view.readout
        return view

    def _update(self, partition: int, row: list[Any]) -> bool:
        """Apply one partition's answer to the cache and the total; True if it changed."""
        old = self._parts.get(partition)
        if row[5] is None:  # nothing published (or Redis emptied)
            if old is None:
                return False
            self._drop(old.shards.values())
            del self._parts[partition]
            return True
        before = self._bumps
        epoch, versions, seq = row[1], orjson.loads(row[5]), row[6] or b""
        if row[8] == b"c":  # the change sets since the publish held (same epoch)
            assert old is not None and old.epoch == epoch
            sets = row[9:]
        else:  # changed shards (the state at the last shard write), then the sets since
            if old is None or old.epoch != epoch:
                if old is not None:
                    self._drop(old.shards.values())
                old = self._parts[partition] = _Partition(epoch, {}, {})
            first = 10 + int(row[9])
            sets = row[10:first]
            fetched = {row[i].decode()[2:]: row[i + 1] for i in range(first, len(row), 2)}
            gone = [name for name in old.shards if name not in versions]
            for name in gone:
                self._drop([old.shards.pop(name)])
            for name, raw in fetched.items():
                shard: dict[str, int] = orjson.loads(raw) if raw else {}
                self._diff(old.shards.get(name, {}), shard)
                old.shards[name] = shard
        for raw in sets:
            self._apply_changes(old.shards, orjson.loads(raw))
        old.versions, old.seq = versions, seq
        return self._bumps != before

    def _apply_changes(self, shards: dict[str, dict[str, int]], changes: dict[str, int]) -> None:
        """Bring held shards from one publish to the next by its change set."""
        for wire, n in changes.items():
            name = shard_of(wire)
            shard = shards.get(name)
            if shard is None:
                shard = shards[name] = {}
            m = shard.get(wire, 0)
            if m != n:
                self._bump(wire, n - m)
                if n:
                    shard[wire] = n
                else:
                    del shard[wire]
                    if not shard:
                        del shards[name]

    def _drop(self, shards: Any) -> None:
        for shard in shards:
            self._diff(shard, {})

    def _diff(self, before: dict[str, int], after: dict[str, int]) -> None:
        """Move the total from one version of a shard to another (only the keys whose
        values differ: a rewritten shard mostly repeats the values it had)."""
        bump = self._bump
        for wire, n in after.items() - before.items():
            bump(wire, n - before.get(wire, 0))
        for wire in before.keys() - after.keys():
            bump(wire, -before[wire])

    def _bump(self, wire: str, n: int) -> None:
        self._bumps += 1
        key, total = agg_key(wire), self._total
        old = total.get(key, 0)
        value = old + n
        if value:
            total[key] = value
            if not old:
                for name in index_names(key):
                    self._index.setdefault(name, {})[key] = None
        else:
            total.pop(key, None)
            for name in index_names(key):
                self._index[name].pop(key, None)
