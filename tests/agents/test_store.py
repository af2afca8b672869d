"""The snapshot store's changelog flush, against a producer stand-in that records batches.

A flush sends its writes batch by batch and yields to the event loop between them (as
aiokafka does while the previous batch of the partition is sent); a second flush started
meanwhile must not land its newer snapshot of a key before the first flush's older one.
"""

from __future__ import annotations

import asyncio
import random
from types import SimpleNamespace
from typing import Any

import orjson

import agents.store
from agents.store import OFFSET_KEY, PartitionStore

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


class _Db(dict[bytes, bytes]):
    """RocksDB stand-in: a dict that counts reads and applies write batches."""

    reads = 0

    def get(self, key: bytes, default: bytes | None = None) -> bytes | None:  # type: ignore[override]
        self.reads += 1
        return super().get(key, default)

    def write(self, batch: Any) -> None:
        self.update(batch.items)


class _WriteBatch:
    def __init__(self, raw_mode: bool) -> None:
        self.items: list[tuple[bytes, bytes]] = []

    def put(self, key: bytes, value: bytes) -> None:
        self.items.append((key, value))


async def test_reads_see_the_newest_snapshot_from_memory_or_rocksdb(monkeypatch: Any) -> None:
    """Recently persisted snapshots are read from memory (two generations of 4 here); every
    read, from unsent writes, either generation or RocksDB, is the newest value."""
    monkeypatch.setattr(agents.store, "RECENT_PER_GENERATION", 4)
    monkeypatch.setattr(agents.store, "WriteBatch", _WriteBatch)
    db, producer, rnd = _Db(), _Producer(), random.Random(7)
    store = PartitionStore(SimpleNamespace(data=SimpleNamespace(_db_for_partition=lambda p: db)), 0)
    model: dict[str, dict[str, int]] = {}
    for step in range(2000):
        key = f"deal:D{rnd.randrange(30)}"
        if rnd.random() < 0.5:
            model[key] = {"step": step}
            store[key] = model[key]
        assert store.get(key) == model.get(key)
        if rnd.random() < 0.1:
            await store.flush(producer, "changelog")
            await asyncio.sleep(0)  # acknowledged: persisted, moved to the recent generation
            assert not store.in_flight
            assert len(store.recent) < 4 and len(store.older) <= 4
    await store.drain(producer, "changelog")
    assert {k.decode(): orjson.loads(v) for k, v in db.items() if k != OFFSET_KEY} == model
    reads = db.reads
    for key in list(store.recent) + list(store.older):  # served from memory
        assert store[key.decode()] == model[key.decode()]
    assert db.reads == reads
