"""When the worker publishes next (state.pacing): budgets, the cap, catching up."""

from __future__ import annotations

import pytest

from state.pacing import (
    BEHIND_BUDGET,
    CAUGHT_UP_BUDGET,
    MAX_DELAY_S,
    LastPublish,
    publish_due,
)


def test_the_first_publish_is_due_at_once() -> None:
    assert publish_due(None, 0.0, caught_up=False)
    assert publish_due(None, 0.0, caught_up=True)


@pytest.mark.parametrize(
    ("seconds", "caught_up", "wait"),
    [
        (0.5, False, 0.5 / BEHIND_BUDGET),  # behind: 5 % of the time, 10 s after 0.5 s
        (0.5, True, 0.5 / CAUGHT_UP_BUDGET),  # caught up: 25 %, 2 s
        (0.01, True, 0.04),
        (4.0, False, MAX_DELAY_S),  # a 10^7-entity backfill's publish: at most 30 s apart
        (40.0, True, MAX_DELAY_S),
    ],
)
def test_the_next_publish_waits_the_budgeted_time(
    seconds: float, caught_up: bool, wait: float
) -> None:
    last = LastPublish(started=1000.0, seconds=seconds, caught_up=caught_up)
    assert not publish_due(last, 1000.0 + wait * 0.99, caught_up)
    assert publish_due(last, 1000.0 + wait, caught_up)


def test_catching_up_publishes_at_once_then_at_the_caught_up_pace() -> None:
    behind = LastPublish(started=1000.0, seconds=2.0, caught_up=False)
    assert not publish_due(behind, 1001.0, caught_up=False)  # 40 s budget, capped at 30
    assert publish_due(behind, 1001.0, caught_up=True)  # the backfill just ended
    caught = LastPublish(started=1001.0, seconds=2.0, caught_up=True)
    assert not publish_due(caught, 1008.9, caught_up=True)
    assert publish_due(caught, 1009.0, caught_up=True)
    # falling behind again keeps the longer behind wait
    assert not publish_due(caught, 1009.0, caught_up=False)
    assert publish_due(caught, 1031.0, caught_up=False)


def test_after_a_full_write_a_caught_up_worker_publishes_at_once() -> None:
    """A restart's full write (every shard) does not space out the small publishes after
    it; a worker that is behind keeps the budget, and a write that was not full keeps the
    caught-up pace."""
    full = LastPublish(started=1000.0, seconds=1.2, caught_up=True, full=True)
    assert publish_due(full, 1000.0, caught_up=True)
    assert not publish_due(full, 1000.0 + 1.2 / BEHIND_BUDGET * 0.99, caught_up=False)
    assert publish_due(full, 1000.0 + 1.2 / BEHIND_BUDGET, caught_up=False)
    small = LastPublish(started=1000.0, seconds=1.2, caught_up=True)
    assert not publish_due(small, 1004.0, caught_up=True)
