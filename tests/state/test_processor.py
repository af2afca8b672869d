"""PartitionState: validation, duplicates, link facts between deals, leads and accounts."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from state.processor import LINK_MARKER, PartitionState
from state.readout import Period, Readout
from tests.state.strategies import FIELDS, event_factory, rules_factory


def test_an_invalid_event_is_reported_with_its_reason_and_changes_nothing() -> None:
    ps = PartitionState(rules_factory(), {})
    outcome = ps.apply({**event_factory(), "entity": "planet"})
    assert outcome.status == "invalid" and outcome.reason.startswith("entity:")
    assert ps.store == {} and ps.aggregates.values == {}


def test_a_redelivered_event_is_a_duplicate_and_counts_once() -> None:
    ps = PartitionState(rules_factory(), {})
    ev = event_factory("deal", "D1", status="won", amount=10, closed_at="2017-03-01")
    assert [o.status for o in ps.apply_all([ev, ev, ev])] == ["applied", "duplicate", "duplicate"]
    assert Readout(dict(ps.aggregates.values)).value("deals_won", Period()) == 1


def test_a_won_deal_tells_its_lead_and_account_its_close_time() -> None:
    ps = PartitionState(rules_factory(timezone="UTC"), {})
    outcome = ps.apply(
        event_factory(
            "deal",
            "D1",
            status="won",
            amount=10,
            closed_at="2017-03-01",
            lead_id="L1",
            account_id="A1",
        )
    )
    targets = {(r["entity"], r["entity_id"]): r["value"] for r in outcome.links}
    assert targets == {("lead", "L1"): 1488326400000, ("account", "A1"): 1488326400000}
    assert all(r[LINK_MARKER] == 1 and r["from"] == "deal:D1" for r in outcome.links)


def test_a_redelivered_deal_event_resends_its_current_link_facts() -> None:
    """So a link record lost before it was produced is recovered by redelivery."""
    ps = PartitionState(rules_factory(), {})
    ev = event_factory("deal", "D1", status="won", closed_at="2017-03-01", lead_id="L1")
    first, again = ps.apply(ev), ps.apply(ev)
    assert again.status == "duplicate" and again.links == first.links


def test_moving_a_deal_to_another_lead_withdraws_the_fact_from_the_first() -> None:
    ps = PartitionState(rules_factory(), {})
    ps.apply(event_factory("deal", "D1", status="won", closed_at="2017-03-01", lead_id="L1"))
    outcome = ps.apply(event_factory("deal", "D1", "update", 2, lead_id="L2"))
    facts = {r["entity_id"]: r["value"] for r in outcome.links}
    assert facts["L1"] is None and facts["L2"] is not None


def test_a_lead_converts_only_once_it_has_events_of_its_own() -> None:
    ps = PartitionState(rules_factory(timezone="UTC"), {})
    won = ps.apply(event_factory("deal", "D1", status="won", closed_at="2017-03-01", lead_id="L1"))
    ps.apply_all(won.links)
    readout = Readout(dict(ps.aggregates.values))
    assert readout.value("lead_conversion_rate", Period()) is None  # lead unknown yet
    assert readout.value("new_customers", Period()) == 0
    ps.apply(event_factory("lead", "L1", stage="mql", occurred_at="2017-02-01T10:00:00Z"))
    readout = Readout(dict(ps.aggregates.values))
    assert readout.value("lead_conversion_rate", Period()) == 1.0


def test_a_stale_link_fact_is_a_duplicate() -> None:
    ps = PartitionState(rules_factory(), {})
    first = ps.apply(
        event_factory("deal", "D1", status="won", closed_at="2017-03-01", account_id="A1")
    )
    second = ps.apply(event_factory("deal", "D1", "update", 2, status="open"))
    assert [o.status for o in ps.apply_all(second.links + first.links)] == ["applied", "duplicate"]
    assert Readout(dict(ps.aggregates.values)).value("new_customers", Period()) == 0


def test_link_records_for_other_entities_or_without_fields_are_invalid() -> None:
    ps = PartitionState(rules_factory(), {})
    assert (
        ps.apply(
            {
                LINK_MARKER: 1,
                "entity": "deal",
                "entity_id": "D1",
                "from": "x",
                "token": [],
                "value": None,
            }
        ).status
        == "invalid"
    )
    assert ps.apply({LINK_MARKER: 1, "entity": "lead"}).status == "invalid"


@pytest.mark.parametrize(
    ("entity", "fields"),
    [
        ("deal", {"status": "open", "probability": "high"}),
        ("deal", {"status": "won", "amount": "Infinity"}),
        ("deal", {"status": "won", "amount": "1e999999999"}),
        ("deal", {"status": "won", "closed_at": 1e20}),
        ("spend", {"amount": [1, 2]}),
    ],
)
def test_a_malformed_field_value_is_a_dead_letter_not_a_crash(
    entity: str, fields: dict[str, Any]
) -> None:
    ps = PartitionState(rules_factory(), {})
    outcome = ps.apply(event_factory(entity, "X1", **fields))
    assert outcome.status == "invalid" and outcome.reason.startswith("fields:")
    assert ps.store == {} and ps.aggregates.values == {}


def test_a_lead_stage_that_is_not_a_scalar_is_a_dead_letter() -> None:
    ps = PartitionState(rules_factory(), {})
    outcome = ps.apply(event_factory("lead", "L1", stage=["mql"]))
    assert outcome.status == "invalid" and outcome.reason == "fields: stage: not a scalar"
    assert Readout(dict(ps.aggregates.values)).value("qualified_leads", Period()) == 0


def test_rejecting_a_bad_field_value_does_not_depend_on_delivery_order() -> None:
    good = event_factory("deal", "D1", status="won", amount=10, owner="ann")
    bad = {**event_factory("deal", "D1", currency="XXX"), "version": 0, "event_id": "e0"}
    first, second = PartitionState(rules_factory(), {}), PartitionState(rules_factory(), {})
    assert [o.status for o in first.apply_all([bad, good])] == ["invalid", "applied"]
    assert [o.status for o in second.apply_all([good, bad])] == ["applied", "invalid"]
    assert first.store == second.store


def test_a_link_record_with_an_incomparable_token_is_invalid() -> None:
    ps = PartitionState(rules_factory(), {})
    ps.apply_all(ps.apply(event_factory("deal", "D1", status="won", lead_id="L1")).links)
    bad = {
        LINK_MARKER: 1,
        "entity": "lead",
        "entity_id": "L1",
        "from": "deal:D1",
        "token": [["x", 1]],
        "value": None,
    }
    assert ps.apply(bad).status == "invalid"


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["2017-03-01", "2017-03-01T10:00:00Z", "won", "EUR", "1e400", "NaN"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=5,
)
FIELD_NAMES = sorted({name for spec in FIELDS.values() for name in spec} | {"x"})


@settings(max_examples=200, deadline=None)
@given(
    entity=st.sampled_from(sorted(FIELDS)),
    fields=st.dictionaries(st.sampled_from(FIELD_NAMES), json_values, max_size=5),
    change=st.sampled_from(["create", "update", "delete", "merge", "restore"]),
)
def test_no_field_value_can_crash_a_partition(
    entity: str, fields: dict[str, Any], change: str
) -> None:
    """A poison record would stop the partition's agent and come back after every
    restart: whatever the field values, the outcome is applied, duplicate or invalid."""
    ps = PartitionState(rules_factory(), {})
    ps.apply(event_factory(entity, "X1", status="won", lead_id="L1", account_id="A1"))
    outcome = ps.apply(event_factory(entity, "X1", change, 2, **fields))
    assert outcome.status in ("applied", "duplicate", "invalid")
    for link in outcome.links:
        assert ps.apply(link).status in ("applied", "duplicate", "invalid")


def test_day_buckets_older_than_retention_are_dropped_and_recent_ones_kept() -> None:
    rules = rules_factory()
    today = rules.calendar.today()
    kept = (today - timedelta(days=10)).isoformat()
    rules = replace(rules, retention_days=30)
    ps = PartitionState(rules, {})
    ps.apply(event_factory("deal", "OLD", status="won", amount=5, closed_at="2017-03-01"))
    ps.apply(event_factory("deal", "NEW", status="won", amount=7, closed_at=kept))
    readout = Readout(dict(ps.aggregates.values))
    assert readout.value("won_revenue", Period()) == 7.0
    assert {k[1] for k in ps.aggregates.values} <= {"", kept}
    ps.rebuild()
    assert Readout(dict(ps.aggregates.values)).value("won_revenue", Period()) == 7.0


@pytest.mark.parametrize("cache", [2, 4, 8, 16])
def test_aggregates_equal_a_rebuild_whatever_the_contribution_cache_forgot(cache: int) -> None:
    """A small cache rotates its generations often: an entity's old contribution comes from
    the newer generation, the older one or a recomputation, and the sum stays exact."""
    rnd, rules = random.Random(cache), rules_factory()
    state = PartitionState(rules, {}, contribution_cache=cache)
    versions: dict[str, int] = {}
    for _ in range(600):
        entity_id = f"D{rnd.randrange(12)}"
        version = versions[entity_id] = versions.get(entity_id, 0) + rnd.choice([0, 1, 1, 2])
        fields = {
            "amount": rnd.choice([10, 20, 35]),
            "status": rnd.choice(["open", "won", "lost"]),
            "owner": rnd.choice(["ann", "bob"]),
            "closed_at": rnd.choice(["2017-03-01", "2017-03-02"]),
        }
        event = event_factory("deal", entity_id, "update" if version > 1 else "create", version)
        event["fields"] = dict(rnd.sample(sorted(fields.items()), rnd.randint(1, len(fields))))
        assert state.apply(event).status != "invalid"
        assert len(state._cache) <= cache // 2 and len(state._older) <= cache // 2
    rebuilt = PartitionState(rules, dict(state.store))
    rebuilt.rebuild()
    assert state.aggregates.values == rebuilt.aggregates.values
