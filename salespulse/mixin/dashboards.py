"""The SalesPulse boards: Executive, Manager (``team``), Rep (``rep``), Pipeline health.

Each board is a list of rows of :class:`~salespulse.mixin.panels.PanelSpec`
(:mod:`salespulse.mixin.sales_boards`, :mod:`salespulse.mixin.health_board`), rendered to
Grafana JSON with grafana-foundation-sdk. :func:`panel_queries` lists every panel query
with its template variables, and :func:`substitute` fills them in, so a test can run each
query against a real Prometheus.

>>> substitute('salespulse_won_revenue{team="$team", rep="${rep}"}', {"team": "East",
...                                                                  "rep": "ann"})
'salespulse_won_revenue{team="East", rep="ann"}'
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm

from salespulse.mixin.health_board import pipeline
from salespulse.mixin.panels import DATASOURCE, PanelSpec, build_panel
from salespulse.mixin.sales_boards import Rows, executive, manager, rep
from salespulse.mixin.targets import Targets, load_targets

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
    return json.loads(json.dumps(value, cls=JSONEncoder))


def dashboards(targets: Targets) -> dict[str, dict[str, Any]]:
    """File stem -> Grafana JSON model, for every board."""
    return {b.name: build_dashboard(b, targets) for b in BOARDS}


def panel_specs(targets: Targets) -> list[tuple[str, PanelSpec]]:
    """(board name, panel spec) of every panel."""
    return [(b.name, spec) for b in BOARDS for _, specs in b.rows(targets) for spec in specs]


def panel_queries(targets: Targets | None = None) -> list[tuple[str, str, str]]:
    """(dashboard, panel title, PromQL with ``$variables``) of every panel query."""
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
