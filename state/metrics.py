"""Prometheus metric families from a :class:`state.readout.Readout` (no I/O here).

Every KPI is a gauge named by its declaration (:attr:`state.kpis.Kpi.metric`), labelled
``period`` (the *current* period of that kind in the business timezone, or ``all``),
``scope`` (total, office, team, rep) and ``office``/``team``/``rep`` (empty where the
scope is coarser). Labels are bounded: no deal, lead or contact ids ever.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

from prometheus_client.core import GaugeMetricFamily

from state.calendar import BusinessCalendar
from state.kpis import KPIS, Kpi
from state.readout import Period, Readout

EXPORTED_PERIODS = (
    "day",
    "week",
    "month",
    "quarter",
    "year",
    "fiscal_quarter",
    "fiscal_year",
    "trailing_7d",
    "trailing_30d",
    "trailing_90d",
    "trailing_365d",
    "all",
)
TIMELESS = {"open_deals", "open_pipeline"}
SCOPES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("total", ()),
    ("office", ("office",)),
    ("team", ("team",)),
    ("rep", ("rep", "team", "office")),
)
LABELS = ["period", "scope", "office", "team", "rep"]


def _period(cal: BusinessCalendar, kind: str, today: date) -> Period:
    return Period() if kind == "all" else Period.of(cal, kind, today)


def _scopes(kpi: Kpi) -> Iterator[tuple[str, tuple[str, ...]]]:
    for scope, dims in SCOPES:
        if all(d in kpi.dimensions for d in dims):
            yield scope, dims


def _labels(period: str, scope: str, dims: tuple[str, ...], group: tuple[str, ...]) -> list[str]:
    named = dict(zip(dims, group, strict=True))
    return [period, scope, named.get("office", ""), named.get("team", ""), named.get("rep", "")]


def kpi_family(kpi: Kpi, readout: Readout, cal: BusinessCalendar, today: date) -> GaugeMetricFamily:
    """One gauge family with every period and scope of a KPI."""
    kind_label = "kind" in kpi.dimensions
    family = GaugeMetricFamily(
        kpi.metric,
        f"{kpi.title}: {kpi.definition}",
        labels=LABELS + (["kind"] if kind_label else []),
    )
    periods = ("all",) if kpi.name in TIMELESS else EXPORTED_PERIODS
    for kind in periods:
        period = _period(cal, kind, today)
        for scope, dims in _scopes(kpi):
            group_by = dims + (("kind",) if kind_label else ())
            for group, value in readout.grouped(kpi.name, period, group_by).items():
                if value is None:
                    continue
                labels = _labels(kind, scope, dims, group[: len(dims)])
                family.add_metric(labels + list(group[len(dims) :]), value * kpi.metric_scale)
    return family


def derived_families(
    readout: Readout, cal: BusinessCalendar, today: date
) -> Iterator[GaugeMetricFamily]:
    """Sales velocity, like-for-like growth and quota pace."""
    scope_labels = ["scope", "office", "team", "rep"]
    velocity = GaugeMetricFamily(
        "salespulse_sales_velocity_per_day",
        "Sales velocity: open deals x average deal size x win rate / sales cycle days "
        "(ratios over the trailing 90 days), revenue per day.",
        labels=scope_labels,
    )
    growth = GaugeMetricFamily(
        "salespulse_won_revenue_growth_ratio",
        "Won revenue growth, like for like: this month to date vs the same days of the "
        "previous month (mom) or of the same month a year before (yoy).",
        labels=["comparison", *scope_labels],
    )
    pace = GaugeMetricFamily(
        "salespulse_quota_attainment_pace_ratio",
        "Quota attainment divided by the elapsed share of the period (1 = on pace).",
        labels=["period", *scope_labels],
    )
    for scope, dims in SCOPES:
        groups = readout.grouped("won_revenue", Period(), dims) if dims else {(): 0.0}
        for group in groups:
            filters = dict(zip(dims, group, strict=True))
            labels = _labels("", scope, dims, group)[1:]
            v = readout.sales_velocity(cal, today, filters=filters)
            if v is not None:
                velocity.add_metric(labels, v)
            for lag in ("mom", "yoy"):
                g = readout.growth("won_revenue", cal, "month", today, lag, filters)
                if g is not None:
                    growth.add_metric([lag, *labels], g)
            for kind in ("month", "quarter", "year"):
                start, end = cal.period_range(kind, today)
                elapsed = ((today - start).days + 1) / (end - start).days
                att = readout.value("quota_attainment", Period.of(cal, kind, today), filters)
                if att is not None:
                    pace.add_metric([kind, *labels], att / elapsed)
    yield from (velocity, growth, pace)


def all_kpi_families(
    readout: Readout, cal: BusinessCalendar, today: date
) -> Iterator[GaugeMetricFamily]:
    """Every KPI gauge and the derived gauges."""
    for kpi in KPIS:
        yield kpi_family(kpi, readout, cal, today)
    yield from derived_families(readout, cal, today)
