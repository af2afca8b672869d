"""The snapshot store's changelog flush, against a producer stand-in that records batches.

A flush sends its writes batch by batch and yields to the event loop between them (as
aiokafka does while the previous batch of the partition is sent); a second flush started
meanwhile must not land its newer snapshot of a key before the first flush's older one.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson

from agents.store import PartitionStore

PER_BATCH = 3


class _Batch:
    def __init__(self) -> None:
        self.items: list[tuple[bytes, bytes]] = []

    def append(self, key: bytes, value: bytes, timestamp: None) -> object | None:
        if len(self.items) == PER_BATCH:
            return None
        self.items.append((key, value))
        return object()


class _Producer:
    """Appends each sent batch to ``log`` and acknowledges it on the next loop turn."""

    def __init__(self) -> None:
        self.log: list[tuple[bytes, bytes]] = []

    def create_batch(self) -> _Batch:
        return _Batch()

    async def send_batch(self, batch: _Batch, topic: str, partition: int) -> Any:
        await asyncio.sleep(0)  # the previous batch of the partition is being sent
        offset = len(self.log)
        self.log += batch.items
        delivered = asyncio.get_running_loop().create_future()
        delivered.set_result(SimpleNamespace(offset=offset))
        return delivered


def _store() -> PartitionStore:
    db = SimpleNamespace(write=lambda batch: None, get=lambda key: None)
    return PartitionStore(SimpleNamespace(data=SimpleNamespace(_db_for_partition=lambda p: db)), 0)


async def test_concurrent_flushes_keep_each_keys_writes_in_order() -> None:
    store, producer = _store(), _Producer()
    for i in range(2 * PER_BATCH):  # the first flush needs three batches, "deal:D1" last
        store[f"activity:A{i}"] = {"n": i}
    store["deal:D1"] = {"v": 1}
    first = asyncio.ensure_future(store.flush(producer, "changelog"))
    await asyncio.sleep(0)  # the first flush has sent one batch and waits
    store["deal:D1"] = {"v": 2}
    await asyncio.gather(first, store.flush(producer, "changelog"))
    written = [orjson.loads(value) for key, value in producer.log if key == b"deal:D1"]
    assert written == [{"v": 1}, {"v": 2}]
    assert not store.unsent and not store.in_flight  # all acknowledged and persisted
