"""The OpenAPI 3.1 description of the collector's JSON API, built from the KPI catalogue."""

from __future__ import annotations

from typing import Any

from state.calendar import PERIOD_KINDS, TRAILING_DAYS
from state.kpis import KPIS


def _param(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def openapi_spec() -> dict[str, Any]:
    """The API description served at ``/api/openapi.json``."""
    kpi_names = [k.name for k in KPIS]
    periods = ["all", *PERIOD_KINDS, *TRAILING_DAYS]
    value = {
        "type": "object",
        "properties": {
            "group": {"type": "object", "additionalProperties": {"type": "string"}},
            "value": {"type": ["number", "null"]},
        },
    }
    kpis_response = {
        "type": "object",
        "properties": {
            "period": {
                "type": "object",
                "properties": {
                    "kind": {"type": "string"},
                    "start": {"type": ["string", "null"]},
                    "end": {"type": ["string", "null"]},
                },
            },
            "filters": {"type": "object", "additionalProperties": {"type": "string"}},
            "kpis": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "kpi": {"type": "string", "enum": kpi_names},
                        "unit": {"type": "string"},
                        "values": {"type": "array", "items": value},
                    },
                },
            },
        },
    }
    dims = {
        d: _param(d, f"only entities whose {d} is this", {"type": "string"})
        for d in ("team", "rep", "office", "product", "source")
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "SalesPulse collector API",
            "version": "1",
            "description": "Live sales KPIs summed over all partitions. Send "
            "`Authorization: Bearer <token>` when the collector has "
            "SALESPULSE_COLLECTOR_TOKEN set.",
        },
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}, {}],
        "paths": {
            "/api/kpis": {
                "get": {
                    "summary": "KPI values for a period, optionally filtered and grouped",
                    "parameters": [
                        _param(
                            "kpi",
                            "KPI name (repeatable; default: all). Definitions: docs/kpis.md",
                            {"type": "string", "enum": kpi_names},
                        ),
                        _param(
                            "period",
                            "period kind containing `date` (default: all time)",
                            {"type": "string", "enum": periods},
                        ),
                        _param(
                            "date",
                            "a day of the period (ISO date; default: today in the "
                            "business timezone)",
                            {"type": "string", "format": "date"},
                        ),
                        _param(
                            "start",
                            "custom range start (ISO date, inclusive)",
                            {"type": "string", "format": "date"},
                        ),
                        _param(
                            "end",
                            "custom range end (ISO date, exclusive)",
                            {"type": "string", "format": "date"},
                        ),
                        _param(
                            "group_by",
                            "comma-separated dimensions: rep, team, office, product, source, kind",
                            {"type": "string"},
                        ),
                        *dims.values(),
                    ],
                    "responses": {
                        "200": {
                            "description": "values",
                            "content": {"application/json": {"schema": kpis_response}},
                        },
                        "400": {"description": "unknown KPI or period"},
                        "401": {"description": "bearer token required"},
                    },
                }
            },
            "/api/snapshot": {
                "get": {
                    "summary": "KPI snapshot document (same shape as backfill --dry-run)",
                    "responses": {"200": {"description": "see docs/backfill.md"}},
                }
            },
            "/api/aggregates": {
                "get": {
                    "summary": "raw summed components and per-partition stats",
                    "responses": {
                        "200": {
                            "description": "components keyed by "
                            "component|day|rep|team|office|product|source|kind"
                        }
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus text exposition",
                    "responses": {"200": {"description": "metrics"}},
                }
            },
            "/healthz": {
                "get": {
                    "summary": "liveness (Redis reachable)",
                    "security": [],
                    "responses": {
                        "200": {"description": "ok"},
                        "503": {"description": "Redis unavailable"},
                    },
                }
            },
        },
    }
