"""Reading KPIs from summed aggregates: periods, filters, groups, derived KPIs.

Components are summed over the local days of the selected period (timeless components,
with day ``""``, always count); ratios are computed only here, from those sums.

>>> aggs = {("won_amount", "2017-03-01", "Ann", "East", "", "", "", ""): 150000,
...         ("won_count", "2017-03-01", "Ann", "East", "", "", "", ""): 1,
...         ("lost_count", "2017-03-02", "Bob", "East", "", "", "", ""): 1}
>>> r = Readout(aggs)
>>> r.value("win_rate", Period("2017-03-01", "2017-04-01"))
0.5
>>> r.grouped("won_revenue", Period("2017-03-01", "2017-04-01"), ("rep",))
{('Ann',): 1500.0}
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from state.calendar import BusinessCalendar
from state.contributions import AggKey
from state.kpis import KPI_BY_NAME, Kpi

DIM_INDEX = {"rep": 2, "team": 3, "office": 4, "product": 5, "source": 6, "kind": 7}
QUOTA_KINDS = {"month", "quarter", "year"}


@dataclass(frozen=True)
class Period:
    """A range of local days [start, end) as ISO dates; ``None`` bounds mean all time."""

    start: str | None = None
    end: str | None = None
    kind: str = "all"

    def contains(self, day: str) -> bool:
        """Whether a local day is in the period; timeless (``""``) always is."""
        if day == "":
            return True
        return (self.start is None or day >= self.start) and (self.end is None or day < self.end)

    @classmethod
    def of(cls, cal: BusinessCalendar, kind: str, d: date) -> Period:
        start, end = cal.period_range(kind, d)
        return cls(start.isoformat(), end.isoformat(), kind)


class _Sums:
    """Component sums of one group, for one period (implements ``kpis.Components``)."""

    def __init__(self) -> None:
        self.inside: dict[str, int] = defaultdict(int)
        self.earlier: dict[str, int] = defaultdict(int)

    def __call__(self, component: str) -> int:
        return self.inside[component]

    def before(self, component: str) -> int:
        return self.earlier[component]

    def through(self, component: str) -> int:
        return self.earlier[component] + self.inside[component]


class Readout:
    """KPI values over the summed aggregates of all partitions."""

    def __init__(self, aggregates: Mapping[AggKey, int]) -> None:
        self.aggregates = aggregates

    def _sums(self, kpi: Kpi, period: Period, filters: Mapping[str, str],
              group_by: tuple[str, ...]) -> dict[tuple[str, ...], _Sums]:
        wanted = set(kpi.components)
        checks = [(DIM_INDEX[d], v) for d, v in filters.items() if d in DIM_INDEX]
        groups: dict[tuple[str, ...], _Sums] = defaultdict(_Sums)
        quota_kind = period.kind if period.kind in QUOTA_KINDS else None
        for key, n in self.aggregates.items():
            component, day = key[0], key[1]
            if component not in wanted or any(key[i] != v for i, v in checks):
                continue
            if component == "quota_amount" and quota_kind and key[7] != quota_kind:
                continue
            group = tuple(key[DIM_INDEX[d]] for d in group_by)
            sums = groups[group]
            if period.contains(day):
                sums.inside[component] += n
            elif period.start is not None and day < period.start:
                sums.earlier[component] += n
        return groups

    def grouped(self, name: str, period: Period, group_by: tuple[str, ...],
                filters: Mapping[str, str] | None = None) -> dict[tuple[str, ...], float | None]:
        """The KPI per group (e.g. per rep) for a period."""
        kpi = KPI_BY_NAME[name]
        sums = self._sums(kpi, period, filters or {}, group_by)
        return {group: kpi.formula(s) for group, s in sorted(sums.items())}

    def value(self, name: str, period: Period,
              filters: Mapping[str, str] | None = None) -> float | None:
        """The KPI for a period, over everything that passes ``filters``."""
        kpi = KPI_BY_NAME[name]
        sums = self._sums(kpi, period, filters or {}, ())
        return kpi.formula(sums.get((), _Sums()))

    def growth(self, name: str, cal: BusinessCalendar, kind: str, today: date,
               lag: str, filters: Mapping[str, str] | None = None) -> float | None:
        """(this period to date - like-for-like previous) / previous; lag ``mom``/``yoy``."""
        start, _ = cal.period_range(kind, today)
        now = self.value(name, Period(start.isoformat(), (today + timedelta(1)).isoformat()),
                         filters)
        p_start, p_end = cal.previous_like_for_like(kind, today, lag)
        before = self.value(name, Period(p_start.isoformat(), p_end.isoformat()), filters)
        if now is None or not before:
            return None
        return (now - before) / before

    def sales_velocity(self, cal: BusinessCalendar, today: date, window: str = "trailing_90d",
                       filters: Mapping[str, str] | None = None) -> float | None:
        """Open deals x average deal size x win rate / sales cycle days (per day)."""
        period = Period.of(cal, window, today)
        parts = [self.value("open_deals", Period(), filters),
                 self.value("average_deal_size", period, filters),
                 self.value("win_rate", period, filters),
                 self.value("sales_cycle", period, filters)]
        if any(p is None for p in parts) or not parts[3]:
            return None
        open_deals, size, rate, cycle = parts
        return open_deals * size * rate / cycle  # type: ignore[operator]
