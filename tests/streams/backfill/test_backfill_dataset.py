"""The shared CRM Sales Opportunities export: dry run reproduces the published figures.

The dataset lives beside the repo (``../shared/data/crm-sales-opportunities``, see its
``SOURCE.md``); the figures asserted here are the ones SOURCE.md quotes from independent
analyses, to the digit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from salespulse.cli import main
from state.rules import Rules
from streams.backfill.dryrun import dry_run
from streams.backfill.export import Export
from streams.backfill.mapping import Mapping
from streams.backfill.validate import validate

REPO = Path(__file__).resolve().parents[3]
DATASET = (REPO / ".." / "shared" / "data" / "crm-sales-opportunities").resolve()
MAPPING = REPO / "deploy" / "mappings" / "crm-sales-opportunities.yaml"

pytestmark = pytest.mark.skipif(
    not (DATASET / "sales_pipeline.csv").is_file(),
    reason=f"SHARED DATASET MISSING: {DATASET} not found; the backfill figures are NOT checked",
)


@pytest.fixture(scope="module")
def export() -> Export:
    return Export.open(DATASET, Mapping.load(MAPPING))


@pytest.fixture(scope="module")
def report(export: Export) -> dict[str, Any]:
    return dry_run(export, Rules())


def test_every_row_becomes_an_event(report: dict[str, Any]) -> None:
    counts = report["input"]
    assert counts["files"]["sales_pipeline.csv"]["events"] == 8800
    assert counts["files"]["accounts.csv"]["events"] == 85
    assert counts["invalid_rows"] == 0 and counts["errors"] == 0
    assert report["engine"]["events_applied"] == 8885
    assert report["engine"]["events_invalid"] == 0


def test_totals_match_published_figures(report: dict[str, Any]) -> None:
    totals = report["kpis"]["totals"]
    assert round(totals["win_rate"] * 100, 2) == 63.15
    assert totals["won_revenue"] == 10_005_534
    assert round(totals["average_deal_size"], 2) == 2360.91
    assert round(totals["sales_cycle"], 2) == 51.78
    assert round(totals["sales_cycle_closed"], 2) == 47.99
    assert totals["deals_won"] == 4238 and totals["deals_lost"] == 2473
    assert totals["open_deals"] == 2089  # Engaging 1,589 + Prospecting 500
    assert totals["deals_won"] + totals["deals_lost"] == 6711


def test_won_revenue_by_office(report: dict[str, Any]) -> None:
    by_office = report["kpis"]["by"]["office"]
    assert {o: v["won_revenue"] for o, v in by_office.items()} == {
        "West": 3_568_647,
        "Central": 3_346_293,
        "East": 3_090_594,
    }
    assert {o: v["deals_won"] for o, v in by_office.items()} == {
        "Central": 1629,
        "East": 1171,
        "West": 1438,
    }


def test_won_revenue_by_manager(report: dict[str, Any]) -> None:
    by_team = report["kpis"]["by"]["team"]
    assert {t: v["won_revenue"] for t, v in by_team.items()} == {
        "Melvin Marxen": 2_251_930,
        "Summer Sewald": 1_964_750,
        "Rocco Neubert": 1_960_545,
        "Celia Rouche": 1_603_897,
        "Cara Losch": 1_130_049,
        "Dustin Brinkmann": 1_094_363,
    }


def test_top_agent(report: dict[str, Any]) -> None:
    reps = report["kpis"]["by"]["rep"]
    assert len(reps) == 30  # 35 agents in sales_teams.csv, 30 in the pipeline
    top = max(reps, key=lambda r: reps[r]["won_revenue"])
    assert top == "Darcel Schlecht"
    assert reps[top]["won_revenue"] == 1_153_214 and reps[top]["deals_won"] == 349
    assert round(reps[top]["win_rate"] * 100, 1) == 63.1


def test_won_revenue_by_close_quarter(report: dict[str, Any]) -> None:
    quarters = report["kpis"]["by_close_quarter"]
    assert {q: v["won_revenue"] for q, v in quarters.items()} == {
        "2017-Q1": 1_134_672,
        "2017-Q2": 3_086_111,
        "2017-Q3": 2_982_255,
        "2017-Q4": 2_802_496,
    }


def test_accounts_become_customers(report: dict[str, Any]) -> None:
    assert report["kpis"]["totals"]["new_customers"] == 85


def test_validate_reports_the_quirks_as_warnings(export: Export) -> None:
    report = validate(export)
    assert report["ok"]  # warnings only
    issues = report["issues"]
    assert all(i["level"] == "warning" for i in issues)
    products = [i for i in issues if i["field"] == "product"]
    accounts = [i for i in issues if i["field"] == "account_id"]
    assert len(accounts) == 1425  # SOURCE.md: 1,425 rows with a blank account
    assert all("'GTXPro' is not a product of products.csv" in i["message"] for i in products)
    assert len(products) == 1480
    lines = (DATASET / "sales_pipeline.csv").read_text().splitlines()
    # line numbers point at the physical lines of the file (header = line 1)
    assert all(lines[i["line"] - 1].split(",")[2] == "GTXPro" for i in products)
    assert all(lines[i["line"] - 1].split(",")[3] == "" for i in accounts)
    assert products[0]["line"] == 3 and lines[2].startswith("Z063OYW0,")
    assert len(issues) == len(products) + len(accounts)


def test_cli_validate(tmp_path: Path) -> None:
    out = tmp_path / "validate.json"
    result = CliRunner().invoke(
        main, ["backfill", str(DATASET), "--mapping", str(MAPPING), "--validate", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "WARNING sales_pipeline.csv: product: … is not a product of products.csv" in (
        result.output
    )
    assert "values 'GTXPro' x1480" in result.output
    assert "account_id: is blank (blank account, the deal has no account) x1425" in (result.output)
    assert "lines 3, 13, 20," in result.output
    assert json.loads(out.read_text())["input"]["warnings"] == 2905
    strict = CliRunner().invoke(
        main, ["backfill", str(DATASET), "--mapping", str(MAPPING), "--validate", "--strict"]
    )
    assert strict.exit_code == 1


def test_cli_dry_run_prints_the_snapshot(tmp_path: Path, report: dict[str, Any]) -> None:
    result = CliRunner().invoke(
        main, ["backfill", str(DATASET), "--mapping", str(MAPPING), "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["mode"] == "dry-run"
    assert document["kpis"] == json.loads(json.dumps(report["kpis"]))
    assert document["kpis"]["schema"] == "salespulse.kpi-snapshot/1"


def test_dry_run_of_the_pipeline_file_alone() -> None:
    export = Export.open(DATASET / "sales_pipeline.csv", Mapping.load(MAPPING))
    report = dry_run(export, Rules())
    assert report["input"]["events"] == 8800
    assert report["kpis"]["totals"]["won_revenue"] == 10_005_534
