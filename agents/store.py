"""A mapping view of the Faust snapshot table that encodes snapshots with orjson."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

import orjson

from state.snapshot import Snapshot


class SnapshotStore(MutableMapping[str, Snapshot]):
    """``str`` entity keys and dict snapshots over a table of bytes.

    Reads are cached per key until :meth:`clear_cache`; writes go straight to the table,
    so they reach the changelog in the current event's partition.
    """

    def __init__(self, table: Any) -> None:
        self.table = table

    def __getitem__(self, key: str) -> Snapshot:
        raw = self.table.get(key.encode())
        if raw is None:
            raise KeyError(key)
        return orjson.loads(raw)  # type: ignore[no-any-return]

    def __setitem__(self, key: str, value: Snapshot) -> None:
        self.table[key.encode()] = orjson.dumps(value)

    def __delitem__(self, key: str) -> None:
        del self.table[key.encode()]

    def __iter__(self) -> Iterator[str]:
        for key in self.table:
            yield key.decode() if isinstance(key, bytes) else str(key)

    def __len__(self) -> int:
        return len(self.table)

    def items_raw(self) -> Iterator[tuple[str, Snapshot]]:
        """Every (key, snapshot) in the locally active partitions."""
        for key, raw in self.table.items():
            text = key.decode() if isinstance(key, bytes) else str(key)
            yield text, orjson.loads(raw)
