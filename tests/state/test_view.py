"""The collector's view reader without Redis: answers of the read script, applied in turn.

Each answer is what ``READ_CHANGED`` returns (meta fields, then the changed shards or the
change sets since the reader's publish); the reader's total and KPI index must equal a
plain sum of the shards it was last given.
"""

from __future__ import annotations

import random
from typing import Any

import orjson

from salespulse.config import Settings
from state.aggregates import decode_aggregates, sum_aggregates
from state.readout import Period, Readout, index_keys
from state.view import ViewReader


def _answer(epoch: str, shards: dict[str, dict[str, int]], send: set[str]) -> list[Any]:
    versions = {name: 1 for name in shards}
    row: list[Any] = [b"1", epoch.encode(), b"{}", b"w", b"0", orjson.dumps(versions), b"1"]
    row += [b"1", b"s", 0]  # shard_seq, the mode, no change sets after the shards
    for name in sorted(send):
        row += [f"a:{name}".encode(), orjson.dumps(shards[name])]
    return row


def _expected(partitions: dict[int, dict[str, dict[str, int]]]) -> dict[Any, int]:
    return sum_aggregates(
        decode_aggregates(orjson.dumps(shard))
        for shards in partitions.values()
        for shard in shards.values()
    )


def test_reader_follows_changed_shards_by_differences() -> None:
    rng = random.Random(7)
    reader = ViewReader(None, Settings(partitions=2))  # type: ignore[arg-type]
    components = ["won_count", "quota_amount", "activities"]
    held: dict[int, dict[str, dict[str, int]]] = {0: {}, 1: {}}
    epochs = {0: "e0", 1: "e1"}
    for step in range(200):
        partition = rng.randrange(2)
        shards = held[partition]
        if step % 50 == 49:  # a full rewrite under a new epoch: everything is sent again
            epochs[partition] = f"e{partition}-{step}"
            send = set(shards)
        else:
            send = set()
            for _ in range(rng.randrange(1, 4)):
                day = f"2024-01-{rng.randrange(1, 5):02d}"
                shard = dict(shards.get(day, {}))
                for _ in range(rng.randrange(1, 6)):
                    key = f"{rng.choice(components)}|{day}|rep{rng.randrange(3)}|||||month"
                    value = rng.randrange(-1, 4)
                    if value:
                        shard[key] = value
                    else:
                        shard.pop(key, None)
                shards[day] = shard
                send.add(day)
            if shards and rng.random() < 0.1:  # a shard emptied and deleted
                gone = rng.choice(sorted(shards))
                del shards[gone]
                send.discard(gone)
        reader._update(partition, _answer(epochs[partition], shards, send))
        want = _expected(held)
        assert reader._total == want, step
        index = {name: set(keys) for name, keys in reader._index.items() if keys}
        assert index == {name: set(keys) for name, keys in index_keys(want).items()}, step


def test_readout_with_a_given_index_equals_one_built_from_the_keys() -> None:
    aggs = {
        ("won_count", "2024-01-02", "Ann", "", "", "", "", ""): 2,
        ("lost_count", "2024-01-03", "Ann", "", "", "", "", ""): 1,
        ("quota_amount", "2024-01-01", "Ann", "", "", "", "", "month"): 500,
        ("won_amount", "2024-01-02", "Ann", "", "", "", "", ""): 400,
    }
    given = Readout(aggs, index=index_keys(aggs))
    built = Readout(aggs)
    period = Period("2024-01-01", "2024-02-01")
    for kpi in ("win_rate", "quota_attainment", "won_revenue"):
        assert given.grouped(kpi, period, ("rep",)) == built.grouped(kpi, period, ("rep",))


def test_reader_follows_change_sets() -> None:
    """Change sets (new value of each changed key, 0 when gone) interleaved with shard
    answers: the total and index always equal the plain sum of the current shards."""
    rng = random.Random(11)
    reader = ViewReader(None, Settings(partitions=1))  # type: ignore[arg-type]
    shards: dict[str, dict[str, int]] = {}
    reader._update(0, _answer("e", shards, set()))
    for step in range(300):
        changes: dict[str, int] = {}
        for _ in range(rng.randrange(0, 8)):
            day = rng.choice(["", "2024-01-01", "2024-01-02", "2024-02-01"])
            component = rng.choice(["won_count", "quota_amount"])
            key = f"{component}|{day}|rep{rng.randrange(3)}|||||month"
            value = rng.choice([0, 0, 1, 2, 5, -3])
            shard = shards.setdefault(day, {})
            if value:
                shard[key] = value
            else:
                shard.pop(key, None)
            if not shard:
                del shards[day]
            changes[key] = value
        if step % 40 == 39:  # a reader that fell behind: the changed shards instead
            answer = _answer("e", shards, set(shards))
        else:
            versions = orjson.dumps({name: 1 for name in shards})
            answer = [b"1", b"e", b"{}", b"w", b"0", versions, b"2", b"1", b"c"]
            answer.append(orjson.dumps(changes))
        reader._update(0, answer)
        want = _expected({0: shards})
        assert reader._total == want, step
        assert reader._parts[0].shards == {k: v for k, v in shards.items() if v}, step
        index = {name: set(keys) for name, keys in reader._index.items() if keys}
        assert index == {name: set(keys) for name, keys in index_keys(want).items()}, step
