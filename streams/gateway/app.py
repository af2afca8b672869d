"""The webhook gateway's HTTP app and its ``salespulse gateway`` command.

Endpoints (all answer JSON errors ``{"error", "field", "reason"}``)::

    POST /webhooks/hubspot              HubSpot signature v3
    POST /webhooks/pipedrive            HTTP Basic (SALESPULSE_PIPEDRIVE_BASIC_USER/PASSWORD)
    POST /webhooks/salesforce/cdc       CDC events relayed by a subscriber, generic signature
    POST /webhooks/salesforce/outbound  Outbound Messages (SOAP), checked against the org id
    POST /webhooks/generic              canonical events, generic signature
    GET  /healthz                       200 when Redis and Kafka are reachable, else 503
    GET  /metrics                       the gateway's Prometheus metrics

A request is answered 2xx only after Kafka acknowledged all its new events; 503 with
``Retry-After`` when Kafka or Redis is unavailable, so the provider retries.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable

import click
import orjson
import redis.asyncio as aioredis
from aiohttp import web

from salespulse.config import Settings, get_settings
from streams.gateway import signatures
from streams.gateway.adapters.common import Parsed, parse_json
from streams.gateway.adapters.generic import parse_generic
from streams.gateway.adapters.hubspot import parse_hubspot
from streams.gateway.adapters.pipedrive import parse_pipedrive
from streams.gateway.adapters.salesforce import OUTBOUND_ACK, parse_cdc, parse_outbound
from streams.gateway.dedupe import Deduper
from streams.gateway.errors import (
    GatewayError,
    NotConfigured,
    TooLarge,
    UnsupportedMediaType,
)
from streams.gateway.mappings import SourceMapping, load_mappings
from streams.gateway.metrics import CONTENT_TYPE, GatewayMetrics
from streams.gateway.pipeline import Gateway
from streams.gateway.publisher import Publisher

log = logging.getLogger("salespulse.gateway")

MAX_BODY_ENV = "SALESPULSE_GATEWAY_MAX_BODY"
PUBLIC_URL_ENV = "SALESPULSE_GATEWAY_PUBLIC_URL"
DEFAULT_MAX_BODY = 1024 * 1024
SOURCES_BY_PATH = {
    "/webhooks/hubspot": "hubspot",
    "/webhooks/pipedrive": "pipedrive",
    "/webhooks/salesforce/cdc": "salesforce_cdc",
    "/webhooks/salesforce/outbound": "salesforce_outbound",
    "/webhooks/generic": "generic",
}
JSON_TYPES = ("application/json",)
XML_TYPES = ("text/xml", "application/xml", "application/soap+xml")

GATEWAY = web.AppKey("gateway", Gateway)
SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", GatewayMetrics)
MAX_BODY = web.AppKey("max_body", int)
PUBLIC_URL = web.AppKey("public_url", str)


def max_body_bytes() -> int:
    """The body size limit: ``$SALESPULSE_GATEWAY_MAX_BODY`` bytes, default 1 MiB."""
    raw = os.environ.get(MAX_BODY_ENV, "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else DEFAULT_MAX_BODY


def _json(data: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, content_type="application/json", headers=headers
    )


@web.middleware
async def outcomes(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Answer refusals as JSON, count every webhook's outcome, contain real bugs as 500."""
    metrics = request.app[METRICS]
    source = SOURCES_BY_PATH.get(request.path)
    try:
        response = await handler(request)
    except GatewayError as err:
        if source:
            metrics.request(source, err.outcome)
        # Field paths and reasons only: never values, bodies or credentials.
        field = (err.field or "")[:120]
        log.info("gateway: %s refused %d %s (%s)", source, err.status, field, err.reason[:200])
        return _json(err.body(), err.status, err.headers())
    except web.HTTPRequestEntityTooLarge:
        too_large = TooLarge("body", f"larger than {request.app[MAX_BODY]} bytes")
        if source:
            metrics.request(source, too_large.outcome)
        return _json(too_large.body(), too_large.status)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("gateway: unexpected error on %s", request.path)
        if source:
            metrics.request(source, "error")
        return _json({"error": "internal", "field": None, "reason": "unexpected server error"}, 500)
    if source:
        metrics.request(source, "accepted")
    return response


async def _body(request: web.Request) -> bytes:
    limit = request.app[MAX_BODY]
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge("body", f"larger than {limit} bytes")
    body = await request.read()
    if len(body) > limit:
        raise TooLarge("body", f"larger than {limit} bytes")
    return body


def _content_type(request: web.Request, types: tuple[str, ...]) -> None:
    if request.content_type.lower() not in types:
        raise UnsupportedMediaType("Content-Type", f"expected {' or '.join(types)}")


def public_uri(request: web.Request) -> str:
    """The URI the provider called (for HubSpot's signature): public base URL + raw path."""
    base = request.app[PUBLIC_URL]
    if base:
        return base.rstrip("/") + request.raw_path
    proto = request.headers.get("X-Forwarded-Proto", request.scheme).split(",")[0].strip()
    host = request.headers.get("X-Forwarded-Host", request.host).split(",")[0].strip()
    return f"{proto}://{host}{request.raw_path}"


def _secret(value: object, name: str) -> str:
    secret = getattr(value, "get_secret_value", lambda: value)()
    if not secret:
        raise NotConfigured(name, "not configured on this gateway")
    return str(secret)


def _mapping(request: web.Request, source: str) -> SourceMapping:
    return request.app[GATEWAY].mappings[source]


async def _ingest(request: web.Request, source: str, parsed: Parsed) -> web.Response:
    result = await request.app[GATEWAY].ingest(source, parsed)
    return _json(result)


async def hubspot(request: web.Request) -> web.Response:
    secret = _secret(request.app[SETTINGS].hubspot_app_secret, "SALESPULSE_HUBSPOT_APP_SECRET")
    body = await _body(request)
    signatures.verify_hubspot_v3(
        secret,
        request.method,
        public_uri(request),
        body,
        request.headers.get(signatures.HUBSPOT_SIGNATURE),
        request.headers.get(signatures.HUBSPOT_TIMESTAMP),
    )
    _content_type(request, JSON_TYPES)
    parsed = parse_hubspot(parse_json(body), _mapping(request, "hubspot"))
    return await _ingest(request, "hubspot", parsed)


async def pipedrive(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    user = settings.pipedrive_basic_user
    if not user:
        raise NotConfigured("SALESPULSE_PIPEDRIVE_BASIC_USER", "not configured on this gateway")
    password = _secret(settings.pipedrive_basic_password, "SALESPULSE_PIPEDRIVE_BASIC_PASSWORD")
    signatures.verify_basic(request.headers.get("Authorization"), user, password)
    body = await _body(request)
    _content_type(request, JSON_TYPES)
    parsed = parse_pipedrive(parse_json(body), _mapping(request, "pipedrive"))
    return await _ingest(request, "pipedrive", parsed)


async def _signed_generic(request: web.Request) -> bytes:
    secret = _secret(
        request.app[SETTINGS].generic_webhook_secret, "SALESPULSE_GENERIC_WEBHOOK_SECRET"
    )
    body = await _body(request)
    signatures.verify_generic(
        secret,
        body,
        request.headers.get(signatures.GENERIC_SIGNATURE),
        request.headers.get(signatures.GENERIC_TIMESTAMP),
    )
    _content_type(request, JSON_TYPES)
    return body


async def salesforce_cdc(request: web.Request) -> web.Response:
    body = await _signed_generic(request)
    parsed = parse_cdc(parse_json(body), _mapping(request, "salesforce"))
    return await _ingest(request, "salesforce_cdc", parsed)


async def salesforce_outbound(request: web.Request) -> web.Response:
    org_id = request.app[SETTINGS].salesforce_org_id
    if not org_id:
        raise NotConfigured("SALESPULSE_SALESFORCE_ORG_ID", "not configured on this gateway")
    body = await _body(request)
    _content_type(request, XML_TYPES)
    parsed = parse_outbound(body, _mapping(request, "salesforce"), org_id)
    await request.app[GATEWAY].ingest("salesforce_outbound", parsed)
    return web.Response(text=OUTBOUND_ACK, content_type="text/xml", charset="utf-8")


async def generic(request: web.Request) -> web.Response:
    body = await _signed_generic(request)
    return await _ingest(request, "generic", parse_generic(parse_json(body)))


async def healthz(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    redis_ok = await gateway.deduper.ping()
    kafka_ok = await gateway.publisher.ready()
    ok = redis_ok and kafka_ok
    body = {
        "status": "ok" if ok else "degraded",
        "redis": "ok" if redis_ok else "down",
        "kafka": "ok" if kafka_ok else "down",
    }
    return _json(body, 200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=request.app[METRICS].render(), headers={"Content-Type": CONTENT_TYPE})


def make_app(
    settings: Settings | None = None,
    *,
    redis: aioredis.Redis | None = None,
    publisher: Publisher | None = None,
    mappings: dict[str, SourceMapping] | None = None,
    publish_timeout_s: float = 5.0,
) -> web.Application:
    """The gateway app; Redis and the Kafka publisher are made from ``settings`` if not given.

    Clients passed in are closed with the app as well.
    """
    settings = settings or get_settings()
    limit = max_body_bytes()
    app = web.Application(client_max_size=limit, middlewares=[outcomes])
    app[SETTINGS] = settings
    app[MAX_BODY] = limit
    app[PUBLIC_URL] = os.environ.get(PUBLIC_URL_ENV, "")
    app[METRICS] = GatewayMetrics()
    redis = redis or aioredis.from_url(
        settings.redis_url, socket_connect_timeout=2, socket_timeout=5
    )
    publisher = publisher or Publisher(
        settings.kafka_bootstrap, settings.topic_events, timeout_s=publish_timeout_s
    )
    app[GATEWAY] = Gateway(
        deduper=Deduper(redis, prefix=settings.redis_key_prefix),
        publisher=publisher,
        mappings=mappings or load_mappings(),
        metrics=app[METRICS],
    )

    async def close(app: web.Application) -> None:
        await publisher.close()
        await redis.aclose()

    app.on_cleanup.append(close)
    app.router.add_post("/webhooks/hubspot", hubspot)
    app.router.add_post("/webhooks/pipedrive", pipedrive)
    app.router.add_post("/webhooks/salesforce/cdc", salesforce_cdc)
    app.router.add_post("/webhooks/salesforce/outbound", salesforce_outbound)
    app.router.add_post("/webhooks/generic", generic)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app


@click.command("gateway")
@click.option("--host", default=None, help="Interface to listen on (default: settings host).")
@click.option("--port", type=int, default=None, help="Port (default: SALESPULSE_GATEWAY_PORT).")
def gateway_command(host: str | None, port: int | None) -> None:
    """Receive CRM webhooks and publish canonical events to Kafka."""
    settings = get_settings()
    host = host or settings.host
    port = port or settings.gateway_port
    log.info("gateway: listening on %s:%d, publishing to %s", host, port, settings.topic_events)
    web.run_app(make_app(settings), host=host, port=port, print=None)
