"""The KPI subset every system in the benchmark computes, written without SalesPulse's engine.

Won revenue, win rate and average deal size per rep and month, with corrections: each
deal's fields are merged last-writer-wins per field on ``(version, event_id)`` (so
redeliveries, retries and late events change nothing), delete/restore decide whether it
counts, and its current status, owner, amount, currency and close date decide its
contribution ``(won cents, won count, lost count)`` to its ``(rep, month)`` group.
Amounts are converted to reporting-currency cents with the rate of the close date
(:class:`Fx`, from the same rules file the worker uses), rounded half-even.

The Quix and obvious-Faust peers apply :func:`merge_deal` and :func:`contribution`
incrementally (contribution deltas); :class:`Oracle` is the independent batch
computation (final state of each deal, then its contribution once).

>>> fx = Fx("USD", {})
>>> s, _ = merge_deal(None, {"event_id": "a", "version": 1, "change": "create",
...     "fields": {"owner": "Ann", "status": "won", "amount": 10.5, "closed_at": "2024-03-02"}})
>>> contribution(s, fx)
('Ann', '2024-03', 1050, 1, 0)
>>> figures({("Ann", "2024-03"): [1050, 1, 1]})[("Ann", "2024-03")]["win_rate"]
0.5
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import yaml

RULES_PATH = Path(__file__).with_name("rules.yaml")
RELEVANT = ("owner", "status", "stage", "amount", "currency", "closed_at")
LIFECYCLE = {"create": True, "restore": True, "delete": False, "merge": False}
KPI_NAMES = ("won_revenue", "deals_won", "deals_lost", "win_rate", "average_deal_size")
Group = tuple[str, str]  # (rep, month)
Contribution = tuple[str, str, int, int, int]  # rep, month, won cents, won, lost


class Fx:
    """Rates to the reporting currency by ISO date: the newest on or before the day."""

    def __init__(self, reporting: str, rates: Mapping[str, Mapping[str, Any]]) -> None:
        self.reporting = reporting.upper()
        self.dates = {c.upper(): sorted(r) for c, r in rates.items()}
        self.rates = {c.upper(): [Decimal(str(r[d])) for d in sorted(r)] for c, r in rates.items()}

    @classmethod
    def load(cls, path: Path = RULES_PATH) -> Fx:
        data = yaml.safe_load(path.read_text()) or {}
        return cls(data.get("reporting_currency", "USD"), data.get("fx_rates", {}))

    def to_cents(self, amount: Any, currency: Any, day: str) -> int:
        value = Decimal(0) if amount in (None, "") else Decimal(str(amount))
        code = str(currency or self.reporting).upper()
        rate = Decimal(1)
        if code != self.reporting:
            dates = self.dates[code]
            rate = self.rates[code][max(bisect_right(dates, day) - 1, 0)]
        return int((value * rate * 100).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def merge_deal(
    state: dict[str, Any] | None,
    event: Mapping[str, Any],
    names: Iterable[str] | None = RELEVANT,
) -> tuple[dict, bool]:
    """Merge one event into its entity's state ``{"f": {name: [value, v, id]}, "a": [...]}``.

    Only the fields in ``names`` are kept (every field when ``names`` is None).
    """
    new = {"f": {}, "a": None} if state is None else {"f": dict(state["f"]), "a": state["a"]}
    version, event_id = int(event["version"]), str(event["event_id"])
    changed = state is None
    fields, given = new["f"], event.get("fields") or {}
    for name in given if names is None else names:
        if name in given:
            stored = fields.get(name)
            if stored is None or (version, event_id) > (stored[1], stored[2]):
                fields[name] = [given[name], version, event_id]
                changed = True
    alive = new["a"]
    change = event.get("change")
    if change in LIFECYCLE and (alive is None or (version, event_id) > (alive[1], alive[2])):
        new["a"] = [LIFECYCLE[change], version, event_id]
        changed = True
    return new, changed


def _label(value: Any) -> str:
    return "" if value is None else str(value).replace("|", "/")


def deal_outcome(fields: Mapping[str, Any]) -> str:
    """won, lost or open, from the status (else the stage) as CRMs name them."""
    raw = str(fields.get("status") or fields.get("stage") or "open").lower().replace(" ", "")
    return {"won": "won", "closedwon": "won", "lost": "lost", "closedlost": "lost"}.get(raw, "open")


def contribution(state: Mapping[str, Any] | None, fx: Fx) -> Contribution | None:
    """What a deal's state adds to its (rep, month) group, or None if it counts nowhere."""
    if state is None or (state["a"] is not None and not state["a"][0]):
        return None
    fields = {name: entry[0] for name, entry in state["f"].items()}
    outcome = deal_outcome(fields)
    if outcome == "open":
        return None
    day = str(fields.get("closed_at") or "")[:10]
    rep = _label(fields.get("owner"))
    if outcome == "won":
        return rep, day[:7], fx.to_cents(fields.get("amount"), fields.get("currency"), day), 1, 0
    return rep, day[:7], 0, 0, 1


def deltas(old: Contribution | None, new: Contribution | None) -> list[tuple[str, int, int, int]]:
    """Non-zero ``(group "rep|month", cents, won, lost)`` changes from ``old`` to ``new``."""
    if old == new:
        return []
    out = []
    if old is not None:
        out.append((f"{old[0]}|{old[1]}", -old[2], -old[3], -old[4]))
    if new is not None:
        out.append((f"{new[0]}|{new[1]}", new[2], new[3], new[4]))
    return out


class Oracle:
    """Independent batch computation: final deal states, then each contribution once."""

    def __init__(self, fx: Fx | None = None) -> None:
        self.fx = fx or Fx.load()
        self.deals: dict[str, dict[str, Any]] = {}

    def apply(self, events: Iterable[Mapping[str, Any]]) -> None:
        deals = self.deals
        for event in events:
            if event["entity"] == "deal":
                key = event["entity_id"]
                deals[key] = merge_deal(deals.get(key), event)[0]

    def components(self) -> dict[Group, list[int]]:
        out: dict[Group, list[int]] = {}
        for state in self.deals.values():
            c = contribution(state, self.fx)
            if c is not None:
                total = out.setdefault((c[0], c[1]), [0, 0, 0])
                total[0] += c[2]
                total[1] += c[3]
                total[2] += c[4]
        return out


def add_components(total: dict[Group, list[int]], group: str, values: Iterable[int]) -> None:
    """Add ``values`` (cents, won, lost) to ``total`` under a ``"rep|month"`` group."""
    rep, _, month = group.rpartition("|")
    into = total.setdefault((rep, month), [0, 0, 0])
    for i, n in enumerate(values):
        into[i] += int(n)


def figures(components: Mapping[Group, list[int]]) -> dict[Group, dict[str, Any]]:
    """The KPI values per (rep, month), computed from the components as SalesPulse does."""
    out = {}
    for group, (cents, won, lost) in components.items():
        if not (cents or won or lost):
            continue
        out[group] = {
            "won_revenue": cents / 100,
            "deals_won": won,
            "deals_lost": lost,
            "win_rate": None if won + lost == 0 else won / (won + lost),
            "average_deal_size": None if won == 0 else (cents / 100) / won,
        }
    return out


def compare(
    expected: Mapping[Group, Mapping[str, Any]], actual: Mapping[Group, Mapping[str, Any]]
) -> list[str]:
    """Differences between two figure sets (empty when exactly equal), at most 10."""
    problems = []
    for group in sorted(set(expected) | set(actual)):
        e, a = expected.get(group), actual.get(group)
        if e != a:
            problems.append(f"{group}: expected {e}, got {a}")
            if len(problems) >= 10:
                break
    return problems


def totals(figs: Mapping[Group, Mapping[str, Any]]) -> dict[str, Any]:
    """Headline sums of a figure set (for the report)."""
    won = sum(f["deals_won"] for f in figs.values())
    lost = sum(f["deals_lost"] for f in figs.values())
    revenue = sum(round(f["won_revenue"] * 100) for f in figs.values()) / 100
    return {
        "groups": len(figs),
        "won_revenue": revenue,
        "deals_won": won,
        "deals_lost": lost,
        "win_rate": None if won + lost == 0 else round(won / (won + lost), 6),
    }
