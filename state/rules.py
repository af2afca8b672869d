"""Business rules the KPI engine needs: calendar, money, stages.

Loaded from a YAML file (``SALESPULSE_RULES``) or defaults; the same object is used by the
worker, the dry-run backfill and the collector, so all three agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from state.calendar import BusinessCalendar
from state.kpis import KpiParams
from state.money import FxTable

DEFAULT_STAGE_PROBABILITY = {
    "prospecting": 0.1,
    "qualification": 0.2,
    "engaging": 0.3,
    "demo": 0.4,
    "proposal": 0.6,
    "negotiation": 0.8,
}


@dataclass(frozen=True)
class Rules:
    """Calendar, currency and pipeline rules shared by every KPI computation."""

    timezone: str = "UTC"
    fiscal_year_start_month: int = 1
    reporting_currency: str = "USD"
    fx_rates: dict[str, dict[str, Any]] = field(default_factory=dict)
    stage_probability: dict[str, float] = field(
        default_factory=lambda: dict(DEFAULT_STAGE_PROBABILITY)
    )
    qualified_lead_stages: frozenset[str] = frozenset({"mql", "sql", "qualified"})
    gross_margin: float = 0.7
    churn_rate_floor: float = 0.01
    # Day buckets older than this many days before the rules were loaded (the worker's
    # start or rebalance) are dropped; None or 0 keeps all history.
    retention_days: int | None = None

    @property
    def kpi_params(self) -> KpiParams:
        """The parameters KPI formulas read (CLV's margin and churn floor)."""
        return KpiParams(self.gross_margin, self.churn_rate_floor)

    @cached_property
    def calendar(self) -> BusinessCalendar:
        return BusinessCalendar(self.timezone, self.fiscal_year_start_month)

    @cached_property
    def retention_cutoff(self) -> str | None:
        """First local day kept (ISO), or None when all history is kept."""
        if not self.retention_days:
            return None
        return (self.calendar.today() - timedelta(days=self.retention_days)).isoformat()

    @cached_property
    def fx(self) -> FxTable:
        return FxTable(self.reporting_currency, self.fx_rates)

    def milestones(self, entity: str) -> dict[str, tuple[str, frozenset[Any]]]:
        """Milestone rules for the snapshot of ``entity`` (see :mod:`state.snapshot`)."""
        if entity == "lead":
            return {"qualified": ("stage", self.qualified_lead_stages)}
        return {}

    @classmethod
    def load(cls, path: str | Path | None = None) -> Rules:
        """Rules from a YAML file; unset keys default to the environment's settings.

        Timezone, fiscal-year start and reporting currency default to
        ``SALESPULSE_BUSINESS_TIMEZONE``, ``SALESPULSE_FISCAL_YEAR_START_MONTH`` and
        ``SALESPULSE_REPORTING_CURRENCY``; ``path`` defaults to ``SALESPULSE_RULES``.
        """
        from salespulse.config import get_settings

        settings = get_settings()
        data: dict[str, Any] = {
            "timezone": settings.business_timezone,
            "fiscal_year_start_month": settings.fiscal_year_start_month,
            "reporting_currency": settings.reporting_currency,
            "retention_days": settings.retention_days,
        }
        path = path or settings.rules
        if path:
            data.update(yaml.safe_load(Path(path).read_text()) or {})
        if "qualified_lead_stages" in data:
            data["qualified_lead_stages"] = frozenset(data["qualified_lead_stages"])
        return cls(**data)
