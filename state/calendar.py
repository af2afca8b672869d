"""The business calendar: local days, calendar and fiscal periods, trailing windows.

All KPI state is bucketed by *local business day* (ISO date string in the configured IANA
timezone); every coarser period is a range of days, computed here when a KPI is read.
Event time decides the bucket, never arrival time.

>>> cal = BusinessCalendar("America/New_York", fiscal_year_start_month=2)
>>> cal.day_of_ms(1488342600000)   # 2017-03-01T04:30Z is still Feb 28 in New York
'2017-02-28'
>>> feb28 = date(2017, 2, 28)
>>> cal.period_key("quarter", feb28), cal.period_key("fiscal_quarter", feb28)
('2017-Q1', 'FY2018-Q1')
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

PERIOD_KINDS = ("day", "week", "month", "quarter", "year", "fiscal_quarter", "fiscal_year")
TRAILING_DAYS = {"trailing_7d": 7, "trailing_30d": 30, "trailing_90d": 90, "trailing_365d": 365}


@lru_cache(maxsize=1 << 16)
def _day_of_text(timezone: str, text: str) -> str:
    """Local day of an ISO date (taken as local) or ISO datetime (converted)."""
    if len(text) == 10:
        return date.fromisoformat(text).isoformat()
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        return parsed.date().isoformat()
    return parsed.astimezone(ZoneInfo(timezone)).date().isoformat()


@lru_cache(maxsize=1 << 16)
def _instant_of_text(timezone: str, text: str) -> int:
    """Epoch ms of an ISO date (local midnight) or ISO datetime (naive = local)."""
    if len(text) == 10:
        parsed = datetime.combine(date.fromisoformat(text), datetime.min.time(), ZoneInfo(timezone))
    else:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=ZoneInfo(timezone))
    return int(parsed.timestamp() * 1000)


@lru_cache(maxsize=1 << 16)
def _day_of_ms(timezone: str, ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=ZoneInfo(timezone)).date().isoformat()


def _add_months(d: date, months: int) -> date:
    index = d.year * 12 + d.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True)
class BusinessCalendar:
    """Maps instants to local business days and days to periods."""

    timezone: str = "UTC"
    fiscal_year_start_month: int = 1

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def day_of_ms(self, ms: int) -> str:
        """Local business day (ISO) of an epoch-millisecond instant."""
        return _day_of_ms(self.timezone, ms)

    def day_of_value(self, value: Any) -> str | None:
        """Local day of a field value: ISO date (taken as local), ISO datetime, or epoch ms."""
        if value is None or value == "":
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return self.day_of_ms(int(value))
        if type(value) is str:
            return _day_of_text(self.timezone, value)
        return _day_of_text(self.timezone, str(value))

    def instant_ms(self, value: Any) -> int | None:
        """Epoch ms of a field value; an ISO date means local midnight of that day."""
        if value is None or value == "":
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return int(value)
        return _instant_of_text(self.timezone, str(value))

    def today(self, now: datetime | None = None) -> date:
        """Today's local business date."""
        return (now or datetime.now(UTC)).astimezone(self.tz).date()

    def fiscal_year_start(self, d: date) -> date:
        """First day of the fiscal year containing ``d``."""
        start = date(d.year, self.fiscal_year_start_month, 1)
        return start if d >= start else date(d.year - 1, self.fiscal_year_start_month, 1)

    def period_range(self, kind: str, d: date) -> tuple[date, date]:
        """The period of ``kind`` containing ``d`` as [start, end) dates."""
        if kind == "day":
            return d, d + timedelta(days=1)
        if kind == "week":
            start = d - timedelta(days=d.weekday())
            return start, start + timedelta(days=7)
        if kind == "month":
            start = d.replace(day=1)
            return start, _add_months(start, 1)
        if kind == "quarter":
            start = date(d.year, 3 * ((d.month - 1) // 3) + 1, 1)
            return start, _add_months(start, 3)
        if kind == "year":
            return date(d.year, 1, 1), date(d.year + 1, 1, 1)
        fy = self.fiscal_year_start(d)
        if kind == "fiscal_year":
            return fy, _add_months(fy, 12)
        if kind == "fiscal_quarter":
            months = (d.year * 12 + d.month) - (fy.year * 12 + fy.month)
            start = _add_months(fy, 3 * (months // 3))
            return start, _add_months(start, 3)
        if kind in TRAILING_DAYS:
            return d - timedelta(days=TRAILING_DAYS[kind] - 1), d + timedelta(days=1)
        raise ValueError(f"unknown period kind {kind!r}")

    def period_key(self, kind: str, d: date) -> str:
        """A readable key of the period of ``kind`` containing ``d`` (e.g. ``2017-Q1``)."""
        start, _ = self.period_range(kind, d)
        if kind == "day":
            return start.isoformat()
        if kind == "week":
            iso = start.isocalendar()
            return f"{iso.year}-W{iso.week:02d}"
        if kind == "month":
            return start.strftime("%Y-%m")
        if kind == "quarter":
            return f"{start.year}-Q{(start.month - 1) // 3 + 1}"
        if kind == "year":
            return str(start.year)
        fy_start = self.fiscal_year_start(d)
        label = fy_start.year + (1 if self.fiscal_year_start_month != 1 else 0)
        if kind == "fiscal_year":
            return f"FY{label}"
        if kind == "fiscal_quarter":
            months = (start.year * 12 + start.month) - (fy_start.year * 12 + fy_start.month)
            return f"FY{label}-Q{months // 3 + 1}"
        return kind

    def previous_like_for_like(self, kind: str, d: date, lag: str) -> tuple[date, date]:
        """The comparison range for growth: same elapsed days of the previous period.

        ``lag`` is ``"mom"`` (the previous period of ``kind``: the previous month for
        months, the previous day, week or quarter for those) or ``"yoy"`` (the period of
        ``kind`` containing the same date a year before). For the period containing
        ``d``, the current range is [start, d]; the comparison range covers as many days
        from the start of the earlier period, clipped to it.
        """
        start, _end = self.period_range(kind, d)
        elapsed = (d - start).days + 1
        if lag == "mom":
            earlier = start - timedelta(days=1)
        else:
            earlier = d.replace(year=d.year - 1, day=min(d.day, 28 if d.month == 2 else 31))
        prev_start, prev_end = self.period_range(kind, earlier)
        return prev_start, min(prev_start + timedelta(days=elapsed), prev_end)
