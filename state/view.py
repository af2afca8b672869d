"""What the collector reads from Redis: every partition's published aggregates, summed.

:class:`ViewReader` reads every partition hash on each call (one pipelined round trip)
but decodes only the partitions whose published aggregates changed since the last read,
and re-sums only when one did, so the collector can re-read on every request that comes
more than :data:`FRESH_SECONDS` after the last read without decoding megabytes each time.
Concurrent requests share one read.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import orjson
import redis.asyncio as aioredis

from salespulse.config import Settings
from state.aggregates import decode_aggregates, sum_aggregates
from state.contributions import AggKey
from state.kpis import KpiParams
from state.publisher import partition_key
from state.readout import Readout

FRESH_SECONDS = 0.1  # a view younger than this is served as it is


@dataclass
class View:
    """Everything read from Redis at one moment."""

    aggregates: dict[AggKey, int]
    partitions: dict[int, dict[str, Any]] = field(default_factory=dict)
    read_at: float = 0.0
    params: KpiParams = field(default_factory=KpiParams)

    @cached_property
    def readout(self) -> Readout:
        return Readout(self.aggregates, self.params)


class ViewReader:
    """Reads views, reusing the decoded aggregates of partitions that did not change."""

    def __init__(
        self, client: aioredis.Redis, settings: Settings, params: KpiParams | None = None
    ) -> None:
        self.client, self.settings = client, settings
        self.params = params or KpiParams()
        self._decoded: dict[int, tuple[bytes, dict[AggKey, int]]] = {}
        self._view: View | None = None
        self._lock = asyncio.Lock()

    async def view(self, fresh_seconds: float = FRESH_SECONDS) -> View:
        """The current view; one younger than ``fresh_seconds`` is returned as it is."""
        async with self._lock:
            if self._view is None or time.time() - self._view.read_at > fresh_seconds:
                self._view = await self.read()
            return self._view

    async def read(self) -> View:
        """Read every partition now."""
        async with self.client.pipeline(transaction=False) as pipe:
            for partition in range(self.settings.partitions):
                pipe.hgetall(partition_key(self.settings.redis_key_prefix, partition))
            rows = await pipe.execute()
        changed = self._view is None
        meta: dict[int, dict[str, Any]] = {}
        for partition, row in enumerate(rows):
            if not row:
                changed |= self._decoded.pop(partition, None) is not None
                continue
            raw = row[b"aggregates"]
            cached = self._decoded.get(partition)
            if cached is None or cached[0] != raw:
                self._decoded[partition] = (raw, decode_aggregates(raw))
                changed = True
            meta[partition] = {
                "stats": orjson.loads(row.get(b"stats", b"{}")),
                "owner": row.get(b"owner", b"").decode(),
                "published_at": float(row.get(b"published_at", b"0")),
            }
        if changed or self._view is None:
            aggregates = sum_aggregates(part for _, part in self._decoded.values())
        else:
            aggregates = self._view.aggregates
        view = View(aggregates, meta, time.time(), self.params)
        if not changed and self._view is not None:  # same numbers: keep the computed readout
            view.__dict__["readout"] = self._view.readout
        return view


async def read_view(client: aioredis.Redis, settings: Settings) -> View:
    """Read and sum every partition's published aggregates once."""
    return await ViewReader(client, settings).read()
