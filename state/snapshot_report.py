"""A KPI snapshot as one JSON document: all-time totals and won revenue broken down.

The same function serves the backfill dry run (aggregates of an in-process
:class:`state.processor.PartitionState`) and any reader of the live aggregates (the
collector's summed partitions), so both can be compared value for value. The shape is
documented in ``docs/backfill.md``; in short::

    {"schema": "salespulse.kpi-snapshot/1", "reporting_currency": "USD", "timezone": "UTC",
     "totals": {"win_rate": 0.63.., "won_revenue": 10005534.0, ...},
     "by": {"office": {"West": {...deal KPIs...}, ...}, "team": {...}, "rep": {...},
            "product": {...}},
     "by_close_quarter": {"2017-Q1": {...deal KPIs without the open ones...}, ...}}

Values are unrounded: money in reporting-currency units (exact to the cent, computed
from integer cents), ratios in 0..1, durations in days; ``None`` (JSON ``null``) when a
ratio has no denominator. The group of entities without a value for a dimension (e.g.
deals of a rep not in any team) is called ``"(none)"``.

>>> from state.readout import Readout
>>> from state.rules import Rules
>>> aggs = {("won_amount", "2017-03-01", "Ann", "T", "East", "", "", ""): 150000,
...         ("won_count", "2017-03-01", "Ann", "T", "East", "", "", ""): 1,
...         ("lost_count", "2017-04-02", "Bob", "T", "East", "", "", ""): 1}
>>> snap = kpi_snapshot(Readout(aggs), Rules())
>>> snap["totals"]["win_rate"], snap["by"]["office"]["East"]["won_revenue"]
(0.5, 1500)
>>> sorted(snap["by_close_quarter"]), snap["by_close_quarter"]["2017-Q2"]["deals_lost"]
(['2017-Q1', '2017-Q2'], 1)
"""

from __future__ import annotations

from datetime import date
from typing import Any

from state.readout import Period, Readout
from state.rules import Rules

SCHEMA = "salespulse.kpi-snapshot/1"
NONE_GROUP = "(none)"

# Deal KPIs of every group and of the totals, in output order.
CLOSED_KPIS = (
    "won_revenue",
    "deals_won",
    "deals_lost",
    "win_rate",
    "win_rate_by_value",
    "average_deal_size",
    "sales_cycle",
    "sales_cycle_closed",
)
OPEN_KPIS = ("open_deals", "open_pipeline", "weighted_pipeline")
DEAL_KPIS = CLOSED_KPIS + OPEN_KPIS
# Totals only (not broken down by deal dimensions).
OTHER_TOTALS = ("new_customers", "qualified_leads", "lead_conversion_rate", "activities")
DIMENSIONS = ("office", "team", "rep", "product")
CLOSING_COMPONENTS = ("won_count", "lost_count")


def _num(value: float | None) -> float | int | None:
    if value is None:
        return None
    return int(value) if float(value).is_integer() and abs(value) < 2**53 else value


def close_quarters(readout: Readout, rules: Rules) -> list[str]:
    """Quarter keys (``2017-Q1``) of every day on which a deal was won or lost."""
    days = {key[1] for key in readout.aggregates if key[0] in CLOSING_COMPONENTS and key[1]}
    keys = {rules.calendar.period_key("quarter", date.fromisoformat(d)) for d in days}
    return sorted(keys)


def _quarter_period(rules: Rules, key: str) -> Period:
    year, quarter = key.split("-Q")
    return Period.of(rules.calendar, "quarter", date(int(year), 3 * int(quarter) - 2, 1))


def kpi_snapshot(readout: Readout, rules: Rules) -> dict[str, Any]:
    """The KPI snapshot document of ``readout`` (see the module docstring for the shape)."""
    everything = Period()
    totals: dict[str, Any] = {
        name: _num(readout.value(name, everything)) for name in (*DEAL_KPIS, *OTHER_TOTALS)
    }
    by: dict[str, dict[str, dict[str, Any]]] = {}
    for dim in DIMENSIONS:
        table: dict[str, dict[str, Any]] = {}
        for name in DEAL_KPIS:
            for (group,), value in readout.grouped(name, everything, (dim,)).items():
                table.setdefault(group or NONE_GROUP, {})[name] = _num(value)
        by[dim] = {g: {n: row.get(n) for n in DEAL_KPIS} for g, row in sorted(table.items())}
        for row in by[dim].values():  # a group without open deals has zero of them
            for name in ("deals_won", "deals_lost", *OPEN_KPIS):
                row[name] = row[name] or 0
            row["won_revenue"] = row["won_revenue"] or 0
    quarters = {
        key: {name: _num(readout.value(name, _quarter_period(rules, key))) for name in CLOSED_KPIS}
        for key in close_quarters(readout, rules)
    }
    return {
        "schema": SCHEMA,
        "reporting_currency": rules.reporting_currency,
        "timezone": rules.timezone,
        "totals": totals,
        "by": by,
        "by_close_quarter": quarters,
    }
