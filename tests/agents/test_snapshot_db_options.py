"""The snapshot table's RocksDB options, checked in the OPTIONS file RocksDB writes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from faust.stores.rocksdb import RocksDBOptions

from agents.restore import SNAPSHOT_DB_OPTIONS, SnapshotDBOptions
from agents.store import OFFSET_KEY


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


def _snapshot_table(app_id: str, datadir: Path) -> Any:
    """The worker's snapshot table (its options) in an app of its own."""
    import faust

    from agents.restore import SnapshotTable

    app = faust.App(app_id, store="rocksdb://", datadir=str(datadir))
    return app.tables.add(
        SnapshotTable(
            app,
            name="snapshots",
            key_type=bytes,
            value_type=bytes,
            options=dict(SNAPSHOT_DB_OPTIONS),  # Faust takes keys out of the dict it is given
        )
    )


def test_the_snapshot_table_store_opens_partitions_with_these_options(tmp_path: Path) -> None:
    from agents.restore import RestoringStore

    table = _snapshot_table("options-test", tmp_path)
    store = table.data
    assert isinstance(store, RestoringStore)
    assert isinstance(store.rocksdb_options, SnapshotDBOptions)
    assert store.rocksdb_options.write_buffer_size == SNAPSHOT_DB_OPTIONS["write_buffer_size"]
    db = store._db_for_partition(0)
    db.put(b"k", b"v")
    assert _options_file(store.partition_path(0))["allow_mmap_reads"] == "true"
    assert _bloom_bits_per_key(db) >= 9.5  # not Faust's 3
    assert _options_file(store.partition_path(0))["compression"] == "kNoCompression"


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


@pytest.mark.parametrize(
    ("setting", "written"),
    [("none", "kNoCompression"), ("snappy", "kSnappyCompression"), ("zstd", "kZSTD")],
)
def test_compression_is_the_chosen_one(tmp_path: Path, setting: str, written: str) -> None:
    options = SnapshotDBOptions(
        **{**SNAPSHOT_DB_OPTIONS, "compression": setting}, use_rocksdict=True
    )
    assert _written_options(options, tmp_path / setting)["compression"] == written


# Batches of 1,000 snapshots with the changelog offset they came from, as the worker
# persists them; memtables flushed after batch 5, then the process dies (no close).
CRASH = """
import os, sys
from rocksdict import WriteBatch
from agents.restore import SNAPSHOT_DB_OPTIONS, SnapshotDBOptions
from agents.store import OFFSET_KEY
db = SnapshotDBOptions(**SNAPSHOT_DB_OPTIONS, use_rocksdict=True).open(sys.argv[1])
for n in range(1, 10):
    batch = WriteBatch(raw_mode=True)
    for j in range(1000):
        batch.put(f"deal:{n}-{j}".encode(), b'{"f": {}}' * 30)
    batch.put(OFFSET_KEY, str(n).encode())
    db.write(batch)
    if n == 5:
        db.flush()
os._exit(0)
"""


def test_a_crash_leaves_a_prefix_of_the_writes_with_its_offset(tmp_path: Path) -> None:
    """Without a WAL, what RocksDB holds after a crash is consistent with its offset."""
    path = tmp_path / "db"
    subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CRASH), str(path)],
        check=True,
        cwd=Path(__file__).parents[2],
    )
    assert sum(f.stat().st_size for f in path.glob("*.log")) == 0  # nothing went to a WAL
    db = SnapshotDBOptions(**SNAPSHOT_DB_OPTIONS, use_rocksdict=True).open(path)
    try:
        offset = int(db.get(OFFSET_KEY))
        assert offset == 5  # the unflushed batches are gone (a WAL would have kept them)
        for n in range(1, 10):
            present = [db.get(f"deal:{n}-{j}".encode()) is not None for j in range(1000)]
            assert all(present) if n <= offset else not any(present), n
    finally:
        db.close()


@pytest.mark.parametrize("how", ["stop", "revoke"])
async def test_stop_and_revoke_flush_the_memtables(tmp_path: Path, how: str) -> None:
    from faust.types import TP

    table = _snapshot_table("flush-test", tmp_path)
    store = table.data
    db = store._db_for_partition(0)
    db.put(b"deal:1", b"{}")
    assert db.property_int_value("rocksdb.num-entries-active-mem-table") == 1
    if how == "stop":
        await store.stop()
    else:
        store.revoke_partitions(table, {TP(table.changelog_topic.get_topic_name(), 0)})
    assert db.property_int_value("rocksdb.num-entries-active-mem-table") == 0
    assert db.property_int_value("rocksdb.num-immutable-mem-table") == 0
    assert db.get(b"deal:1") == b"{}"
    db.close()
