"""Cross-entity facts: a deal's win reaching its lead and its account.

When a deal's snapshot changes, :func:`link_updates` says which leads and accounts must
learn the deal's current won time (or that it no longer counts for them). Each fact
carries a token, the vector of the deal's relevant register tokens, which only grows as
the deal's snapshot grows; so the receiver keeps the newest fact whatever the order.
"""

from __future__ import annotations

from typing import Any

from state.calendar import BusinessCalendar
from state.snapshot import Snapshot, field_values, is_alive

LINK_FIELDS = {"lead": "lead_id", "account": "account_id"}
_RELEVANT = ("status", "stage", "closed_at", "lead_id", "account_id")
_NONE = [-1, ""]


def deal_status(fields: dict[str, Any]) -> str:
    """``won``, ``lost`` or ``open`` from the deal's status, else from its stage name."""
    raw = str(fields.get("status") or fields.get("stage") or "open").lower().replace(" ", "")
    if raw in ("won", "closedwon"):
        return "won"
    if raw in ("lost", "closedlost"):
        return "lost"
    return "open"


def _token(snapshot: Snapshot) -> list[Any]:
    alive = snapshot["a"]
    vector = [list(alive[1:]) if alive else _NONE]
    for name in _RELEVANT:
        entry = snapshot["f"].get(name)
        vector.append(list(entry[1:]) if entry else _NONE)
    return vector


def _targets(snapshot: Snapshot | None, cal: BusinessCalendar) -> dict[str, Any]:
    if snapshot is None:
        return {}
    stored = snapshot["f"]
    if "lead_id" not in stored and "account_id" not in stored:
        return {}  # the common case: nothing to link
    fields = field_values(snapshot)
    won = is_alive(snapshot) and deal_status(fields) == "won"
    value = cal.instant_ms(fields.get("closed_at")) if won else None
    out: dict[str, Any] = {}
    for entity, name in LINK_FIELDS.items():
        if fields.get(name):
            out[f"{entity}:{fields[name]}"] = value
    return out


def link_updates(
    old: Snapshot | None, new: Snapshot, cal: BusinessCalendar
) -> list[tuple[str, list[Any], Any]]:
    """(target entity key, token, won time ms or None) for every target whose fact changed."""
    before, after = _targets(old, cal), _targets(new, cal)
    if not before and not after:
        return []
    token = _token(new)
    updates = []
    for target in sorted(before.keys() | after.keys()):
        value = after.get(target)
        if target not in before or before[target] != value or target not in after:
            updates.append((target, token, value))
    return updates
