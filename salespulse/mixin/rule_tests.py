"""``promtool test rules`` cases for every alert: one that fires, and ones that stay quiet.

The inputs are written against the collector's metric contract (metric names and labels as
:mod:`state.metrics` and :mod:`state.collector` export them); values sit on either side of
the thresholds of the targets file, with decoy series (another period, another scope) that
would fire if a selector were wrong. Expected annotations are rendered by
:meth:`salespulse.mixin.rules.AlertRule.expected`, so promtool checks the templates too.
Test time 0 is Thursday 1970-01-01 00:00 UTC.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from salespulse.mixin.render import GENERATED, number, yaml_file
from salespulse.mixin.rules import (
    KPI_ALERTS,
    PIPELINE_ALERTS,
    RECORDING,
    AlertRule,
    alert_rules,
    inactive_lookbacks,
)
from salespulse.mixin.targets import KpiAlert, Targets, kpi_period
from state.kpis import KPI_BY_NAME

COLLECTOR = {"job": "salespulse", "instance": "collector:8000"}
REP = {"team": "East", "office": "Berlin", "rep": "ann"}
_UNITS = {"s": 1 / 60, "m": 1, "h": 60, "d": 1440, "w": 10080}

Case = dict[str, Any]


def minutes(duration: str) -> int:
    """Whole minutes of a Prometheus duration (``0m`` for none)."""
    m = re.fullmatch(r"(\d+)(s|m|h|d|w)", duration)
    if not m:
        raise ValueError(f"unsupported duration {duration!r}")
    return int(int(m.group(1)) * _UNITS[m.group(2)])


def series(metric: str, labels: dict[str, str], values: str) -> dict[str, str]:
    """One input series; empty labels are left out, as Prometheus drops them."""
    inner = ", ".join(f'{k}="{v}"' for k, v in {**labels, **COLLECTOR}.items() if v)
    return {"series": f"{metric}{{{inner}}}", "values": values}


def steady(value: float, until_min: int, step: int) -> str:
    """``value`` at every step from 0 to past ``until_min``."""
    return f"{number(value)}x{until_min // step + 2}"


def case(
    name: str,
    step: int,
    inputs: list[dict[str, str]],
    alert: str,
    at_min: int,
    expected: list[dict[str, Any]],
) -> Case:
    return {
        "name": name,
        "interval": f"{step}m",
        "input_series": inputs,
        "alert_rule_test": [
            {"eval_time": f"{at_min}m", "alertname": alert, "exp_alerts": expected}
        ],
    }


def _labels(labels: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in {**labels, **COLLECTOR}.items() if v}


def _sides(below: bool, threshold: float) -> tuple[float, float]:
    """(a firing value, a quiet value) for a threshold."""
    if threshold == 0:
        return (-1.0, 1.0) if below else (1.0, -1.0)
    return (threshold / 2, threshold * 1.5) if below else (threshold * 2, threshold / 2)


def _scope_labels(scope: str) -> dict[str, str]:
    return {
        "total": {},
        "office": {"office": "Berlin"},
        "team": {"team": "East"},
        "rep": dict(REP),
    }[scope]


def kpi_cases(alert: KpiAlert, rule: AlertRule) -> list[Case]:
    kpi = KPI_BY_NAME[alert.kpi]
    period = kpi_period(kpi, alert.period)
    fire, quiet = _sides(alert.below is not None, alert.threshold * kpi.metric_scale)
    step, at = 5, minutes(alert.for_) + 15
    main = {"period": period, "scope": alert.scope, **_scope_labels(alert.scope)}

    def inputs(labels: dict[str, str], value: str, sample: float | None = None) -> list[dict]:
        out = [series(kpi.metric, labels, value)]
        if alert.sample:
            n = alert.sample.at_least if sample is None else sample
            out.append(series(KPI_BY_NAME[alert.sample.kpi].metric, labels, steady(n, at, step)))
        return out

    other_period = "year" if period != "year" else "month"
    other_scope = "team" if alert.scope == "total" and "team" in kpi.dimensions else "total"
    decoys = inputs({**main, "period": other_period}, steady(fire, at, step))
    if other_scope != alert.scope:
        decoys += inputs(
            {"period": period, "scope": other_scope, **_scope_labels(other_scope)},
            steady(fire, at, step),
        )
    late = minutes(alert.for_) - 10
    cases = [
        case(
            f"{rule.name}: fires past the threshold for {alert.for_}",
            step,
            inputs(main, steady(fire, at, step)) + decoys,
            rule.name,
            at,
            [rule.expected(fire, _labels(main))],
        ),
        case(
            f"{rule.name}: quiet on the good side of the threshold",
            step,
            inputs(main, steady(quiet, at, step)),
            rule.name,
            at,
            [],
        ),
        case(
            f"{rule.name}: quiet when past the threshold for less than {alert.for_}",
            step,
            inputs(main, f"{number(quiet)}x{(at - late) // step} {steady(fire, late, step)}"),
            rule.name,
            at,
            [],
        ),
    ]
    if alert.sample:
        cases.append(
            case(
                f"{rule.name}: quiet below the sample size",
                step,
                inputs(main, steady(fire, at, step), alert.sample.at_least - 1),
                rule.name,
                at,
                [],
            )
        )
    return cases


def _tick(at_min: int) -> int:
    """Round up to the evaluation interval of the main test file (5m)."""
    return -(-at_min // 5) * 5


def _local(targets: Targets, at_min: int) -> datetime:
    offset = targets.calendar.utc_offset_hours * 3600
    return datetime.fromtimestamp(at_min * 60 + offset, UTC)


def _first(pred: Callable[[int], bool], start: int, step: int = 15) -> int:
    for t in range(start, start + 21 * 1440, step):
        if pred(t):
            return t
    raise ValueError("no test time satisfies the alert's guards")


def quota_pace_cases(targets: Targets, rule: AlertRule) -> list[Case]:
    cfg = targets.pipeline_alerts.quota_pace
    assert cfg is not None
    hold, step = minutes(cfg.for_), 15

    def day_ok(t: int) -> bool:
        return _local(targets, t).day >= cfg.from_day_of_month

    at = _first(lambda t: day_ok(t) and day_ok(t - hold), hold + 15)
    early = _first(lambda t: not day_ok(t), hold + 15)
    metric, fire, quiet = "salespulse_quota_attainment_pace_ratio", cfg.below / 2, cfg.below * 1.5
    main = {"period": cfg.period, "scope": cfg.scope, **_scope_labels(cfg.scope)}
    decoy = {**main, "period": "quarter"}
    return [
        case(
            f"{rule.name}: fires behind pace from day {cfg.from_day_of_month}",
            step,
            [
                series(metric, main, steady(fire, at, step)),
                series(metric, decoy, steady(fire, at, step)),
            ],
            rule.name,
            at,
            [rule.expected(fire, _labels(main))],
        ),
        case(
            f"{rule.name}: quiet on pace",
            step,
            [series(metric, main, steady(quiet, at, step))],
            rule.name,
            at,
            [],
        ),
        case(
            f"{rule.name}: quiet before day {cfg.from_day_of_month}",
            step,
            [series(metric, main, steady(fire, early, step))],
            rule.name,
            early,
            [],
        ),
    ]


def rep_inactive_cases(targets: Targets, rule: AlertRule) -> list[Case]:
    cfg = targets.pipeline_alerts.rep_inactive
    assert cfg is not None
    back = max(inactive_lookbacks(targets.calendar.weekday_numbers, cfg.business_days).values())
    step, at = 15, (back + 2) * 1440 + 12 * 60
    n = at // step + 2
    day = 1440 // step
    metric = KPI_BY_NAME["activities"].metric

    def rep(name: str, day: str, active: float) -> list[dict[str, str]]:
        labels = {"scope": "rep", **REP, "rep": name, "kind": "call"}
        return [
            series(metric, {"period": "day", **labels}, day),
            series(metric, {"period": cfg.active_within, **labels}, f"{number(active)}x{n}"),
        ]

    recent = f"0x{n - 2 * day} 1x{day // 2} 0x{day}"  # one activity logged yesterday
    return [
        case(
            f"{rule.name}: fires for a rep with no activity for {cfg.business_days} business days",
            step,
            rep("ann", f"0x{n}", 4)
            + rep("bob", f"2x{n}", 9)
            + rep("cy", f"0x{n}", 0)
            + rep("dee", f"_x{n - day} 0x{day}", 1),
            rule.name,
            at,
            [rule.expected(0, _labels({"period": "day", "scope": "rep", **REP}))],
        ),
        case(
            f"{rule.name}: quiet when the rep logged an activity yesterday",
            step,
            rep("ann", recent, 4),
            rule.name,
            at,
            [],
        ),
    ]


def data_stale_cases(targets: Targets, rule: AlertRule) -> list[Case]:
    cfg = targets.pipeline_alerts.data_stale
    assert cfg is not None
    cal, hold, step = targets.calendar, minutes(cfg.for_), 5
    start, end = cal.business_hours
    days = {(d + 1) % 7 for d in range(7)}  # all, when not limited to business hours
    if cfg.business_hours_only:
        days = set(cal.weekday_numbers)

    def open_(t: int) -> bool:
        local = _local(targets, t)
        mod = local.hour * 60 + local.minute
        in_hours = start * 60 + cfg.minutes <= mod < end * 60 or not cfg.business_hours_only
        return in_hours and int(local.strftime("%w")) in days

    at = _first(lambda t: t > cfg.minutes + hold and open_(t) and open_(t - hold), 60, step)
    metric = "salespulse_last_event_timestamp_seconds"
    n = at // step + 2
    cases = [
        case(
            f"{rule.name}: fires when a source sent nothing for {cfg.minutes}m",
            step,
            [series(metric, {"source": "hubspot"}, f"0x{n}")]
            + [series(metric, {"source": s}, f"0x{n}") for s in cfg.ignore_sources],
            rule.name,
            at,
            [rule.expected(at * 60, _labels({"source": "hubspot"}))],
        ),
        case(
            f"{rule.name}: quiet while events arrive",
            step,
            [series(metric, {"source": "hubspot"}, f"0+{step * 60}x{n}")],
            rule.name,
            at,
            [],
        ),
    ]
    if cfg.business_hours_only:
        closed = _first(lambda t: t > cfg.minutes + hold and not open_(t), 60, step)
        cases.append(
            case(
                f"{rule.name}: quiet outside business hours",
                step,
                [series(metric, {"source": "hubspot"}, f"0x{closed // step + 2}")],
                rule.name,
                closed,
                [],
            )
        )
    return cases


def partition_cases(targets: Targets, rule: AlertRule) -> list[Case]:
    pa = targets.pipeline_alerts
    labels = {"partition": "1"}
    if rule.name == "SalesPulseDeadLetters":
        assert pa.dead_letters is not None
        grown = pa.dead_letters.above + 1
        metric, step, at = "salespulse_dead_letters", 1, 10
        return [
            case(
                f"{rule.name}: fires when dead letters grow",
                step,
                [series(metric, labels, f"0x5 {grown}x10")],
                rule.name,
                at,
                [rule.expected(0, _labels(labels))],
            ),
            case(
                f"{rule.name}: quiet when the count holds",
                step,
                [series(metric, labels, "3x15")],
                rule.name,
                at,
                [],
            ),
            case(
                f"{rule.name}: quiet when a restarted worker counts from zero",
                step,
                [series(metric, labels, "5x5 0x10")],
                rule.name,
                at,
                [],
            ),
        ]
    if rule.name == "SalesPulseConsumerLagHigh":
        assert pa.consumer_lag is not None
        metric, threshold = "salespulse_consumer_lag_records", float(pa.consumer_lag.above)
        hold = pa.consumer_lag.for_
    else:
        assert pa.publish_age is not None
        metric, threshold = "salespulse_partition_publish_age_seconds", pa.publish_age.above_seconds
        hold = pa.publish_age.for_
    fire, quiet = _sides(False, threshold)
    step, at = 1, _tick(minutes(hold) + 5)
    return [
        case(
            f"{rule.name}: fires above {number(threshold)} for {hold}",
            step,
            [series(metric, labels, steady(fire, at, step))],
            rule.name,
            at,
            [rule.expected(fire, _labels(labels))],
        ),
        case(
            f"{rule.name}: quiet below the threshold",
            step,
            [series(metric, labels, steady(max(quiet, 0), at, step))],
            rule.name,
            at,
            [],
        ),
    ]


def collector_down_cases(targets: Targets, rule: AlertRule) -> list[Case]:
    cfg = targets.pipeline_alerts.collector_down
    assert cfg is not None
    step, at = 1, _tick(minutes(cfg.for_) + 5)
    job = {"job": cfg.job, "instance": "collector:8000"}

    def up(labels: dict[str, str], value: float) -> dict[str, str]:
        inner = ", ".join(f'{k}="{v}"' for k, v in labels.items())
        return {"series": f"up{{{inner}}}", "values": steady(value, at, step)}

    other = {"job": "prometheus", "instance": "localhost:9090"}
    return [
        case(
            f"{rule.name}: fires when the scrape fails",
            step,
            [up(job, 0), up(other, 1)],
            rule.name,
            at,
            [rule.expected(0, job)],
        ),
        case(
            f"{rule.name}: fires when the job is not scraped at all",
            step,
            [up(other, 1)],
            rule.name,
            at,
            [rule.expected(1, {"job": cfg.job})],
        ),
        case(f"{rule.name}: quiet when the scrape works", step, [up(job, 1)], rule.name, at, []),
    ]


CALENDAR_ALERTS = ("SalesPulseQuotaPaceBehind", "SalesPulseRepInactive")
"""Alerts whose tests span days: evaluated every 15m (inputs every 15m, so that the 5m
lookback always finds a sample) in a file of their own, to keep promtool fast."""
_BUILDERS: dict[str, Callable[[Targets, AlertRule], list[Case]]] = {
    "SalesPulseQuotaPaceBehind": quota_pace_cases,
    "SalesPulseRepInactive": rep_inactive_cases,
    "SalesPulseDataStale": data_stale_cases,
    "SalesPulseDeadLetters": partition_cases,
    "SalesPulseConsumerLagHigh": partition_cases,
    "SalesPulsePartitionNotPublished": partition_cases,
    "SalesPulseCollectorDown": collector_down_cases,
}


def alert_cases(targets: Targets) -> dict[str, list[Case]]:
    """Every generated test case by alert name, in alert order."""
    rules = {r.name: r for r in alert_rules(targets)}
    out: dict[str, list[Case]] = {}
    for alert in targets.kpi_alerts:
        out[alert.name] = kpi_cases(alert, rules[alert.name])
    for name, build in _BUILDERS.items():
        if name in rules:
            out[name] = build(targets, rules[name])
    return out


GROUP_ORDER = [RECORDING, KPI_ALERTS, PIPELINE_ALERTS]
"""promtool evaluates groups in random order unless told: recording rules go first, as
they are at most one (short) interval old in a real Prometheus."""


def rule_test_document(
    cases: list[Case], evaluation_interval: str, rule_file: str = "../salespulse.rules.yml"
) -> dict[str, Any]:
    """A promtool test file's content."""
    return {
        "rule_files": [rule_file],
        "evaluation_interval": evaluation_interval,
        "group_eval_order": GROUP_ORDER,
        "tests": cases,
    }


def rule_test_texts(targets: Targets) -> dict[str, str]:
    """File name (in ``deploy/prometheus/rules/tests/``) -> text."""
    by_alert = alert_cases(targets)
    fast = [c for name, cs in by_alert.items() if name not in CALENDAR_ALERTS for c in cs]
    slow = [c for name, cs in by_alert.items() if name in CALENDAR_ALERTS for c in cs]
    header = f"{GENERATED}\nRun: promtool test rules deploy/prometheus/rules/tests/*.yml"
    return {
        "salespulse_test.yml": yaml_file(rule_test_document(fast, "5m"), header),
        "salespulse_calendar_test.yml": yaml_file(rule_test_document(slow, "15m"), header),
    }
