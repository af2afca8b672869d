"""Link facts on their way to their owners' partitions, sent a few times a second.

A deal's change sends derived facts (its won time, its account) to the lead and account it
points at, which may live in any partition (:mod:`state.links`). Sent as they were made,
each source record gave up to one small record per target partition: in the bench latency
run (10,000 events/s in records of about 125 events) three records in four on the events
topic were such link records of a few facts each, every one paying Faust's per-record
cost (about 200 microseconds here) and a produce of its own.

The buffer keeps the newest fact per (target, source) until :meth:`LinkBuffer.take`: the
worker sends them every ``LINK_INTERVAL_S``, when many are pending, and before every
producer flush, which Faust runs before it commits source offsets; so, as before, no
source offset is committed before the facts its events made were acknowledged. Keeping
only the newest changes nothing at the target: a source's fact token only grows, and the
target keeps the fact with the greatest token (:func:`state.snapshot.apply_link`). After a
crash, the source events are applied again and re-send their facts (a duplicate deal
event sends all of its current ones).

>>> buf = LinkBuffer()
>>> buf.add({"entity": "lead", "entity_id": "L1", "from": "deal:D1", "token": [1], "value": 5})
>>> buf.add({"entity": "lead", "entity_id": "L1", "from": "deal:D1", "token": [2], "value": 7})
>>> len(buf), [f["value"] for f in buf.take()], len(buf)
(1, [7], 0)
"""

from __future__ import annotations

from typing import Any

LINK_INTERVAL_S = 0.05
SEND_AT = 5_000  # pending facts that are sent at once, whatever the interval


class LinkBuffer:
    """The newest pending link fact per (target entity, source)."""

    def __init__(self) -> None:
        self._pending: dict[tuple[str, str, str], dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, fact: dict[str, Any]) -> None:
        """Keep ``fact`` (a :func:`state.processor.link_record`) in place of an older one
        from the same source to the same target."""
        self._pending[(fact["entity"], fact["entity_id"], fact["from"])] = fact

    def take(self) -> list[dict[str, Any]]:
        """Every pending fact (and forget them)."""
        pending, self._pending = self._pending, {}
        return list(pending.values())
