"""Sending only the newest link fact per (target, source) leaves the targets as all facts do."""

from __future__ import annotations

import random
from typing import Any

import pytest

from agents.link_buffer import LinkBuffer
from state.processor import PartitionState
from state.rules import Rules


def _deal_events(rng: random.Random, n: int) -> list[dict[str, Any]]:
    """Changes of a few deals that move between leads and accounts, win, lose and reopen,
    with versions out of order and duplicates."""
    events = []
    for i in range(n):
        fields: dict[str, Any] = {}
        if rng.random() < 0.5:
            fields["status"] = rng.choice(["open", "won", "won", "lost"])
        if rng.random() < 0.3:
            fields["lead_id"] = rng.choice(["L1", "L2", "L3", ""])
        if rng.random() < 0.3:
            fields["account_id"] = rng.choice(["C1", "C2"])
        if rng.random() < 0.4 or fields.get("status") == "won":
            fields["closed_at"] = f"2024-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}"
        events.append(
            {
                "event_id": f"e{i}",
                "source": "test",
                "entity": "deal",
                "entity_id": f"D{rng.randint(1, 4)}",
                "change": rng.choice(["update"] * 12 + ["create", "delete"]),
                "occurred_at": f"2024-03-0{rng.randint(1, 9)}T10:00:00Z",
                "version": rng.randint(1, 30),
                "fields": fields,
            }
        )
    return events + rng.sample(events, n // 10)  # redelivered


def _targets_after(facts: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[Any, int]]:
    target = PartitionState(Rules(), {})
    for fact in facts:
        assert target.apply(fact).status in ("applied", "duplicate")
    return dict(target.store), target.aggregates.values


@pytest.mark.parametrize("seed", range(20))
def test_newest_fact_per_source_and_target_gives_the_same_targets(seed: int) -> None:
    rng = random.Random(seed)
    source = PartitionState(Rules(), {})
    every: list[dict[str, Any]] = []
    sent: list[dict[str, Any]] = []
    buffer = LinkBuffer()
    for event in _deal_events(rng, 200):
        for fact in source.apply(event).links:
            every.append(fact)
            buffer.add(fact)
        if rng.random() < 0.1:  # the worker's timer, a full buffer or a commit
            sent += buffer.take()
    sent += buffer.take()
    assert len(sent) < len(every)  # the buffer did coalesce
    assert _targets_after(sent) == _targets_after(every)
    assert any(fact["value"] is not None for fact in every)  # won times did travel
