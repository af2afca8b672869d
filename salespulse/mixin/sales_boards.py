"""The sales boards' panels: Executive (company), Manager (one ``team``), Rep (one ``rep``).

Each function returns the rows of one board as :class:`~salespulse.mixin.panels.PanelSpec`
lists; :mod:`salespulse.mixin.dashboards` renders them.
"""

from __future__ import annotations

from dataclasses import replace

from salespulse.mixin.panels import (
    PanelSpec,
    Query,
    Step,
    kpi_expr,
    kpi_panel,
    kpi_steps,
    unit_for,
)
from salespulse.mixin.render import number
from salespulse.mixin.rules import ACTIVITIES_ALL_KINDS, REVENUE_VS_TARGET, selector
from salespulse.mixin.targets import Targets

Rows = list[tuple[str, list[PanelSpec]]]


def _attainment_steps(t: Targets) -> tuple[Step, ...]:
    pace = t.pipeline_alerts.quota_pace
    return ((None, "red"), (pace.below if pace else 0.8, "yellow"), (1.0, "green"))


def _pace_steps(t: Targets) -> tuple[Step, ...]:
    pace = t.pipeline_alerts.quota_pace
    return ((None, "red"), (pace.below if pace else 0.8, "green"))


def _growth(comparison: str, words: str) -> PanelSpec:
    return PanelSpec(
        f"Won revenue growth, {words}",
        "stat",
        (
            Query(
                selector(
                    "salespulse_won_revenue_growth_ratio", comparison=comparison, scope="total"
                ),
                words,
            ),
        ),
        "percentunit",
        ("won_revenue",),
        f"Growth {comparison}: (this month to date - previous) / previous, like for like: the "
        "same days of the previous month (mom) or of the same month a year before (yoy).",
        ((None, "red"), (0.0, "green")),
        4,
    )


def _velocity(t: Targets, scope: str, **match: str) -> PanelSpec:
    return PanelSpec(
        "Sales velocity (per day)",
        "stat",
        (Query(selector("salespulse_sales_velocity_per_day", scope=scope, **match), "velocity"),),
        unit_for("currency_per_day", t.reporting_currency),
        ("open_deals", "average_deal_size", "win_rate", "sales_cycle"),
        "Velocity = open deals x average deal size x win rate / sales cycle days: expected "
        "revenue per day, the ratios over the trailing 90 days.",
        (),
        4,
    )


def _goal_trend(t: Targets, title: str, scope: str, **match: str) -> PanelSpec:
    goal = {"kpi": "won_revenue", "period": "month", "scope": scope, **match}
    return PanelSpec(
        title,
        "timeseries",
        (
            Query(kpi_expr("won_revenue", "month", scope, **match), "won revenue"),
            Query(
                f"{selector('salespulse_target', **goal)} or "
                f"{selector('salespulse_quota', period='month', scope=scope, **match)}",
                "goal",
            ),
        ),
        unit_for("currency", t.reporting_currency),
        ("won_revenue",),
        "Month to date over time, with the month's goal from deploy/targets.yaml "
        "(salespulse_target), else the sum of the month's quotas (salespulse_quota).",
        kpi_steps(t, "won_revenue", "month", scope),
        12,
        8,
    )


def _data_age(t: Targets) -> PanelSpec:
    stale = t.pipeline_alerts.data_stale
    return PanelSpec(
        "Age of the newest event",
        "stat",
        (Query("time() - max(salespulse_last_event_timestamp_seconds)", "age"),),
        "s",
        (),
        "Seconds since the event time of the newest CRM event applied, over all "
        "sources (salespulse_last_event_timestamp_seconds). Numbers on this board are as of "
        "then.",
        ((None, "green"), (stale.minutes * 60, "red")) if stale else (),
        4,
    )


def executive(t: Targets) -> Rows:
    return [
        (
            "Revenue",
            [
                kpi_panel(t, "Won revenue, month to date", "won_revenue", "month", "total"),
                PanelSpec(
                    "Won revenue vs goal, month",
                    "gauge",
                    (
                        Query(
                            selector(REVENUE_VS_TARGET, period="month", scope="total"), "attainment"
                        ),
                    ),
                    "percentunit",
                    ("won_revenue",),
                    "Won revenue month to date / the month's company goal "
                    f"({number(t.goal('won_revenue', 'month') or 0)} in deploy/targets.yaml).",
                    _attainment_steps(t),
                    4,
                ),
                kpi_panel(t, "Won revenue, quarter to date", "won_revenue", "quarter", "total"),
                kpi_panel(t, "Won revenue, year to date", "won_revenue", "year", "total"),
                _growth("mom", "month over month"),
                _growth("yoy", "year over year"),
            ],
        ),
        (
            "Revenue vs goal",
            [
                _goal_trend(t, "Won revenue and goal through the month", "total"),
                replace(
                    kpi_panel(
                        t,
                        "Won revenue by team, month",
                        "won_revenue",
                        "month",
                        "team",
                        "bargauge",
                        width=12,
                    ),
                    height=8,
                ),
            ],
        ),
        (
            "Customers",
            [
                kpi_panel(t, "New customers, month", "new_customers", "month", "total"),
                kpi_panel(
                    t, "CAC, trailing 90 days", "customer_acquisition_cost", "trailing_90d", "total"
                ),
                kpi_panel(
                    t, "Customer lifetime value, month", "customer_lifetime_value", "month", "total"
                ),
                kpi_panel(t, "Logo churn, month", "logo_churn_rate", "month", "total"),
                kpi_panel(t, "Revenue churn, month", "revenue_churn_rate", "month", "total"),
                kpi_panel(
                    t,
                    "Net revenue retention, trailing 90 days",
                    "net_revenue_retention",
                    "trailing_90d",
                    "total",
                ),
            ],
        ),
        (
            "Pipeline",
            [
                kpi_panel(
                    t,
                    "Weighted pipeline, closing this quarter",
                    "weighted_pipeline",
                    "quarter",
                    "total",
                ),
                kpi_panel(t, "Open pipeline", "open_pipeline", "all", "total"),
                _velocity(t, "total"),
                kpi_panel(t, "Win rate, trailing 30 days", "win_rate", "trailing_30d", "total"),
                kpi_panel(
                    t,
                    "Average deal size, trailing 90 days",
                    "average_deal_size",
                    "trailing_90d",
                    "total",
                ),
                kpi_panel(
                    t, "Sales cycle, trailing 90 days", "sales_cycle", "trailing_90d", "total"
                ),
            ],
        ),
        (
            "Leads and data",
            [
                kpi_panel(t, "Qualified leads, month", "qualified_leads", "month", "total"),
                kpi_panel(
                    t,
                    "Lead conversion, trailing 90 days",
                    "lead_conversion_rate",
                    "trailing_90d",
                    "total",
                ),
                kpi_panel(
                    t, "Cohort conversion, quarter", "cohort_conversion_rate", "quarter", "total"
                ),
                _data_age(t),
            ],
        ),
    ]


def _leaderboard(t: Targets) -> PanelSpec:
    team = {"team": "$team"}
    columns = [
        ("Won revenue", "won_revenue", "month"),
        ("Deals won", "deals_won", "month"),
        ("Quota attainment", "quota_attainment", "month"),
        ("Win rate (30 days)", "win_rate", "trailing_30d"),
        ("Sales cycle (90 days)", "sales_cycle", "trailing_90d"),
    ]
    queries = [
        Query(f"max by (team, rep) ({kpi_expr(k, p, 'rep', **team)})", name=c)
        for c, k, p in columns
    ]
    queries.append(
        Query(
            "max by (team, rep) ("
            + selector(ACTIVITIES_ALL_KINDS, period="month", scope="rep", **team)
            + ")",
            name="Activities",
        )
    )
    units = [
        (c, unit_for(u, t.reporting_currency))
        for c, u in (
            ("Deals won", "count"),
            ("Quota attainment", "ratio"),
            ("Win rate (30 days)", "ratio"),
            ("Sales cycle (90 days)", "days"),
            ("Activities", "count"),
        )
    ]
    return PanelSpec(
        "Leaderboard, month",
        "table",
        tuple(queries),
        unit_for("currency", t.reporting_currency),
        ("won_revenue", "deals_won", "quota_attainment", "win_rate", "sales_cycle", "activities"),
        "One row per rep of the team, sorted by won revenue this month.",
        (),
        24,
        10,
        tuple(units),
    )


def manager(t: Targets) -> Rows:
    team = {"team": "$team"}
    return [
        (
            "Team $team",
            [
                kpi_panel(
                    t, "Won revenue, month to date", "won_revenue", "month", "team", match=team
                ),
                replace(
                    kpi_panel(
                        t,
                        "Quota attainment, month",
                        "quota_attainment",
                        "month",
                        "team",
                        "gauge",
                        match=team,
                    ),
                    steps=_attainment_steps(t),
                ),
                PanelSpec(
                    "Quota pace, month",
                    "stat",
                    (
                        Query(
                            selector(
                                "salespulse_quota_attainment_pace_ratio",
                                period="month",
                                scope="team",
                                **team,
                            ),
                            "pace",
                        ),
                    ),
                    "percentunit",
                    ("quota_attainment",),
                    "Pace = attainment / elapsed share of the month; 1 = on pace.",
                    _pace_steps(t),
                    4,
                ),
                kpi_panel(
                    t, "Win rate, trailing 30 days", "win_rate", "trailing_30d", "team", match=team
                ),
                kpi_panel(
                    t,
                    "Lead conversion, trailing 90 days",
                    "lead_conversion_rate",
                    "trailing_90d",
                    "team",
                    match=team,
                ),
                kpi_panel(
                    t,
                    "Sales cycle, trailing 90 days",
                    "sales_cycle",
                    "trailing_90d",
                    "team",
                    match=team,
                ),
            ],
        ),
        (
            "Revenue and activity",
            [
                _goal_trend(t, "Won revenue and goal through the month", "team", **team),
                PanelSpec(
                    "Activities by kind, this week",
                    "bargauge",
                    (Query(kpi_expr("activities", "week", "team", **team), "{{kind}}"),),
                    "short",
                    ("activities",),
                    "Period: week (current).",
                    (),
                    12,
                    8,
                ),
            ],
        ),
        (
            "Reps of $team",
            [
                replace(
                    kpi_panel(
                        t,
                        "Won revenue per rep, month",
                        "won_revenue",
                        "month",
                        "rep",
                        "bargauge",
                        width=8,
                        match=team,
                    ),
                    height=8,
                ),
                PanelSpec(
                    "Quota attainment per rep, month",
                    "bargauge",
                    (Query(kpi_expr("quota_attainment", "month", "rep", **team), "{{rep}}"),),
                    "percentunit",
                    ("quota_attainment",),
                    "Period: month (current).",
                    _attainment_steps(t),
                    8,
                    8,
                ),
                PanelSpec(
                    "Activities per rep, this week",
                    "bargauge",
                    (
                        Query(
                            selector(ACTIVITIES_ALL_KINDS, period="week", scope="rep", **team),
                            "{{rep}}",
                        ),
                    ),
                    "short",
                    ("activities",),
                    "All kinds summed. Period: week (current).",
                    (),
                    8,
                    8,
                ),
            ],
        ),
        ("Leaderboard", [_leaderboard(t)]),
    ]


def rep(t: Targets) -> Rows:
    me = {"rep": "$rep"}

    def summed(spec: PanelSpec) -> PanelSpec:  # a rep may appear under several teams
        q = spec.queries[0]
        return replace(spec, queries=(Query(f"sum({q.expr})", q.legend),))

    today = selector(ACTIVITIES_ALL_KINDS, period="day", scope="rep", **me)
    week = selector(ACTIVITIES_ALL_KINDS, period="week", scope="rep", **me)

    return [
        (
            "$rep this month",
            [
                summed(
                    kpi_panel(
                        t, "Won revenue, month to date", "won_revenue", "month", "rep", match=me
                    )
                ),
                PanelSpec(
                    "Quota attainment, month",
                    "gauge",
                    (Query(kpi_expr("quota_attainment", "month", "rep", **me), "{{team}}"),),
                    "percentunit",
                    ("quota_attainment",),
                    "Period: month (current).",
                    _attainment_steps(t),
                    4,
                ),
                PanelSpec(
                    "Quota pace, month",
                    "stat",
                    (
                        Query(
                            selector(
                                "salespulse_quota_attainment_pace_ratio",
                                period="month",
                                scope="rep",
                                **me,
                            ),
                            "{{team}}",
                        ),
                    ),
                    "percentunit",
                    ("quota_attainment",),
                    "Pace = attainment / elapsed share of the month; 1 = on pace.",
                    _pace_steps(t),
                    4,
                ),
                PanelSpec(
                    "Quota attainment, quarter",
                    "gauge",
                    (Query(kpi_expr("quota_attainment", "quarter", "rep", **me), "{{team}}"),),
                    "percentunit",
                    ("quota_attainment",),
                    "Period: quarter (current).",
                    _attainment_steps(t),
                    4,
                ),
                summed(kpi_panel(t, "Deals won, month", "deals_won", "month", "rep", match=me)),
                kpi_panel(
                    t, "Win rate, trailing 90 days", "win_rate", "trailing_90d", "rep", match=me
                ),
            ],
        ),
        (
            "Activities",
            [
                PanelSpec(
                    "Activities today",
                    "stat",
                    (Query(f"sum({today})", "today"),),
                    "short",
                    ("activities",),
                    "All kinds summed. Period: day (current).",
                    (),
                    6,
                ),
                PanelSpec(
                    "Activities this week",
                    "stat",
                    (Query(f"sum({week})", "this week"),),
                    "short",
                    ("activities",),
                    "All kinds summed. Period: week (current).",
                    (),
                    6,
                ),
                PanelSpec(
                    "Activities by kind, this week",
                    "bargauge",
                    (
                        Query(
                            f"sum by (kind) ({kpi_expr('activities', 'week', 'rep', **me)})",
                            "{{kind}}",
                        ),
                    ),
                    "short",
                    ("activities",),
                    "Period: week (current).",
                    (),
                    12,
                ),
            ],
        ),
        (
            "Deals",
            [
                summed(kpi_panel(t, "Open deals", "open_deals", "all", "rep", match=me)),
                summed(kpi_panel(t, "Open pipeline", "open_pipeline", "all", "rep", match=me)),
                summed(
                    kpi_panel(
                        t,
                        "Weighted pipeline, closing this quarter",
                        "weighted_pipeline",
                        "quarter",
                        "rep",
                        match=me,
                    )
                ),
                kpi_panel(
                    t,
                    "Sales cycle, trailing 90 days",
                    "sales_cycle",
                    "trailing_90d",
                    "rep",
                    match=me,
                ),
                kpi_panel(
                    t,
                    "Average deal size, trailing 90 days",
                    "average_deal_size",
                    "trailing_90d",
                    "rep",
                    match=me,
                ),
                _velocity(t, "rep", **me),
            ],
        ),
        ("Trend", [_goal_trend(t, "Won revenue and goal through the month", "rep", **me)]),
    ]
