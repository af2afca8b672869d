"""``salespulse demo``: the whole local stack with live demo events flowing through it."""

from __future__ import annotations

import time
import urllib.parse
import urllib.request

import click
import orjson

from salespulse import services
from salespulse import stack as local_stack
from salespulse.config import Settings, get_settings
from salespulse.stack import process

WON_BY_REP = 'sum by (rep) (salespulse_won_revenue{period="day", scope="rep"})'


def query_prometheus(settings: Settings, promql: str) -> list[dict]:  # type: ignore[type-arg]
    """Instant query against the local Prometheus; the result vector."""
    url = (
        f"http://{settings.host}:{settings.prometheus_port}/api/v1/query?"
        + urllib.parse.urlencode({"query": promql})
    )
    with urllib.request.urlopen(url, timeout=5) as response:
        return orjson.loads(response.read())["data"]["result"]  # type: ignore[no-any-return]


def wait_for_data(settings: Settings, timeout: float) -> list[dict]:  # type: ignore[type-arg]
    """Wait until Prometheus has non-zero won revenue per rep."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name in ("worker-1", "collector", "generator"):
            if process.running_pid(settings, name) is None:
                raise click.ClickException(f"{name} exited; see {process.log_path(settings, name)}")
        try:
            result = query_prometheus(settings, WON_BY_REP)
        except OSError:
            result = []
        if any(float(r["value"][1]) > 0 for r in result):
            return result
        time.sleep(2)
    raise click.ClickException(
        f"no won revenue in Prometheus after {timeout:.0f}s; see logs in {settings.home}/logs"
    )


@click.command("demo")
@click.option("--rate", default=50.0, show_default=True, help="Demo CRM events per second.")
@click.option("--workers", default=1, show_default=True, help="Worker processes.")
@click.option("--timeout", default=120.0, show_default=True)
def demo(rate: float, workers: int, timeout: float) -> None:
    """Start the stack, a worker, the collector and the demo generator; print where to look."""
    settings = get_settings()
    local_stack.up(settings)
    for n in range(1, workers + 1):
        services.start_worker(settings, str(n))
    services.start_collector(settings)
    services.wait_collector(settings)
    services.start_generator(settings, rate)
    click.echo("waiting for the first won deals to reach Prometheus ...")
    result = wait_for_data(settings, timeout)
    h = settings.host
    click.echo(f"""
SalesPulse is running: {len(result)} reps already have won revenue today.
  metrics     http://{h}:{settings.collector_port}/metrics
  JSON        http://{h}:{settings.collector_port}/api/kpis?period=month&group_by=rep
  Prometheus  http://{h}:{settings.prometheus_port}/graph?g0.expr={urllib.parse.quote(WON_BY_REP)}
  Alerts      http://{h}:{settings.alertmanager_port}/
  Live board  salespulse board
  Stop        salespulse stack down   (stops every process it started)""")
