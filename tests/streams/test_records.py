"""Record format on the events topic: single events or batches, Kafka's partitioner."""

from __future__ import annotations

import orjson
import pytest

from streams.records import (
    Undecodable,
    decode_record,
    encode_batch,
    encode_single,
    group_by_partition,
    partition_for,
)
from streams.schema import entity_key


def event(entity_id: str, entity: str = "deal") -> dict[str, object]:
    return {
        "event_id": f"e-{entity_id}",
        "source": "test",
        "entity": entity,
        "entity_id": entity_id,
        "change": "create",
        "occurred_at": "2017-03-01T10:00:00Z",
        "version": 1,
        "fields": {"amount": 1},
    }


@pytest.mark.parametrize(
    ("key", "java_murmur2"),
    [
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        (b"abc", 479470107),
    ],
)
def test_partitions_match_the_java_clients_default_partitioner(
    key: bytes, java_murmur2: int
) -> None:
    """Kafka's test vectors for ``Utils.murmur2``; partition = toPositive(hash) % n."""
    for partitions in (1, 3, 12):
        assert partition_for(key.decode(), partitions) == (java_murmur2 & 0x7FFFFFFF) % partitions


def test_a_single_event_round_trips() -> None:
    assert decode_record(encode_single(event("D1"))) == [event("D1")]


def test_a_batch_decodes_to_its_events_in_order() -> None:
    events = [event("D1"), event("D2"), event("L1", "lead")]
    assert decode_record(encode_batch(events)) == events


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "empty record value"),
        (b"{not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'"text"', "not a JSON object"),
        (b'{"batch": 1, "events": {"a": 1}}', "batch without an 'events' list"),
    ],
)
def test_undecodable_records_say_why(value: bytes | None, reason: str) -> None:
    (item,) = decode_record(value)
    assert isinstance(item, Undecodable) and item.reason.startswith(reason)


def test_a_bad_event_inside_a_batch_does_not_spoil_the_others() -> None:
    items = decode_record(orjson.dumps({"batch": 1, "events": [event("D1"), 42]}))
    assert items[0] == event("D1")
    assert isinstance(items[1], Undecodable) and items[1].raw == 42


def test_grouping_puts_each_event_in_a_record_of_its_entitys_partition() -> None:
    events = [event(f"D{i}") for i in range(40)] + [event(f"L{i}", "lead") for i in range(10)]
    records = group_by_partition(events, 3, max_batch=7)
    seen = []
    for partition, value in records:
        batch = decode_record(value)
        assert 1 <= len(batch) <= 7
        for item in batch:
            assert isinstance(item, dict)
            key = entity_key(str(item["entity"]), str(item["entity_id"]))
            assert partition_for(key, 3) == partition
            seen.append(item)
    assert sorted(e["event_id"] for e in seen) == sorted(e["event_id"] for e in events)


def test_grouping_keeps_the_order_of_events_within_a_partition() -> None:
    """The same entity's events stay in producer order (one partition, in order)."""
    events = [{**event("D1"), "version": v, "event_id": f"e{v}"} for v in range(1200)]
    records = group_by_partition(events, 3, max_batch=500)
    assert [len(decode_record(v)) for _, v in records] == [500, 500, 200]
    decoded = [e for _, v in records for e in decode_record(v)]
    assert [e["version"] for e in decoded] == list(range(1200))  # type: ignore[index]


def test_grouping_nothing_gives_no_records() -> None:
    assert group_by_partition([], 3) == []
