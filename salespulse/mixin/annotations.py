"""Alert annotation texts, written once and rendered two ways.

:meth:`Text.go` gives the Go template Prometheus renders; :meth:`Text.render` gives the
same text in Python for a given value and labels, so the generated ``promtool test rules``
cases can state the exact annotations Prometheus must produce.

>>> t = Text(("Win rate is ", Value("percent"), " for team ", Label("team"), "."))
>>> t.go()
'Win rate is {{ $value | humanizePercentage }} for team {{ $labels.team }}.'
>>> t.render(0.1, {"team": "East"})
'Win rate is 10% for team East.'
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

_GO_FORMAT = {
    "percent": "{{ $value | humanizePercentage }}",
    "duration": "{{ $value | humanizeDuration }}",
    "number": "{{ $value | humanize }}",
    "money": '{{ $value | printf "%.2f" }}',
    "days": '{{ $value | printf "%.1f" }}',
    "integer": '{{ $value | printf "%.0f" }}',
}


@dataclass(frozen=True)
class Value:
    """The alert's value, formatted (a key of ``_GO_FORMAT``)."""

    fmt: str


@dataclass(frozen=True)
class Label:
    """One label of the alert."""

    name: str


Part = str | Value | Label


def go_g4(v: float) -> str:
    """Go's ``fmt.Sprintf("%.4g", v)`` for finite values."""
    return "%.4g" % v  # noqa: UP031 (the C/Go format is the point)


def humanize(v: float) -> str:
    """Prometheus' ``humanize``: SI prefixes, four significant digits."""
    if v == 0 or math.isnan(v) or math.isinf(v):
        return go_g4(v)
    prefix = ""
    if abs(v) >= 1:
        for p in ("k", "M", "G", "T", "P", "E", "Z", "Y"):
            if abs(v) < 1000:
                break
            prefix, v = p, v / 1000
        return go_g4(v) + prefix
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(v) >= 1:
            break
        prefix, v = p, v * 1000
    return go_g4(v) + prefix


def humanize_duration(v: float) -> str:
    """Prometheus' ``humanizeDuration`` for values of at least one second."""
    if abs(v) < 1:
        raise ValueError("only durations of a second or more are rendered here")
    sign = "-" if v < 0 else ""
    total = int(abs(v))
    seconds, minutes = total % 60, total // 60 % 60
    hours, days = total // 3600 % 24, total // 86400
    if days:
        return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
    if hours:
        return f"{sign}{hours}h {minutes}m {seconds}s"
    if minutes:
        return f"{sign}{minutes}m {seconds}s"
    return f"{sign}{go_g4(abs(v))}s"


_PY_FORMAT = {
    "percent": lambda v: go_g4(v * 100) + "%",
    "duration": humanize_duration,
    "number": humanize,
    "money": lambda v: f"{v:.2f}",
    "days": lambda v: f"{v:.1f}",
    "integer": lambda v: f"{v:.0f}",
}


@dataclass(frozen=True)
class Text:
    """An annotation: literal strings, the value and labels."""

    parts: tuple[Part, ...]

    def go(self) -> str:
        """The Go template for the rule file."""
        out = []
        for part in self.parts:
            if isinstance(part, Value):
                out.append(_GO_FORMAT[part.fmt])
            elif isinstance(part, Label):
                out.append("{{ $labels.%s }}" % part.name)  # noqa: UP031
            else:
                out.append(part)
        return "".join(out)

    def render(self, value: float, labels: Mapping[str, str]) -> str:
        """What Prometheus renders for this value and these labels."""
        out = []
        for part in self.parts:
            if isinstance(part, Value):
                out.append(_PY_FORMAT[part.fmt](value))
            elif isinstance(part, Label):
                out.append(labels.get(part.name, ""))
            else:
                out.append(part)
        return "".join(out)


def unit_format(unit: str) -> str:
    """Value format for a KPI unit (state.kpis units; days are exported in seconds)."""
    return {
        "ratio": "percent",
        "currency": "money",
        "currency_per_day": "money",
        "days": "duration",
        "count": "integer",
    }[unit]


def who(scope: str) -> tuple[Part, ...]:
    """Who a series of a scope is about, in words."""
    return {
        "total": ("company-wide",),
        "office": ("office ", Label("office")),
        "team": ("team ", Label("team")),
        "rep": ("rep ", Label("rep"), " (team ", Label("team"), ")"),
    }[scope]
