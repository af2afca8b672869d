"""Partition aggregates: the sum of the contributions of one partition's entities.

Derived state, never the source of truth: maintained by contribution deltas (new minus
old snapshot) and rebuilt from the snapshot table when a partition is assigned. Workers
publish them *absolute* (not as increments), so a replay or a partition move overwrites
rather than double counts.

>>> agg = PartitionAggregates()
>>> agg.replace({}, {("won_amount", "2017-03-01", "r", "", "", "", "", ""): 500})
>>> agg.replace({("won_amount", "2017-03-01", "r", "", "", "", "", ""): 500}, {})
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
    """Additive components of one partition, keyed by :data:`AggKey`."""

    def __init__(self) -> None:
        self.values: dict[AggKey, int] = {}

    def replace(self, old: Contributions, new: Contributions) -> None:
        """Swap an entity's old contribution for its new one."""
        values = self.values
        for key, n in old.items():
            left = values.get(key, 0) - n
            if left:
                values[key] = left
            else:
                values.pop(key, None)
        for key, n in new.items():
            total = values.get(key, 0) + n
            if total:
                values[key] = total
            else:
                values.pop(key, None)

    def rebuild(self, contributions: Iterable[Contributions]) -> None:
        """Recompute from scratch from every entity's contribution."""
        self.values = {}
        for contribution in contributions:
            self.replace({}, contribution)

    def to_json(self) -> bytes:
        """Compact JSON ``{"component|day|dims...": n}`` for Redis."""
        return orjson.dumps({SEPARATOR.join(k): v for k, v in self.values.items()})


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
