"""``salespulse board``: a live terminal board of the main KPIs, for people without Grafana.

Reads the collector's JSON API (``/api/kpis``) every ``--interval`` seconds and renders
company totals for the selected period and a leaderboard of reps.
"""

from __future__ import annotations

import time
import urllib.parse
import urllib.request
from typing import Any

import click
import orjson
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

TOTALS = (
    "won_revenue",
    "deals_won",
    "win_rate",
    "average_deal_size",
    "sales_cycle",
    "open_pipeline",
    "weighted_pipeline",
    "qualified_leads",
    "activities",
)
FORMATS = {"currency": "{:,.0f}", "ratio": "{:.1%}", "days": "{:.1f} d", "count": "{:,.0f}"}


def fetch(base: str, token: str | None, **query: Any) -> dict[str, Any]:
    """GET ``/api/kpis`` with a query (``kpi`` may be a list)."""
    url = f"{base}/api/kpis?" + urllib.parse.urlencode(query, doseq=True)
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=5) as response:
        return orjson.loads(response.read())  # type: ignore[no-any-return]


def _fmt(unit: str, value: Any) -> str:
    return "-" if value is None else FORMATS.get(unit, "{}").format(value)


def render(totals: dict[str, Any], reps: dict[str, Any], period: str) -> Group:
    """The board for one refresh: KPI totals and the rep leaderboard."""
    head = Table(title=f"SalesPulse — {period} ({totals['period']['start'] or 'all time'})")
    for item in totals["kpis"]:
        head.add_column(item["kpi"].replace("_", " "), justify="right")
    head.add_row(
        *[_fmt(i["unit"], i["values"][0]["value"] if i["values"] else None) for i in totals["kpis"]]
    )
    board = Table(title="Leaderboard: won revenue")
    board.add_column("#", justify="right")
    board.add_column("rep")
    board.add_column("won revenue", justify="right")
    values = reps["kpis"][0]["values"]
    ranked = sorted((v for v in values if v["value"]), key=lambda v: -v["value"])
    for rank, item in enumerate(ranked[:10], 1):
        board.add_row(str(rank), item["group"]["rep"], _fmt("currency", item["value"]))
    return Group(head, board)


def snapshot(base: str, token: str | None, period: str) -> Group:
    """Fetch and render once."""
    totals = fetch(base, token, kpi=list(TOTALS), period=period)
    reps = fetch(base, token, kpi="won_revenue", period=period, group_by="rep")
    return render(totals, reps, period)


@click.command("board")
@click.option("--url", default=None, help="Collector base URL (default: local collector).")
@click.option(
    "--period",
    default="month",
    show_default=True,
    help="day, week, month, quarter, year, trailing_30d, ... or all.",
)
@click.option("--interval", default=1.5, show_default=True, help="Seconds between refreshes.")
@click.option("--once", is_flag=True, help="Render one board and exit (scripts, tests).")
@click.option("--token", envvar="SALESPULSE_COLLECTOR_TOKEN", default=None, hidden=True)
def board_command(
    url: str | None, period: str, interval: float, once: bool, token: str | None
) -> None:
    """A live terminal board of the main KPIs."""
    from salespulse.config import get_settings

    s = get_settings()
    base = url or f"http://{s.host}:{s.collector_port}"
    console = Console()
    if once:
        console.print(snapshot(base, token, period))
        return
    with Live(snapshot(base, token, period), console=console, auto_refresh=False) as live:
        while True:
            time.sleep(interval)
            try:
                live.update(snapshot(base, token, period), refresh=True)
            except OSError as exc:
                live.update(f"collector unreachable at {base}: {exc}", refresh=True)
