"""CLV's gross margin and churn floor come from the rules file, not from the code."""

from __future__ import annotations

from pathlib import Path

from state.kpis import KpiParams
from state.readout import Period, Readout
from state.rules import Rules


def test_rules_file_sets_the_clv_parameters(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("gross_margin: 0.5\nchurn_rate_floor: 0.05\n")
    assert Rules.load(path).kpi_params == KpiParams(gross_margin=0.5, churn_rate_floor=0.05)
    assert Rules().kpi_params == KpiParams(gross_margin=0.7, churn_rate_floor=0.01)


def test_clv_scales_with_the_margin_and_uses_the_floor() -> None:
    # One customer paying 100.00 a month since 2017-01-05, no churn: the floor applies.
    day = "2017-01-05"
    aggregates = {
        ("customers_new", day, "", "", "", "", "", ""): 1,
        ("mrr_started", day, "", "", "", "", "", ""): 10_000,
    }
    period = Period("2017-02-01", "2017-02-28", "month")
    at_default = Readout(aggregates).value("customer_lifetime_value", period)
    custom = Readout(aggregates, KpiParams(gross_margin=0.35, churn_rate_floor=0.02))
    assert at_default == 100 * 0.7 / 0.01
    assert custom.value("customer_lifetime_value", period) == 100 * 0.35 / 0.02
