"""Micro-benchmark of the pure engine path, without Kafka or Faust.

Builds the bench workload (:mod:`bench.workload`), encodes it into batched records as the
producer does (:func:`bench.records.batch_records`), then times what the worker does per
record (:func:`agents.events.process_events` minus I/O): decode the record, apply every
event to its partition's :class:`state.processor.PartitionState`, write snapshots into a
:class:`agents.store.PartitionStore` (over an in-memory stand-in for RocksDB), and route
link facts to their partitions as batch records, applied right after their source record.

Reports CPU microseconds per CRM event (``time.process_time``; the minimum of
``--repeat`` runs, each on fresh state and cold caches, with the worker's garbage
collector settings), and with ``--profile`` a cProfile top 20.

    python -m bench.engine --events 200000 [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from agents.run import tune_collector
from agents.store import PartitionStore
from bench.records import batch_records
from bench.workload import Workload, WorkloadConfig
from state.processor import PartitionState
from state.rules import Rules
from streams.records import Undecodable, decode_record, encode_batch, partition_for

RULES_PATH = Path(__file__).with_name("rules.yaml")
MAX_BATCH = 500
MAX_UNSENT = 20_000  # as agents.events: pending snapshot writes before a flush


class MemoryStore(PartitionStore):
    """A :class:`PartitionStore` whose RocksDB is a dict; flushing persists at once."""

    def __init__(self, partition: int) -> None:
        self.rocks: dict[bytes, bytes] = {}
        table = SimpleNamespace(data=SimpleNamespace(_db_for_partition=lambda p: self.rocks))
        super().__init__(table, partition)

    def flush_now(self) -> None:
        """What an acknowledged changelog flush leaves: everything persisted."""
        self.rocks.update(self.in_flight)
        self.in_flight.clear()
        self.unsent = {}


def build_records(events: int, seed: int, partitions: int) -> tuple[list[tuple[int, bytes]], int]:
    """Batched records of a workload of ``events`` events (and the events' count)."""
    config = WorkloadConfig(
        entities=max(1000, round(events / 1.9)), events=events, seed=seed, partitions=partitions
    )
    records: list[tuple[int, bytes]] = []
    for chunk in Workload(config).chunks(20_000):
        records.extend(batch_records(chunk, MAX_BATCH))
    return records, config.total_events


def run(records: list[tuple[int, bytes]], rules: Rules, partitions: int) -> dict[str, int]:
    """Process every record like the worker's agent does; returns outcome counts."""
    states = {p: PartitionState(rules, MemoryStore(p)) for p in range(partitions)}
    counts: dict[str, int] = defaultdict(int)
    queue = list(reversed(records))
    while queue:
        partition, value = queue.pop()
        state = states[partition]
        links: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for raw in decode_record(value):
            if isinstance(raw, Undecodable):
                counts["undecodable"] += 1
                continue
            outcome = state.apply(raw)
            counts[outcome.status] += 1
            for link in outcome.links:
                target = f"{link['entity']}:{link['entity_id']}"
                links[partition_for(target, partitions)].append(link)
        for target_partition, facts in links.items():
            queue.append((target_partition, encode_batch(facts)))
        store = state.store
        if len(store.unsent) >= MAX_UNSENT:  # type: ignore[attr-defined]
            store.flush_now()  # type: ignore[attr-defined]
    return dict(counts)


def clear_caches() -> None:
    """Empty the engine's memo caches (``functools`` caches and FX memos), so each run
    starts cold like a new worker and no run profits from having seen the same events."""
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] in ("state", "streams", "agents"):
            for value in list(vars(module).values()):
                if callable(getattr(value, "cache_clear", None)):
                    value.cache_clear()


def measure(
    records: list[tuple[int, bytes]], rules: Rules, partitions: int, repeat: int
) -> tuple[float, dict[str, int]]:
    """Minimum CPU seconds of ``repeat`` runs, and the outcome counts."""
    best, counts = float("inf"), {}
    for _ in range(repeat):
        clear_caches()
        rules = replace(rules)  # a copy without its cached calendar, FX table and memos
        started = time.process_time()
        counts = run(records, rules, partitions)
        best = min(best, time.process_time() - started)
    return best, counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="also print a cProfile top 20")
    args = parser.parse_args(argv)
    rules = Rules.load(RULES_PATH)
    records, events = build_records(args.events, args.seed, args.partitions)
    tune_collector()  # as the worker: what the workload built is frozen like its imports
    seconds, counts = measure(records, rules, args.partitions, args.repeat)
    print(f"{events} events in {len(records)} records; outcomes {counts}")
    print(f"engine: {seconds * 1e6 / events:.2f} us/event CPU (min of {args.repeat})")
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(run, records, rules, args.partitions)
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(20)
        print(out.getvalue())


if __name__ == "__main__":
    main()
