"""The one targets file: KPI goals and alert thresholds (``deploy/targets.yaml``).

RevOps edits this file only. ``salespulse generate`` derives the alert and recording rules
and the dashboards' thresholds from it; the collector exports its ``goals`` as
``salespulse_target{kpi, period, scope, team, rep}`` gauges (:meth:`Targets.goal_series`)
so that boards draw target lines next to the KPI.

>>> t = Targets.model_validate({"goals": [{"kpi": "won_revenue", "period": "month",
...                                        "value": 1000}]})
>>> t.goal_series()
[({'kpi': 'won_revenue', 'period': 'month', 'scope': 'total', 'team': '', 'rep': ''}, 1000.0)]
>>> Targets.model_validate({"kpi_alerts": [{"kpi": "win_rate", "below": 0.2,
...                                         "period": "month"}]}).kpi_alerts[0].name
'SalesPulseWinRateLow'
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from state.kpis import KPI_BY_NAME, Kpi
from state.metrics import EXPORTED_PERIODS

DEFAULT_TARGETS = Path(__file__).resolve().parents[2] / "deploy" / "targets.yaml"

# Periods the collector exports for every period-bucketed KPI (state.metrics), and the
# one period of the KPIs that are current state ("all").
PERIODS = tuple(p for p in EXPORTED_PERIODS if p != "all")
TIMELESS_PERIOD = "all"
TIMELESS_KPIS = frozenset({"open_deals", "open_pipeline"})
# Scope -> the dimensions a KPI needs to be exported at that scope (state.metrics.SCOPES).
SCOPE_DIMS: dict[str, tuple[str, ...]] = {
    "total": (),
    "office": ("office",),
    "team": ("team",),
    "rep": ("rep", "team", "office"),
}
# KPIs for which a lower value is the better one (dashboard colours run green -> red).
LOWER_IS_BETTER = frozenset(
    {
        "deals_lost",
        "sales_cycle",
        "sales_cycle_closed",
        "customer_acquisition_cost",
        "logo_churn_rate",
        "revenue_churn_rate",
    }
)
WEEKDAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
Severity = Literal["info", "warning", "critical"]
_DURATION = re.compile(r"^[0-9]+(ms|s|m|h|d|w|y)$")


def kpi_period(kpi: Kpi, period: str) -> str:
    """The ``period`` label a KPI is exported with: ``all`` for current-state KPIs."""
    return TIMELESS_PERIOD if kpi.name in TIMELESS_KPIS else period


def camel(name: str) -> str:
    """``win_rate`` -> ``WinRate`` (alert names)."""
    return "".join(part.capitalize() for part in name.split("_"))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _check_kpi(name: str) -> str:
    if name not in KPI_BY_NAME:
        raise ValueError(f"unknown KPI {name!r} (see state/kpis.py)")
    return name


def _check_duration(value: str) -> str:
    if not _DURATION.match(value):
        raise ValueError(f"not a Prometheus duration: {value!r} (e.g. 30m, 1h)")
    return value


def _check_scope(kpi: str, scope: str) -> None:
    dims = KPI_BY_NAME[kpi].dimensions
    if not all(d in dims for d in SCOPE_DIMS[scope]):
        raise ValueError(f"{kpi} is not exported at scope {scope!r} (dimensions {dims})")


class Calendar(_Model):
    """When the business works, for the time-of-day guards of alerts (PromQL is in UTC)."""

    business_days: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri")
    business_hours: tuple[int, int] = (8, 18)
    utc_offset_hours: float = 0.0

    @field_validator("business_days")
    @classmethod
    def _days(cls, days: tuple[str, ...]) -> tuple[str, ...]:
        bad = [d for d in days if d not in WEEKDAYS]
        if bad or not days:
            raise ValueError(f"business_days must be some of {list(WEEKDAYS)}, got {bad}")
        return days

    @property
    def weekday_numbers(self) -> tuple[int, ...]:
        """Business days as PromQL ``day_of_week()`` numbers (0 = Sunday), sorted."""
        return tuple(sorted(WEEKDAYS[d] for d in set(self.business_days)))


class Goal(_Model):
    """A KPI's goal for a period, company-wide or for one team or rep."""

    kpi: str
    period: str
    value: float
    scope: Literal["total", "team", "rep"] = "total"
    team: str = ""
    rep: str = ""

    _kpi = field_validator("kpi")(_check_kpi)

    @model_validator(mode="after")
    def _consistent(self) -> Goal:
        _check_scope(self.kpi, self.scope)
        if self.period not in (*PERIODS, TIMELESS_PERIOD):
            raise ValueError(f"unknown period {self.period!r}")
        if (self.scope == "total") != (not self.team and not self.rep):
            raise ValueError("team/rep are set exactly when scope is team/rep")
        if (self.scope == "team" and self.rep) or (self.scope == "rep" and not self.rep):
            raise ValueError("a team goal names a team; a rep goal names its rep (and team)")
        return self

    def labels(self) -> dict[str, str]:
        """Labels of the ``salespulse_target`` gauge for this goal."""
        return {
            "kpi": self.kpi,
            "period": self.period,
            "scope": self.scope,
            "team": self.team,
            "rep": self.rep,
        }


class Sample(_Model):
    """Only alert when another KPI of the same series shows enough volume."""

    kpi: str
    at_least: float

    _kpi = field_validator("kpi")(_check_kpi)


class KpiAlert(_Model):
    """A KPI crossing a threshold: ``below`` or ``above`` (exactly one)."""

    kpi: str
    period: str
    below: float | None = None
    above: float | None = None
    scope: Literal["total", "office", "team", "rep"] = "total"
    for_: str = Field(default="1h", alias="for")
    severity: Severity = "warning"
    sample: Sample | None = None

    _kpi = field_validator("kpi")(_check_kpi)
    _for = field_validator("for_")(_check_duration)

    @model_validator(mode="after")
    def _consistent(self) -> KpiAlert:
        if (self.below is None) == (self.above is None):
            raise ValueError(f"{self.kpi}: give exactly one of below/above")
        _check_scope(self.kpi, self.scope)
        if self.sample:
            _check_scope(self.sample.kpi, self.scope)
        if self.period not in (*PERIODS, TIMELESS_PERIOD):
            raise ValueError(f"unknown period {self.period!r}")
        return self

    @property
    def op(self) -> str:
        return "<" if self.below is not None else ">"

    @property
    def threshold(self) -> float:
        return self.below if self.below is not None else self.above  # type: ignore[return-value]

    @property
    def name(self) -> str:
        """Alert name, e.g. ``SalesPulseWinRateLow`` or ``SalesPulseWinRateLowByTeam``."""
        suffix = "" if self.scope == "total" else f"By{self.scope.capitalize()}"
        return f"SalesPulse{camel(self.kpi)}{'Low' if self.below is not None else 'High'}{suffix}"


class QuotaPace(_Model):
    """Quota attainment behind the elapsed share of the month."""

    below: float = 0.8
    scope: Literal["team", "rep"] = "rep"
    period: Literal["month"] = "month"
    from_day_of_month: int = Field(default=6, ge=1, le=28)
    for_: str = Field(default="2h", alias="for")
    severity: Severity = "warning"

    _for = field_validator("for_")(_check_duration)


class RepInactive(_Model):
    """A rep (active in the last 30 days) logged no activity for N business days."""

    business_days: int = Field(default=3, ge=1, le=20)
    active_within: Literal["trailing_30d", "trailing_90d"] = "trailing_30d"
    for_: str = Field(default="30m", alias="for")
    severity: Severity = "warning"

    _for = field_validator("for_")(_check_duration)


class DataStale(_Model):
    """No new CRM event from a source for N minutes (optionally in business hours only)."""

    minutes: int = Field(default=30, ge=1)
    business_hours_only: bool = True
    ignore_sources: tuple[str, ...] = ()
    for_: str = Field(default="5m", alias="for")
    severity: Severity = "critical"

    _for = field_validator("for_")(_check_duration)


class DeadLetters(_Model):
    """Records or events sent to the dead-letter topic within a window."""

    above: int = Field(default=0, ge=0)
    window: str = "15m"
    severity: Severity = "warning"

    _window = field_validator("window")(_check_duration)


class ConsumerLag(_Model):
    """Records waiting in a partition of the events topic."""

    above: int = Field(default=10000, ge=0)
    for_: str = Field(default="10m", alias="for")
    severity: Severity = "warning"

    _for = field_validator("for_")(_check_duration)


class PublishAge(_Model):
    """A partition's aggregates not republished to Redis (owner stuck, dead or gone)."""

    above_seconds: float = Field(default=60, gt=0)
    for_: str = Field(default="2m", alias="for")
    severity: Severity = "critical"

    _for = field_validator("for_")(_check_duration)


class CollectorDown(_Model):
    """Prometheus cannot scrape the collector."""

    job: str = "salespulse"
    for_: str = Field(default="2m", alias="for")
    severity: Severity = "critical"

    _for = field_validator("for_")(_check_duration)


class PipelineAlerts(_Model):
    """Alerts on pace, activity and the pipeline's health; ``null`` disables one."""

    quota_pace: QuotaPace | None = QuotaPace()
    rep_inactive: RepInactive | None = RepInactive()
    data_stale: DataStale | None = DataStale()
    dead_letters: DeadLetters | None = DeadLetters()
    consumer_lag: ConsumerLag | None = ConsumerLag()
    publish_age: PublishAge | None = PublishAge()
    collector_down: CollectorDown | None = CollectorDown()


class Targets(_Model):
    """Goals and thresholds, as read from ``deploy/targets.yaml``."""

    reporting_currency: str = "USD"
    runbook_url: str = "docs/runbooks.md"
    calendar: Calendar = Calendar()
    goals: tuple[Goal, ...] = ()
    kpi_alerts: tuple[KpiAlert, ...] = ()
    pipeline_alerts: PipelineAlerts = PipelineAlerts()

    @model_validator(mode="after")
    def _unique(self) -> Targets:
        names = [a.name for a in self.kpi_alerts]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"two kpi_alerts give the same alert {dupes}: vary kpi or scope")
        keys = [tuple(g.labels().values()) for g in self.goals]
        if len(set(keys)) != len(keys):
            raise ValueError("two goals for the same kpi, period, scope, team and rep")
        return self

    def goal_series(self) -> list[tuple[dict[str, str], float]]:
        """``(labels, value)`` of every ``salespulse_target`` gauge the collector exports.

        Values are in the KPI metric's base unit (a sales-cycle goal in days becomes
        seconds), so a goal line sits on the same axis as its KPI.
        """
        return [(g.labels(), float(g.value) * KPI_BY_NAME[g.kpi].metric_scale) for g in self.goals]

    def goal(self, kpi: str, period: str) -> float | None:
        """The company-wide goal of a KPI for a period, if any."""
        for g in self.goals:
            if (g.kpi, g.period, g.scope) == (kpi, period, "total"):
                return g.value
        return None

    def kpi_alert(self, kpi: str, period: str) -> KpiAlert | None:
        """The threshold alert of a KPI over a period (company-wide first), if any."""
        found = [a for a in self.kpi_alerts if (a.kpi, a.period) == (kpi, period)]
        found.sort(key=lambda a: a.scope != "total")
        return found[0] if found else None

    def lower_is_better(self, kpi: str) -> bool:
        """Whether a lower value of the KPI is good (an ``above`` alert says so too)."""
        return kpi in LOWER_IS_BETTER or any(
            a.kpi == kpi and a.above is not None for a in self.kpi_alerts
        )


def load_targets(path: str | Path | None = None) -> Targets:
    """Targets from a YAML file (default: the repository's ``deploy/targets.yaml``)."""
    data = yaml.safe_load(Path(path or DEFAULT_TARGETS).read_text()) or {}
    return Targets.model_validate(data)
