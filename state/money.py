"""Money: exact conversion to the reporting currency, in integer minor units (cents).

Amounts are converted with the rate in force on the relevant date (a deal's close date,
a spend's date): the newest rate dated on or before it, else the oldest known rate.
Results are integers, so sums and differences of contributions are exact.

>>> fx = FxTable("USD", {"EUR": {"2017-01-01": "1.05", "2017-06-01": "1.10"}})
>>> fx.to_cents(100, "EUR", "2017-07-01"), fx.to_cents("10.005", "USD", None)
(11000, 1000)
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any


class UnknownCurrency(ValueError):
    """No rate is configured for the currency."""


class FxTable:
    """Rates to the reporting currency by currency and ISO date."""

    def __init__(self, reporting: str, rates: Mapping[str, Mapping[str, Any]]) -> None:
        self.reporting = reporting.upper()
        self._dates: dict[str, list[str]] = {}
        self._rates: dict[str, list[Decimal]] = {}
        for currency, by_date in rates.items():
            ordered = sorted(by_date.items())
            self._dates[currency.upper()] = [d for d, _ in ordered]
            self._rates[currency.upper()] = [Decimal(str(r)) for _, r in ordered]

    def rate(self, currency: str, day: str | None) -> Decimal:
        """The rate of ``currency`` on ``day`` (ISO date) to the reporting currency."""
        code = currency.upper()
        if code == self.reporting:
            return Decimal(1)
        if code not in self._rates:
            raise UnknownCurrency(code)
        dates = self._dates[code]
        index = bisect_right(dates, day) - 1 if day else len(dates) - 1
        return self._rates[code][max(index, 0)]

    def to_cents(self, amount: Any, currency: str | None, day: str | None) -> int:
        """``amount`` in ``currency`` as reporting-currency cents, rounded half-even."""
        if type(amount) is int and (not currency or currency.upper() == self.reporting):
            return amount * 100  # exact, and the common case
        value = parse_amount(amount)
        rate = self.rate(currency or self.reporting, day)
        cents = value * rate * 100
        return int(cents.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def parse_amount(amount: Any) -> Decimal:
    """A decimal amount from a number or a numeric string; blank means zero."""
    if amount is None or amount == "":
        return Decimal(0)
    try:
        return Decimal(str(amount))
    except InvalidOperation as exc:
        raise ValueError(f"not an amount: {amount!r}") from exc
