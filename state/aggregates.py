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
from typing import Any

import orjson

from state.contributions import AggKey, Contributions

SEPARATOR = "|"


class PartitionAggregates:
    """Additive components of one partition.

    Kept keyed by the wire form ``"component|day|rep|team|office|product|source|kind"``
    (what contributions produce), so publishing is one ``orjson.dumps``; :attr:`values`
    gives the tuple-keyed view (:data:`AggKey`) that readers use.
    """

    def __init__(self) -> None:
        self.wire: dict[str, int] = {}

    @property
    def values(self) -> dict[AggKey, int]:
        """The aggregates keyed by :data:`AggKey` tuples (a new dict)."""
        return {tuple(k.split(SEPARATOR)): v for k, v in self.wire.items()}  # type: ignore[misc]

    def replace(self, old: Mapping[Any, int], new: Mapping[Any, int]) -> None:
        """Swap an entity's old contribution for its new one (keys: wire strings or tuples)."""
        wire = self.wire
        for key, n in old.items():
            m = new.get(key, 0)
            if m != n:
                if type(key) is not str:
                    key = SEPARATOR.join(key)
                total = wire.get(key, 0) + m - n
                if total:
                    wire[key] = total
                else:
                    wire.pop(key, None)
        for key, n in new.items():
            if key not in old:
                self._add(key, n, wire)

    @staticmethod
    def _add(key: Any, n: int, wire: dict[str, int]) -> None:
        if type(key) is not str:
            key = SEPARATOR.join(key)
        total = wire.get(key, 0) + n
        if total:
            wire[key] = total
        else:
            wire.pop(key, None)

    def rebuild(self, contributions: Iterable[Contributions]) -> None:
        """Recompute from scratch from every entity's contribution."""
        self.wire = {}
        for contribution in contributions:
            self.replace({}, contribution)

    def to_json(self) -> bytes:
        """Compact JSON ``{"component|day|dims...": n}`` for Redis."""
        return orjson.dumps(self.wire)


def decode_aggregates(data: bytes | str) -> dict[AggKey, int]:
    """Inverse of :meth:`PartitionAggregates.to_json`."""
    raw: Mapping[str, Any] = orjson.loads(data)
    return {tuple(k.split(SEPARATOR)): int(v) for k, v in raw.items()}  # type: ignore[misc]


def sum_aggregates(parts: Iterable[Mapping[AggKey, int]]) -> dict[AggKey, int]:
    """Sum several partitions' aggregates."""
    total: dict[AggKey, int] = {}
    for part in parts:
        for key, n in part.items():
            total[key] = total.get(key, 0) + n
    return {k: v for k, v in total.items() if v}
