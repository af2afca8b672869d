"""One request's way to Kafka: claim (dedupe), publish, confirm; metrics on the way."""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from streams.gateway.adapters.common import Parsed
from streams.gateway.dedupe import Deduper
from streams.gateway.errors import Unavailable
from streams.gateway.mappings import SourceMapping
from streams.gateway.metrics import GatewayMetrics
from streams.gateway.publisher import Publisher
from streams.records import encode_single

log = logging.getLogger("salespulse.gateway")


@dataclass
class Gateway:
    """What the handlers share: dedupe store, publisher, mappings, metrics."""

    deduper: Deduper
    publisher: Publisher
    mappings: dict[str, SourceMapping]
    metrics: GatewayMetrics

    async def ingest(self, source: str, parsed: Parsed) -> dict[str, Any]:
        """Publish the new events of ``parsed``; 503 (:class:`Unavailable`) if not all were.

        Returns counts for the response body. Events are acknowledged by Kafka before
        their dedupe keys are confirmed, so a failure never hides an event from a retry.
        """
        for reason, n in parsed.ignored.items():
            self.metrics.ignore(source, reason, n)
        if parsed.gaps:
            await self._record_gaps(parsed)
        verdict = await self.deduper.claim(parsed.events)
        for _, kind in verdict.duplicates:
            self.metrics.duplicate(source, kind)
        records = [(c.event.key.encode(), encode_single(c.event.to_wire())) for c in verdict.fresh]
        started = time.perf_counter()
        try:
            await self.publisher.publish(records)
        except Unavailable:
            try:
                await self.deduper.release(verdict.fresh)
            except Unavailable:
                log.warning("gateway: could not release claims; they expire on their own")
            raise
        if records:
            self.metrics.publish_latency.labels(source).observe(time.perf_counter() - started)
        try:
            await self.deduper.confirm(verdict.fresh)
        except Unavailable:
            log.warning("gateway: published, but dedupe keys not confirmed; a retry may repeat")
        for entity, n in Counter(c.event.entity for c in verdict.fresh).items():
            self.metrics.published(source, entity, n)
        if verdict.fresh or verdict.duplicates:
            log.info(
                "gateway: %s published %d, duplicates %d, ignored %d",
                source,
                len(verdict.fresh),
                len(verdict.duplicates),
                sum(parsed.ignored.values()),
            )
        return {
            "status": "gap recorded" if parsed.gaps else "accepted",
            "published": len(verdict.fresh),
            "duplicates": len(verdict.duplicates),
            "ignored": sum(parsed.ignored.values()),
            "gaps": len(parsed.gaps),
        }

    async def _record_gaps(self, parsed: Parsed) -> None:
        await self.deduper.record_gaps(parsed.gaps)
        for gap in parsed.gaps:
            self.metrics.gap(gap["change_type"])
            # Ids and field data stay out of the log; the Redis list has the record ids.
            log.warning(
                "gateway: Salesforce %s on %s for %d record(s): re-sync needed",
                gap["change_type"],
                gap["entity_name"],
                gap["record_count"],
            )
