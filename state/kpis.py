"""The KPI catalogue: each KPI declared once, with its definition, components and formula.

The declaration drives the computation (:mod:`state.readout`), the exported metric
(:mod:`state.metrics`), the generated ``docs/kpis.md``, the dashboards and alert rules.
A formula reads summed components for the selected period through :class:`Components`
and returns a number, or ``None`` when undefined (e.g. a ratio over zero).

Adding a KPI: one :class:`Kpi` entry here, one oracle function in ``tests/oracle``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class KpiParams:
    """Business parameters some formulas use (from the rules file, see ``state.rules``)."""

    gross_margin: float = 0.7
    churn_rate_floor: float = 0.01


class Components(Protocol):
    """Summed additive components for one period and one group."""

    params: KpiParams

    def __call__(self, component: str) -> int: ...
    def before(self, component: str) -> int: ...  # summed over all days before the period
    def through(self, component: str) -> int: ...  # summed over all days to period end


def _ratio(num: float, den: float) -> float | None:
    return None if den == 0 else num / den


@dataclass(frozen=True)
class Kpi:
    """One KPI: how it is defined, computed and exported."""

    name: str
    title: str
    unit: str  # "currency", "ratio", "count", "days", "currency_per_day"
    definition: str
    counts: str
    components: tuple[str, ...]
    formula: Callable[[Components], float | None]
    dimensions: tuple[str, ...] = ("rep", "team", "office")
    period: str = "event time of the closing/qualifying change, bucketed by local business day"

    @property
    def metric(self) -> str:
        """Prometheus gauge name (base units: ratios 0..1, durations in seconds, money in
        the reporting currency)."""
        suffix = {"ratio": "_ratio", "days": "_seconds", "currency_per_day": "_per_day"}
        return f"salespulse_{self.name}{suffix.get(self.unit, '')}"

    @property
    def metric_scale(self) -> float:
        """Factor from the KPI's unit to the metric's base unit (days -> seconds)."""
        return 86400.0 if self.unit == "days" else 1.0


def _customers_at_start(c: Components) -> int:
    return c.before("customers_new") - c.before("customers_churned")


def _mrr_at_start(c: Components) -> int:
    return c.before("mrr_started") - c.before("mrr_ended")


def _clv(c: Components) -> float | None:
    customers_end = c.through("customers_new") - c.through("customers_churned")
    mrr_end = c.through("mrr_started") - c.through("mrr_ended")
    start = _customers_at_start(c)
    if customers_end <= 0:
        return None
    churn = max(_ratio(c("customers_churned"), start) or 0.0, c.params.churn_rate_floor)
    return mrr_end / 100 / customers_end * c.params.gross_margin / churn


DEAL_DIMS = ("rep", "team", "office", "product", "source")

KPIS: tuple[Kpi, ...] = (
    Kpi(
        "won_revenue",
        "Won revenue",
        "currency",
        "Sum of won deal amounts, converted to the reporting currency at the close date's rate.",
        "Deals whose current status is won, counted on their close date (closed_at).",
        ("won_amount",),
        lambda c: c("won_amount") / 100,
        DEAL_DIMS,
    ),
    Kpi(
        "deals_won",
        "Deals won",
        "count",
        "Number of won deals.",
        "Deals whose current status is won, on their close date.",
        ("won_count",),
        lambda c: c("won_count"),
        DEAL_DIMS,
    ),
    Kpi(
        "deals_lost",
        "Deals lost",
        "count",
        "Number of lost deals.",
        "Deals whose current status is lost, on their close date.",
        ("lost_count",),
        lambda c: c("lost_count"),
        DEAL_DIMS,
    ),
    Kpi(
        "win_rate",
        "Win rate",
        "ratio",
        "won / (won + lost), by count.",
        "Deals closed (won or lost) in the period, on their close date.",
        ("won_count", "lost_count"),
        lambda c: _ratio(c("won_count"), c("won_count") + c("lost_count")),
        DEAL_DIMS,
    ),
    Kpi(
        "win_rate_by_value",
        "Win rate by value",
        "ratio",
        "won amount / (won amount + lost amount).",
        "Deals closed in the period, on their close date.",
        ("won_amount", "lost_amount"),
        lambda c: _ratio(c("won_amount"), c("won_amount") + c("lost_amount")),
        DEAL_DIMS,
    ),
    Kpi(
        "average_deal_size",
        "Average deal size",
        "currency",
        "won amount / won count.",
        "Deals won in the period, on their close date.",
        ("won_amount", "won_count"),
        lambda c: _ratio(c("won_amount") / 100, c("won_count")),
        DEAL_DIMS,
    ),
    Kpi(
        "sales_cycle",
        "Sales cycle (won)",
        "days",
        "Mean days from deal creation (created_at, or first engagement) to close.",
        "Won deals closed in the period that have both dates; two plain dates count whole days.",
        ("won_cycle_seconds", "won_cycle_count"),
        lambda c: _ratio(c("won_cycle_seconds") / 86400, c("won_cycle_count")),
        DEAL_DIMS,
    ),
    Kpi(
        "sales_cycle_closed",
        "Sales cycle (won and lost)",
        "days",
        "Mean days from creation to close over won and lost deals.",
        "Won and lost deals closed in the period that have both dates.",
        ("won_cycle_seconds", "lost_cycle_seconds", "won_cycle_count", "lost_cycle_count"),
        lambda c: _ratio(
            (c("won_cycle_seconds") + c("lost_cycle_seconds")) / 86400,
            c("won_cycle_count") + c("lost_cycle_count"),
        ),
        DEAL_DIMS,
    ),
    Kpi(
        "open_deals",
        "Open deals",
        "count",
        "Number of deals currently open.",
        "Deals neither won nor lost now; not bucketed by period.",
        ("open_count",),
        lambda c: c("open_count"),
        DEAL_DIMS,
        period="current state (timeless)",
    ),
    Kpi(
        "open_pipeline",
        "Open pipeline",
        "currency",
        "Sum of open deal amounts.",
        "Deals currently open; not bucketed by period.",
        ("open_amount",),
        lambda c: c("open_amount") / 100,
        DEAL_DIMS,
        period="current state (timeless)",
    ),
    Kpi(
        "weighted_pipeline",
        "Weighted pipeline",
        "currency",
        "Sum of open deal amount x probability (the deal's, else its stage's).",
        "Deals currently open, bucketed by expected close date.",
        ("pipeline_weighted_amount",),
        lambda c: c("pipeline_weighted_amount") / 100,
        DEAL_DIMS,
        period="expected close date of open deals",
    ),
    Kpi(
        "qualified_leads",
        "Qualified leads",
        "count",
        "Leads entering a qualified stage (qualified_at, else first event in a qualified stage).",
        "Leads alive now, on the day they became qualified.",
        ("leads_qualified",),
        lambda c: c("leads_qualified"),
    ),
    Kpi(
        "lead_conversion_rate",
        "Lead conversion rate",
        "ratio",
        "Period view: leads converted to won in period / leads qualified in period.",
        "A lead converts on the close date of its first won deal (deal.lead_id).",
        ("leads_converted", "leads_qualified"),
        lambda c: _ratio(c("leads_converted"), c("leads_qualified")),
    ),
    Kpi(
        "cohort_conversion_rate",
        "Cohort conversion rate",
        "ratio",
        "Cohort view: of leads qualified in the period, the share won so far.",
        "Leads qualified in the period; won at any time.",
        ("cohort_converted", "leads_qualified"),
        lambda c: _ratio(c("cohort_converted"), c("leads_qualified")),
    ),
    Kpi(
        "activities",
        "Sales activities",
        "count",
        "Number of activities, by type.",
        "Activities alive now (calls, emails, meetings, demos, tasks, other) on their done_at day.",
        ("activities",),
        lambda c: c("activities"),
        ("rep", "team", "office", "kind"),
    ),
    Kpi(
        "quota",
        "Quota",
        "currency",
        "Sum of quotas whose period starts in the period.",
        "Quota entities of the period kind read (month, quarter, year).",
        ("quota_amount",),
        lambda c: c("quota_amount") / 100,
    ),
    Kpi(
        "quota_attainment",
        "Quota attainment",
        "ratio",
        "won amount / quota for the period.",
        "Won deals closed in the period; quotas of that period kind.",
        ("won_amount", "quota_amount"),
        lambda c: _ratio(c("won_amount"), c("quota_amount")),
    ),
    Kpi(
        "new_customers",
        "New customers",
        "count",
        "Accounts whose first won deal closed in the period.",
        "Accounts (alive) with at least one won deal (deal.account_id).",
        ("customers_new",),
        lambda c: c("customers_new"),
        ("team", "office"),
    ),
    Kpi(
        "customer_acquisition_cost",
        "Customer acquisition cost",
        "currency",
        "Sales and marketing spend in period / new customers in period.",
        "Spend entities on spent_at; new customers as above.",
        ("spend_amount", "customers_new"),
        lambda c: _ratio(c("spend_amount") / 100, c("customers_new")),
        (),
    ),
    Kpi(
        "logo_churn_rate",
        "Logo churn rate",
        "ratio",
        "Customers churned in period / customers at period start.",
        "Accounts with churned_at in the period; customers = first won before, not churned.",
        ("customers_churned", "customers_new"),
        lambda c: _ratio(c("customers_churned"), _customers_at_start(c)),
        (),
    ),
    Kpi(
        "retention_rate",
        "Customer retention rate",
        "ratio",
        "(customers at end - new customers) / customers at start.",
        "As logo churn; end = start + new - churned.",
        ("customers_churned", "customers_new"),
        lambda c: _ratio(_customers_at_start(c) - c("customers_churned"), _customers_at_start(c)),
        (),
    ),
    Kpi(
        "revenue_churn_rate",
        "Revenue churn rate",
        "ratio",
        "MRR of subscriptions ended in period / MRR at period start.",
        "Subscription entities (mrr, started_at, ended_at).",
        ("mrr_ended", "mrr_started"),
        lambda c: _ratio(c("mrr_ended"), _mrr_at_start(c)),
        (),
    ),
    Kpi(
        "net_revenue_retention",
        "Net revenue retention",
        "ratio",
        "(MRR at start + expansion MRR - ended MRR) / MRR at start.",
        "Subscriptions; expansion = subscriptions of kind 'expansion' started in period.",
        ("mrr_started", "mrr_ended", "mrr_expansion"),
        lambda c: _ratio(_mrr_at_start(c) + c("mrr_expansion") - c("mrr_ended"), _mrr_at_start(c)),
        (),
    ),
    Kpi(
        "customer_lifetime_value",
        "Customer lifetime value",
        "currency",
        "ARPA x gross margin / logo churn rate of the period, churn floored; margin and "
        "floor from the rules file (`gross_margin`, default 0.7; `churn_rate_floor`, "
        "default 0.01).",
        "ARPA = MRR at period end / customers at period end; read it over a month.",
        ("mrr_started", "mrr_ended", "customers_new", "customers_churned"),
        _clv,
        (),
    ),
)

KPI_BY_NAME = {k.name: k for k in KPIS}
