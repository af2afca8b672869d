"""The checked-in generated files are what `salespulse generate` writes today."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from salespulse.mixin.command import KPIS_DOC, generate_command, generated_files, write_all
from salespulse.mixin.targets import DEFAULT_TARGETS, Targets, load_targets

REPO = Path(__file__).resolve().parents[2]
HINT = "out of date: run `salespulse generate` (or `make generate`) and commit the result"


def test_regenerating_in_a_temp_dir_gives_the_checked_in_files(tmp_path: Path) -> None:
    written = write_all(tmp_path, DEFAULT_TARGETS)
    assert written, "nothing was generated"
    stale = [
        rel
        for rel in generated_files(DEFAULT_TARGETS)
        if not (REPO / rel).exists() or (REPO / rel).read_text() != (tmp_path / rel).read_text()
    ]
    assert not stale, f"{', '.join(stale)} {HINT}"


@pytest.mark.skipif(
    importlib.util.find_spec("salespulse.docs_gen") is None, reason="salespulse.docs_gen absent"
)
def test_kpi_docs_are_up_to_date(tmp_path: Path) -> None:
    write_all(tmp_path, DEFAULT_TARGETS)
    checked_in = REPO / KPIS_DOC
    assert checked_in.exists(), f"{KPIS_DOC} missing: {HINT}"
    assert checked_in.read_text() == (tmp_path / KPIS_DOC).read_text(), f"{KPIS_DOC} {HINT}"


def test_no_stray_files_in_generated_folders() -> None:
    expected = set(generated_files(DEFAULT_TARGETS))
    for folder, pattern in [
        ("deploy/grafana/dashboards", "*.json"),
        ("deploy/prometheus/rules/tests", "*.yml"),
        ("deploy/kubernetes/generated", "*.yaml"),
    ]:
        for path in (REPO / folder).glob(pattern):
            rel = str(path.relative_to(REPO))
            assert rel in expected, f"{rel} is not generated any more: delete it"
    rule_files = {
        str(p.relative_to(REPO)) for p in (REPO / "deploy/prometheus/rules").glob("*.yml")
    }
    assert rule_files == {"deploy/prometheus/rules/salespulse.rules.yml"}


def test_generate_check_mode_passes_on_the_checked_in_tree() -> None:
    result = CliRunner().invoke(generate_command, ["--out", str(REPO), "--check"])
    assert result.exit_code == 0, result.output


def test_generate_check_mode_names_stale_files(tmp_path: Path) -> None:
    result = CliRunner().invoke(generate_command, ["--out", str(tmp_path), "--check"])
    assert result.exit_code == 1
    assert "run salespulse generate" in result.output
    assert "deploy/prometheus/rules/salespulse.rules.yml" in result.output


def test_changed_thresholds_reach_rules_and_dashboards(tmp_path: Path) -> None:
    data = yaml.safe_load(DEFAULT_TARGETS.read_text())
    data["kpi_alerts"][0]["below" if "below" in data["kpi_alerts"][0] else "above"] = 0.123
    changed = tmp_path / "targets.yaml"
    changed.write_text(yaml.safe_dump(data))
    files = generated_files(changed)
    assert "< 0.123" in files["deploy/prometheus/rules/salespulse.rules.yml"]
    assert "0.123" in files["deploy/grafana/dashboards/executive.json"]


def test_targets_file_loads(targets: Targets) -> None:
    assert targets.kpi_alerts and targets.goals
    assert load_targets() == targets


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kpi_alerts": [{"kpi": "win_ratio", "below": 0.2, "period": "month"}]}, "unknown KPI"),
        ({"kpi_alerts": [{"kpi": "win_rate", "period": "month"}]}, "exactly one of below/above"),
        (
            {
                "kpi_alerts": [
                    {"kpi": "logo_churn_rate", "above": 0.1, "period": "month", "scope": "rep"}
                ]
            },
            "not exported at scope",
        ),
        (
            {"kpi_alerts": [{"kpi": "win_rate", "below": 0.2, "period": "fortnight"}]},
            "unknown period",
        ),
        (
            {
                "kpi_alerts": [
                    {"kpi": "win_rate", "below": 0.2, "period": "month", "for": "an hour"}
                ]
            },
            "duration",
        ),
        (
            {"goals": [{"kpi": "won_revenue", "period": "month", "value": 1, "scope": "team"}]},
            "team/rep",
        ),
        ({"calendar": {"business_days": ["monday"]}}, "business_days"),
        ({"pipeline_alerts": {"data_stale": {"minutes": 30, "color": "red"}}}, "Extra inputs"),
    ],
)
def test_targets_file_mistakes_are_reported(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Targets.model_validate(change)


def test_duplicate_alerts_are_refused() -> None:
    alert = {"kpi": "win_rate", "below": 0.2, "period": "month"}
    with pytest.raises(ValueError, match="same alert"):
        Targets.model_validate({"kpi_alerts": [alert, {**alert, "period": "quarter"}]})


def test_goal_series_are_in_metric_units() -> None:
    t = Targets.model_validate(
        {"goals": [{"kpi": "sales_cycle", "period": "quarter", "value": 30}]}
    )
    assert t.goal_series() == [
        (
            {"kpi": "sales_cycle", "period": "quarter", "scope": "total", "team": "", "rep": ""},
            30 * 86400.0,
        )
    ]
