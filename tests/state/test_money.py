"""Money: exact conversion to reporting-currency cents at the rate of the relevant date."""

from __future__ import annotations

from decimal import Decimal

import pytest

from state.money import FxTable, UnknownCurrency, parse_amount
from state.processor import PartitionState
from state.readout import Period, Readout
from tests.state.strategies import event_factory, rules_factory

FX = FxTable(
    "USD", {"EUR": {"2017-01-01": "1.05", "2017-06-01": "1.10"}, "gbp": {"2017-03-01": 1.25}}
)


def test_the_reporting_currency_converts_to_cents_rounding_half_to_even() -> None:
    assert FX.to_cents(100, "USD", None) == 10000
    assert FX.to_cents("10.005", "USD", None) == 1000  # 1000.5 -> 1000 (even)
    assert FX.to_cents("10.015", "USD", None) == 1002  # 1001.5 -> 1002 (even)
    assert FX.to_cents("-0.015", "USD", None) == -2


def test_a_missing_currency_is_the_reporting_currency() -> None:
    assert FX.to_cents(7, None, "2017-01-01") == FX.to_cents(7, "", None) == 700


def test_the_rate_is_the_newest_dated_on_or_before_the_day() -> None:
    assert FX.rate("EUR", "2017-05-31") == Decimal("1.05")
    assert FX.rate("EUR", "2017-06-01") == Decimal("1.10")
    assert FX.to_cents(100, "EUR", "2017-07-01") == 11000


def test_days_before_the_first_rate_use_the_oldest_and_no_day_uses_the_newest() -> None:
    assert FX.rate("EUR", "2016-12-31") == Decimal("1.05")
    assert FX.rate("EUR", None) == Decimal("1.10")


def test_currency_codes_are_case_insensitive() -> None:
    assert FX.to_cents(2, "eur", "2017-02-01") == FX.to_cents(2, "EUR", "2017-02-01") == 210
    assert FX.to_cents(4, "GBP", "2017-03-01") == 500  # configured as "gbp"


def test_conversion_is_exact_decimal_arithmetic() -> None:
    """0.1 + 0.2 style float errors cannot creep in: amounts and rates are decimals."""
    fx = FxTable("USD", {"EUR": {"2017-01-01": "1.0725"}})
    assert fx.to_cents("1200.50", "EUR", "2017-03-20") == 128754  # 1287.53625 -> 1287.54
    assert fx.to_cents(0.1, "USD", None) + fx.to_cents(0.2, "USD", None) == 30


def test_an_unknown_currency_is_an_error() -> None:
    with pytest.raises(UnknownCurrency):
        FX.to_cents(1, "JPY", None)


def test_blank_amounts_are_zero_and_garbage_is_rejected() -> None:
    assert parse_amount(None) == parse_amount("") == 0
    with pytest.raises(ValueError, match="not an amount"):
        parse_amount("12 EUR")


def test_the_engine_converts_a_deal_at_its_close_date_and_a_reopen_forgets_it() -> None:
    rules = rules_factory(timezone="UTC")  # EUR: 1.05 from Jan 1, 1.0725 from Mar 15
    ps = PartitionState(rules, {})
    ps.apply(
        event_factory(
            "deal", "D1", status="won", amount=100, currency="EUR", closed_at="2017-03-14"
        )
    )
    ps.apply(
        event_factory(
            "deal", "D2", status="won", amount=100, currency="EUR", closed_at="2017-03-15"
        )
    )
    readout = Readout(dict(ps.aggregates.values))
    assert readout.value("won_revenue", Period("2017-03-01", "2017-04-01", "month")) == 212.25
    ps.apply(event_factory("deal", "D2", "update", 2, status="open"))
    assert Readout(dict(ps.aggregates.values)).value("won_revenue", Period()) == 105.0


def test_an_unknown_currency_makes_the_event_invalid_and_leaves_state_alone() -> None:
    ps = PartitionState(rules_factory(), {})
    outcome = ps.apply(event_factory("deal", "D1", status="won", amount=1, currency="XYZ"))
    assert outcome.status == "invalid" and "XYZ" in outcome.reason
    assert ps.store == {} and ps.aggregates.values == {}
