"""``salespulse board`` against a live pipeline fed by the demo generator."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from typing import Any

import pytest

from salespulse import services
from salespulse.services import settings_env
from tests.helpers import wait_until

pytestmark = pytest.mark.services


def _board(env: dict[str, str]) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "salespulse.cli", "board", "--once", "--period", "day"],
        env={**env, "COLUMNS": "200"},
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return out.stdout


def test_board_renders_live_changing_figures(pipeline_factory: Any) -> None:
    pipeline = pipeline_factory("board", collector_port=18104)
    pipeline.start_worker("1")
    pipeline.start_collector()
    pipeline.started.add("generator")
    services.start_generator(pipeline.settings, rate=60, seed=9)
    env = {**os.environ, **settings_env(pipeline.settings)}

    def leaderboard() -> list[str]:
        text = _board(env)
        return re.findall(r"│\s+\d+\s+│\s+([A-Z][a-z]+ [A-Z][a-z]+)\s+│\s+([\d,]+)", text)

    first = wait_until(leaderboard, timeout=60, interval=1, what="reps on the board")
    text = _board(env)
    assert "SalesPulse — day" in text and "Leaderboard: won revenue" in text
    assert "won revenue" in text and "win rate" in text
    time.sleep(1)
    wait_until(
        lambda: leaderboard() != first, timeout=30, interval=1, what="the board's figures to change"
    )
