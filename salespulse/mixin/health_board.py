"""The Pipeline health board: freshness and the workers' health per partition."""

from __future__ import annotations

from salespulse.mixin.panels import PanelSpec, Query, Step
from salespulse.mixin.sales_boards import Rows
from salespulse.mixin.targets import Targets

_HEALTH = {
    "salespulse_events_applied": "Events that changed a snapshot, per second (the worker's "
    "counter, exported as a gauge; it restarts from zero when a "
    "partition moves).",
    "salespulse_events_duplicate": "Events ignored as redelivered or stale, per second: "
    "at-least-once delivery at work, not an error.",
    "salespulse_dead_letters": "Records or events routed to the dead-letter topic in the last "
    "15 minutes (malformed or unmappable input).",
    "salespulse_partition_publish_age_seconds": "Seconds since the partition's owner last "
    "published its aggregates to Redis.",
    "salespulse_consumer_lag_records": "Records of the events topic not yet processed.",
    "salespulse_rebuild_seconds": "Duration of the last aggregate rebuild from the snapshot "
    "table (on assignment or recovery).",
}


def _health(
    title: str,
    expr: str,
    metric: str,
    unit: str,
    steps: tuple[Step, ...] = (),
    viz: str = "timeseries",
) -> PanelSpec:
    return PanelSpec(
        title,
        viz,
        (Query(expr, "partition {{partition}}"),),
        unit,
        (),
        _HEALTH[metric],
        steps,
        12,
        7,
    )


def pipeline(t: Targets) -> Rows:
    pa = t.pipeline_alerts
    stale = pa.data_stale.minutes * 60 if pa.data_stale else None
    return [
        (
            "Freshness",
            [
                PanelSpec(
                    "Age of the newest event, by source",
                    "bargauge",
                    (Query("time() - salespulse_last_event_timestamp_seconds", "{{source}}"),),
                    "s",
                    (),
                    "Seconds since the event time of the newest CRM event applied, "
                    "per source (salespulse_last_event_timestamp_seconds).",
                    ((None, "green"), (stale, "red")) if stale else (),
                    12,
                    7,
                ),
                PanelSpec(
                    "Partitions reporting",
                    "stat",
                    (Query("salespulse_partitions_reporting", "partitions"),),
                    "short",
                    (),
                    "Partitions with published aggregates in Redis; should equal the "
                    "partition count of the events topic.",
                    (),
                    12,
                    7,
                ),
            ],
        ),
        (
            "Partitions",
            [
                _health(
                    "Events applied per second",
                    "rate(salespulse_events_applied[5m])",
                    "salespulse_events_applied",
                    "cps",
                ),
                _health(
                    "Duplicates ignored per second",
                    "rate(salespulse_events_duplicate[5m])",
                    "salespulse_events_duplicate",
                    "cps",
                ),
                _health(
                    "Dead letters, last 15 minutes",
                    "increase(salespulse_dead_letters[15m])",
                    "salespulse_dead_letters",
                    "short",
                    ((None, "green"), (pa.dead_letters.above + 1, "red"))
                    if pa.dead_letters
                    else (),
                ),
                _health(
                    "Publish age",
                    "salespulse_partition_publish_age_seconds",
                    "salespulse_partition_publish_age_seconds",
                    "s",
                    ((None, "green"), (pa.publish_age.above_seconds, "red"))
                    if pa.publish_age
                    else (),
                ),
                _health(
                    "Consumer lag",
                    "salespulse_consumer_lag_records",
                    "salespulse_consumer_lag_records",
                    "short",
                    ((None, "green"), (pa.consumer_lag.above, "red")) if pa.consumer_lag else (),
                ),
                _health(
                    "Last rebuild duration",
                    "salespulse_rebuild_seconds",
                    "salespulse_rebuild_seconds",
                    "s",
                ),
            ],
        ),
    ]
