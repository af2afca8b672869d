"""An alert delivered end to end: events push a KPI across its threshold, and the alert
reaches a webhook through the stack's real Prometheus and Alertmanager.

The alert is ``SalesPulseWinRateLow`` exactly as generated from ``deploy/targets.yaml``
(win rate over the trailing 30 days below 20 %, with at least 5 lost deals), except its
``for``: the shipped rule waits 1 h, so Prometheus loads this copy with ``for: 2s`` next to
the shipped rules (an extra rule file, config reloaded). Alertmanager is reloaded with a
route to this test's webhook receiver (``group_wait: 1s``). Both configs are restored after.
"""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from salespulse.config import Settings
from salespulse.mixin.rules import kpi_alert_rule
from salespulse.mixin.targets import load_targets
from salespulse.stack import prometheus
from salespulse.stack.process import deploy_dir
from tests.e2e.test_dashboards_live import (
    EventLog,
    prom_query,
    start_scraped_pipeline,
    wait_prometheus_value,
)
from tests.helpers import await_until, http_json

pytestmark = pytest.mark.services

ALERT = "SalesPulseWinRateLow"
WIN_RATE = 'salespulse_win_rate_ratio{period="trailing_30d", scope="total"}'


def post(url: str) -> None:
    request = urllib.request.Request(url, data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 200, url


def fast_rule_file(path: Path) -> dict[str, Any]:
    """The shipped alert with ``for: 2s``, as a rule file at ``path``; returns the rule."""
    targets = load_targets()
    [alert] = [a for a in targets.kpi_alerts if a.name == ALERT]
    rule = kpi_alert_rule(alert.model_copy(update={"for_": "2s"}), targets).to_rule()
    shipped = yaml.safe_load((deploy_dir() / "prometheus/rules/salespulse.rules.yml").read_text())
    [original] = [r for g in shipped["groups"] for r in g["rules"] if r.get("alert") == ALERT]
    assert {**original, "for": "2s"} == rule  # the generated rule, only `for` shortened
    path.write_text(yaml.safe_dump({"groups": [{"name": "alert-delivery-test", "rules": [rule]}]}))
    return rule


class Receiver:
    """A webhook receiver on a free loopback port; keeps every JSON payload."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.payloads.append(await request.json())
        return web.Response(text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/alerts", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/alerts"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def alerts(self, name: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(payload, alert) of every delivered alert named ``name``."""
        return [
            (p, a) for p in self.payloads for a in p["alerts"] if a["labels"]["alertname"] == name
        ]


def alertmanager_config(url: str) -> str:
    return yaml.safe_dump(
        {
            "route": {
                "receiver": "test-webhook",
                "group_by": ["alertname"],
                "group_wait": "1s",
                "group_interval": "1s",
                "repeat_interval": "1h",
            },
            "receivers": [
                {"name": "test-webhook", "webhook_configs": [{"url": url, "send_resolved": False}]}
            ],
        }
    )


@pytest.fixture(scope="module")
async def wired(
    stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Receiver, dict[str, Any]]]:
    """The receiver, Alertmanager routed to it, Prometheus with the fast rule loaded."""
    s = stack_settings
    prom = f"http://{s.host}:{s.prometheus_port}"
    am = f"http://{s.host}:{s.alertmanager_port}"
    receiver = Receiver()
    await receiver.start()
    rule_file = tmp_path_factory.mktemp("alert-delivery") / "fast.rules.yml"
    rule = fast_rule_file(rule_file)
    try:
        prometheus.render_alertmanager_config(s, alertmanager_config(receiver.url))
        post(f"{am}/-/reload")
        assert receiver.url in http_json(f"{am}/api/v2/status")["config"]["original"]
        config_path = prometheus.render_prometheus_config(s)
        config = yaml.safe_load(config_path.read_text())
        config["rule_files"].append(str(rule_file))
        config_path.write_text(yaml.safe_dump(config))
        post(f"{prom}/-/reload")
        groups = http_json(f"{prom}/api/v1/rules?type=alert")["data"]["groups"]
        assert "alert-delivery-test" in {g["name"] for g in groups}
        yield receiver, rule
    finally:  # the stack's own configs again, whatever failed
        try:
            prometheus.render_prometheus_config(s)
            post(f"{prom}/-/reload")
        finally:
            prometheus.render_alertmanager_config(s)
            post(f"{am}/-/reload")
            await receiver.stop()


def deals(log: EventLog, status: str, n: int, first: int) -> None:
    day = log.now.date().isoformat()
    for i in range(first, first + n):
        log.add(
            "deal",
            f"D-{i}",
            owner="ann",
            team="East",
            office="Boston",
            amount=1000,
            currency="USD",
            status=status,
            stage=status,
            created_at=day,
            closed_at=day,
        )


async def test_win_rate_drop_is_delivered_to_the_webhook(
    wired: tuple[Receiver, dict[str, Any]], pipeline_factory: Any, stack_settings: Settings
) -> None:
    receiver, rule = wired
    pipeline = start_scraped_pipeline(pipeline_factory, stack_settings, "alerts")
    log = EventLog(datetime.now(UTC), "alert")
    deals(log, "won", 4, 1)
    deals(log, "lost", 5, 100)  # enough volume for the alert's sample guard
    await pipeline.produce(log.events)
    await wait_prometheus_value(stack_settings, WIN_RATE, 4 / 9)
    await asyncio.sleep(5)  # rule evaluations (every 2 s) see 44 %: above the threshold
    assert not prom_query(stack_settings, f'ALERTS{{alertname="{ALERT}"}}')
    assert not receiver.alerts(ALERT)

    log.events.clear()
    deals(log, "lost", 12, 200)  # 4 won / 21 closed = 19 % < 20 %
    await pipeline.produce(log.events)
    await wait_prometheus_value(stack_settings, WIN_RATE, 4 / 21)
    await await_until(lambda: receiver.alerts(ALERT), timeout=40, interval=0.5, what=ALERT)

    payload, alert = receiver.alerts(ALERT)[0]
    assert payload["status"] == "firing" and alert["status"] == "firing"
    assert payload["receiver"] == "test-webhook"
    assert payload["commonLabels"]["alertname"] == ALERT
    labels = alert["labels"]
    assert labels["alertname"] == ALERT
    assert {k: labels[k] for k in ("severity", "kpi", "period", "scope", "job")} == {
        "severity": "warning",
        "kpi": "win_rate",
        "period": "trailing_30d",
        "scope": "total",
        "job": "salespulse",
    }
    assert labels["stack"] == "salespulse-local"  # Prometheus' external label
    annotations = alert["annotations"]
    assert annotations["summary"] == rule["annotations"]["summary"]
    assert annotations["summary"] == "Win rate below 20% (trailing_30d, total)"
    assert annotations["description"].startswith("Win rate over trailing_30d is 19.05%")
    assert annotations["runbook_url"] == "docs/runbooks.md#salespulsewinratelow"
