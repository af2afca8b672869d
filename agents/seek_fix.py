"""A fix of Faust 0.15 on aiokafka 0.14: after a rebalance, resume where the group committed.

Installed by every Faust app of this repository (the worker, and the bench's obvious
Faust baseline, which lost records the same way).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP


async def _seek_in_thread(thread: AIOKafkaConsumerThread, consumer: Any) -> Mapping[TP, int]:
    committed: Mapping[TP, int] = await consumer.seek_to_committed()
    for tp, offset in committed.items():
        if not offset and thread.app.topics.acks_enabled_for(tp.topic):
            consumer.seek(tp, 0)  # below the log start: reset to "earliest"
    return committed


async def seek_to_committed_or_start(self: AIOKafkaConsumerThread) -> Mapping[TP, int]:
    """Seek each source partition to its committed offset, *or to its start* if none.

    After every rebalance Faust seeks to the committed offsets (``perform_seek``), but
    aiokafka 0.14's ``seek_to_committed`` leaves the fetch position alone when a
    partition has no committed offset (or 0), and Faust's commit check skips its gap
    test then. A worker that kept such a partition across a rebalance, with records
    fetched but dropped from its buffers (Faust clears them on revoke), resumed after
    them and committed past them: those events were never applied (seen in
    tests/reliability: the first records of a partition lost when a third worker joined
    before the first commit).
    """
    committed: Mapping[TP, int] = await self.call_thread(
        _seek_in_thread, self, self._ensure_consumer()
    )
    return committed


def install() -> None:
    """Make Faust's consumer thread use :func:`seek_to_committed_or_start`."""
    AIOKafkaConsumerThread.seek_to_committed = seek_to_committed_or_start  # type: ignore[method-assign]
