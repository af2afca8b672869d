"""The generated Prometheus rules: promtool accepts them, and every alert is tested.

The generated promtool cases (deploy/prometheus/rules/tests/) give each alert a case that
fires and cases that stay quiet; each alert's cases run here as a test of their own. The
calendar logic (business days, business hours) is also checked by hand-written scenarios.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from salespulse.mixin.rules import rules_file
from salespulse.mixin.targets import Targets, kpi_period
from state.kpis import KPI_BY_NAME
from tests.mixin.promtool import RULES, promtool, rule_test_files, run_rule_tests

REPO = Path(__file__).resolve().parents[2]
RULE_DOC = yaml.safe_load(RULES.read_text())
ALERTS = [r["alert"] for g in RULE_DOC["groups"] for r in g["rules"] if "alert" in r]


def cases_of(alert: str) -> list[tuple[str, dict[str, Any]]]:
    """(evaluation interval, case) of every checked-in promtool case of an alert."""
    return [
        (doc["evaluation_interval"], case)
        for doc in rule_test_files().values()
        for case in doc["tests"]
        if case["name"].startswith(f"{alert}: ")
    ]


def test_rules_file_passes_promtool_check() -> None:
    result = promtool("check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_test_files_point_at_the_rules_file() -> None:
    for path, doc in rule_test_files().items():
        assert [(path.parent / f).resolve() for f in doc["rule_files"]] == [RULES.resolve()]


@pytest.mark.parametrize("alert", ALERTS)
def test_alert_has_a_firing_and_a_quiet_case(alert: str) -> None:
    checks = [c for _, case in cases_of(alert) for c in case["alert_rule_test"]]
    assert any(c["alertname"] == alert and c["exp_alerts"] for c in checks), "no firing case"
    assert any(c["alertname"] == alert and not c["exp_alerts"] for c in checks), "no quiet case"


@pytest.mark.parametrize("alert", ALERTS)
def test_alert_cases_pass_promtool(alert: str, tmp_path: Path) -> None:
    for interval in sorted({i for i, _ in cases_of(alert)}):
        cases = [c for i, c in cases_of(alert) if i == interval]
        result = run_rule_tests(tmp_path, RULES, cases, interval)
        assert result.returncode == 0, result.stdout + result.stderr


def test_generated_cases_catch_a_wrong_period_selector(targets: Targets, tmp_path: Path) -> None:
    alert = targets.kpi_alerts[0]
    period = kpi_period(KPI_BY_NAME[alert.kpi], alert.period)
    doc = yaml.safe_load(RULES.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alert.name:
                rule["expr"] = rule["expr"].replace(f'period="{period}", ', "")
    broken = tmp_path / "broken.rules.yml"
    broken.write_text(yaml.safe_dump(doc, sort_keys=False))
    interval, _ = cases_of(alert.name)[0]
    result = run_rule_tests(tmp_path, broken, [c for _, c in cases_of(alert.name)], interval)
    assert result.returncode != 0, "the generated cases did not notice a missing period matcher"


def test_every_alert_links_its_runbook_section() -> None:
    runbooks = (REPO / "docs" / "runbooks.md").read_text()
    anchors = {h.strip().lower() for h in re.findall(r"^## (.+)$", runbooks, re.MULTILINE)}
    for group in RULE_DOC["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                url = rule["annotations"]["runbook_url"]
                assert url.endswith(f"docs/runbooks.md#{rule['alert'].lower()}")
                assert rule["alert"].lower() in anchors, f"docs/runbooks.md lacks {rule['alert']}"


def _alerts_at(eval_time: str, alertname: str, firing: list[dict[str, str]]) -> dict[str, Any]:
    samples = [
        {
            "labels": "ALERTS{"
            + ", ".join(
                f'{k}="{v}"'
                for k, v in sorted(
                    {**labels, "alertname": alertname, "alertstate": "firing"}.items()
                )
            )
            + "}",
            "value": 1,
        }
        for labels in firing
    ]
    return {
        "expr": f'ALERTS{{alertname="{alertname}", alertstate="firing"}}',
        "eval_time": eval_time,
        "exp_samples": samples,
    }


def test_rep_inactive_counts_business_days_across_a_weekend(tmp_path: Path) -> None:
    """On Monday, 3 business days back reaches Wednesday (time 0 is Thu 1970-01-01)."""
    t = Targets.model_validate({"pipeline_alerts": {"rep_inactive": {"business_days": 3}}})
    rules = tmp_path / "rules.yml"
    rules.write_text(rules_file(t))
    day = 'salespulse_activities{period="day", scope="rep", team="East", kind="call"'
    month = day.replace('period="day"', 'period="trailing_30d"')
    series = [
        # ann logged 2 calls on Wednesday 7th, bob one on Tuesday 6th (15-minute samples).
        {"series": day + ', rep="ann"}', "values": "0x611 2x59 0x427"},
        {"series": day + ', rep="bob"}', "values": "0x515 1x59 0x523"},
        {"series": month + ', rep="ann"}', "values": "3x1099"},
        {"series": month + ', rep="bob"}', "values": "3x1099"},
    ]
    bob = {"period": "day", "scope": "rep", "team": "East", "rep": "bob", "severity": "warning"}
    case = {
        "name": "rep inactive over a weekend",
        "interval": "15m",
        "input_series": series,
        "promql_expr_test": [
            _alerts_at("7d10h", "SalesPulseRepInactive", []),  # Thursday: both were active
            _alerts_at("11d10h", "SalesPulseRepInactive", [bob]),  # Monday: Wed, Thu, Fri
        ],
    }
    result = run_rule_tests(tmp_path, rules, [case], "15m")
    assert result.returncode == 0, result.stdout + result.stderr


def test_data_stale_waits_for_business_hours_after_a_quiet_night(tmp_path: Path) -> None:
    t = Targets.model_validate(
        {
            "calendar": {"business_hours": [8, 18]},
            "pipeline_alerts": {"data_stale": {"minutes": 30, "for": "5m"}},
        }
    )
    rules = tmp_path / "rules.yml"
    rules.write_text(rules_file(t))
    friday_1700 = (1 * 1440 + 17 * 60) * 60
    case = {
        "name": "data stale over a weekend",
        "interval": "5m",
        "input_series": [
            {
                "series": 'salespulse_last_event_timestamp_seconds{source="hubspot"}',
                "values": f"{friday_1700}x1300",
            }
        ],
        "promql_expr_test": [
            _alerts_at(
                "1d17h40m", "SalesPulseDataStale", [{"source": "hubspot", "severity": "critical"}]
            ),
            _alerts_at("2d12h", "SalesPulseDataStale", []),  # Saturday
            _alerts_at("4d8h20m", "SalesPulseDataStale", []),  # Monday, 20 minutes in
            _alerts_at(
                "4d8h40m", "SalesPulseDataStale", [{"source": "hubspot", "severity": "critical"}]
            ),
        ],
    }
    result = run_rule_tests(tmp_path, rules, [case], "5m")
    assert result.returncode == 0, result.stdout + result.stderr
