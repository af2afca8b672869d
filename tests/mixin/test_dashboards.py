"""The generated Grafana boards: units, KPI definitions, thresholds, template variables."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from salespulse.mixin.dashboards import BOARDS, panel_queries, panel_specs, substitute
from salespulse.mixin.panels import kpi_steps
from salespulse.mixin.targets import Targets
from state.kpis import KPI_BY_NAME
from tests.mixin.promtool import promtool

REPO = Path(__file__).resolve().parents[2]
BOARD_DIR = REPO / "deploy" / "grafana" / "dashboards"
VARIABLES = {"team": "East", "rep": "ann", "datasource": "prometheus"}


def board_json(name: str) -> dict[str, Any]:
    return json.loads((BOARD_DIR / f"{name}.json").read_text())  # type: ignore[no-any-return]


def panels(name: str) -> list[dict[str, Any]]:
    return [p for p in board_json(name)["panels"] if p["type"] != "row"]


def variables(name: str) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in board_json(name)["templating"]["list"]}


def steps(panel: dict[str, Any]) -> list[float]:
    found = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    return [s["value"] for s in found if s["value"] is not None]


def test_the_three_boards_and_the_health_board_exist() -> None:
    assert {p.stem for p in BOARD_DIR.glob("*.json")} == {"executive", "manager", "rep", "pipeline"}
    uids = [board_json(b.name)["uid"] for b in BOARDS]
    assert len(set(uids)) == len(uids)


@pytest.mark.parametrize("board", [b.name for b in BOARDS])
def test_every_panel_has_a_unit_and_a_description(board: str) -> None:
    for panel in panels(board):
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{panel['title']}: no unit"
        assert len(panel.get("description", "")) > 20, f"{panel['title']}: no description"


@pytest.mark.parametrize("board", [b.name for b in BOARDS])
def test_panel_titles_and_ids_are_unique(board: str) -> None:
    titles = [p["title"] for p in panels(board)]
    ids = [p["id"] for p in board_json(board)["panels"]]
    assert len(set(titles)) == len(titles)
    assert len(set(ids)) == len(ids) and 0 not in ids


def test_kpi_panels_describe_their_kpis_with_the_declared_definition(targets: Targets) -> None:
    by_title = {(b, p["title"]): p for b in ("executive", "manager", "rep") for p in panels(b)}
    checked = 0
    for board, spec in panel_specs(targets):
        for name in spec.kpis:
            kpi = KPI_BY_NAME[name]
            assert kpi.definition in by_title[board, spec.title]["description"], spec.title
            checked += 1
    assert checked > 40


def test_kpi_panel_units_follow_the_kpi_unit(targets: Targets) -> None:
    expected = {"currency": "currencyUSD", "ratio": "percentunit", "count": "short", "days": "s"}
    for board, spec in panel_specs(targets):
        if len(spec.kpis) == 1 and spec.queries[0].expr.startswith(
            ("salespulse_", "sum(salespulse_")
        ):
            kpi = KPI_BY_NAME[spec.kpis[0]]
            if f"{kpi.metric}{{" in spec.queries[0].expr:
                unit = {p["title"]: p for p in panels(board)}[spec.title]["fieldConfig"]
                assert unit["defaults"]["unit"] == expected[kpi.unit], (board, spec.title)


def test_panels_carry_the_goals_and_thresholds_of_the_targets_file(targets: Targets) -> None:
    shown: set[tuple[str, str]] = set()
    for board, spec in panel_specs(targets):
        panel = {p["title"]: p for p in panels(board)}[spec.title]
        assert steps(panel) == [v for v, _ in spec.steps if v is not None]
        if len(spec.kpis) != 1 or not spec.queries[0].expr.startswith("salespulse_"):
            continue
        match = re.search(r'period="(\w+)", scope="(\w+)"', spec.queries[0].expr)
        if not match:
            continue
        period, scope = match.groups()
        name = spec.kpis[0]
        scale = KPI_BY_NAME[name].metric_scale
        if kpi_steps(targets, name, period, scope):
            alert, goal = targets.kpi_alert(name, period), targets.goal(name, period)
            if alert:
                assert alert.threshold * scale in steps(panel), spec.title
            if goal is not None:
                assert goal * scale in steps(panel), spec.title
        if scope == "total":
            shown.add((name, period))
    # Every company-wide alert threshold is visible on some board.
    for alert in targets.kpi_alerts:
        if alert.scope == "total":
            assert (alert.kpi, alert.period) in shown, f"no panel shows {alert.name}'s KPI"


def test_executive_board_has_no_team_or_rep_filter() -> None:
    assert set(variables("executive")) == {"datasource"}
    for _, _, expr in (q for q in panel_queries() if q[0] == "executive"):
        assert "$team" not in expr and "$rep" not in expr


@pytest.mark.parametrize(("board", "variable"), [("manager", "team"), ("rep", "rep")])
def test_team_and_rep_boards_filter_every_kpi_panel(board: str, variable: str) -> None:
    var = variables(board)[variable]
    assert var["type"] == "query"
    assert var["query"].startswith("label_values(") and var["query"].endswith(f", {variable})")
    assert var["datasource"]["uid"] == "${datasource}"
    for b, title, expr in panel_queries():
        if b == board:
            assert f'{variable}="${variable}"' in expr, f"{title} ignores ${variable}"


@pytest.mark.parametrize("board", [b.name for b in BOARDS])
def test_every_query_uses_the_datasource_variable(board: str) -> None:
    assert variables(board)["datasource"]["type"] == "datasource"
    for panel in panels(board):
        assert panel["datasource"]["uid"] == "${datasource}"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"


def test_panel_queries_match_the_json_and_parse_as_promql(tmp_path: Path) -> None:
    queries = panel_queries()
    in_json = {
        (b.name, p["title"], t["expr"])
        for b in BOARDS
        for p in panels(b.name)
        for t in p["targets"]
    }
    assert set(queries) == in_json
    # promtool parses each query (variables filled in) as a recording rule expression.
    rules = [
        {"record": f"check:query_{i}:value", "expr": substitute(expr, VARIABLES)}
        for i, (_, _, expr) in enumerate(queries)
    ]
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panel-queries", "rules": rules}]}))
    result = promtool("check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_substitute_fills_every_variable_form() -> None:
    expr = 'x{team="$team", rep="${rep}", office="[[office]]"}'
    assert substitute(expr, {"team": "East", "rep": "ann", "office": "Berlin"}) == (
        'x{team="East", rep="ann", office="Berlin"}'
    )
    with pytest.raises(KeyError, match="team"):
        substitute('x{team="$team"}', {})


def test_provisioning_points_grafana_at_the_boards() -> None:
    prov = REPO / "deploy" / "grafana" / "provisioning"
    datasources = yaml.safe_load((prov / "datasources" / "prometheus.yml").read_text())
    providers = yaml.safe_load((prov / "dashboards" / "salespulse.yml").read_text())
    assert datasources["apiVersion"] == providers["apiVersion"] == 1
    assert [d["type"] for d in datasources["datasources"]] == ["prometheus"]
    compose = yaml.safe_load((REPO / "deploy" / "compose" / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    path = providers["providers"][0]["options"]["path"]
    assert f"../grafana/dashboards:{path}:ro" in mounts
