"""Per-entity snapshots: per-field last writer wins, lifecycle, milestones, link facts."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from state.snapshot import (
    FIRST_SEEN,
    Snapshot,
    apply_event,
    apply_link,
    empty_snapshot,
    field_values,
    is_alive,
)

QUALIFIED = {"qualified": ("stage", frozenset({"mql", "sql"}))}


def wire(
    event_id: str = "e1",
    change: str = "update",
    version: int = 1,
    at: int = 1000,
    merged_into: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """An event as the processor hands it to the snapshot (with ``occurred_at_ms``)."""
    event = {
        "event_id": event_id,
        "change": change,
        "version": version,
        "occurred_at_ms": at,
        "fields": fields,
    }
    if merged_into:
        event["merged_into"] = merged_into
    return event


def replay(*events: dict[str, Any], milestones: Any = QUALIFIED) -> Snapshot:
    snapshot = None
    for event in events:
        snapshot, _ = apply_event(snapshot, event, milestones)
    assert snapshot is not None
    return snapshot


def test_a_first_event_creates_a_snapshot_with_each_field_and_its_token() -> None:
    snapshot, changed = apply_event(None, wire("e1", "create", 3, amount=10, owner="ann"), {})
    assert changed
    assert snapshot["f"] == {"amount": [10, 3, "e1"], "owner": ["ann", 3, "e1"]}
    assert snapshot["a"] == [True, 3, "e1"] and snapshot["v"] == 3
    assert field_values(snapshot) == {"amount": 10, "owner": "ann"}


def test_redelivering_an_event_changes_nothing() -> None:
    event = wire("e1", "create", 1, amount=10)
    snapshot = replay(event)
    again, changed = apply_event(snapshot, event, {})
    assert not changed and again is snapshot


def test_an_older_change_does_not_overwrite_a_newer_field() -> None:
    snapshot = replay(wire("new", version=5, amount=20), wire("old", version=4, amount=10))
    assert field_values(snapshot)["amount"] == 20


def test_equal_versions_are_ordered_by_event_id() -> None:
    a, b = wire("a", version=2, stage="demo"), wire("b", version=2, stage="proposal")
    assert field_values(replay(a, b)) == field_values(replay(b, a)) == {"stage": "proposal"}


def test_partial_updates_merge_field_by_field() -> None:
    """A newer event that only sets the owner keeps the amount of an older one."""
    snapshot = replay(
        wire("e2", version=2, owner="bob"), wire("e1", "create", 1, owner="ann", amount=10)
    )
    assert field_values(snapshot) == {"owner": "bob", "amount": 10}


def test_a_cleared_field_is_kept_as_none() -> None:
    snapshot = replay(wire("e1", version=1, owner="ann"), wire("e2", version=2, owner=None))
    assert field_values(snapshot) == {"owner": None}


def test_an_entity_is_alive_until_deleted_and_alive_again_when_restored() -> None:
    created = replay(wire("e1", "create", 1))
    deleted = replay(wire("e1", "create", 1), wire("e2", "delete", 2))
    restored = replay(wire("e3", "restore", 3), wire("e2", "delete", 2), wire("e1", "create", 1))
    assert is_alive(created) and not is_alive(deleted) and is_alive(restored)


def test_a_late_older_create_does_not_undo_a_delete() -> None:
    snapshot = replay(wire("e2", "delete", 2), wire("e1", "create", 1))
    assert not is_alive(snapshot)


def test_updates_do_not_change_existence_and_unknown_existence_means_alive() -> None:
    assert is_alive(replay(wire("e1", "update", 1, amount=1)))
    assert not is_alive(replay(wire("e1", "delete", 1), wire("e2", "update", 9, amount=2)))


def test_a_merge_removes_the_entity_and_records_where_it_went() -> None:
    snapshot = replay(wire("e1", "create", 1), wire("e2", "merge", 2, merged_into="D9"))
    assert not is_alive(snapshot)
    assert field_values(snapshot)["merged_into"] == "D9"


def test_milestones_keep_the_earliest_event_time_whatever_the_version() -> None:
    """First seen, and first seen in a qualified stage, even from an outdated change."""
    snapshot = replay(
        wire("e3", version=3, at=5000, stage="sql"),
        wire("e1", version=1, at=2000, stage="mql"),  # older version, earlier time
        wire("e2", version=2, at=1000, stage="new"),
    )
    assert snapshot["m"] == {FIRST_SEEN: 1000, "qualified": 2000}
    assert field_values(snapshot)["stage"] == "sql"


def test_the_greatest_version_is_recorded_whatever_the_order() -> None:
    """A newer event that changes nothing still raises ``v`` (order independence)."""
    create, empty = wire("e1", "create", 0), wire("e2", "update", 1)
    assert replay(create, empty) == replay(empty, create)
    assert replay(create, empty)["v"] == 1


def test_applying_an_event_does_not_modify_the_input_snapshot() -> None:
    snapshot = replay(wire("e1", "create", 1, amount=1))
    before = copy.deepcopy(snapshot)
    apply_event(snapshot, wire("e2", "update", 2, amount=2), {})
    assert snapshot == before


events = st.builds(
    wire,
    event_id=st.sampled_from("abcd"),
    change=st.sampled_from(["create", "update", "delete", "merge", "restore"]),
    version=st.integers(0, 3),
    at=st.integers(0, 10),
    merged_into=st.sampled_from([None, "X"]),
    stage=st.sampled_from(["new", "mql", "sql"]),
    amount=st.integers(0, 5),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(events, min_size=1, max_size=8), st.randoms(use_true_random=False))
def test_any_order_of_any_multiset_of_events_gives_the_same_snapshot(
    log: list[dict[str, Any]], rnd: Any
) -> None:
    # Distinct changes must have distinct (version, event_id): make event ids unique.
    log = [{**e, "event_id": f"{e['event_id']}{i}"} for i, e in enumerate(log)]
    shuffled = log + rnd.sample(log, k=len(log) // 2)
    rnd.shuffle(shuffled)
    assert replay(*shuffled) == replay(*log)


def test_a_link_fact_is_kept_only_when_its_token_is_newer() -> None:
    old, new = [[1, "a"], [-1, ""]], [[1, "a"], [2, "b"]]
    snapshot, changed = apply_link(None, "deal:D1", new, 1000)
    assert changed and snapshot["l"] == {"deal:D1": [new, 1000]}
    stale, changed = apply_link(snapshot, "deal:D1", old, None)
    assert not changed and stale is snapshot
    _, changed = apply_link(snapshot, "deal:D1", new, 1000)
    assert not changed


def test_link_facts_from_several_deals_are_kept_side_by_side() -> None:
    snapshot, _ = apply_link(None, "deal:D1", [[1, "a"]], 1000)
    snapshot, _ = apply_link(snapshot, "deal:D2", [[1, "b"]], None)
    assert snapshot["l"] == {"deal:D1": [[[1, "a"]], 1000], "deal:D2": [[[1, "b"]], None]}


def test_links_and_events_do_not_overwrite_each_other() -> None:
    linked, _ = apply_link(None, "deal:D1", [[1, "a"]], 1000)
    assert linked["f"] == {} and FIRST_SEEN not in linked["m"]  # no event of its own yet
    snapshot, _ = apply_event(linked, wire("e1", "create", 1, owner="ann"), {})
    snapshot, _ = apply_link(snapshot, "deal:D1", [[2, "a"]], 2000)
    assert field_values(snapshot) == {"owner": "ann"}
    assert snapshot["l"] == {"deal:D1": [[[2, "a"]], 2000]}


def test_an_empty_snapshot_is_alive_and_has_no_fields() -> None:
    snapshot = empty_snapshot()
    assert is_alive(snapshot) and field_values(snapshot) == {}
