"""Per-partition pipeline counters, published beside the aggregates."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class PartitionStats:
    """Counters and freshness of one partition, as last seen by its owner."""

    applied: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    rebuilds: int = 0
    checkpoint_loads: int = 0  # aggregates taken from a graceful stop's checkpoint instead
    rebuild_seconds: float = 0.0  # the last rebuild (or checkpoint load)
    recovery_seconds: float = 0.0  # last assignment -> aggregates rebuilt (recovery included)
    restored_records: int = 0  # changelog records copied by the fast restore, since start
    last_offset: int = -1
    lag: int = 0
    last_event_ms: dict[str, int] = field(default_factory=dict)

    def saw_event(self, source: str, event_ms: int) -> None:
        """Remember the newest event time applied for a source."""
        if event_ms > self.last_event_ms.get(source, 0):
            self.last_event_ms[source] = event_ms

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
