"""The SalesPulse boards: Executive, Manager (``team``), Rep (``rep``), Pipeline health.

Each board is a list of rows of :class:`~salespulse.mixin.panels.PanelSpec`, rendered to
Grafana JSON with grafana-foundation-sdk. :func:`panel_queries` lists every panel query
with its template variables, and :func:`substitute` fills them in, so a test can run each
query against a real Prometheus.

>>> substitute('salespulse_won_revenue{team="$team", rep="${rep}"}', {"team": "East",
...                                                                  "rep": "ann"})
'salespulse_won_revenue{team="East", rep="ann"}'
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm

from salespulse.mixin.panels import (
    DATASOURCE,
    PanelSpec,
    Query,
    Step,
    build_panel,
    kpi_expr,
    kpi_panel,
    unit_for,
)
from salespulse.mixin.render import number
from salespulse.mixin.rules import ACTIVITIES_ALL_KINDS, REVENUE_VS_TARGET, selector
from salespulse.mixin.targets import Targets

Rows = list[tuple[str, list[PanelSpec]]]
REP_SERIES = '{__name__=~"salespulse_won_revenue|salespulse_activities|salespulse_open_deals"'


@dataclass(frozen=True)
class Board:
    """One dashboard: file stem, uid, title, template variables and rows."""

    name: str
    uid: str
    title: str
    description: str
    variables: tuple[str, ...]
    rows: Callable[[Targets], Rows]


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
            Query(selector("salespulse_target", **goal), "goal"),
        ),
        unit_for("currency", t.reporting_currency),
        ("won_revenue",),
        "Month to date over time, with the month's goal from deploy/targets.yaml "
        "(salespulse_target).",
        (),
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
                kpi_panel(
                    t,
                    "Won revenue by team, month",
                    "won_revenue",
                    "month",
                    "team",
                    "bargauge",
                    width=12,
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
                PanelSpec(
                    "Quota attainment per rep, month",
                    "bargauge",
                    (Query(kpi_expr("quota_attainment", "month", "rep", **team), "{{rep}}"),),
                    "percentunit",
                    ("quota_attainment",),
                    "Period: month (current).",
                    _attainment_steps(t),
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


BOARDS = (
    Board(
        "executive",
        "salespulse-executive",
        "SalesPulse / Executive",
        "Company revenue against goals, growth, customers and pipeline.",
        (),
        executive,
    ),
    Board(
        "manager",
        "salespulse-manager",
        "SalesPulse / Manager",
        "One team: revenue, quota, conversion, activity and the reps' leaderboard.",
        ("team",),
        manager,
    ),
    Board(
        "rep",
        "salespulse-rep",
        "SalesPulse / Rep",
        "One rep: attainment and pace, activities, open deals.",
        ("rep",),
        rep,
    ),
    Board(
        "pipeline",
        "salespulse-pipeline",
        "SalesPulse / Pipeline health",
        "Freshness and the workers' health per partition.",
        (),
        pipeline,
    ),
)
BOARD_BY_NAME = {b.name: b for b in BOARDS}


def _variable(name: str) -> Any:
    if name == "team":
        query = f'label_values({REP_SERIES}, scope="team"}}, team)'
    elif name == "rep":
        query = f'label_values({REP_SERIES}, scope="rep"}}, rep)'
    else:
        raise ValueError(f"unknown variable {name!r}")
    return (
        db.QueryVariable(name)
        .label(name.capitalize())
        .query(query)
        .datasource(DATASOURCE)
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC)
    )


def build_dashboard(board: Board, targets: Targets) -> dict[str, Any]:
    """The Grafana JSON model of a board."""
    d = (
        db.Dashboard(board.title)
        .uid(board.uid)
        .description(board.description)
        .tags(["salespulse"])
        .time("now-7d", "now")
        .refresh("30s")
        .timezone("browser")
        .editable()
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .link(
            db.DashboardLink("SalesPulse boards")
            .type(dm.DashboardLinkType.DASHBOARDS)
            .tags(["salespulse"])
            .as_dropdown(True)
            .include_vars(False)
            .keep_time(True)
        )
        .with_variable(db.DatasourceVariable("datasource").label("Data source").type("prometheus"))
    )
    for name in board.variables:
        d = d.with_variable(_variable(name))
    panel_id = 0
    for title, specs in board.rows(targets):
        panel_id += 1
        d = d.with_row(db.Row(title).id(panel_id))
        for spec in specs:
            panel_id += 1
            d = d.with_panel(build_panel(spec, panel_id))
    model: dict[str, Any] = JSONEncoder().default(d.build())
    return _plain(model)


def _plain(value: Any) -> Any:
    """The SDK's objects as plain JSON values (dicts, lists, numbers, strings)."""
    import json

    return json.loads(json.dumps(value, cls=JSONEncoder))


def dashboards(targets: Targets) -> dict[str, dict[str, Any]]:
    """File stem -> Grafana JSON model, for every board."""
    return {b.name: build_dashboard(b, targets) for b in BOARDS}


def panel_specs(targets: Targets) -> list[tuple[str, PanelSpec]]:
    """(board name, panel spec) of every panel."""
    return [(b.name, spec) for b in BOARDS for _, specs in b.rows(targets) for spec in specs]


def panel_queries(targets: Targets | None = None) -> list[tuple[str, str, str]]:
    """(dashboard, panel title, PromQL with ``$variables``) of every panel query."""
    from salespulse.mixin.targets import load_targets

    t = targets or load_targets()
    return [(board, spec.title, q.expr) for board, spec in panel_specs(t) for q in spec.queries]


_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def substitute(expr: str, variables: dict[str, str]) -> str:
    """Fill Grafana template variables (``$x``, ``${x}``, ``[[x]]``) into a query."""

    def value(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        if name not in variables:
            raise KeyError(f"no value for template variable {name!r} in {expr!r}")
        return variables[name]

    return _VARIABLE.sub(value, expr)
