"""Partition aggregates: the sum of the contributions of one partition's entities.

Derived state, never the source of truth: maintained by contribution deltas (new minus
old snapshot) and rebuilt from the snapshot table when a partition is assigned. Workers
publish them *absolute* (not as increments), so a replay or a partition move overwrites
rather than double counts.

>>> agg = PartitionAggregates()
>>> agg.replace({}, {"won_amount|2017-03-01|r|||||": 500})
>>> agg.values
{('won_amount', '2017-03-01', 'r', '', '', '', '', ''): 500}
>>> agg.replace({"won_amount|2017-03-01|r|||||": 500}, {})
>>> agg.values
{}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from state.contributions import AggKey, Contributions

SEPARATOR = "|"
# Largest change set kept (about 1.4 MB of JSON): a live stream at 10,000 events/s changes
# 3,000-4,000 keys per 0.2 s publish.
MAX_CHANGED_KEYS = 20_000


@dataclass
class PublishMark:
    """What a worker last wrote for one partition: its epoch and each shard's sequence."""

    epoch: str | None = None  # None: the next write is a full one
    seq: int = 0
    versions: dict[str, int] = field(default_factory=dict)
    shard_seq: int = 0  # the publish that last wrote the changed shards

    @property
    def full(self) -> bool:
        """Whether the next write must be a full one (no epoch held in Redis yet)."""
        return self.epoch is None


def shard_of(key: str) -> str:
    """The publishing shard of a wire key: its day (``YYYY-MM-DD``), or ``""`` for a key
    without a day.

    >>> shard_of("won_amount|2017-03-01|r|||||"), shard_of("quota||r|||||month")
    ('2017-03-01', '')
    """
    start = key.index(SEPARATOR) + 1
    return "" if key[start] == SEPARATOR else key[start : start + 10]


class PartitionAggregates:
    """Additive components of one partition.

    Kept keyed by the wire form ``"component|day|rep|team|office|product|source|kind"``
    (what contributions produce) and grouped in shards by day (:func:`shard_of`), so
    publishing re-encodes only the days that changed since the last publish
    (:attr:`dirty`; a month shard was re-encoded twice as much: a backfill at 10^6
    entities touched about 60 days of 4 to 6 months in each 0.5 s), and keeping the keys
    changed since the last publish (:attr:`changed`), which readers that hold the previous
    publish apply instead of re-reading the shards; :attr:`values` gives the tuple-keyed
    view (:data:`AggKey`) that readers use.
    """

    def __init__(self) -> None:
        self.shards: dict[str, dict[str, int]] = {}
        self.dirty: set[str] = set()  # shards changed since the last take_dirty()
        # Wire keys changed since the last take_changes(); None once more than
        # MAX_CHANGED_KEYS changed (a backfill): then readers re-read the changed shards,
        # and the worker neither holds nor encodes a change set as large as its aggregates.
        self.changed: set[str] | None = set()
        self.published = PublishMark()  # what the publisher last wrote (state.publisher)

    @property
    def values(self) -> dict[AggKey, int]:
        """The aggregates keyed by :data:`AggKey` tuples (a new dict)."""
        return {
            tuple(k.split(SEPARATOR)): v  # type: ignore[misc]
            for shard in self.shards.values()
            for k, v in shard.items()
        }

    def replace(self, old: Mapping[Any, int], new: Mapping[Any, int]) -> None:
        """Swap an entity's old contribution for its new one (keys: wire strings or tuples)."""
        for key, n in old.items():
            m = new.get(key, 0)
            if m != n:
                self._add(key, m - n)
        for key, n in new.items():
            if key not in old:
                self._add(key, n)

    def _add(self, key: Any, n: int) -> None:
        if type(key) is not str:
            key = SEPARATOR.join(key)
        start = key.index(SEPARATOR) + 1
        name = "" if key[start] == SEPARATOR else key[start : start + 10]
        shard = self.shards.get(name)
        if shard is None:
            shard = self.shards[name] = {}
        total = shard.get(key, 0) + n
        if total:
            shard[key] = total
        else:
            shard.pop(key, None)
        self.dirty.add(name)
        changed = self.changed
        if changed is not None:
            changed.add(key)
            if len(changed) > MAX_CHANGED_KEYS:
                self.changed = None

    def rebuild(self, contributions: Iterable[Contributions]) -> None:
        """Recompute from scratch from every entity's contribution.

        Sums into one flat dict, then splits it into shards once: adding each entity
        through :meth:`_add` (shard, dirty and change tracking per key) was a third of a
        rebuild, which blocks the worker for about 9 us per entity on every assignment.
        """
        total: dict[str, int] = {}
        get = total.get
        for contribution in contributions:
            for key, n in contribution.items():
                if type(key) is not str:
                    key = SEPARATOR.join(key)
                total[key] = get(key, 0) + n
        shards: dict[str, dict[str, int]] = {}
        for key, n in total.items():
            if n:
                name = shard_of(key)
                shard = shards.get(name)
                if shard is None:
                    shard = shards[name] = {}
                shard[key] = n
        self.load(shards)

    def load(
        self,
        shards: dict[str, dict[str, int]],
        mark: PublishMark | None = None,
        unpublished: Iterable[str] = (),
    ) -> None:
        """Take these shards (a rebuild's, or saved ones: what :attr:`shards` held) in
        place of the current ones; every shard is published again.

        With the ``mark`` of a publish that may still stand in Redis (a graceful restart,
        :mod:`agents.checkpoint`), the next publish writes, under that epoch, only the
        ``unpublished`` shards (changed since the mark's last shard write) and deletes the
        published ones no longer held; if Redis holds another epoch or publish by then,
        the write is refused and a full one follows."""
        if mark is None:
            self.dirty.update(self.shards)
            self.dirty.update(shards)
        else:
            self.dirty = set(unpublished) | (set(mark.versions) - set(shards))
            self.published = mark
        self.changed = None
        self.shards = shards

    def take_dirty(self) -> set[str]:
        """The shards changed since the last call (and forget them)."""
        dirty, self.dirty = self.dirty, set()
        return dirty

    def take_changes(self) -> dict[str, int] | None:
        """The current value (0: gone) of every key changed since the last call (and
        forget them): what a reader holding the previous publish needs; None if too many
        changed (see :attr:`changed`)."""
        changed, self.changed = self.changed, set()
        if changed is None:
            return None
        out: dict[str, int] = {}
        for key in changed:
            shard = self.shards.get(shard_of(key))
            out[key] = 0 if shard is None else shard.get(key, 0)
        return out

    def encode_shard(self, name: str) -> bytes:
        """Compact JSON ``{"component|day|dims...": n}`` of one shard (``{}`` if empty)."""
        return orjson.dumps(self.shards.get(name, {}))

    def decode_published(self) -> dict[AggKey, int]:
        """What readers get back from every shard as published (encoded, decoded)."""
        return sum_aggregates(decode_aggregates(self.encode_shard(n)) for n in self.shards)


def decode_aggregates(data: bytes | str) -> dict[AggKey, int]:
    """Inverse of :meth:`PartitionAggregates.encode_shard`."""
    raw: Mapping[str, Any] = orjson.loads(data)
    return {tuple(k.split(SEPARATOR)): int(v) for k, v in raw.items()}  # type: ignore[misc]


def sum_aggregates(parts: Iterable[Mapping[AggKey, int]]) -> dict[AggKey, int]:
    """Sum several partitions' aggregates."""
    total: dict[AggKey, int] = {}
    for part in parts:
        for key, n in part.items():
            total[key] = total.get(key, 0) + n
    return {k: v for k, v in total.items() if v}
