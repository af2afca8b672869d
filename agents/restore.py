"""Fast restore of the snapshot changelog into RocksDB, before Faust's own recovery.

Faust's recovery reads a changelog through its consumer and turns every record into a
stream event before writing it (several hundred microseconds each on the benchmark
machine: about 54 s for 10^5 entities, so most of an hour for 10^7). A worker that lost
its local state, or took over a partition it never held, waits that long.

:class:`RestoringStore` is Faust's RocksDB store with one addition: when partitions are
assigned, it reads each newly assigned changelog partition from the offset persisted in
its RocksDB to the high watermark with a plain consumer (``getmany``) and writes the
records in RocksDB write batches together with the persisted offset, exactly as Faust's
``apply_changelog_batch`` would. Faust's recovery then starts at the high watermark and
finds nothing left to read (or only what was written meanwhile). If the fast restore
fails, it stops where it is: everything written is consistent with its persisted offset
and Faust's recovery reads the rest.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.stores.rocksdb import RocksDBOptions
from faust.stores.rocksdb import Store as RocksDBStore
from faust.types import TP
from rocksdict import DBCompressionType, WriteBatch, WriteOptions

from salespulse.config import get_settings

log = logging.getLogger(__name__)
MIB = 1024 * 1024
RESTORE_TIMEOUT_S = 600.0  # a restore slower than this leaves the rest to Faust
restored: dict[int, tuple[int, float]] = {}  # partition -> (records, seconds), last restore


async def restore_partition(db: Any, offset_key: bytes, tp: TP, bootstrap: str) -> int:
    """Copy changelog records after ``db``'s persisted offset into ``db``; return how many."""
    persisted = db.get(offset_key)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=16 * MIB,
        fetch_max_bytes=64 * MIB,
    )
    await consumer.start()
    try:
        ktp = TopicPartition(tp.topic, tp.partition)
        consumer.assign([ktp])
        end = (await consumer.end_offsets([ktp]))[ktp]
        if persisted is None:
            start = (await consumer.beginning_offsets([ktp]))[ktp]
        else:
            start = int(persisted) + 1
        if start >= end:
            return 0
        consumer.seek(ktp, start)
        copied = 0
        deadline = time.monotonic() + RESTORE_TIMEOUT_S
        while await consumer.position(ktp) < end and time.monotonic() < deadline:
            records = (await consumer.getmany(ktp, timeout_ms=1000, max_records=20_000)).get(
                ktp, []
            )
            if not records:
                continue
            batch = WriteBatch(raw_mode=True)
            for record in records:
                if record.value is None:
                    batch.delete(record.key)
                else:
                    batch.put(record.key, record.value)
            batch.put(offset_key, str(records[-1].offset).encode())
            db.write(batch)
            copied += len(records)
        return copied
    finally:
        await consumer.stop()


# One RocksDB per partition: Faust's defaults (a 2 GiB block cache and 3 x 64 MiB
# memtables each) would let a worker's memory grow far past its working set. Faust's
# bloom filters have 3 bits per key (about 1 false positive in 4): a read of a present
# key then also read and decompressed a data block of most other levels it checked.
# With 10 bits (1 in 100, RocksDB's usual choice; 0.9 byte more per key) a read of a
# present key took 19.6 -> 11.0 us at 2.5 M keys of snapshot-like JSON (one
# partition's at 10^7 entities), 6.8 -> 5.8 at 250,000 (`bench.rocksdb_reads`).
# ``compression`` is ours (:class:`SnapshotDBOptions`; the setting
# ``SALESPULSE_SNAPSHOT_COMPRESSION``).
SNAPSHOT_DB_OPTIONS: dict[str, Any] = {
    "write_buffer_size": 16 * MIB,
    "max_write_buffer_number": 2,
    "target_file_size_base": 16 * MIB,
    "block_cache_size": 64 * MIB,
    "block_cache_compressed_size": 0,
    "bloom_filter_size": 10,
    "compression": "none",
}
COMPRESSION = {
    "none": DBCompressionType.none,
    "snappy": DBCompressionType.snappy,
    "lz4": DBCompressionType.lz4,
    "zstd": DBCompressionType.zstd,
}


class SnapshotDBOptions(RocksDBOptions):  # type: ignore[misc]
    """Faust's RocksDB options (rocksdict) with memory-mapped reads, a chosen compression
    and no write-ahead log.

    * Mapped reads: most snapshot reads at 10^6 entities and more miss the block cache; a
      read then copies the block from the OS page cache with a system call. Mapping the
      table files avoids the call and the copy (21.7 -> 19.6 us per read of a present key
      at 2.5 M keys per partition, what 10^7 entities put in each of 4, with Faust's
      3-bit bloom filters). Mapped pages count in the worker's RSS as file-backed memory,
      which the kernel reclaims under pressure like any page cache.
    * Compression (``compression``: none, snappy, lz4 or zstd; default none): a backfill
      reads random snapshots while it writes, and RocksDB compresses every byte again in
      each compaction. A DB growing to 2.5 M snapshot-like values under the worker's write
      pattern (`python -m bench.rocksdb_reads --keys 2500000 --growing`): a read of a
      present key 16.4 -> 10.1 us and the process's CPU (writes, reads, compactions)
      149 -> 114 s without compression; 3.4x the disk (858 instead of 254 MB: JSON
      snapshots compress well).
    * No write-ahead log: every write is a batch of snapshots with the changelog offset
      they came from (:mod:`agents.store`, the fast restore, Faust's recovery), and the
      changelog in Kafka is the log. After a crash RocksDB reopens at its last memtable
      flush, a prefix of its writes whose persisted offset matches its snapshots, and the
      changelog after that offset is restored as after any crash. Without the WAL that
      growing DB took 114 -> 104 s of CPU (31 % less than Faust's Snappy with a WAL).
      Graceful stops and revoked partitions flush the memtables (:class:`RestoringStore`),
      so a restart finds what was written.
    """

    def as_options(self) -> Any:
        options = super().as_options()
        options.set_allow_mmap_reads(True)
        options.set_compression_type(COMPRESSION[self.extra_options.get("compression", "none")]())
        return options

    def open(self, path: Any, *, read_only: bool = False) -> Any:
        db = super().open(path, read_only=read_only)
        write = WriteOptions()
        # a property at run time (rocksdict's stubs call it a method); the DB's write
        # options apply to db.write(batch) as well as to db.put
        setattr(write, "disable_wal", True)  # noqa: B010
        db.set_write_options(write)
        return db


class RestoringStore(RocksDBStore):
    """Faust's RocksDB store that restores newly assigned partitions with a plain consumer
    (and opens each partition's RocksDB with :class:`SnapshotDBOptions`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.use_rocksdict:
            raise RuntimeError("the snapshot table needs the rocksdict driver")
        # as Faust builds its options (what is left of the table's options after it took
        # out read_only and driver), with memory-mapped reads added
        self.rocksdb_options = SnapshotDBOptions(**(self.options or {}), use_rocksdict=True)

    def _flush_memtables(self, partitions: Any) -> None:
        """Write the memtables of these partitions' DBs to table files (there is no WAL)."""
        for partition in partitions:
            db = self._dbs.get(partition)
            if db is not None:
                db.flush()

    async def stop(self) -> None:
        self._flush_memtables(list(self._dbs))
        await super().stop()

    def revoke_partitions(self, table: Any, tps: Any) -> None:
        self._flush_memtables(
            tp.partition for tp in tps if tp.topic in table.changelog_topic.topics
        )
        super().revoke_partitions(table, tps)

    async def assign_partitions(self, table: Any, tps: Any, generation_id: int = 0) -> None:
        await super().assign_partitions(table, tps, generation_id)
        standbys = self.app.assignor.assigned_standbys()
        mine = sorted(
            (tp for tp in tps if tp.topic in table.changelog_topic.topics and tp not in standbys),
            key=lambda tp: tp.partition,
        )
        bootstrap = get_settings().kafka_bootstrap
        for tp in mine:
            if generation_id != self.app.consumer_generation_id:
                return  # rebalanced again meanwhile: the next assignment restores
            started = time.monotonic()
            try:
                copied = await restore_partition(
                    self._db_for_partition(tp.partition), self.offset_key, tp, bootstrap
                )
            except Exception as exc:  # Faust's recovery reads whatever is left
                log.warning("fast restore of %s stopped: %r", tp, exc)
                continue
            seconds = time.monotonic() - started
            restored[tp.partition] = (copied, seconds)
            if copied:
                log.info("restored %d changelog records of %s in %.2fs", copied, tp, seconds)


class SnapshotTable(faust.Table):  # type: ignore[misc]
    """A Faust table whose store is :class:`RestoringStore`."""

    def _new_store_by_url(self, url: Any) -> RestoringStore:
        return RestoringStore(
            url,
            self.app,
            self,
            table_name=self.name,
            key_type=self.key_type,
            key_serializer=self.key_serializer,
            value_serializer=self.value_serializer,
            value_type=self.value_type,
            loop=self.loop,
            options=self.options,
        )
