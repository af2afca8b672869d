"""Micro-benchmark of RocksDB point reads with the snapshot table's options
(:data:`agents.restore.SNAPSHOT_DB_OPTIONS`, :class:`agents.restore.SnapshotDBOptions`)
against Faust's bloom filters and reads without memory mapping.

Writes ``--keys`` keys of snapshot-like JSON (about 350 bytes, compressible as snapshots
are) in write batches of 5,000 (as the worker
persists snapshots), rewrites 100,000 random keys, then times 100,000 reads of random
present keys (mostly not rewritten: what a worker reads for an entity it has not changed
lately) and 100,000 reads of absent keys. Prints microseconds per read (wall
time; run it on a quiet machine).

``--growing`` measures a backfill's pattern instead: the DB grows to ``--keys`` keys in
write batches of 2,500 new and 2,500 rewritten snapshots, each followed by 5,000 reads of
random present keys, while RocksDB flushes and compacts in its background threads. Prints
the microseconds per read over the last fifth of the keys and the wall and CPU seconds of
the whole (the process's CPU, compactions included), with Faust's compression (Snappy)
and a WAL, without compression, and without either (the snapshot table).

    python -m bench.rocksdb_reads --keys 2500000     # one partition's keys at 10^7 entities
    python -m bench.rocksdb_reads --keys 2500000 --growing
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from faust.stores.rocksdb import RocksDBOptions
from rocksdict import Rdict, WriteBatch, WriteOptions

from agents.restore import SNAPSHOT_DB_OPTIONS, SnapshotDBOptions

READS = 100_000
BATCH = 5_000


def _timed_reads(db: Rdict, keys: list[bytes]) -> float:
    get = db.get
    started = time.perf_counter()
    for key in keys:
        get(key)
    return (time.perf_counter() - started) / len(keys) * 1e6


def _snapshot(rng: random.Random) -> bytes:
    """About 350 bytes of JSON shaped like an activity's snapshot."""
    n = rng.getrandbits(24)
    source = f"b1-{n}"
    return orjson.dumps(
        {
            "f": {
                "owner": [f"Rep {n % 192}", 1, source],
                "team": [f"Team {n % 48:03d}", 1, source],
                "office": [("East", "West", "Central")[n % 3], 1, source],
                "type": [("call", "email", "meeting")[n % 3], 2, source],
                "done_at": [f"2024-{n % 12 + 1:02d}-{n % 28 + 1:02d}T12:00:00Z", 1, source],
            },
            "a": [True, 1, source],
            "m": {"first_seen": 1_704_067_200_000 + n * 1000},
            "l": {},
            "v": 2,
        }
    )


def _write(db: Rdict, keys: list[bytes], rng: random.Random) -> None:
    """Snapshot-like values for ``keys``, in write batches as the worker persists them."""
    for start in range(0, len(keys), BATCH):
        batch = WriteBatch(raw_mode=True)
        for key in keys[start : start + BATCH]:
            batch.put(key, _snapshot(rng))
        db.write(batch)


def measure(options: RocksDBOptions, path: Path, keys: int, seed: int) -> tuple[float, float]:
    """Microseconds per read of a present and of an absent key."""
    db = Rdict(str(path), options=options.as_options())
    try:
        rng = random.Random(seed)
        names = [f"deal:{rng.getrandbits(64):x}".encode() for _ in range(keys)]
        _write(db, names, rng)
        _write(db, [names[rng.randrange(keys)] for _ in range(READS)], rng)
        present = [names[rng.randrange(keys)] for _ in range(READS)]
        absent = [f"lead:{rng.getrandbits(64):x}".encode() for _ in range(READS)]
        return _timed_reads(db, present), _timed_reads(db, absent)
    finally:
        db.close()


def measure_growing(options: RocksDBOptions, path: Path, keys: int, seed: int) -> dict[str, float]:
    """Reads while the DB grows under write batches (see the module docstring)."""
    db = options.open(path)
    try:
        rng = random.Random(seed)
        names: list[bytes] = []
        read_s, reads = 0.0, 0
        cpu, wall = time.process_time(), time.perf_counter()
        while len(names) < keys:
            batch = WriteBatch(raw_mode=True)
            for _ in range(BATCH // 2):
                names.append(f"deal:{rng.getrandbits(64):x}".encode())
                batch.put(names[-1], _snapshot(rng))
            for _ in range(BATCH // 2):
                batch.put(names[rng.randrange(len(names))], _snapshot(rng))
            db.write(batch)
            sample = [names[rng.randrange(len(names))] for _ in range(BATCH)]
            seconds = _timed_reads(db, sample) * len(sample) / 1e6
            if len(names) > keys * 0.8:
                read_s, reads = read_s + seconds, reads + len(sample)
        return {
            "read_us": read_s / reads * 1e6,
            "wall_s": time.perf_counter() - wall,
            "cpu_s": time.process_time() - cpu,
        }
    finally:
        db.close()


class _WithWal(SnapshotDBOptions):
    """The snapshot table's options with a WAL (RocksDB's default write options)."""

    def open(self, path: Any, *, read_only: bool = False) -> Any:
        db = super().open(path, read_only=read_only)
        db.set_write_options(WriteOptions())
        return db


def growing(keys: int, seed: int) -> None:
    """Print :func:`measure_growing` for three option sets."""
    variants = {
        "snappy + WAL": _WithWal(
            **{**SNAPSHOT_DB_OPTIONS, "compression": "snappy"}, use_rocksdict=True
        ),
        "none + WAL": _WithWal(**SNAPSHOT_DB_OPTIONS, use_rocksdict=True),
        "snapshot table": SnapshotDBOptions(**SNAPSHOT_DB_OPTIONS, use_rocksdict=True),
    }
    with tempfile.TemporaryDirectory(prefix="rocksdb-growing-") as tmp:
        for name, options in variants.items():
            path = Path(tmp) / name.replace(" ", "")
            got = measure_growing(options, path, keys, seed)
            size = sum(f.stat().st_size for f in path.iterdir()) / 1e6
            shutil.rmtree(path, ignore_errors=True)
            print(
                f"{name:16s} {keys:,} keys: read {got['read_us']:.2f} us, "
                f"wall {got['wall_s']:.1f} s, CPU {got['cpu_s']:.1f} s, {size:,.0f} MB"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=250_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--growing", action="store_true", help="reads while the DB grows")
    args = parser.parse_args(argv)
    if args.growing:
        growing(args.keys, args.seed)
        return
    # Faust's bloom filters and compression (Snappy)
    faust_bloom = {**SNAPSHOT_DB_OPTIONS, "bloom_filter_size": 3, "compression": "snappy"}
    variants = {
        "faust options": RocksDBOptions(**faust_bloom, use_rocksdict=True),
        "mmap reads": SnapshotDBOptions(**faust_bloom, use_rocksdict=True),
        "snapshot table": SnapshotDBOptions(**SNAPSHOT_DB_OPTIONS, use_rocksdict=True),
    }
    with tempfile.TemporaryDirectory(prefix="rocksdb-reads-") as tmp:
        for name, options in variants.items():
            path = Path(tmp) / name.replace(" ", "-")
            present, absent = measure(options, path, args.keys, args.seed)
            shutil.rmtree(path, ignore_errors=True)
            print(
                f"{name:16s} {args.keys:,} keys: present {present:.2f} us, absent {absent:.2f} us"
            )


if __name__ == "__main__":
    main()
