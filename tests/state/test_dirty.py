"""Partitions changed while their publish waits for Redis stay marked for the next one."""

from __future__ import annotations

import asyncio

import pytest

from state.dirty import publish_marked


async def test_a_change_during_the_wait_is_published_next_time_and_a_failure_retries_all() -> None:
    dirty = {0, 1, 2}
    waiting = asyncio.Event()
    release = asyncio.Event()

    async def publish() -> str:
        waiting.set()
        await release.wait()  # Redis answering
        return "ok"

    async def apply_meanwhile() -> None:
        await waiting.wait()
        dirty.add(0)  # an event applied to a partition being published
        dirty.add(3)  # and to one that was not chosen
        release.set()

    result, _ = await asyncio.gather(publish_marked(dirty, {0, 1}, publish), apply_meanwhile())
    assert result == "ok"
    assert dirty == {0, 2, 3}

    async def failing() -> None:
        dirty.add(5)
        raise ConnectionError("redis down")

    with pytest.raises(ConnectionError):
        await publish_marked(dirty, {0, 2}, failing)
    assert dirty == {0, 2, 3, 5}
