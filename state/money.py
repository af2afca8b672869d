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

MEMO_SIZE = 1 << 16
_MEMO_TYPES = (int, float, str, type(None))


class UnknownCurrency(ValueError):
    """No rate is configured for the currency."""


class FxTable:
    """Rates to the reporting currency by currency and ISO date."""

    def __init__(self, reporting: str, rates: Mapping[str, Mapping[str, Any]]) -> None:
        self.reporting = reporting.upper()
        self._dates: dict[str, list[str]] = {}
        self._rates: dict[str, list[Decimal]] = {}
        self._memo: dict[tuple[Any, ...], int] = {}  # recent conversions
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
        if type(amount) not in _MEMO_TYPES or type(currency) not in _MEMO_TYPES:
            return self._to_cents(amount, currency, day)
        key = (type(amount), amount, currency, day)  # 1.0 and 1 (or "1") differ as text
        cents = self._memo.get(key)
        if cents is None:
            cents = self._to_cents(amount, currency, day)
            if len(self._memo) >= MEMO_SIZE:
                self._memo.clear()
            self._memo[key] = cents
        return cents

    def _to_cents(self, amount: Any, currency: str | None, day: str | None) -> int:
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
