"""The gateway's own Prometheus metrics, on a dedicated registry served at ``/metrics``.

Labels are bounded: ``source`` is one of :data:`SOURCES`, ``outcome`` one of
:data:`OUTCOMES`, ``entity`` a canonical entity type; never an id.

>>> m = GatewayMetrics()
>>> m.request("hubspot", "accepted")
>>> b'salespulse_gateway_requests_total{outcome="accepted",source="hubspot"} 1.0' in m.render()
True
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from streams.schema import ENTITY_TYPES

SOURCES = ("hubspot", "pipedrive", "salesforce_cdc", "salesforce_outbound", "generic")
OUTCOMES = (
    "accepted",  # 2xx, something published (or everything a duplicate / ignored)
    "unauthorized",
    "forbidden",
    "invalid",
    "too_large",
    "unsupported_media_type",
    "unavailable",
    "not_configured",
    "error",  # a server bug reached the catch-all middleware
)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class GatewayMetrics:
    """Counters and the publish latency histogram of one gateway app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "salespulse_gateway_requests",
            "Webhook requests answered, by source and outcome.",
            ["source", "outcome"],
            registry=r,
        )
        self.events_published = Counter(
            "salespulse_gateway_events_published",
            "Canonical events acknowledged by Kafka.",
            ["source", "entity"],
            registry=r,
        )
        self.duplicates = Counter(
            "salespulse_gateway_duplicates_dropped",
            "Events dropped as already published, by the key that matched.",
            ["source", "key"],
            registry=r,
        )
        self.ignored = Counter(
            "salespulse_gateway_events_ignored",
            "Vendor events deliberately not ingested (unmapped object or property).",
            ["source", "reason"],
            registry=r,
        )
        self.gaps = Counter(
            "salespulse_gateway_salesforce_gaps",
            "Salesforce CDC gap events recorded (records to re-sync), by change type.",
            ["change_type"],
            registry=r,
        )
        self.publish_latency = Histogram(
            "salespulse_gateway_publish_latency_seconds",
            "Time from publish start to Kafka acknowledgement of a request's events.",
            ["source"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        for source in SOURCES:
            for outcome in OUTCOMES:
                self.requests.labels(source, outcome)
            for key in ("provider_id", "business_key"):
                self.duplicates.labels(source, key)

    def request(self, source: str, outcome: str) -> None:
        self.requests.labels(source, outcome).inc()

    def published(self, source: str, entity: str, n: int = 1) -> None:
        self.events_published.labels(source, entity if entity in ENTITY_TYPES else "other").inc(n)

    def duplicate(self, source: str, key: str, n: int = 1) -> None:
        self.duplicates.labels(source, key).inc(n)

    def ignore(self, source: str, reason: str, n: int = 1) -> None:
        self.ignored.labels(source, reason).inc(n)

    def gap(self, change_type: str) -> None:
        known = change_type in ("GAP_CREATE", "GAP_UPDATE", "GAP_DELETE", "GAP_UNDELETE",
                                "GAP_OVERFLOW")  # fmt: skip
        self.gaps.labels(change_type if known else "GAP_OTHER").inc()

    def value(self, name: str, labels: dict[str, str]) -> float:
        """A sample's current value (0 if absent); for tests and the health page."""
        return self.registry.get_sample_value(name, labels) or 0.0

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
