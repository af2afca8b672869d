"""Panel specifications and their Grafana JSON (through grafana-foundation-sdk).

A :class:`PanelSpec` says what a panel shows (queries, unit, the KPIs whose definitions
describe it, threshold steps); :func:`build_panel` turns it into a Grafana panel. Units,
descriptions and thresholds are derived here, from :data:`state.kpis.KPIS` and the targets
file, so every board treats a KPI the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import (
    bargauge,
    gauge,
    prometheus,
    stat,
    table,
    timeseries,
)
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from salespulse.mixin.rules import selector
from salespulse.mixin.targets import Targets, kpi_period
from state.kpis import KPI_BY_NAME

DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
Step = tuple[float | None, str]
GRAFANA_CURRENCY = {
    "USD": "currencyUSD",
    "EUR": "currencyEUR",
    "GBP": "currencyGBP",
    "JPY": "currencyJPY",
    "CHF": "currencyCHF",
    "CAD": "currencyCAD",
    "AUD": "currencyAUD",
    "SEK": "currencySEK",
    "INR": "currencyINR",
}


@dataclass(frozen=True)
class Query:
    """One PromQL target; ``legend`` is a Grafana legend format."""

    expr: str
    legend: str = ""
    name: str = ""  # column name in tables


@dataclass(frozen=True)
class PanelSpec:
    """What one panel shows."""

    title: str
    viz: str  # stat, gauge, timeseries, bargauge, table
    queries: tuple[Query, ...]
    unit: str
    kpis: tuple[str, ...]
    text: str = ""
    steps: tuple[Step, ...] = ()
    width: int = 6
    height: int = 5
    column_units: tuple[tuple[str, str], ...] = ()

    @property
    def description(self) -> str:
        """KPI definitions (from state/kpis.py), then how this panel derives its value."""
        parts = [
            f"{k.title}: {k.definition} Counted: {k.counts}"
            for k in (KPI_BY_NAME[n] for n in self.kpis)
        ]
        return " ".join(parts + ([self.text] if self.text else []))


def unit_for(kpi_unit: str, currency: str) -> str:
    """The Grafana unit of a KPI's metric (days are exported in seconds)."""
    money = GRAFANA_CURRENCY.get(currency, f"suffix: {currency}")
    return {
        "currency": money,
        "currency_per_day": money,
        "ratio": "percentunit",
        "count": "short",
        "days": "s",
    }[kpi_unit]


def kpi_expr(name: str, period: str, scope: str, **match: str) -> str:
    """The KPI gauge for a period and scope (``all`` for current-state KPIs)."""
    kpi = KPI_BY_NAME[name]
    return selector(kpi.metric, period=kpi_period(kpi, period), scope=scope, **match)


def goal_steps(lower_is_better: bool, alert: float | None, goal: float | None) -> tuple[Step, ...]:
    """Colour steps from an alert threshold and a goal (either may be missing).

    >>> goal_steps(False, 0.2, 0.3)
    ((None, 'red'), (0.2, 'yellow'), (0.3, 'green'))
    >>> goal_steps(True, 5000, 3000)
    ((None, 'green'), (3000, 'yellow'), (5000, 'red'))
    """
    if alert is None and goal is None:
        return ()
    if lower_is_better:
        steps: list[Step] = [(None, "green")]
        if goal is not None and (alert is None or goal < alert):
            steps.append((goal, "yellow" if alert is not None else "orange"))
        if alert is not None:
            steps.append((alert, "red"))
        return tuple(steps)
    steps = [(None, "red")]
    if alert is not None:
        steps.append((alert, "yellow" if goal is not None and goal > alert else "green"))
    if goal is not None and (alert is None or goal > alert):
        steps.append((goal, "green"))
    return tuple(steps)


def kpi_steps(targets: Targets, name: str, period: str, scope: str) -> tuple[Step, ...]:
    """Thresholds of a KPI panel from the targets file, where they apply.

    Ratios and averages hold at any scope; amounts and counts only company-wide (a team's
    amount goal is drawn as a ``salespulse_target`` line instead).
    """
    kpi = KPI_BY_NAME[name]
    if kpi.unit in ("currency", "count") and scope != "total":
        return ()
    alert = targets.kpi_alert(name, period)
    goal = targets.goal(name, period)
    scale = kpi.metric_scale  # targets are in the KPI's unit, the metric in base units
    return goal_steps(
        targets.lower_is_better(name),
        alert.threshold * scale if alert else None,
        goal * scale if goal is not None else None,
    )


def kpi_panel(
    targets: Targets,
    title: str,
    name: str,
    period: str,
    scope: str,
    viz: str = "stat",
    text: str = "",
    width: int = 4,
    match: Mapping[str, str] | None = None,
) -> PanelSpec:
    """A panel showing one KPI for one period and scope."""
    kpi = KPI_BY_NAME[name]
    match = dict(match or {})
    shown = kpi_period(kpi, period)
    note = f"Period: {shown} (current, business timezone). {text}".strip()
    legend = (
        "{{rep}}"
        if scope == "rep" and "rep" not in match
        else ("{{team}}" if scope == "team" and "team" not in match else kpi.title)
    )
    return PanelSpec(
        title,
        viz,
        (Query(kpi_expr(name, period, scope, **match), legend),),
        unit_for(kpi.unit, targets.reporting_currency),
        (name,),
        note,
        kpi_steps(targets, name, period, scope),
        width,
    )


def _thresholds(steps: tuple[Step, ...]) -> db.ThresholdsConfig:
    steps = steps or ((None, "blue"),)
    return (
        db.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=v, color=c) for v, c in steps])
    )


def _target(query: Query, ref: str, table_format: bool) -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(query.expr).ref_id(ref).datasource(DATASOURCE)
    if query.legend:
        q = q.legend_format(query.legend)
    if table_format:
        q = q.instant().format(PromQueryFormat.TABLE)
    return q


def _reduce() -> cb.ReduceDataOptions:
    return cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def build_panel(spec: PanelSpec, panel_id: int) -> Any:
    """The grafana-foundation-sdk builder of a panel."""
    viz = spec.viz
    if viz == "stat":
        p: Any = stat.Panel().reduce_options(_reduce()).graph_mode(common.BigValueGraphMode.AREA)
        p = p.color_mode(common.BigValueColorMode.VALUE)
    elif viz == "gauge":
        p = gauge.Panel().reduce_options(_reduce()).min(0).show_threshold_markers(True)
    elif viz == "bargauge":
        p = (
            bargauge.Panel()
            .reduce_options(_reduce())
            .orientation(common.VizOrientation.HORIZONTAL)
            .display_mode(common.BarGaugeDisplayMode.GRADIENT)
        )
    elif viz == "timeseries":
        p = (
            timeseries.Panel()
            .fill_opacity(10)
            .thresholds_style(
                cb.GraphThresholdsStyleConfig().mode(
                    common.GraphThresholdsStyleMode.DASHED
                    if spec.steps
                    else common.GraphThresholdsStyleMode.OFF
                )
            )
        )
    elif viz == "table":
        p = table.Panel().with_transformation(dm.DataTransformerConfig(id_val="merge", options={}))
        p = p.with_transformation(
            dm.DataTransformerConfig(
                id_val="organize",
                options={
                    "excludeByName": {
                        "Time": True,
                        "job": True,
                        "instance": True,
                        "__name__": True,
                        "period": True,
                        "scope": True,
                        "office": True,
                    },
                    "renameByName": {
                        f"Value #{chr(65 + i)}": q.name for i, q in enumerate(spec.queries)
                    },
                },
            )
        )
        p = p.sort_by([cb.TableSortByFieldState().display_name(spec.queries[0].name).desc(True)])
        for column, unit in spec.column_units:
            p = p.override_by_name(column, [dm.DynamicConfigValue(id_val="unit", value=unit)])
    else:
        raise ValueError(f"unknown visualisation {viz!r}")
    p = (
        p.id(panel_id)
        .title(spec.title)
        .description(spec.description)
        .datasource(DATASOURCE)
        .unit(spec.unit)
        .thresholds(_thresholds(spec.steps))
        .span(spec.width)
        .height(spec.height)
    )
    for i, query in enumerate(spec.queries):
        p = p.with_target(_target(query, chr(65 + i), viz == "table"))
    return p
