"""Prometheus recording and alert rules, from the KPI declarations and the targets file.

Every metric name comes from :data:`state.kpis.KPIS` (``Kpi.metric``) or the collector's
health gauges; every threshold from ``deploy/targets.yaml``. Each alert carries ``severity``
and a ``runbook_url`` into ``docs/runbooks.md`` (one heading per alert name).

>>> from salespulse.mixin.targets import Targets
>>> rule = kpi_alert_rule(Targets.model_validate(
...     {"kpi_alerts": [{"kpi": "win_rate", "below": 0.2, "period": "month"}]}).kpi_alerts[0],
...     Targets())
>>> print(rule.expr)
salespulse_win_rate_ratio{period="month", scope="total"} < 0.2
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from salespulse.mixin.annotations import Label, Part, Text, Value, unit_format, who
from salespulse.mixin.render import GENERATED, number, yaml_file
from salespulse.mixin.targets import Calendar, KpiAlert, PipelineAlerts, Targets, kpi_period
from state.kpis import KPI_BY_NAME

SERIES_LABELS = "period, scope, office, team, rep"
ACTIVITIES_ALL_KINDS = "scope:salespulse_activities:sum"
REVENUE_VS_TARGET = "scope:salespulse_won_revenue_target_attainment:ratio"
EVENT_AGE = "source:salespulse_last_event_age:seconds"
RECORDING, KPI_ALERTS, PIPELINE_ALERTS = (
    "salespulse-recording",
    "salespulse-kpi-alerts",
    "salespulse-pipeline-alerts",
)


def selector(metric: str, **labels: str) -> str:
    """``metric{a="x", b="y"}``; a value starting with ``~`` or ``!~`` is a regex matcher."""
    matchers = []
    for name, value in labels.items():
        op = "="
        for prefix in ("!~", "~"):
            if value.startswith(prefix):
                op, value = ("=~" if prefix == "~" else prefix), value[len(prefix) :]
                break
        matchers.append(f'{name}{op}"{value}"')
    return f"{metric}{{{', '.join(matchers)}}}" if matchers else metric


def clock(fn: str, calendar: Calendar) -> str:
    """A PromQL clock function (``hour``, ``day_of_week``...) in business-local time."""
    if not calendar.utc_offset_hours:
        return f"{fn}()"
    return f"{fn}(vector(time() + {number(calendar.utc_offset_hours * 3600)}))"


def weekday_in(days: tuple[int, ...], calendar: Calendar) -> str:
    """A vector that exists only on the given local weekdays (0 = Sunday)."""
    dow = clock("day_of_week", calendar)
    if list(days) == list(range(days[0], days[-1] + 1)):
        return f"{dow} >= {days[0]} <= {days[-1]}" if len(days) > 1 else f"{dow} == {days[0]}"
    return " or ".join(f"{dow} == {d}" for d in days)


def inactive_lookbacks(business_days: tuple[int, ...], n: int) -> dict[int, int]:
    """Per local weekday (0 = Sunday): calendar days back to the n-th business day before.

    >>> inactive_lookbacks((1, 2, 3, 4, 5), 3)
    {0: 4, 1: 5, 2: 5, 3: 5, 4: 3, 5: 3, 6: 3}
    """
    out = {}
    for today in range(7):
        day, found, back = today, 0, 0
        while found < n:
            back, day = back + 1, (day - 1) % 7
            found += day in business_days
        out[today] = back
    return out


@dataclass(frozen=True)
class AlertRule:
    """One alerting rule and the words that go with it."""

    name: str
    expr: str
    for_: str
    severity: str
    summary: Text
    description: Text
    runbook_url: str
    labels: Mapping[str, str] = field(default_factory=dict)

    def to_rule(self) -> dict[str, Any]:
        """The rule as it appears in a Prometheus rule group."""
        rule: dict[str, Any] = {"alert": self.name, "expr": self.expr}
        if self.for_ != "0m":
            rule["for"] = self.for_
        rule["labels"] = {"severity": self.severity, **self.labels}
        rule["annotations"] = {
            "summary": self.summary.go(),
            "description": self.description.go(),
            "runbook_url": self.runbook_url,
        }
        return rule

    def expected(self, value: float, series_labels: Mapping[str, str]) -> dict[str, Any]:
        """The alert promtool must see for a series: labels and rendered annotations."""
        labels = {**series_labels, "severity": self.severity, **self.labels}
        return {
            "exp_labels": labels,
            "exp_annotations": {
                "summary": self.summary.render(value, labels),
                "description": self.description.render(value, labels),
                "runbook_url": self.runbook_url,
            },
        }


def shown_threshold(unit: str, value: float) -> str:
    """A threshold in the KPI's own unit, for people (``20%``, ``30 days``, ``5000``)."""
    if unit == "ratio":
        return f"{number(value * 100)}%"
    return f"{number(value)} days" if unit == "days" else number(value)


def _runbook(targets: Targets, name: str) -> str:
    return f"{targets.runbook_url}#{name.lower()}"


def recording_rules() -> list[dict[str, str]]:
    """Series the boards and alerts share."""
    revenue = KPI_BY_NAME["won_revenue"].metric
    return [
        {
            "record": ACTIVITIES_ALL_KINDS,
            "expr": f"sum without (kind) ({KPI_BY_NAME['activities'].metric})",
        },
        {
            "record": REVENUE_VS_TARGET,
            "expr": f"{revenue}\n/ on(period, scope, team, rep) group_left()\n"
            f'max by (period, scope, team, rep) (salespulse_target{{kpi="won_revenue"}})',
        },
        {"record": EVENT_AGE, "expr": "time() - salespulse_last_event_timestamp_seconds"},
    ]


def kpi_alert_rule(alert: KpiAlert, targets: Targets) -> AlertRule:
    """A KPI below or above its threshold (with an optional volume guard)."""
    kpi = KPI_BY_NAME[alert.kpi]
    period = kpi_period(kpi, alert.period)
    expr = (
        f"{selector(kpi.metric, period=period, scope=alert.scope)} {alert.op} "
        f"{number(alert.threshold * kpi.metric_scale)}"
    )
    if alert.sample:
        sample = KPI_BY_NAME[alert.sample.kpi]
        expr += (
            f"\nand on({SERIES_LABELS})\n"
            f"{selector(sample.metric, period=kpi_period(sample, alert.period), scope=alert.scope)}"
            f" >= {number(alert.sample.at_least)}"
        )
    side = "below" if alert.below is not None else "above"
    shown = shown_threshold(kpi.unit, alert.threshold)
    description: tuple[Part, ...] = (
        f"{kpi.title} over {period} is ",
        Value(unit_format(kpi.unit)),
        ", ",
        side,
        f" the threshold of {shown}, ",
        *who(alert.scope),
        ". Definition: ",
        kpi.definition,
    )
    return AlertRule(
        alert.name,
        expr,
        alert.for_,
        alert.severity,
        Text((f"{kpi.title} {side} {shown} ({period}, {alert.scope})",)),
        Text(description),
        _runbook(targets, alert.name),
        {"kpi": kpi.name},
    )


def _quota_pace(targets: Targets, rule: Any) -> AlertRule:
    pace = selector("salespulse_quota_attainment_pace_ratio", period=rule.period, scope=rule.scope)
    expr = (
        f"{pace} < {number(rule.below)}\n"
        f"and on() {clock('day_of_month', targets.calendar)} >= {rule.from_day_of_month}"
    )
    name = "SalesPulseQuotaPaceBehind"
    return AlertRule(
        name,
        expr,
        rule.for_,
        rule.severity,
        Text((f"Quota attainment behind pace ({rule.period})",)),
        Text(
            (
                "Quota attainment of ",
                *who(rule.scope),
                " is ",
                Value("percent"),
                f" of the pace needed (below {number(rule.below * 100)}%): attainment divided "
                "by the elapsed share of the ",
                rule.period,
                ".",
            )
        ),
        _runbook(targets, name),
        {"kpi": "quota_attainment"},
    )


def _rep_inactive(targets: Targets, rule: Any) -> AlertRule:
    cal = targets.calendar
    day = selector(ACTIVITIES_ALL_KINDS, period="day", scope="rep")
    by_lookback: dict[int, list[int]] = {}
    for weekday, back in inactive_lookbacks(cal.weekday_numbers, rule.business_days).items():
        by_lookback.setdefault(back, []).append(weekday)
    branches = [
        f"  (\n    max_over_time({day}[{back}d]) == 0\n    and {day} offset {back}d\n"
        f"    and on() ({weekday_in(tuple(days), cal)})\n  )"
        for back, days in sorted(by_lookback.items())
    ]
    active = selector(ACTIVITIES_ALL_KINDS, period=rule.active_within, scope="rep")
    expr = "(\n" + "\n  or\n".join(branches) + f"\n)\nand on(team, rep, office) {active} > 0"
    name = "SalesPulseRepInactive"
    return AlertRule(
        name,
        expr,
        rule.for_,
        rule.severity,
        Text((f"No activity logged for {rule.business_days} business days",)),
        Text(
            (
                "Rep ",
                Label("rep"),
                " (team ",
                Label("team"),
                ") has logged no activity "
                f"(calls, emails, meetings, demos, tasks) on the last {rule.business_days} "
                f"business days, but did in the {rule.active_within} window.",
            )
        ),
        _runbook(targets, name),
    )


def _data_stale(targets: Targets, rule: Any) -> AlertRule:
    cal = targets.calendar
    ignored = "|".join(rule.ignore_sources)
    newest = "salespulse_last_event_timestamp_seconds"
    newest = selector(newest, source=f"!~{ignored}") if ignored else newest
    expr = f"time() - {newest} > {rule.minutes * 60}"
    if rule.business_hours_only:
        start, end = cal.business_hours
        minute = f"{clock('hour', cal)} * 60 + {clock('minute', cal)}"
        expr += (
            f"\nand on() ({minute} >= {start * 60 + rule.minutes} < {end * 60})"
            f"\nand on() ({weekday_in(cal.weekday_numbers, cal)})"
        )
    name = "SalesPulseDataStale"
    return AlertRule(
        name,
        expr,
        rule.for_,
        rule.severity,
        Text((f"No CRM event for {rule.minutes} minutes",)),
        Text(
            (
                "The newest event applied from source ",
                Label("source"),
                " is ",
                Value("duration"),
                f" old (threshold {rule.minutes}m): the boards are not current.",
            )
        ),
        _runbook(targets, name),
    )


def _pipeline(targets: Targets, pa: PipelineAlerts) -> list[AlertRule]:
    rules: list[AlertRule] = []
    if pa.quota_pace:
        rules.append(_quota_pace(targets, pa.quota_pace))
    if pa.rep_inactive:
        rules.append(_rep_inactive(targets, pa.rep_inactive))
    if pa.data_stale:
        rules.append(_data_stale(targets, pa.data_stale))
    if (r := pa.dead_letters) is not None:
        rules.append(
            AlertRule(
                "SalesPulseDeadLetters",
                f"increase(salespulse_dead_letters[{r.window}]) > {r.above}",
                "0m",
                r.severity,
                Text(("Events sent to the dead-letter topic",)),
                Text(
                    (
                        "Partition ",
                        Label("partition"),
                        " routed more than ",
                        str(r.above),
                        f" records or events to the dead-letter topic in the last {r.window}.",
                    )
                ),
                _runbook(targets, "SalesPulseDeadLetters"),
            )
        )
    if (c := pa.consumer_lag) is not None:
        rules.append(
            AlertRule(
                "SalesPulseConsumerLagHigh",
                f"salespulse_consumer_lag_records > {c.above}",
                c.for_,
                c.severity,
                Text(("Workers fall behind the events topic",)),
                Text(
                    (
                        "Partition ",
                        Label("partition"),
                        " has ",
                        Value("integer"),
                        f" records waiting (threshold {c.above}).",
                    )
                ),
                _runbook(targets, "SalesPulseConsumerLagHigh"),
            )
        )
    if (p := pa.publish_age) is not None:
        rules.append(
            AlertRule(
                "SalesPulsePartitionNotPublished",
                f"salespulse_partition_publish_age_seconds > {number(p.above_seconds)}",
                p.for_,
                p.severity,
                Text(("A partition's aggregates are not republished",)),
                Text(
                    (
                        "Partition ",
                        Label("partition"),
                        " was last published ",
                        Value("duration"),
                        " ago: its owner is stuck or gone, its KPIs are frozen.",
                    )
                ),
                _runbook(targets, "SalesPulsePartitionNotPublished"),
            )
        )
    if (d := pa.collector_down) is not None:
        up = selector("up", job=d.job)
        rules.append(
            AlertRule(
                "SalesPulseCollectorDown",
                f"{up} == 0 or absent({up})",
                d.for_,
                d.severity,
                Text(("The SalesPulse collector is not scraped",)),
                Text(
                    (
                        "Prometheus cannot scrape job ",
                        Label("job"),
                        " ",
                        Label("instance"),
                        ": no KPI on any board is current.",
                    )
                ),
                _runbook(targets, "SalesPulseCollectorDown"),
            )
        )
    return rules


def alert_rules(targets: Targets) -> list[AlertRule]:
    """Every alert, KPI thresholds first."""
    return [kpi_alert_rule(a, targets) for a in targets.kpi_alerts] + _pipeline(
        targets, targets.pipeline_alerts
    )


def rule_groups(targets: Targets) -> dict[str, Any]:
    """The ``groups`` document of the rule file (and of the PrometheusRule spec)."""
    alerts = alert_rules(targets)
    kpi_names = {a.name for a in targets.kpi_alerts}
    return {
        "groups": [
            {"name": RECORDING, "rules": recording_rules()},
            {
                "name": KPI_ALERTS,
                "rules": [a.to_rule() for a in alerts if a.name in kpi_names],
            },
            {
                "name": PIPELINE_ALERTS,
                "rules": [a.to_rule() for a in alerts if a.name not in kpi_names],
            },
        ]
    }


def rules_file(targets: Targets) -> str:
    """Text of ``deploy/prometheus/rules/salespulse.rules.yml``."""
    return yaml_file(
        rule_groups(targets),
        f"{GENERATED}\nDo not edit: edit the targets file and run `salespulse generate`.",
    )
