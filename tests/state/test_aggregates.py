"""Partition aggregates: contribution deltas, rebuilds, the JSON published to Redis."""

from __future__ import annotations

import random
from typing import Any

from state import aggregates
from state.aggregates import PartitionAggregates, decode_aggregates, sum_aggregates
from state.contributions import AggKey
from state.processor import PartitionState
from tests.state.strategies import event_factory, rules_factory


def key(component: str, day: str = "2017-03-01", rep: str = "ann", kind: str = "") -> AggKey:
    return (component, day, rep, "east", "nyc", "", "", kind)


def test_replacing_a_contribution_adds_the_new_and_removes_the_old() -> None:
    agg = PartitionAggregates()
    agg.replace({}, {key("won_count"): 1, key("won_amount"): 500})
    agg.replace({}, {key("won_count"): 1, key("won_amount"): 300})
    agg.replace({key("won_count"): 1, key("won_amount"): 500}, {key("lost_count"): 1})
    assert agg.values == {key("won_count"): 1, key("won_amount"): 300, key("lost_count"): 1}


def test_components_that_sum_to_zero_disappear() -> None:
    agg = PartitionAggregates()
    agg.replace({}, {key("won_amount"): 500})
    agg.replace({key("won_amount"): 500}, {key("won_amount", rep="bob"): 500})
    assert agg.values == {key("won_amount", rep="bob"): 500}


def test_rebuilding_gives_the_sum_of_the_contributions() -> None:
    agg = PartitionAggregates()
    agg.replace({}, {key("stale"): 7})
    agg.rebuild([{key("won_count"): 1}, {key("won_count"): 1, key("lost_count"): 1}, {}])
    assert agg.values == {key("won_count"): 2, key("lost_count"): 1}


def test_a_rebuild_leaves_the_shards_that_adding_each_contribution_leaves() -> None:
    """The rebuild sums into one dict and shards it once; the result must be exactly what
    adding every contribution one by one gives (same shards, no zero entries), and every
    shard it replaced or filled must be published again."""
    rnd = random.Random(7)
    days = ["", "2017-03-01", "2017-03-02", "2017-04-30"]
    parts = [
        {
            f"{rnd.choice(['won_count', 'open_amount'])}|{rnd.choice(days)}|r{rnd.randrange(3)}"
            f"|||||": rnd.choice([-2, -1, 1, 2])
            for _ in range(rnd.randrange(4))
        }
        for _ in range(400)
    ]
    one_by_one = PartitionAggregates()
    for part in parts:
        one_by_one.replace({}, part)
    rebuilt = PartitionAggregates()
    rebuilt.replace({}, {"stale|2016-01-01|r||||||": 1})
    rebuilt.take_dirty()
    rebuilt.rebuild(parts)
    assert rebuilt.shards == {name: s for name, s in one_by_one.shards.items() if s}
    assert all(n for shard in rebuilt.shards.values() for n in shard.values())
    assert rebuilt.take_dirty() == {"2016-01-01", *rebuilt.shards}
    assert rebuilt.take_changes() is None  # readers re-read every shard


def test_published_json_decodes_to_the_same_aggregates() -> None:
    agg = PartitionAggregates()
    agg.replace({}, {key("won_amount"): 12345, key("open_count", day=""): 2})
    for name in agg.shards:
        shard = agg.encode_shard(name)
        assert decode_aggregates(shard) == decode_aggregates(shard.decode())
    assert agg.decode_published() == agg.values


def test_labels_containing_the_separator_survive_publishing() -> None:
    """Owners, sources and kinds (spend categories, quota periods) may contain '|', the
    separator of published keys: they are stored with '/' so every key keeps 8 parts."""
    ps = PartitionState(rules_factory(), {})
    ps.apply(
        event_factory(
            "spend", "P1", amount=10, category="paid|search", owner="a|b", spent_at="2017-03-01"
        )
    )
    ps.apply(event_factory("quota", "Q1", amount=10, period="odd|kind", period_start="2017-03-01"))
    decoded = ps.aggregates.decode_published()
    assert decoded == ps.aggregates.values
    assert all(len(k) == 8 for k in decoded)
    assert {k[7] for k in decoded} == {"paid/search", "odd/kind"}
    assert {k[2] for k in decoded} == {"a/b", ""}


def test_summing_partitions_adds_matching_keys_and_drops_zeros() -> None:
    total = sum_aggregates(
        [{key("won_count"): 2, key("x"): 1}, {key("won_count"): 1, key("x"): -1}, {}]
    )
    assert total == {key("won_count"): 3}


def test_a_reopened_deal_moves_from_won_to_open_pipeline() -> None:
    ps = PartitionState(rules_factory(timezone="UTC"), {})
    ps.apply(
        event_factory("deal", "D1", status="won", amount=10, closed_at="2017-03-01", owner="ann")
    )
    assert {k[0] for k in ps.aggregates.values} >= {"won_count", "won_amount"}
    ps.apply(event_factory("deal", "D1", "update", 2, status="open", stage="proposal"))
    components = {k[0]: n for k, n in ps.aggregates.values.items()}
    assert "won_count" not in components and "won_amount" not in components
    assert components["open_count"] == 1 and components["open_amount"] == 1000
    assert components["pipeline_weighted_amount"] == 600  # proposal: 60 %


def test_change_sets_hold_each_changed_key_with_its_new_value(monkeypatch: Any) -> None:
    agg = PartitionAggregates()
    agg.replace({}, {"won_count|2024-01-02|ann|||||": 1, "won_amount|2024-01-02|ann|||||": 5})
    agg.take_changes()
    agg.replace({"won_amount|2024-01-02|ann|||||": 5}, {"won_amount|2024-01-03|ann|||||": 5})
    agg.replace({}, {"open_count||ann|||||": 1})
    assert agg.take_changes() == {
        "won_amount|2024-01-02|ann|||||": 0,
        "won_amount|2024-01-03|ann|||||": 5,
        "open_count||ann|||||": 1,
    }
    assert agg.take_changes() == {}
    monkeypatch.setattr(aggregates, "MAX_CHANGED_KEYS", 2)
    agg.replace({}, {f"won_count|2024-01-0{d}|bob|||||": 1 for d in range(1, 5)})
    assert agg.take_changes() is None  # too many: readers re-read the shards
    agg.replace({}, {"won_count|2024-01-09|bob|||||": 1})
    assert agg.take_changes() == {"won_count|2024-01-09|bob|||||": 1}
