"""Cross-entity facts: a deal's win reaching its lead and its account.

When a deal's snapshot changes, :func:`link_updates` says which leads and accounts must
learn the deal's current won time (or that it no longer counts for them). Each fact
carries a token, the vector of the deal's relevant register tokens, which only grows as
the deal's snapshot grows; so the receiver keeps the newest fact whatever the order.
"""

from __future__ import annotations

from typing import Any

from state.calendar import BusinessCalendar
from state.snapshot import Snapshot, is_alive

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


Targets = dict[str, Any]


def link_targets(snapshot: Snapshot | None, cal: BusinessCalendar) -> Targets:
    """Every entity key the deal points to, with the deal's won time (ms) or None."""
    if snapshot is None:
        return {}
    stored = snapshot["f"]
    lead, account = stored.get("lead_id"), stored.get("account_id")
    if lead is None and account is None:
        return {}  # the common case: nothing to link
    value = None
    if is_alive(snapshot) and deal_status(_values(stored, ("status", "stage"))) == "won":
        closed = stored.get("closed_at")
        value = cal.instant_ms(None if closed is None else closed[0])
    out: dict[str, Any] = {}
    if lead is not None and lead[0]:
        out[f"lead:{lead[0]}"] = value
    if account is not None and account[0]:
        out[f"account:{account[0]}"] = value
    return out


def _values(stored: dict[str, list[Any]], names: tuple[str, ...]) -> dict[str, Any]:
    return {name: stored[name][0] for name in names if name in stored}


def link_updates(
    old: Snapshot | None, new: Snapshot, cal: BusinessCalendar
) -> list[tuple[str, list[Any], Any]]:
    """(target entity key, token, won time ms or None) for every target whose fact changed."""
    return target_updates(link_targets(old, cal), new, link_targets(new, cal))


def target_updates(
    before: Targets, new: Snapshot, after: Targets
) -> list[tuple[str, list[Any], Any]]:
    """:func:`link_updates` from the targets of the old and new snapshots (already known)."""
    if not before and not after:
        return []
    if before == after:
        return []  # the common case: no fact changed
    token = _token(new)
    updates = []
    for target in sorted(before.keys() | after.keys()):
        value = after.get(target)
        if target not in before or before[target] != value or target not in after:
            updates.append((target, token, value))
    return updates
