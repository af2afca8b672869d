"""Reading KPIs from summed aggregates: periods, filters, groups, derived KPIs.

Components are summed over the local days of the selected period (timeless components,
with day ``""``, always count); ratios are computed only here, from those sums. Each
(component, grouping) is indexed once into sorted days with prefix sums, so any period is
two binary searches: a scrape evaluates thousands of series cheaply.

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

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from state.calendar import BusinessCalendar
from state.contributions import AggKey
from state.kpis import KPI_BY_NAME, KpiParams

DIM_INDEX = {"rep": 2, "team": 3, "office": 4, "product": 5, "source": 6, "kind": 7}
QUOTA_KINDS = {"month", "quarter", "year"}
FISCAL_QUOTA_KINDS = {"fiscal_quarter": "quarter", "fiscal_year": "year"}  # quota kind read
QUOTA = "quota_amount"


@dataclass(frozen=True)
class Period:
    """A range of local days [start, end) as ISO dates; ``None`` bounds mean all time."""

    start: str | None = None
    end: str | None = None
    kind: str = "all"

    @classmethod
    def of(cls, cal: BusinessCalendar, kind: str, d: date) -> Period:
        """The period of ``kind`` (calendar, fiscal or trailing) containing ``d``."""
        start, end = cal.period_range(kind, d)
        return cls(start.isoformat(), end.isoformat(), kind)


class _Series:
    """One component of one group: timeless total plus day buckets with prefix sums."""

    __slots__ = ("days", "prefix", "timeless")

    def __init__(self, by_day: dict[str, int]) -> None:
        self.timeless = by_day.pop("", 0)
        self.days = sorted(by_day)
        self.prefix = [0]
        for day in self.days:
            self.prefix.append(self.prefix[-1] + by_day[day])

    def upto(self, day: str | None) -> int:
        """Sum over dated buckets strictly before ``day`` (all of them for ``None``)."""
        if day is None:
            return self.prefix[-1]
        return self.prefix[bisect_left(self.days, day)]


class _Sums:
    """Component sums of one group for one period (implements ``kpis.Components``)."""

    def __init__(self, series: Mapping[str, _Series], period: Period, params: KpiParams) -> None:
        self.series = series
        self.period = period
        self.params = params

    def _get(self, component: str) -> _Series | None:
        kind = FISCAL_QUOTA_KINDS.get(self.period.kind, self.period.kind)
        if component == QUOTA and kind in QUOTA_KINDS:
            component = f"{QUOTA}@{kind}"
        return self.series.get(component)

    def __call__(self, component: str) -> int:
        s = self._get(component)
        if s is None:
            return 0
        if self.period.start is None and self.period.end is None:
            return s.timeless + s.prefix[-1]
        low = s.upto(self.period.start) if self.period.start else 0
        return s.timeless + s.upto(self.period.end) - low

    def before(self, component: str) -> int:
        s = self._get(component)
        return 0 if s is None or self.period.start is None else s.upto(self.period.start)

    def through(self, component: str) -> int:
        s = self._get(component)
        return 0 if s is None else s.upto(self.period.end)


def index_names(key: AggKey) -> tuple[str, ...]:
    """The names a key is indexed under: its component (and a quota's ``quota@kind``)."""
    return (key[0], f"{QUOTA}@{key[7]}") if key[0] == QUOTA else (key[0],)


def index_keys(keys: Iterable[AggKey]) -> dict[str, list[AggKey]]:
    """The keys grouped by :func:`index_names`."""
    index: dict[str, list[AggKey]] = defaultdict(list)
    for key in keys:
        for name in index_names(key):
            index[name].append(key)
    return index


class Readout:
    """KPI values over the summed aggregates of all partitions.

    ``index`` (the keys grouped by :func:`index_keys`) may be given by a caller that keeps
    it up to date, which saves a pass over every key.
    """

    def __init__(
        self,
        aggregates: Mapping[AggKey, int],
        params: KpiParams | None = None,
        index: Mapping[str, Iterable[AggKey]] | None = None,
    ) -> None:
        self.aggregates = aggregates
        self.params = params or KpiParams()
        self._by_component = index_keys(aggregates) if index is None else index
        self._tables: dict[tuple[str, tuple[str, ...]], dict[tuple[str, ...], _Series]] = {}

    def _table(self, component: str, dims: tuple[str, ...]) -> dict[tuple[str, ...], _Series]:
        cached = self._tables.get((component, dims))
        if cached is not None:
            return cached
        idx = [DIM_INDEX[d] for d in dims]
        days: dict[tuple[str, ...], dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for key in self._by_component.get(component, ()):
            days[tuple(key[i] for i in idx)][key[1]] += self.aggregates[key]
        table = {group: _Series(dict(by_day)) for group, by_day in days.items()}
        self._tables[(component, dims)] = table
        return table

    def _group_series(
        self, name: str, group_by: tuple[str, ...], filters: Mapping[str, str]
    ) -> dict[tuple[str, ...], dict[str, _Series]]:
        extra = tuple(d for d in filters if d not in group_by and d in DIM_INDEX)
        dims = group_by + extra
        out: dict[tuple[str, ...], dict[str, _Series]] = defaultdict(dict)
        components = set(KPI_BY_NAME[name].components)
        if QUOTA in components:
            components |= {f"{QUOTA}@{k}" for k in QUOTA_KINDS}
        for component in components:
            merged: dict[tuple[str, ...], dict[str, int]] = defaultdict(lambda: defaultdict(int))
            for group, series in self._table(component, dims).items():
                labels = dict(zip(dims, group, strict=True))
                if any(labels.get(d, v) != v for d, v in filters.items()):
                    continue
                target = merged[group[: len(group_by)]]
                target[""] += series.timeless
                previous = 0
                for day, total in zip(series.days, series.prefix[1:], strict=True):
                    target[day] += total - previous
                    previous = total
            for group, by_day in merged.items():
                out[group][component] = _Series(dict(by_day))
        return out

    def grouped(
        self,
        name: str,
        period: Period,
        group_by: tuple[str, ...],
        filters: Mapping[str, str] | None = None,
    ) -> dict[tuple[str, ...], float | None]:
        """The KPI per group (e.g. per rep) for a period."""
        kpi = KPI_BY_NAME[name]
        if not filters:
            groups: dict[tuple[str, ...], dict[str, _Series]] = defaultdict(dict)
            for component in set(kpi.components) | (
                {f"{QUOTA}@{k}" for k in QUOTA_KINDS} if QUOTA in kpi.components else set()
            ):
                for group, series in self._table(component, group_by).items():
                    groups[group][component] = series
        else:
            groups = self._group_series(name, group_by, filters)
        return {g: kpi.formula(_Sums(s, period, self.params)) for g, s in sorted(groups.items())}

    def value(
        self, name: str, period: Period, filters: Mapping[str, str] | None = None
    ) -> float | None:
        """The KPI for a period, over everything that passes ``filters``."""
        values = self.grouped(name, period, (), filters)
        return values.get((), KPI_BY_NAME[name].formula(_Sums({}, period, self.params)))

    def growth(
        self,
        name: str,
        cal: BusinessCalendar,
        kind: str,
        today: date,
        lag: str,
        filters: Mapping[str, str] | None = None,
    ) -> float | None:
        """(this period to date - like-for-like previous) / previous; lag ``mom``/``yoy``."""
        start, _ = cal.period_range(kind, today)
        now = self.value(
            name, Period(start.isoformat(), (today + timedelta(1)).isoformat()), filters
        )
        p_start, p_end = cal.previous_like_for_like(kind, today, lag)
        before = self.value(name, Period(p_start.isoformat(), p_end.isoformat()), filters)
        if now is None or not before:
            return None
        return (now - before) / before

    def sales_velocity(
        self,
        cal: BusinessCalendar,
        today: date,
        window: str = "trailing_90d",
        filters: Mapping[str, str] | None = None,
    ) -> float | None:
        """Open deals x average deal size x win rate / sales cycle days (per day)."""
        period = Period.of(cal, window, today)
        parts = [
            self.value("open_deals", Period(), filters),
            self.value("average_deal_size", period, filters),
            self.value("win_rate", period, filters),
            self.value("sales_cycle", period, filters),
        ]
        if any(p is None for p in parts) or not parts[3]:
            return None
        open_deals, size, rate, cycle = parts
        return open_deals * size * rate / cycle  # type: ignore[operator]
