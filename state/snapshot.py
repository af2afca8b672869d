"""Per-entity snapshots: a last-writer-wins map that makes redelivery and reordering harmless.

A snapshot holds, for every field ever set, the value and the ordering token
``[version, event_id]`` of the change that set it; an ``alive`` register (set by create,
delete, merge and restore); and *milestones*, the earliest event time at which the entity
was seen in a given state (e.g. a lead first seen in a qualified stage).

Applying an event keeps, per field, the value with the greatest token; so applying any
permutation of any multiset of events gives the same snapshot (the state is a CRDT). An
event that changes nothing is reported as a no-op and costs no state write.

>>> s, changed = apply_event(None, {"event_id": "a", "change": "create", "version": 1,
...     "occurred_at_ms": 10, "fields": {"stage": "won"}}, {})
>>> changed, s["f"]["stage"][0]
(True, 'won')
>>> apply_event(s, {"event_id": "a", "change": "create", "version": 1,
...     "occurred_at_ms": 10, "fields": {"stage": "won"}}, {})[1]
False
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Snapshot = dict[str, Any]
Token = tuple[int, str]

# Milestone rules: name -> (field, values that reach the milestone).
MilestoneRules = Mapping[str, tuple[str, frozenset[Any]]]

FIRST_SEEN = "first_seen"

_ALIVE_BY_CHANGE = {"create": True, "restore": True, "delete": False, "merge": False}


def _newer(token: Token, stored: list[Any] | None) -> bool:
    return stored is None or token > (stored[-2], stored[-1])


def empty_snapshot() -> Snapshot:
    """A snapshot of an entity nothing is known about yet."""
    return {"f": {}, "a": None, "m": {}, "l": {}, "v": 0}


def apply_event(
    snapshot: Snapshot | None,
    event: Mapping[str, Any],
    milestones: MilestoneRules,
    at_ms: int | None = None,
) -> tuple[Snapshot, bool]:
    """Apply one event (wire dict; its time is ``at_ms`` or ``occurred_at_ms``).

    Returns (snapshot, changed). The input snapshot is not modified; a changed snapshot is
    a new dict (unchanged parts are shared with the old one).
    """
    old = snapshot if snapshot is not None else empty_snapshot()
    version, event_id = int(event["version"]), str(event["event_id"])
    token: Token = (version, event_id)
    old_fields = old["f"]
    fields = old_fields
    changed = snapshot is None
    event_fields = event.get("fields", {})
    for name, value in event_fields.items():
        stored = old_fields.get(name)
        if stored is None or token > (stored[-2], stored[-1]):
            if fields is old_fields:
                fields = dict(old_fields)
            fields[name] = [value, version, event_id]
            changed = True
    alive = old["a"]
    change = event["change"]
    if change in _ALIVE_BY_CHANGE and _newer(token, alive):
        alive = [_ALIVE_BY_CHANGE[change], version, event_id]
        changed = True
    merged_into = event.get("merged_into")
    if change == "merge" and merged_into and _newer(token, fields.get("merged_into")):
        fields = dict(fields) if fields is old_fields else fields
        fields["merged_into"] = [merged_into, version, event_id]
        changed = True
    old_marks = marks = old["m"]
    at = int(event["occurred_at_ms"] if at_ms is None else at_ms)
    reached = [FIRST_SEEN]
    for name, (field, values) in milestones.items():
        value = event_fields.get(field)
        if not isinstance(value, list | dict) and value in values:  # arrays, objects: unhashable
            reached.append(name)
    for name in reached:
        if name not in marks or at < marks[name]:
            if marks is old_marks:
                marks = dict(old_marks)
            marks[name] = at
            changed = True
    if version > old["v"]:  # "v" is the greatest version seen, whatever the order
        changed = True
    if not changed:
        return old, False
    new = {"f": fields, "a": alive, "m": marks, "l": old.get("l", {}), "v": max(old["v"], version)}
    return new, True


def apply_link(
    snapshot: Snapshot | None, source: str, token: list[Any], value: Any
) -> tuple[Snapshot, bool]:
    """Record a derived fact from another entity (e.g. a linked deal's won time).

    ``token`` is the source's vector of register tokens; it grows monotonically as the
    source's snapshot grows, so the newest fact wins whatever the delivery order.
    """
    old = snapshot if snapshot is not None else empty_snapshot()
    stored = old["l"].get(source)
    if stored is not None and token <= stored[0]:
        return old, snapshot is None
    links = dict(old["l"])
    links[source] = [token, value]
    return {**old, "l": links}, True


def is_alive(snapshot: Snapshot) -> bool:
    """Whether the entity exists (not deleted or merged away)."""
    alive = snapshot["a"]
    return True if alive is None else bool(alive[0])


def field_values(snapshot: Snapshot) -> dict[str, Any]:
    """The current value of every field."""
    return {name: entry[0] for name, entry in snapshot["f"].items()}
