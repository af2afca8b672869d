"""The snapshot table's RocksDB options, checked in the OPTIONS file RocksDB writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from faust.stores.rocksdb import RocksDBOptions

from agents.restore import SNAPSHOT_DB_OPTIONS, SnapshotDBOptions


def _options_file(db_dir: Path) -> dict[str, str]:
    """The ``name=value`` lines of the newest OPTIONS file RocksDB wrote in ``db_dir``."""
    (latest,) = sorted(db_dir.glob("OPTIONS-*"))[-1:]
    pairs = (line.strip().split("=", 1) for line in latest.read_text().splitlines())
    return {p[0]: p[1] for p in pairs if len(p) == 2}


def _written_options(options: RocksDBOptions, path: Path) -> dict[str, str]:
    db = options.open(path)
    db.put(b"k", b"v")
    db.close()
    return _options_file(path)


def test_snapshot_reads_are_memory_mapped_with_the_table_options(tmp_path: Path) -> None:
    written = _written_options(
        SnapshotDBOptions(**SNAPSHOT_DB_OPTIONS, use_rocksdict=True), tmp_path / "mapped"
    )
    assert written["allow_mmap_reads"] == "true"
    assert written["write_buffer_size"] == str(SNAPSHOT_DB_OPTIONS["write_buffer_size"])
    assert written["max_write_buffer_number"] == "2"
    # Faust's own options, the same table options: reads are not mapped
    plain = _written_options(
        RocksDBOptions(**SNAPSHOT_DB_OPTIONS, use_rocksdict=True), tmp_path / "plain"
    )
    assert plain["allow_mmap_reads"] == "false"
    assert plain["write_buffer_size"] == written["write_buffer_size"]


def test_the_snapshot_table_store_opens_partitions_with_these_options(tmp_path: Path) -> None:
    import faust

    from agents.restore import RestoringStore, SnapshotTable

    app = faust.App("options-test", store="rocksdb://", datadir=str(tmp_path))
    table = app.tables.add(
        SnapshotTable(
            app,
            name="snapshots",
            key_type=bytes,
            value_type=bytes,
            options=dict(SNAPSHOT_DB_OPTIONS),
        )
    )
    store = table.data
    assert isinstance(store, RestoringStore)
    assert isinstance(store.rocksdb_options, SnapshotDBOptions)
    assert store.rocksdb_options.write_buffer_size == SNAPSHOT_DB_OPTIONS["write_buffer_size"]
    db = store._db_for_partition(0)
    db.put(b"k", b"v")
    assert _options_file(store.partition_path(0))["allow_mmap_reads"] == "true"
    assert _bloom_bits_per_key(db) >= 9.5  # not Faust's 3


def _bloom_bits_per_key(db: Any) -> float:
    """Bits per key of the bloom filter in a table file written of 20,000 keys."""
    for i in range(20_000):
        db.put(f"deal:{i}".encode(), b"{}")
    db.flush()
    props = dict(
        part.strip().split("=", 1)
        for part in db.property_value("rocksdb.aggregated-table-properties").split(";")
        if "=" in part
    )
    return int(props["filter block size"]) * 8 / int(props["# entries for filter"])
