"""Aggregates saved at a graceful stop, so that a restart need not rebuild them.

Rebuilding a partition's aggregates reads and recomputes every snapshot (about 7-9 us per
entity: most of a restart at 10^6 entities, a minute and more at 10^7). A worker that
stops gracefully has drained its snapshot writes into RocksDB, so its aggregates are then
exactly the sum of what RocksDB holds at its persisted changelog offset; it saves them
with that offset. The next start uses them only if nothing can differ:

* RocksDB's persisted offset is the saved one (every write to RocksDB, ours, the fast
  restore's and Faust's recovery, moves it; a lost or replaced store does not have it);
* the *fingerprint* is the same: the rules and the engine's code (``state/*.py``), which
  decide each snapshot's contribution;
* the retention cutoff (the first day kept, which moves with the date) is the saved one
  or later: contributions leave out each key of a day before the cutoff, key by key, so
  the aggregates under a later cutoff are the saved ones without the day shards before
  it (a worker that ran for days is restarted with a later cutoff than it started with);
* the file is whole (written to a temporary file, then renamed).

With the aggregates goes what the last publish wrote to Redis (epoch, sequence, shard
versions) and which shards changed since, so the next start publishes only those under
the same epoch instead of rewriting every shard (97 MB at 10^6 entities); Redis refuses
that write unless it still holds exactly that publish, and a full write follows.

A stop saves into ``aggregates-checkpoint/`` of the worker's data directory; the next
start claims that directory before anything else (renames it, dropping what an earlier
start left unclaimed), and a file is read at most once. So only the start right after the
stop can use it, and a crash later cannot bring back aggregates older than the store.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import orjson

import state
from state.aggregates import PublishMark
from state.rules import Rules

log = logging.getLogger(__name__)
FORMAT = 2  # 2: with the publish mark
Shards = dict[str, dict[str, int]]


@dataclasses.dataclass(frozen=True)
class Saved:
    """A partition's saved aggregates and, if a publish of them stood in Redis, its mark
    and the shards changed since that mark's last shard write."""

    shards: Shards
    published: PublishMark | None = None
    unpublished: frozenset[str] = frozenset()


def fingerprint(rules: Rules) -> str:
    """What a snapshot's contribution depends on besides the snapshot itself."""
    digest = hashlib.sha256()
    digest.update(
        orjson.dumps(dataclasses.asdict(rules), default=sorted, option=orjson.OPT_SORT_KEYS)
    )
    for path in sorted(Path(state.__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def saved_dir(datadir: Path) -> Path:
    """Where a graceful stop saves the aggregates."""
    return datadir / "aggregates-checkpoint"


def claimed_dir(datadir: Path) -> Path:
    """Where this start reads them from (see :func:`claim`)."""
    return datadir / "aggregates-checkpoint.claimed"


def claim(datadir: Path, use: bool = True) -> None:
    """At a worker's start: make the last stop's checkpoint this start's, once (or, with
    ``use`` false, drop it: every partition is rebuilt)."""
    shutil.rmtree(claimed_dir(datadir), ignore_errors=True)
    if not use:
        shutil.rmtree(saved_dir(datadir), ignore_errors=True)
    elif saved_dir(datadir).exists():
        saved_dir(datadir).rename(claimed_dir(datadir))


def path_for(directory: Path, partition: int) -> Path:
    """The checkpoint file of ``partition``."""
    return directory / f"partition-{partition}.json"


def save(
    directory: Path,
    partition: int,
    offset: bytes | None,
    mark: str,
    cutoff: str | None,
    shards: Shards,
    published: PublishMark | None = None,
    unpublished: set[str] | frozenset[str] = frozenset(),
) -> int:
    """Write a partition's aggregates (at RocksDB's persisted ``offset``, computed with the
    retention ``cutoff``) with the ``published`` mark they were last published under (none
    or a full one: the next start writes everything) and the shards changed since; returns
    the bytes written."""
    directory.mkdir(parents=True, exist_ok=True)
    body = {
        "format": FORMAT,
        "fingerprint": mark,
        "offset": None if offset is None else offset.decode(),
        "cutoff": cutoff,
        "shards": shards,
        "published": None
        if published is None or published.full
        else {**dataclasses.asdict(published), "unpublished": sorted(unpublished)},
    }
    data = orjson.dumps(body)
    path = path_for(directory, partition)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    tmp.rename(path)
    return len(data)


def take(
    directory: Path, partition: int, offset: bytes | None, mark: str, cutoff: str | None
) -> Saved | None:
    """The saved aggregates of ``partition`` if they match RocksDB's persisted ``offset``
    and the fingerprint ``mark``, as they are under the retention ``cutoff``; else None.
    The file is removed either way."""
    path = path_for(directory, partition)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    path.unlink(missing_ok=True)
    try:
        body: Any = orjson.loads(data)
        shards, saved, was = body["shards"], body["offset"], body["cutoff"]
        published = _mark(body.get("published"))  # none in an older format's file
        valid = (
            body["format"] == FORMAT
            and body["fingerprint"] == mark
            and saved == (None if offset is None else offset.decode())
            and (was == cutoff or (was is not None and cutoff is not None and was < cutoff))
            and isinstance(shards, dict)
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        log.warning(
            "partition %d: unreadable aggregates checkpoint (%s); rebuilding", partition, exc
        )
        return None
    if not valid:
        log.info(
            "partition %d: aggregates checkpoint does not match the store; rebuilding", partition
        )
        return None
    if cutoff is not None and was != cutoff:  # only day shards of days now dropped go
        shards = {day: shard for day, shard in shards.items() if not day or day >= cutoff}
    if published is None:
        return Saved(shards)
    return Saved(shards, published[0], published[1])


def _mark(raw: Any) -> tuple[PublishMark, frozenset[str]] | None:
    """The publish mark and unpublished shards of a checkpoint's ``published`` field."""
    if raw is None:
        return None
    versions = {str(k): int(v) for k, v in raw["versions"].items()}
    mark = PublishMark(str(raw["epoch"]), int(raw["seq"]), versions, int(raw["shard_seq"]))
    return mark, frozenset(str(name) for name in raw["unpublished"])
