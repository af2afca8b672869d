"""``docs/kpis.md``, generated from the KPI declarations in :mod:`state.kpis`.

Every KPI is declared once (name, title, unit, definition, what counts, components,
dimensions, period semantics); this module renders those declarations, with how periods
and exactness work, as the product's written definition of each KPI. ``salespulse
generate`` writes the file and ``tests/test_docs_generated.py`` fails when the checked-in
copy is stale.

>>> text = render_kpis_md()
>>> text.splitlines()[0], "## Won revenue (`won_revenue`)" in text
('# KPI definitions', True)
"""

from __future__ import annotations

from pathlib import Path

from state.kpis import KPIS, Kpi
from state.metrics import EXPORTED_PERIODS, SCOPES, TIMELESS

KPIS_MD = Path(__file__).resolve().parents[1] / "docs" / "kpis.md"
HEADER = (
    "<!-- Generated from state/kpis.py by salespulse/docs_gen.py. "
    "Do not edit: run `salespulse generate`. -->"
)

UNITS = {
    "currency": "reporting currency (e.g. USD), converted exactly from integer cents",
    "ratio": "ratio between 0 and 1 (multiply by 100 for a percentage)",
    "count": "count",
    "days": "days (the metric is exported in seconds, the Prometheus base unit)",
    "currency_per_day": "reporting currency per day",
}

DIMENSIONS = {
    "rep": "the entity's `owner`",
    "team": "the entity's `team`",
    "office": "the entity's `office`",
    "product": "the deal's `product`",
    "source": "the deal's `source`",
    "kind": "activity type (call, email, meeting, demo, task, other)",
}

# What each additive component sums; every component a KPI reads must be described here.
COMPONENTS = {
    "won_amount": "cents of won deals, on the close day (rate of the close date)",
    "won_count": "won deals, on the close day",
    "lost_amount": "cents of lost deals, on the close day",
    "lost_count": "lost deals, on the close day",
    "won_cycle_seconds": "seconds from `created_at` to `closed_at` of won deals, on the close day",
    "won_cycle_count": "won deals that have both `created_at` and `closed_at`",
    "lost_cycle_seconds": "seconds from `created_at` to `closed_at` of lost deals",
    "lost_cycle_count": "lost deals that have both `created_at` and `closed_at`",
    "open_count": "deals open now (timeless)",
    "open_amount": "cents of deals open now (timeless; rate of the expected close date)",
    "pipeline_amount": "cents of open deals, on the expected close day",
    "pipeline_weighted_amount": (
        "cents of open deals x probability (the deal's `probability`, else its stage's), "
        "rounded half to even per deal, on the expected close day"
    ),
    "leads_qualified": "leads, on the day they became qualified",
    "leads_converted": "leads, on the close day of their first won deal",
    "cohort_converted": "leads with a won deal (at any time), on the day they became qualified",
    "activities": "activities, on their `done_at` day (else the day first seen)",
    "quota_amount": "cents of quotas, on their `period_start` day, by period kind",
    "customers_new": "accounts, on the close day of their first won deal",
    "customers_churned": (
        "customer accounts, on their `churned_at` day (unless before their first win)"
    ),
    "spend_amount": "cents of sales and marketing spend, on the `spent_at` day",
    "mrr_started": "cents of monthly recurring revenue, on the subscription's `started_at` day",
    "mrr_ended": "cents of monthly recurring revenue, on the subscription's `ended_at` day",
    "mrr_expansion": "cents of MRR of subscriptions of kind `expansion`, on `started_at`",
}

INTRO = """\
# KPI definitions

{header}

Every KPI below is declared once in `state/kpis.py`: the engine, the Prometheus metric,
the dashboards, the alert rules and this page are derived from that declaration. A KPI is
a sum of additive *components* (counts, integer cents, seconds) or a ratio of such sums,
computed only when it is read.

## Periods

- **Event time decides the period, never arrival time.** Each fact is counted on a *local
  business day*: the date, in the configured business timezone (`timezone` in the rules
  file, or `SALESPULSE_BUSINESS_TIMEZONE`), of the relevant field (`closed_at` for a deal's
  close, `done_at` for an activity, ...) or, where a KPI says so, of the event. A deal won
  at 23:30 in New York on March 31 counts in March even though it is April 1 in UTC.
- **Field formats.** A plain ISO date (`2017-03-31`) is that local day; an ISO datetime
  with an offset (`2017-04-01T03:30:00Z`) is an instant; an ISO datetime without offset is
  local wall-clock time; a number is epoch milliseconds. Durations between two plain dates
  count whole days, whatever daylight saving time does in between.
- **Calendar periods** are day, week (Monday to Sunday), month, quarter and year of local
  days. **Fiscal quarters and years** start in the configured month
  (`fiscal_year_start_month`); a fiscal year is named after the calendar year in which it
  ends: with an April start, FY2018 runs from 2017-04-01 to 2018-03-31 and 2017-05-10 is
  in FY2018-Q1. **Trailing windows** (`trailing_7d`, `trailing_30d`, `trailing_90d`,
  `trailing_365d`) are the last N local days, today included. `all` is all time.
- **Timeless facts** (deals open now) count in every period. So do three facts that lack
  their date: a closed deal without `closed_at`, an open deal without `expected_close` and
  a quota without `period_start`.
- **At period start / end.** Customers and MRR "at period start" are everything counted
  before the period's first day (customers: first won deal before it, minus churned
  before it); "at period end" adds the period itself.
- **Quotas** are read by kind: a month reads monthly quotas, a quarter or fiscal quarter
  quarterly quotas, a year or fiscal year yearly quotas (a quota without `period` is
  monthly); other periods (day, week, trailing windows, all time) add up every kind.
- **Growth** is like for like: month to date is compared with the same number of days
  from the start of the previous month (`mom`, clipped to that month) or of the same month
  a year before (`yoy`). Exported as `salespulse_won_revenue_growth_ratio`.
- **Sales velocity** = open deals x average deal size x win rate / sales cycle days, the
  ratios over the trailing 90 days, in revenue per day
  (`salespulse_sales_velocity_per_day`).

## Exactness

- CRM webhooks arrive at least once and out of order. Each entity's snapshot keeps, per
  field, the value of the change with the greatest `(version, event_id)`
  (last writer wins), and whether the entity exists (create and restore vs delete and
  merge, also last writer wins); milestones keep the earliest event time (e.g. the first
  event in a qualified lead stage). Applying the same events in any order, any number of
  times, gives the same snapshot, so nothing is double counted.
- Money is converted to the reporting currency with the rate in force on the relevant
  date (the close date for won and lost deals, the spend date, the subscription start,
  the quota period start, the expected close date for open deals), rounded half to even
  to integer cents; the original amount and currency are kept. Sums of cents are exact;
  ratios are computed from those sums only when read.
- A deal's win reaches its lead and its account as a versioned fact, so conversion and
  new customers follow the deal's current status, lead and account.
- `tests/oracle` recomputes every KPI from the raw event log in batch; property tests
  with duplicates, reordering, deletes, merges and restores must agree with it exactly.

## Exported metrics

Every KPI is a Prometheus gauge labelled `period` (the current period of that kind:
{periods}), `scope` (`total`, `office`, `team`, `rep`, as far as the KPI's dimensions
allow) and `office`, `team`, `rep` (empty where the scope is coarser); activities also
carry `kind`. A ratio whose denominator is zero has no sample.

| KPI | metric | unit |
|---|---|---|
"""


def _code(items: tuple[str, ...] | list[str]) -> str:
    return ", ".join(f"`{item}`" for item in items) if items else "none (total only)"


def _kpi_section(kpi: Kpi) -> str:
    scopes = [scope for scope, dims in SCOPES if all(d in kpi.dimensions for d in dims)]
    periods = "`all` only (current state)" if kpi.name in TIMELESS else "every exported period"
    lines = [
        f"## {kpi.title} (`{kpi.name}`)",
        "",
        f"- **Metric:** `{kpi.metric}` (gauge; {periods}; scopes {_code(scopes)})",
        f"- **Unit:** {UNITS.get(kpi.unit, kpi.unit)}",
        f"- **Definition:** {kpi.definition}",
        f"- **What counts:** {kpi.counts}",
        f"- **Period:** {kpi.period}",
        "- **Components:**",
        *(f"  - `{c}`: {COMPONENTS.get(c, '(undocumented component)')}" for c in kpi.components),
        "- **Dimensions:** "
        + (
            ", ".join(f"`{d}` ({DIMENSIONS.get(d, d)})" for d in kpi.dimensions)
            if kpi.dimensions
            else "none (total only)"
        ),
    ]
    return "\n".join(lines) + "\n"


def render_kpis_md() -> str:
    """The text of ``docs/kpis.md`` for the current KPI declarations."""
    periods = ", ".join(f"`{p}`" for p in EXPORTED_PERIODS)
    out = [INTRO.format(header=HEADER, periods=periods)]
    out.extend(f"| [{k.title}](#{_anchor(k)}) | `{k.metric}` | {k.unit} |\n" for k in KPIS)
    for kpi in KPIS:
        out.append("\n" + _kpi_section(kpi))
    return "".join(out)


def _anchor(kpi: Kpi) -> str:
    """GitHub's anchor of a KPI's heading."""
    heading = f"{kpi.title} ({kpi.name})".lower()
    kept = "".join(ch for ch in heading if ch.isalnum() or ch in " -_")
    return kept.replace(" ", "-")


def write_kpis_md(path: str | Path = KPIS_MD) -> bool:
    """Write ``docs/kpis.md`` (or ``path``); return whether the file changed."""
    target = Path(path)
    text = render_kpis_md()
    if target.exists() and target.read_text() == text:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    return True


if __name__ == "__main__":
    print("updated" if write_kpis_md() else "up to date", KPIS_MD)
