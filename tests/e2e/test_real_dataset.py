"""The real CRM dataset backfilled through Kafka, Faust, Redis and the collector."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from salespulse.services import settings_env
from tests.helpers import await_until

pytestmark = pytest.mark.services

REPO = Path(__file__).resolve().parents[2]
DATASET = REPO.parent / "shared" / "data" / "crm-sales-opportunities"
MAPPING = REPO / "deploy" / "mappings" / "crm-sales-opportunities.yaml"

if not DATASET.is_dir():
    pytest.skip(
        f"REAL DATASET ABSENT: {DATASET} not found; the published-figures test "
        "cannot run (it needs ../shared beside the checkout)",
        allow_module_level=True,
    )


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "salespulse.cli", *args],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _published_figures(snapshot: dict[str, Any]) -> dict[str, Any]:
    totals, by = snapshot["totals"], snapshot["by"]
    return {
        "win_rate_pct": round(totals["win_rate"] * 100, 2),
        "won_revenue": totals["won_revenue"],
        "average_won_deal": round(totals["average_deal_size"], 2),
        "cycle_won": round(totals["sales_cycle"], 2),
        "cycle_closed": round(totals["sales_cycle_closed"], 2),
        "by_office": {k: v["won_revenue"] for k, v in by["office"].items()},
        "won_deals_by_office": {k: v["deals_won"] for k, v in by["office"].items()},
        "by_manager": {k: v["won_revenue"] for k, v in by["team"].items()},
        "by_quarter": {k: v["won_revenue"] for k, v in snapshot["by_close_quarter"].items()},
        "darcel": by["rep"]["Darcel Schlecht"]["won_revenue"],
    }


PUBLISHED = {
    "win_rate_pct": 63.15,
    "won_revenue": 10_005_534,
    "average_won_deal": 2360.91,
    "cycle_won": 51.78,
    "cycle_closed": 47.99,
    "by_office": {"West": 3_568_647, "Central": 3_346_293, "East": 3_090_594},
    "won_deals_by_office": {"Central": 1629, "East": 1171, "West": 1438},
    "by_manager": {
        "Melvin Marxen": 2_251_930,
        "Summer Sewald": 1_964_750,
        "Rocco Neubert": 1_960_545,
        "Celia Rouche": 1_603_897,
        "Cara Losch": 1_130_049,
        "Dustin Brinkmann": 1_094_363,
    },
    "by_quarter": {
        "2017-Q1": 1_134_672,
        "2017-Q2": 3_086_111,
        "2017-Q3": 2_982_255,
        "2017-Q4": 2_802_496,
    },
    "darcel": 1_153_214,
}


async def test_backfill_through_pipeline_reproduces_published_figures(
    pipeline_factory: Any,
) -> None:
    pipeline = pipeline_factory("dataset", collector_port=18103)
    env = {**os.environ, **settings_env(pipeline.settings)}
    dry = json.loads(
        _cli("backfill", str(DATASET), "--mapping", str(MAPPING), "--dry-run", env=env).stdout
    )["kpis"]
    assert _published_figures(dry) == PUBLISHED

    pipeline.start_worker("1")
    pipeline.start_collector()
    _cli("backfill", str(DATASET), "--mapping", str(MAPPING), "--no-progress", env=env)

    def snapshot_matches() -> bool:
        try:
            return pipeline.api("/api/snapshot") == dry
        except OSError:
            return False

    await await_until(
        snapshot_matches, timeout=120, interval=1, what="pipeline snapshot == dry-run snapshot"
    )
    assert _published_figures(pipeline.api("/api/snapshot")) == PUBLISHED
