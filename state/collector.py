"""The collector: sums partition aggregates from Redis and serves metrics and JSON.

``GET /metrics`` (Prometheus text), ``GET /api/kpis`` (JSON, filters by KPI, period,
team, rep), ``GET /api/aggregates``, ``GET /healthz``. Binds to loopback by default; set
``SALESPULSE_COLLECTOR_TOKEN`` to require ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from datetime import date
from typing import Any

import click
import orjson
import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from salespulse.config import Settings, get_settings
from state.calendar import PERIOD_KINDS, TRAILING_DAYS
from state.kpis import KPI_BY_NAME, KPIS
from state.metrics import all_kpi_families
from state.openapi import openapi_spec
from state.readout import Period
from state.rules import Rules
from state.snapshot_report import kpi_snapshot
from state.view import View, ViewReader


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS).decode()


def health_families(view: View) -> Iterator[GaugeMetricFamily]:
    """Freshness and pipeline-health gauges."""
    fresh = GaugeMetricFamily(
        "salespulse_last_event_timestamp_seconds",
        "Event time of the newest CRM event applied, per source.",
        labels=["source"],
    )
    newest: dict[str, int] = {}
    for meta in view.partitions.values():
        for source, ms in meta["stats"].get("last_event_ms", {}).items():
            newest[source] = max(newest.get(source, 0), ms)
    for source, ms in sorted(newest.items()):
        fresh.add_metric([source], ms / 1000)
    yield fresh
    specs = [
        ("events_applied", "applied", "Events that changed a snapshot since the owner started."),
        ("events_duplicate", "duplicates", "Events ignored as redelivered or stale."),
        ("dead_letters", "dead_letters", "Records or events routed to the dead-letter topic."),
        ("rebuilds", "rebuilds", "Aggregate rebuilds from the snapshot table."),
        (
            "checkpoint_loads",
            "checkpoint_loads",
            "Aggregates loaded from the checkpoint of a graceful stop instead of rebuilt.",
        ),
        (
            "rebuild_seconds",
            "rebuild_seconds",
            "Duration of the last aggregate rebuild (or checkpoint load).",
        ),
        (
            "recovery_seconds",
            "recovery_seconds",
            "Seconds from the partition's last assignment to its aggregates being rebuilt "
            "(changelog recovery included).",
        ),
        (
            "restored_records",
            "restored_records",
            "Changelog records the fast restore copied into local state since the owner started.",
        ),
    ]
    for name, stat, text in specs:
        family = GaugeMetricFamily(f"salespulse_{name}", text, labels=["partition"])
        for partition, meta in sorted(view.partitions.items()):
            family.add_metric([str(partition)], float(meta["stats"].get(stat, 0)))
        yield family
    lag = GaugeMetricFamily(
        "salespulse_consumer_lag_records",
        "Records of the events topic not yet processed, per partition "
        "(as of the owner's last publish).",
        labels=["partition"],
    )
    for partition, meta in sorted(view.partitions.items()):
        lag.add_metric([str(partition)], float(meta["stats"].get("lag", 0)))
    yield lag
    age = GaugeMetricFamily(
        "salespulse_partition_publish_age_seconds",
        "Seconds since the partition's owner last published it.",
        labels=["partition"],
    )
    for partition, meta in sorted(view.partitions.items()):
        age.add_metric([str(partition)], max(0.0, view.read_at - meta["published_at"]))
    yield age
    reporting = GaugeMetricFamily(
        "salespulse_partitions_reporting", "Partitions with published aggregates in Redis."
    )
    reporting.add_metric([], float(len(view.partitions)))
    yield reporting


GoalSeries = list[tuple[dict[str, str], float]]


def target_family(goals: GoalSeries) -> GaugeMetricFamily:
    """``salespulse_target``: the goals of the targets file, in each KPI metric's unit."""
    names = ["kpi", "period", "scope", "team", "rep"]
    family = GaugeMetricFamily(
        "salespulse_target",
        "Goal of a KPI for a period and scope, from the targets file (in the KPI metric's unit).",
        labels=names,
    )
    for labels, value in goals:
        family.add_metric([labels.get(n, "") for n in names], value)
    return family


def load_goals(path: str | None) -> GoalSeries:
    """Goal series of the targets file (the repository's deploy/targets.yaml by default)."""
    from salespulse.mixin.targets import load_targets

    return load_targets(path).goal_series()


class _ViewCollector:
    def __init__(self, view: View, rules: Rules, today: date, goals: GoalSeries) -> None:
        self.view, self.rules, self.today, self.goals = view, rules, today, goals

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from all_kpi_families(self.view.readout, self.rules.calendar, self.today)
        yield from health_families(self.view)
        yield target_family(self.goals)


def render_metrics(view: View, rules: Rules, today: date, goals: GoalSeries | None = None) -> bytes:
    """The Prometheus text exposition of a view."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ViewCollector(view, rules, today, goals or []))  # type: ignore[arg-type]
    return generate_latest(registry)


def parse_period(rules: Rules, query: Any) -> Period:
    """A period from query args: ``period`` kind (+ ``date``), or ``start``/``end``."""
    if "start" in query or "end" in query:
        return Period(query.get("start"), query.get("end"), "custom")
    kind = query.get("period", "all")
    if kind == "all":
        return Period()
    if kind not in PERIOD_KINDS and kind not in TRAILING_DAYS:
        raise web.HTTPBadRequest(text=f"unknown period {kind!r}")
    day = date.fromisoformat(query["date"]) if "date" in query else rules.calendar.today()
    return Period.of(rules.calendar, kind, day)


class Collector:
    """The collector's HTTP application."""

    def __init__(self, settings: Settings, rules: Rules) -> None:
        self.settings, self.rules = settings, rules
        self.redis = aioredis.from_url(settings.redis_url, socket_timeout=2)
        self.goals = load_goals(settings.targets)
        self.reader = ViewReader(self.redis, settings, rules.kpi_params)

    async def view(self) -> View:
        return await self.reader.view()

    @web.middleware
    async def auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        token = self.settings.collector_token
        if token is not None and request.path not in ("/healthz", "/api/openapi.json"):
            given = request.headers.get("Authorization", "")
            expected = f"Bearer {token.get_secret_value()}"
            if not hmac.compare_digest(given.encode(), expected.encode()):
                raise web.HTTPUnauthorized(text="bearer token required")
        return await handler(request)

    async def metrics(self, request: web.Request) -> web.Response:
        try:
            view = await self.view()
        except (aioredis.RedisError, OSError) as exc:
            raise web.HTTPServiceUnavailable(text=f"redis unavailable: {exc}") from exc
        body = render_metrics(view, self.rules, self.rules.calendar.today(), self.goals)
        return web.Response(
            body=body,
            content_type="text/plain",
            charset="utf-8",
            headers={"X-Content-Type-Options": "nosniff"},
        )

    async def kpis(self, request: web.Request) -> web.Response:
        query = request.query
        names = query.getall("kpi", []) or [k.name for k in KPIS]
        unknown = [n for n in names if n not in KPI_BY_NAME]
        if unknown:
            raise web.HTTPBadRequest(text=f"unknown kpi {unknown[0]!r}")
        period = parse_period(self.rules, query)
        filters = {
            d: query[d] for d in ("team", "rep", "office", "product", "source") if d in query
        }
        group_by = tuple(g for g in query.get("group_by", "").split(",") if g)
        readout = (await self.view()).readout
        out = []
        for name in names:
            values = readout.grouped(name, period, group_by, filters)
            out.append(
                {
                    "kpi": name,
                    "unit": KPI_BY_NAME[name].unit,
                    "values": [
                        {"group": dict(zip(group_by, g, strict=True)), "value": v}
                        for g, v in values.items()
                    ],
                }
            )
        body = {
            "period": {"kind": period.kind, "start": period.start, "end": period.end},
            "filters": filters,
            "kpis": out,
        }
        return web.json_response(body, dumps=_dumps)

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(openapi_spec(), dumps=_dumps)

    async def snapshot(self, request: web.Request) -> web.Response:
        """The KPI snapshot document (same shape as ``salespulse backfill --dry-run``)."""
        readout = (await self.view()).readout
        return web.json_response(kpi_snapshot(readout, self.rules), dumps=_dumps)

    async def aggregates(self, request: web.Request) -> web.Response:
        view = await self.view()
        body = {
            "partitions": view.partitions,
            "aggregates": {"|".join(k): v for k, v in view.aggregates.items()},
        }
        return web.json_response(body, dumps=_dumps)

    async def healthz(self, request: web.Request) -> web.Response:
        try:
            await self.redis.ping()
        except (aioredis.RedisError, OSError) as exc:
            return web.json_response({"status": "redis unavailable", "error": str(exc)}, status=503)
        return web.json_response({"status": "ok"})

    def app(self) -> web.Application:
        application = web.Application(middlewares=[self.auth])
        application.add_routes(
            [
                web.get("/metrics", self.metrics),
                web.get("/api/kpis", self.kpis),
                web.get("/api/snapshot", self.snapshot),
                web.get("/api/openapi.json", self.openapi),
                web.get("/api/aggregates", self.aggregates),
                web.get("/healthz", self.healthz),
            ]
        )
        return application


@click.command("collector")
@click.option("--host", default=None, help="Bind address (default: SALESPULSE_HOST, loopback).")
@click.option("--port", type=int, default=None, help="Default: SALESPULSE_COLLECTOR_PORT.")
@click.option("--rules", "rules_path", default=None, envvar="SALESPULSE_RULES")
def collector_command(host: str | None, port: int | None, rules_path: str | None) -> None:
    """Serve KPIs as Prometheus metrics and JSON, summed over all partitions."""
    settings = get_settings()
    collector = Collector(settings, Rules.load(rules_path))
    web.run_app(
        collector.app(),
        host=host or settings.host,
        port=port or settings.collector_port,
        print=None,
    )
