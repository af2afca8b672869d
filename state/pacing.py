"""When a worker publishes next: within a share of its time, and at once on catching up.

While the worker is behind (a backfill, a burst), encoding for publishes takes at most
5 % of its time (sending costs about as much again): after a publish whose encoding took
t seconds, the next waits at least t / BEHIND_BUDGET. A backfill rewrites most days of
history in every publish (about 60 bytes of JSON per aggregate key: 80 MB at 10^6
entities, 800 MB at 10^7), so it publishes less often instead of processing less, but at
least every 30 s (the not-published alert fires after a minute). With at most 10 s, a
10^7-entity backfill spent 30 % of its time publishing (py-spy: encoding 14 %, socket
writes 15 %).

Once caught up (every partition's lag at most a few records) the worker has time to
spare and latency is what counts: encoding may take a quarter of its time (at 10,000
events/s over a year of days a publish that rewrites the changed days encodes 10-40 ms,
which a 5 % budget spaced 0.2-0.8 s apart). The first publish after catching up is due
at once: the end of a backfill is on the board without waiting out its long interval.
So is the first one after a full write (a start, a rebalance, Redis emptied), which
rewrites every shard once: its encoding time says nothing of the next publish's (at 10^6
entities a restarted worker's full write encoded for about a second, and a probe applied
at once became visible 4-5 s later).

>>> last = LastPublish(started=100.0, seconds=1.0, caught_up=False)
>>> publish_due(last, 110.0, caught_up=False), publish_due(last, 120.0, caught_up=False)
(False, True)
>>> publish_due(last, 100.5, caught_up=True)
True
>>> full = LastPublish(started=100.0, seconds=1.0, caught_up=True, full=True)
>>> publish_due(full, 100.2, caught_up=True), publish_due(full, 100.2, caught_up=False)
(True, False)
"""

from __future__ import annotations

from dataclasses import dataclass

BEHIND_BUDGET = 0.05
CAUGHT_UP_BUDGET = 0.25
MAX_DELAY_S = 30.0


@dataclass(frozen=True, slots=True)
class LastPublish:
    """The worker's last publish: when it started (monotonic seconds), how long its
    encoding took, whether the worker was caught up then, and whether it was a full write
    that Redis took."""

    started: float
    seconds: float
    caught_up: bool
    full: bool = False


def publish_due(last: LastPublish | None, now: float, caught_up: bool) -> bool:
    """Whether the next publish is due at ``now``."""
    if last is None or (caught_up and (not last.caught_up or last.full)):
        return True
    budget = CAUGHT_UP_BUDGET if caught_up else BEHIND_BUDGET
    return now >= last.started + min(last.seconds / budget, MAX_DELAY_S)
