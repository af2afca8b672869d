"""Every panel query of every board returns data: live pipeline -> collector -> Prometheus.

Events stamped with the current time (and fields dated in the current day, month, quarter
and year, plus the like-for-like previous month and year for growth) cover every entity
type the boards read. They go through the real Kafka, worker, Redis and collector; the
collector runs on the port the stack's Prometheus scrapes, and each PromQL expression of
:func:`salespulse.mixin.dashboards.panel_queries` (template variables filled with a team
and a rep of the data) must return a non-empty result from that Prometheus, recording
rules included.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from salespulse.config import Settings
from salespulse.mixin.dashboards import REP_SERIES, panel_queries, substitute
from salespulse.mixin.targets import DEFAULT_TARGETS
from salespulse.stack import process
from state.rules import Rules
from tests.helpers import await_until, http_json, wait_until

pytestmark = pytest.mark.services

TEAM, REP = "East", "ann"  # the Manager and Rep boards' variables
REPS = {"ann": ("East", "Boston"), "bob": ("East", "Boston"), "cy": ("West", "Denver")}
# Goal of the Rep board's goal line: deploy/targets.yaml names company and team goals only.
WON_ALL_TIME = 5000 + 3000 + 4000 + 4500 + 3500  # every won deal below


class EventLog:
    """Canonical v1 events (streams/schema.py), all occurring now."""

    def __init__(self, now: datetime, prefix: str) -> None:
        self.now, self.prefix = now, prefix
        self.events: list[dict[str, Any]] = []
        self.at = now.isoformat().replace("+00:00", "Z")

    def add(self, entity: str, entity_id: str, **fields: Any) -> None:
        self.events.append(
            {
                "v": 1,
                "event_id": f"{self.prefix}-{len(self.events) + 1}",
                "source": "live-test",
                "entity": entity,
                "entity_id": f"{self.prefix}-{entity_id}",
                "change": "create",
                "occurred_at": self.at,
                "version": 1,
                "fields": fields,
            }
        )

    def ref(self, entity_id: str) -> str:
        return f"{self.prefix}-{entity_id}"


def _owner(rep: str) -> dict[str, str]:
    team, office = REPS[rep]
    return {"owner": rep, "team": team, "office": office}


def _months_back(d: date, months: int) -> date:
    index = d.year * 12 + d.month - 1 - months
    return date(index // 12, index % 12 + 1, 1)


def current_events(prefix: str = "live", now: datetime | None = None) -> list[dict[str, Any]]:
    """Events that give every KPI a value for the current periods (see the module doc)."""
    now = now or datetime.now(UTC)
    today = now.date()
    cal = Rules().calendar
    log = EventLog(now, prefix)
    day = today.isoformat()

    def ago(days: int) -> str:
        return (today - timedelta(days=days)).isoformat()

    def deal(key: str, rep: str, amount: int, status: str, **fields: Any) -> None:
        log.add(
            "deal",
            key,
            **_owner(rep),
            product="Core",
            source="inbound",
            currency="USD",
            amount=amount,
            status=status,
            **fields,
        )

    # Accounts: two customers before this month (one churns today), three new today.
    for key, rep, extra in [
        ("AC-older", "bob", {}),
        ("AC-old", "ann", {"churned_at": day}),
        ("AC-new", "ann", {}),
        ("AC-new2", "bob", {}),
        ("AC-west", "cy", {}),
    ]:
        log.add("account", key, name=key, **_owner(rep), **extra)
    # Leads: qualified today in both teams; L-1 converts through a deal won today.
    for key, rep, stage in [("L-1", "ann", "sql"), ("L-2", "bob", "mql"), ("L-3", "cy", "sql")]:
        log.add("lead", key, **_owner(rep), stage=stage, qualified_at=day, created_at=ago(3))
    log.add("lead", "L-4", **_owner("ann"), stage="new", created_at=day)
    # Deals won today (with a sales cycle; one converts lead L-1), and on the first day of
    # the previous month and of this month a year ago (growth, customers at period start).
    prev_month, year_ago = _months_back(today, 1), _months_back(today, 12)
    for key, rep, amount, created, closed, account, lead in [
        ("D-1", "ann", 5000, today - timedelta(20), today, "AC-new", "L-1"),
        ("D-2", "bob", 3000, today - timedelta(12), today, "AC-new2", None),
        ("D-3", "cy", 4000, today - timedelta(30), today, "AC-west", None),
        ("D-9", "ann", 4500, prev_month - timedelta(14), prev_month, "AC-old", None),
        ("D-10", "bob", 3500, year_ago - timedelta(20), year_ago, "AC-older", None),
    ]:
        fields = {
            "stage": "won",
            "created_at": created.isoformat(),
            "closed_at": closed.isoformat(),
        }
        fields["account_id"] = log.ref(account)
        if lead:
            fields["lead_id"] = log.ref(lead)
        deal(key, rep, amount, "won", **fields)
    # Deals lost today, and open ones closing this quarter.
    deal("D-4", "ann", 2000, "lost", stage="lost", created_at=ago(15), closed_at=day)
    deal("D-5", "cy", 1000, "lost", stage="lost", created_at=ago(5), closed_at=day)
    deal("D-6", "ann", 8000, "open", stage="proposal", created_at=ago(8), expected_close=day)
    deal("D-7", "bob", 6000, "open", stage="demo", created_at=ago(4), expected_close=day)
    deal("D-8", "cy", 2500, "open", stage="negotiation", created_at=ago(9), expected_close=day)
    # Activities of every type, done now.
    for rep, kinds in [
        ("ann", ["call", "email", "meeting", "demo", "task", "note"]),
        ("bob", ["call", "email"]),
        ("cy", ["meeting"]),
    ]:
        for kind in kinds:
            log.add("activity", f"A-{rep}-{kind}", **_owner(rep), type=kind, done_at=log.at)
    # Subscriptions (MRR): started before the trailing 90 days, one ended this month, an
    # expansion and a new one today.
    for key, account, mrr, kind, started, ended in [
        ("S-1", "AC-older", 1000, "new", ago(200), None),
        ("S-2", "AC-old", 500, "new", ago(100), day),
        ("S-3", "AC-new", 300, "new", day, None),
        ("S-4", "AC-older", 200, "expansion", day, None),
    ]:
        extra = {"ended_at": ended} if ended else {}
        log.add(
            "subscription",
            key,
            account_id=log.ref(account),
            mrr=mrr,
            currency="USD",
            kind=kind,
            started_at=started,
            **extra,
        )
    log.add("spend", "SP-1", amount=9000, currency="USD", category="ads", spent_at=day)
    log.add("spend", "SP-2", amount=4000, currency="USD", category="events", spent_at=ago(40))
    # Quotas of the current month, quarter and year for every rep (team quotas are their
    # reps' quotas summed by the team label).
    for rep in REPS:
        for kind, amount in [("month", 10000), ("quarter", 30000), ("year", 120000)]:
            start, _ = cal.period_range(kind, today)
            log.add(
                "quota",
                f"Q-{rep}-{kind}",
                **_owner(rep),
                period=kind,
                period_start=start.isoformat(),
                amount=amount,
                currency="USD",
            )
    return log.events


def prom_query(settings: Settings, expr: str) -> list[dict[str, Any]]:
    """Instant query against the stack's Prometheus; the result list."""
    url = f"http://{settings.host}:{settings.prometheus_port}/api/v1/query?query={quote(expr)}"
    body = http_json(url)
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def start_scraped_pipeline(
    pipeline_factory: Any, stack_settings: Settings, name: str, targets: Path | None = None
) -> Any:
    """A pipeline whose collector is a fresh process on the port Prometheus scrapes."""
    port = stack_settings.collector_port
    wait_until(
        lambda: not process.port_open(stack_settings.host, port),
        timeout=30,
        interval=0.2,
        what=f"port {port} free (a collector of an earlier module)",
    )
    pipeline = pipeline_factory(name, collector_port=port)
    if targets is not None:
        pipeline.settings = pipeline.settings.model_copy(update={"targets": str(targets)})
    pipeline.start_worker("1")
    pipeline.start_collector()
    return pipeline


async def wait_prometheus_value(
    settings: Settings, expr: str, expected: float, timeout: float = 30
) -> None:
    def matches() -> bool:
        result = prom_query(settings, expr)
        return len(result) == 1 and float(result[0]["value"][1]) == expected

    await await_until(matches, timeout=timeout, interval=0.5, what=f"prometheus: {expr}")


@pytest.fixture(scope="module")
async def boards_live(
    pipeline_factory: Any, stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    # the shipped targets have no goal for rep "ann": the Rep board's goal line falls back
    # to the rep's quota, which this module's events set
    pipeline = start_scraped_pipeline(pipeline_factory, stack_settings, "boards", DEFAULT_TARGETS)
    await pipeline.produce(current_events())

    def converged() -> bool:
        values = pipeline.api("/api/kpis?kpi=won_revenue")["kpis"][0]["values"]
        return bool(values) and values[0]["value"] == WON_ALL_TIME

    await await_until(converged, timeout=60, interval=0.3, what="collector won revenue")
    expr = 'salespulse_won_revenue{period="all", scope="total"}'
    await wait_prometheus_value(stack_settings, expr, WON_ALL_TIME)
    return pipeline


async def test_board_variables_resolve_to_the_live_team_and_rep(
    boards_live: Any, stack_settings: Settings
) -> None:
    s = stack_settings
    for name, value in [("team", TEAM), ("rep", REP)]:
        match = f'{REP_SERIES}, scope="{name}"}}'
        url = f"http://{s.host}:{s.prometheus_port}/api/v1/label/{name}/values?"
        values = http_json(url + urlencode({"match[]": match}))["data"]
        assert value in values, (name, values)


async def test_every_panel_query_returns_data(boards_live: Any, stack_settings: Settings) -> None:
    queries = [
        (board, title, substitute(expr, {"team": TEAM, "rep": REP}))
        for board, title, expr in panel_queries()
    ]
    assert {b for b, _, _ in queries} == {"executive", "manager", "rep", "pipeline"}
    empty: list[tuple[str, str, str]] = []

    def all_have_data() -> bool:
        # rate()/increase() need two scrapes; recording rules one evaluation (2 s each).
        empty[:] = [q for q in queries if not prom_query(stack_settings, q[2])]
        return not empty

    try:
        await await_until(all_have_data, timeout=30, interval=1, what="every panel has data")
    except AssertionError:
        lines = "\n".join(f"  {board} / {title}: {expr}" for board, title, expr in empty)
        pytest.fail(f"{len(empty)} of {len(queries)} panel queries return no data:\n{lines}")
