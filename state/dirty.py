"""Which partitions changed since their last publish, kept right across the publish.

A publish takes the partitions marked changed, encodes them and then waits for Redis.
Events applied while it waits change those partitions again; unmarking them only after
the wait lost that mark, so their last changes stayed unpublished until something else
changed them or the periodic full republish came (the bench's obvious Faust baseline,
which did the same, waited forever for its last five events). So the publish unmarks
them before it waits, and marks them again if it fails:

>>> import asyncio
>>> dirty = {0, 1}
>>> async def publish() -> None:
...     dirty.add(1)  # an event applied to partition 1 while Redis answers
>>> asyncio.run(publish_marked(dirty, {0, 1}, publish))
>>> dirty
{1}
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def publish_marked(
    dirty: set[int], chosen: set[int], publish: Callable[[], Awaitable[T]]
) -> T:
    """Unmark ``chosen`` in ``dirty``, then run ``publish`` (which encodes them before its
    first wait); if it fails, mark them again so the next publish retries them."""
    dirty.difference_update(chosen)
    try:
        return await publish()
    except BaseException:
        dirty.update(chosen)
        raise
