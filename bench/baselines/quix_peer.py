"""The peer: the same KPI subset with Quix Streams (``quixstreams``) and its state store.

The idiomatic Quix pipeline over single-event records keyed ``entity:id``:

1. count every input message (progress);
2. keep deal events; per deal key, merge the event into the deal's state in the state
   store (per-field last-writer-wins, :mod:`bench.kpi_subset`) and emit the contribution
   deltas ``{"g": "rep|month", "d": [cents, won, lost]}`` (none for no-op duplicates);
3. ``group_by`` the group (a repartition topic), and keep each group's running totals in
   the state store;
4. a sink publishes the latest totals of each group and the progress (input messages
   counted, last offsets processed per topic and partition) to Redis at every
   checkpoint (``commit_interval``), under ``<prefix>:aggregates`` and
   ``<prefix>:progress``.

Configured by environment (set by the harness): ``BENCH_BOOTSTRAP``, ``BENCH_TOPIC``,
``BENCH_APP_ID`` (consumer group), ``BENCH_DATADIR`` (state dir), ``BENCH_REDIS_URL``,
``BENCH_PREFIX``, ``BENCH_COMMIT_INTERVAL`` (seconds). Run:
``python -m bench.baselines.quix_peer``; stop with SIGTERM.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from typing import Any

import orjson
import redis
from quixstreams import Application
from quixstreams.models import HeadersTuples
from quixstreams.sinks import BaseSink

from bench.kpi_subset import Fx, contribution, deltas, merge_deal

fx = Fx.load()
processed = 0
last_offsets: dict[str, dict[int, int]] = defaultdict(dict)


def on_message_processed(topic: str, partition: int, offset: int) -> None:
    last_offsets[topic][partition] = offset


def count(_value: Any) -> None:
    global processed
    processed += 1


def deal_deltas(value: dict[str, Any], state: Any) -> list[dict[str, Any]]:
    """Merge a deal event into the deal's state; the (rep, month) deltas it causes."""
    old = state.get("deal")
    new, changed = merge_deal(old, value)
    if not changed:
        return []
    state.set("deal", new)
    return [
        {"g": group, "d": change}
        for group, *change in deltas(contribution(old, fx), contribution(new, fx))
    ]


def running_total(value: dict[str, Any], state: Any) -> dict[str, Any]:
    """Add a delta to its group's totals (cents, won, lost)."""
    total = [a + b for a, b in zip(state.get("t", [0, 0, 0]), value["d"], strict=True)]
    state.set("t", total)
    return {"g": value["g"], "t": total}


class RedisAggregatesSink(BaseSink):
    """Publishes the newest totals per group and the progress at every checkpoint."""

    def __init__(self, url: str, prefix: str) -> None:
        super().__init__()
        self.client = redis.Redis.from_url(url)
        self.prefix = prefix
        self.latest: dict[str, list[int]] = {}

    def add(
        self,
        value: Any,
        key: Any,
        timestamp: int,
        headers: HeadersTuples,
        topic: str,
        partition: int,
        offset: int,
    ) -> None:
        self.latest[value["g"]] = value["t"]

    def flush(self) -> None:
        pipe = self.client.pipeline(transaction=False)
        if self.latest:
            mapping = {g: orjson.dumps(t) for g, t in self.latest.items()}
            pipe.hset(f"{self.prefix}:aggregates", mapping=mapping)  # type: ignore[arg-type]
        progress = {
            "count": processed,
            "offsets": orjson.dumps(last_offsets, option=orjson.OPT_NON_STR_KEYS),
            "published_at": repr(time.time()),
        }
        pipe.hset(f"{self.prefix}:progress", mapping=progress)  # type: ignore[arg-type]
        pipe.execute()
        self.latest.clear()


def build() -> Application:
    """The Quix application and its dataframe."""
    env = os.environ.get
    app = Application(
        broker_address=env("BENCH_BOOTSTRAP", "127.0.0.1:29392"),
        consumer_group=env("BENCH_APP_ID", "bench-quix"),
        auto_offset_reset="earliest",
        commit_interval=float(env("BENCH_COMMIT_INTERVAL", "1.0")),
        state_dir=env("BENCH_DATADIR", ".salespulse-bench/quix"),
        loglevel="WARNING",
        on_message_processed=on_message_processed,
    )
    topic = app.topic(
        env("BENCH_TOPIC", "bench-quix-events"), key_deserializer="str", value_deserializer="json"
    )
    sdf = app.dataframe(topic)
    sdf = sdf.update(count)
    sdf = sdf.filter(lambda value: value["entity"] == "deal")
    sdf = sdf.apply(deal_deltas, stateful=True, expand=True)
    sdf = sdf.group_by(lambda value: value["g"], name="rep_month")
    sdf = sdf.apply(running_total, stateful=True)
    sdf.sink(
        RedisAggregatesSink(
            env("BENCH_REDIS_URL", "redis://127.0.0.1:26679/0"), env("BENCH_PREFIX", "bench-quix")
        )
    )
    return app


if __name__ == "__main__":
    build().run()
