"""Business calendar: local days, fiscal periods and like-for-like growth, end to end.

The bucketing tests go through the engine (:class:`state.processor.PartitionState` and
:class:`state.readout.Readout`), not only through :mod:`state.calendar`.

Fiscal labelling convention (``BusinessCalendar.period_key``): a fiscal year is named
after the calendar year in which it *ends*. With a fiscal year starting in April,
FY2018 runs from 2017-04-01 to 2018-03-31, so 2017-05-10 is in FY2018-Q1. With the
default January start the fiscal year is the calendar year (2017-05-10 is FY2017-Q2).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from state.calendar import BusinessCalendar
from state.processor import PartitionState
from state.readout import Period, Readout
from state.rules import Rules
from tests.state.strategies import event_factory, rules_factory

MARCH = Period("2017-03-01", "2017-04-01", "month")
APRIL = Period("2017-04-01", "2017-05-01", "month")


def readout_of(rules: Rules, events: list[dict[str, Any]]) -> Readout:
    ps = PartitionState(rules, {})
    outcomes = ps.apply_all(events)
    assert all(o.status == "applied" for o in outcomes), [o.reason for o in outcomes]
    ps.apply_all([link for o in outcomes for link in o.links])  # one partition owns all
    return Readout(dict(ps.aggregates.values))


def month_end_events() -> list[dict[str, Any]]:
    """Three things that happen at 23:30 in New York on March 31 (03:30 UTC, April 1)."""
    late = "2017-03-31T23:30:00-04:00"
    return [
        event_factory("deal", "D1", status="won", amount=100, closed_at="2017-04-01T03:30:00Z"),
        event_factory("activity", "T1", occurred_at=late, type="call"),  # no done_at
        event_factory("lead", "L1", occurred_at="2017-04-01T03:30:00Z", stage="mql"),
    ]


@pytest.mark.parametrize(
    ("kpi", "march_value"),
    [("won_revenue", 100.0), ("activities", 1), ("qualified_leads", 1)],
)
def test_late_evening_on_the_last_day_counts_in_that_local_month(
    kpi: str, march_value: float
) -> None:
    readout = readout_of(rules_factory(timezone="America/New_York"), month_end_events())
    assert readout.value(kpi, MARCH) == march_value
    assert readout.value(kpi, APRIL) == 0
    assert (
        readout.value(
            kpi, Period.of(BusinessCalendar("America/New_York"), "day", date(2017, 3, 31))
        )
        == march_value
    )


@pytest.mark.parametrize("kpi", ["won_revenue", "activities", "qualified_leads"])
def test_the_same_instants_count_in_april_for_a_utc_business(kpi: str) -> None:
    readout = readout_of(rules_factory(timezone="UTC"), month_end_events())
    assert readout.value(kpi, MARCH) == 0
    assert readout.value(kpi, APRIL) != 0


def test_a_plain_close_date_is_the_local_day_in_any_timezone() -> None:
    for timezone in ("America/New_York", "UTC", "Asia/Tokyo", "Pacific/Kiritimati"):
        readout = readout_of(
            rules_factory(timezone=timezone),
            [event_factory("deal", "D1", status="won", amount=7, closed_at="2017-03-31")],
        )
        assert readout.value("won_revenue", MARCH) == 7.0, timezone


def test_days_follow_daylight_saving_time_in_new_york() -> None:
    cal = BusinessCalendar("America/New_York")
    # 04:30 UTC is 23:30 the day before in winter (UTC-5)...
    assert cal.day_of_value("2017-03-12T04:30:00Z") == "2017-03-11"
    # ... and 00:30 the same day in summer (UTC-4).
    assert cal.day_of_value("2017-11-05T04:30:00Z") == "2017-11-05"
    assert cal.day_of_value(1488342600000) == "2017-02-28"  # epoch ms, 04:30 UTC March 1
    assert cal.day_of_value("2017-03-31T23:30:00") == "2017-03-31"  # naive = local


def test_a_sales_cycle_between_plain_dates_counts_whole_days_across_dst() -> None:
    """March 10 to March 15 in New York is 119 hours (clocks skip an hour on the 12th),
    but two plain dates are five whole days."""
    readout = readout_of(
        rules_factory(timezone="America/New_York"),
        [
            event_factory(
                "deal",
                "D1",
                status="won",
                amount=1,
                created_at="2017-03-10",
                closed_at="2017-03-15",
            )
        ],
    )
    assert readout.value("sales_cycle", MARCH) == 5.0


@pytest.mark.parametrize(
    ("start_month", "day", "fiscal_quarter", "fiscal_year", "quarter_range"),
    [
        (4, date(2017, 5, 10), "FY2018-Q1", "FY2018", ("2017-04-01", "2017-07-01")),
        (4, date(2017, 3, 31), "FY2017-Q4", "FY2017", ("2017-01-01", "2017-04-01")),
        (4, date(2018, 3, 31), "FY2018-Q4", "FY2018", ("2018-01-01", "2018-04-01")),
        (1, date(2017, 5, 10), "FY2017-Q2", "FY2017", ("2017-04-01", "2017-07-01")),
        (2, date(2017, 2, 28), "FY2018-Q1", "FY2018", ("2017-02-01", "2017-05-01")),
        (10, date(2017, 5, 10), "FY2017-Q3", "FY2017", ("2017-04-01", "2017-07-01")),
        (10, date(2017, 10, 1), "FY2018-Q1", "FY2018", ("2017-10-01", "2018-01-01")),
    ],
)
def test_fiscal_periods_follow_the_configured_start_month_and_are_named_by_end_year(
    start_month: int,
    day: date,
    fiscal_quarter: str,
    fiscal_year: str,
    quarter_range: tuple[str, str],
) -> None:
    cal = BusinessCalendar("UTC", fiscal_year_start_month=start_month)
    assert cal.period_key("fiscal_quarter", day) == fiscal_quarter
    assert cal.period_key("fiscal_year", day) == fiscal_year
    start, end = cal.period_range("fiscal_quarter", day)
    assert (start.isoformat(), end.isoformat()) == quarter_range
    fy_start, fy_end = cal.period_range("fiscal_year", day)
    assert fy_start.month == start_month and fy_start.day == 1
    assert (fy_end.year - fy_start.year, fy_end.month) == (1, start_month)


def test_fiscal_quarter_kpis_sum_the_fiscal_quarter_and_read_quarterly_quotas() -> None:
    rules = rules_factory(timezone="America/New_York", fiscal_year_start_month=4)
    e = event_factory
    readout = readout_of(
        rules,
        [
            e("deal", "D1", status="won", amount=300, closed_at="2017-04-01"),  # FY2018-Q1
            e("deal", "D2", status="won", amount=500, closed_at="2017-06-30T23:00:00-04:00"),
            e("deal", "D3", status="won", amount=900, closed_at="2017-07-01"),  # FY2018-Q2
            e("deal", "D4", status="won", amount=700, closed_at="2017-03-31"),  # FY2017-Q4
            e("quota", "Q1", amount=1000, period="quarter", period_start="2017-04-01"),
            e("quota", "Q2", amount=400, period="month", period_start="2017-04-01"),
            e("quota", "Q3", amount=4000, period="year", period_start="2017-04-01"),
        ],
    )
    fq1 = Period.of(rules.calendar, "fiscal_quarter", date(2017, 5, 10))
    assert (fq1.start, fq1.end) == ("2017-04-01", "2017-07-01")
    assert readout.value("won_revenue", fq1) == 800.0
    assert readout.value("quota", fq1) == 1000.0  # the quarterly quota only
    assert readout.value("quota_attainment", fq1) == 0.8
    fy = Period.of(rules.calendar, "fiscal_year", date(2017, 5, 10))
    assert readout.value("won_revenue", fy) == 1700.0
    assert readout.value("quota", fy) == 4000.0  # the yearly quota only
    assert readout.value("quota", Period.of(rules.calendar, "month", date(2017, 4, 5))) == 400.0


# --- growth: like-for-like partial periods --------------------------------------------


def growth_readout() -> tuple[Readout, BusinessCalendar]:
    rules = rules_factory(timezone="America/New_York")
    e = event_factory
    won = [
        ("2016-03-05", 50),
        ("2016-03-15", 999),  # a year before: only the 5th is like
        ("2017-02-01", 100),
        ("2017-02-10T22:00:00-05:00", 60),  # Feb 1-10 (NY time)
        ("2017-02-11T03:00:00Z", 40),  # 22:00 on Feb 10 in New York: still in Feb 1-10
        ("2017-02-11", 1000),
        ("2017-02-28", 10),  # after day 10 of February
        ("2017-03-01", 120),
        ("2017-03-10T23:59:00-05:00", 80),  # March 1-10
        ("2017-03-11", 5000),  # after "today" (March 10)
        ("2017-03-06", 0),
        ("2017-03-08", 7),
        ("2017-03-09", 3),  # Mon 6 .. Thu 9
        ("2017-02-27", 2),
        ("2017-03-02", 11),  # Mon Feb 27 (previous week), Thu Mar 2
    ]
    events = [
        e("deal", f"D{i}", status="won", amount=amount, closed_at=closed)
        for i, (closed, amount) in enumerate(won)
    ]
    return readout_of(rules, events), rules.calendar


def test_month_to_date_growth_compares_the_same_first_days_of_the_previous_month() -> None:
    readout, cal = growth_readout()
    # March 1-10: 120 (1st) + 11 (2nd) + 0 (6th) + 7 (8th) + 3 (9th) + 80 (10th) = 221;
    # February 1-10: 100 (1st) + 60 + 40 (both the 10th in New York) = 200.
    assert readout.growth("won_revenue", cal, "month", date(2017, 3, 10), "mom") == 0.105
    assert (221 - 200) / 200 == 0.105


def test_month_to_date_growth_year_over_year_uses_the_same_days_a_year_before() -> None:
    readout, cal = growth_readout()
    # March 1-10, 2017: 221; March 1-10, 2016: 50 (the 999 on March 15 is excluded).
    assert readout.growth("won_revenue", cal, "month", date(2017, 3, 10), "yoy") == 3.42
    assert (221 - 50) / 50 == 3.42


def test_growth_at_month_end_clips_to_the_shorter_previous_month() -> None:
    readout, cal = growth_readout()
    march = 221 + 5000  # the whole month
    february = 200 + 1000 + 10 + 2  # the whole of February, not up to March 3
    assert cal.previous_like_for_like("month", date(2017, 3, 31), "mom") == (
        date(2017, 2, 1),
        date(2017, 3, 1),
    )
    assert readout.growth("won_revenue", cal, "month", date(2017, 3, 31), "mom") == (
        (march - february) / february
    )


def test_week_to_date_growth_compares_with_the_same_weekdays_of_the_previous_week() -> None:
    readout, cal = growth_readout()
    # Mon Mar 6 .. Wed Mar 8: 0 + 7 = 7; Mon Feb 27 .. Wed Mar 1: 2 + 10 + 120 = 132.
    assert cal.previous_like_for_like("week", date(2017, 3, 8), "mom") == (
        date(2017, 2, 27),
        date(2017, 3, 2),
    )
    assert readout.growth("won_revenue", cal, "week", date(2017, 3, 8), "mom") == (7 - 132) / 132


def test_day_growth_year_over_year_compares_with_the_same_date_a_year_before() -> None:
    readout, cal = growth_readout()
    assert cal.previous_like_for_like("day", date(2017, 3, 5), "yoy") == (
        date(2016, 3, 5),
        date(2016, 3, 6),
    )
    assert cal.previous_like_for_like("day", date(2017, 3, 5), "mom") == (
        date(2017, 3, 4),
        date(2017, 3, 5),
    )
    assert readout.growth("won_revenue", cal, "day", date(2017, 3, 5), "yoy") == -1.0


def test_like_for_like_ranges_for_quarters_years_and_leap_days() -> None:
    cal = BusinessCalendar("UTC", fiscal_year_start_month=4)
    # Day 40 of Q2 vs the first 40 days of Q1.
    assert cal.previous_like_for_like("quarter", date(2017, 5, 10), "mom") == (
        date(2017, 1, 1),
        date(2017, 2, 10),
    )
    assert cal.previous_like_for_like("fiscal_quarter", date(2017, 5, 10), "yoy") == (
        date(2016, 4, 1),
        date(2016, 5, 11),
    )
    assert cal.previous_like_for_like("month", date(2016, 2, 29), "yoy") == (
        date(2015, 2, 1),
        date(2015, 3, 1),
    )
    assert cal.previous_like_for_like("day", date(2016, 2, 29), "yoy") == (
        date(2015, 2, 28),
        date(2015, 3, 1),
    )


def test_growth_is_undefined_when_the_comparison_period_is_empty() -> None:
    readout, cal = growth_readout()
    assert readout.growth("won_revenue", cal, "month", date(2017, 1, 10), "mom") is None
