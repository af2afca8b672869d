"""The streaming engine agrees exactly with the batch oracle, whatever the delivery.

Random event logs (see :mod:`tests.state.strategies`) are delivered at least once and out
of order to three simulated partitions, with link facts routed to the partition of their
target and delivered late, shuffled, sometimes twice. Every KPI of ``state.kpis.KPIS`` is
then read from the summed partition aggregates and compared with
:class:`tests.oracle.BatchOracle` over the same log, for several periods (all time,
open-ended, March, Q2 and random calendar, fiscal and trailing periods) in New York, UTC
and Kolkata, in total and grouped by rep, by team and office, and by kind, as far as each
KPI declares those dimensions. Growth and sales velocity are compared too.
"""

from __future__ import annotations

import doctest
import random
from datetime import date
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tests.oracle.batch
from state.kpis import KPIS
from state.readout import Period, Readout
from state.rules import Rules
from state.snapshot import Snapshot
from tests.oracle import ORACLE_KPIS, BatchOracle, Window
from tests.state.strategies import (
    delivery_factory,
    event_factory,
    event_log_factory,
    rules_factory,
    run_engine,
)

RULES = (
    rules_factory(),  # America/New_York, fiscal year from April
    rules_factory(timezone="UTC", fiscal_year_start_month=1),
    rules_factory(timezone="Asia/Kolkata", fiscal_year_start_month=7),
)
GROUPINGS = (("rep",), ("team", "office"), ("kind",))
PERIOD_KINDS = (
    "day",
    "week",
    "month",
    "quarter",
    "year",
    "fiscal_quarter",
    "fiscal_year",
    "trailing_7d",
    "trailing_30d",
    "trailing_90d",
)
PROPERTY = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
QUICK = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
days = st.dates(date(2016, 12, 15), date(2017, 7, 15))


@st.composite
def periods_factory(draw: st.DrawFn, rules: Rules) -> list[Period]:
    """All time, open-ended ranges, March in the business timezone, and random periods."""
    cal = rules.calendar
    picks = draw(st.lists(st.tuples(st.sampled_from(PERIOD_KINDS), days), min_size=1, max_size=2))
    return [
        Period(),
        Period(None, "2017-04-01"),
        Period.of(cal, "month", date(2017, 3, 15)),
        Period.of(cal, "quarter", date(2017, 4, 1)),
        *(Period.of(cal, kind, d) for kind, d in picks),
    ]


def assert_same(engine: Any, oracle: Any, what: str) -> None:
    """Exact agreement: both compute the same integer components and the same float
    operations in the same order, so no tolerance is needed."""
    assert engine == oracle and (engine is None) == (oracle is None), (
        f"{what}: engine {engine!r} != oracle {oracle!r}"
    )


def compare_all_kpis(readout: Readout, oracle: BatchOracle, periods: list[Period]) -> None:
    for period in periods:
        window = Window(period.start, period.end, period.kind)
        for kpi in KPIS:
            what = f"{kpi.name} over {period}"
            assert_same(readout.value(kpi.name, period), oracle.value(kpi.name, window), what)
            for group_by in GROUPINGS:
                if not set(group_by) <= set(kpi.dimensions):
                    continue  # only the groupings a KPI declares (and exports)
                engine = readout.grouped(kpi.name, period, group_by)
                expected = oracle.grouped(kpi.name, window, group_by)
                # A group with nothing to count may be absent on either side.
                engine_empty = readout.value(kpi.name, period, {"rep": "\x00no such rep"})
                oracle_empty = oracle.empty(kpi.name, window)
                for group in engine.keys() | expected.keys():
                    assert_same(
                        engine.get(group, engine_empty),
                        expected.get(group, oracle_empty),
                        f"{what} for {group}",
                    )


@PROPERTY
@given(data=st.data())
def test_every_kpi_matches_the_batch_oracle(data: st.DataObject) -> None:
    rules = data.draw(st.sampled_from(RULES), label="rules")
    log = data.draw(event_log_factory(), label="log")
    delivery = data.draw(delivery_factory(log), label="delivery")
    rnd = data.draw(st.randoms(use_true_random=False))
    run = run_engine(delivery, rules, rnd, link_copies=data.draw(st.sampled_from((1, 2))))
    oracle = BatchOracle(delivery, rules)
    readout = run.readout
    compare_all_kpis(readout, oracle, data.draw(periods_factory(rules), label="periods"))
    today = data.draw(days, label="today")
    cal = rules.calendar
    for lag in ("mom", "yoy"):
        assert_same(
            readout.growth("won_revenue", cal, "month", today, lag),
            oracle.growth_month_to_date("won_revenue", today, lag),
            f"growth {lag}",
        )
    assert_same(readout.sales_velocity(cal, today), oracle.sales_velocity(today), "sales velocity")


@QUICK
@given(log=event_log_factory(), rnd=st.randoms(use_true_random=False))
def test_rebuilding_aggregates_from_snapshots_equals_incremental_state(
    log: list[dict[str, Any]], rnd: random.Random
) -> None:
    run = run_engine(log + log[: len(log) // 2], RULES[0], rnd)
    for ps in run.partitions.values():
        incremental = dict(ps.aggregates.values)
        ps.rebuild()
        assert ps.aggregates.values == incremental


def normal_form(snapshots: dict[str, Snapshot]) -> dict[str, Snapshot]:
    """Snapshots as far as any KPI can tell.

    A link fact keeps the token of the deal state that last *changed* it, and a deal
    only tells leads and accounts it once pointed to in the order it was seen; so link
    tokens, facts saying "no won deal" and entities known only from such facts depend on
    the delivery order, while fields, lifecycle, milestones and won times must not.
    """
    out = {}
    for key, snap in snapshots.items():
        links = {src: fact[1] for src, fact in snap["l"].items() if fact[1] is not None}
        normal = {**snap, "l": links}
        if normal != {"f": {}, "a": None, "m": {}, "l": {}, "v": 0}:
            out[key] = normal
    return out


@QUICK
@given(data=st.data())
def test_two_delivery_orders_give_identical_snapshots_and_aggregates(data: st.DataObject) -> None:
    log = data.draw(event_log_factory(), label="log")
    first = run_engine(
        data.draw(delivery_factory(log)), RULES[0], data.draw(st.randoms(use_true_random=False))
    )
    second = run_engine(
        data.draw(delivery_factory(log)),
        RULES[0],
        data.draw(st.randoms(use_true_random=False)),
        link_copies=2,
    )
    assert normal_form(first.snapshots) == normal_form(second.snapshots)
    assert first.aggregates == second.aggregates


@QUICK
@given(data=st.data())
def test_replaying_after_a_crash_and_redelivering_links_changes_nothing(
    data: st.DataObject,
) -> None:
    """At-least-once: a worker that crashed before committing its offsets reprocesses a
    suffix of what it had applied; links may arrive twice."""
    log = data.draw(event_log_factory(), label="log")
    delivery = data.draw(delivery_factory(log))
    resume = data.draw(st.integers(0, len(delivery)), label="resume at")
    rnd = data.draw(st.randoms(use_true_random=False))
    once = run_engine(delivery, RULES[1], rnd)
    replayed = run_engine(delivery + delivery[resume:], RULES[1], rnd, link_copies=2)
    assert once.aggregates == replayed.aggregates
    assert normal_form(once.snapshots) == normal_form(replayed.snapshots)


def test_every_kpi_has_an_oracle_function() -> None:
    assert sorted(ORACLE_KPIS) == sorted(k.name for k in KPIS)


# --- the oracle itself, on hand-computed examples -------------------------------------


def _story() -> list[dict[str, Any]]:
    """Deals reopened, edited after close, merged, moved between reps; EUR at close."""
    e = event_factory
    return [
        e("lead", "L1", stage="new", owner="ann", occurred_at="2017-03-01T12:00:00Z"),
        e("lead", "L1", "update", 2, "2017-03-03T12:00:00Z", stage="mql"),
        e("lead", "L1", "update", 3, "2017-03-09T12:00:00Z", stage="sql"),
        # won in EUR on March 20 (rate 1.0725), amount edited after close
        e(
            "deal",
            "D1",
            owner="ann",
            status="won",
            amount=1000,
            currency="EUR",
            closed_at="2017-03-20",
            created_at="2017-03-10",
            lead_id="L1",
            account_id="A1",
        ),
        e("deal", "D1", "update", 3, amount="1200.50"),
        e("deal", "D1", "update", 2, amount=1),  # older than the edit: ignored
        # won then reopened: counts as open pipeline (proposal, 60 %) only
        e("deal", "D2", owner="bob", status="won", amount=500, closed_at="2017-03-21"),
        e("deal", "D2", "update", 2, status="open", stage="proposal"),
        # lost, then reassigned from bob to ann
        e(
            "deal",
            "D3",
            owner="bob",
            status="lost",
            amount=300,
            closed_at="2017-03-05",
            created_at="2017-03-01",
        ),
        e("deal", "D3", "update", 2, owner="ann"),
        # won, then merged away: counts nowhere
        e("deal", "D4", owner="bob", status="won", amount=999, closed_at="2017-03-06"),
        e("deal", "D4", "merge", 2, merged_into="D1"),
        # deleted, then restored: counts again (won in GBP on 2017-04-02: rate 1.3125)
        e(
            "deal",
            "D5",
            owner="bob",
            stage="Closed Won",
            amount=100,
            currency="GBP",
            closed_at="2017-04-02T03:00:00Z",
            account_id="A1",
        ),
        e("deal", "D5", "delete", 2),
        e("deal", "D5", "restore", 3),
    ]


def test_oracle_follows_the_definitions_on_a_hand_computed_story() -> None:
    o = BatchOracle(_story() * 2, rules_factory())  # every event delivered twice
    march = Window("2017-03-01", "2017-04-01", "month")
    assert o.value("won_revenue", march) == 1287.54  # 1200.50 EUR x 1.0725, half-even
    assert o.value("deals_won", march) == 1 and o.value("deals_lost", march) == 1
    assert o.value("win_rate", march) == 0.5
    assert o.value("sales_cycle", march) == 10.0  # March 10 -> March 20, plain dates
    assert o.value("open_deals") == 1 and o.value("open_pipeline") == 500.0
    assert o.value("weighted_pipeline", march) == 300.0  # no expected close: every period
    assert o.value("won_revenue", march, {"rep": "ann"}) == 1287.54
    assert o.value("deals_lost", march, {"rep": "ann"}) == 1  # reassigned to ann
    assert o.value("qualified_leads", march) == 1  # first qualified on March 3 (mql)
    assert o.value("lead_conversion_rate", march) == 1.0
    assert o.value("new_customers", march) == 1  # A1's first won deal is D1 in March
    # D5 closed 2017-04-01 23:00 in New York, converted at GBP's April rate.
    april = Window("2017-04-01", "2017-05-01", "month")
    assert o.value("won_revenue", april) == 131.25
    assert o.value("new_customers", april) == 0


@pytest.mark.parametrize("rules", RULES, ids=lambda r: r.timezone)
def test_engine_and_oracle_agree_on_the_hand_computed_story(rules: Rules) -> None:
    story = _story()
    run = run_engine(story + story[::-1], rules, random.Random(7))
    periods = [Period(), *(Period.of(rules.calendar, k, date(2017, 3, 31)) for k in PERIOD_KINDS)]
    compare_all_kpis(run.readout, BatchOracle(story, rules), periods)


def test_the_oracle_docstring_example_holds() -> None:
    result = doctest.testmod(tests.oracle.batch, raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0
