"""Kafka publishing with acknowledgement: an idempotent producer, ``acks=all``.

:meth:`Publisher.publish` returns only when Kafka acknowledged every record of the
request, or raises :class:`Unavailable` within ``timeout_s``. The producer is started
lazily (the gateway starts, and answers 503, while Kafka is down) and is *discarded* after
a failure: its unsent records are dropped rather than delivered later behind the caller's
back (an idempotent aiokafka producer otherwise retries them forever), so a 503 means
"not published" and the provider's retry is the only copy. (A record whose produce request
reached the broker just before the failure may still be on the topic; consumers are
idempotent on ``(version, event_id)``, so that rare duplicate changes nothing.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError

from streams.gateway.errors import Unavailable

log = logging.getLogger("salespulse.gateway")

Record = tuple[bytes, bytes]  # (key, value)
STOP_TIMEOUT_S = 5.0  # how long a discarded producer may take to stop


def default_producer(bootstrap: str, timeout_s: float) -> AIOKafkaProducer:
    """The gateway's producer: idempotent, all in-sync replicas acknowledge."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="salespulse-gateway",
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=int(timeout_s * 1000),
        retry_backoff_ms=100,
        linger_ms=0,
        metadata_max_age_ms=30000,
        connections_max_idle_ms=60000,
    )


class Publisher:
    """Publishes one request's records and waits for Kafka's acknowledgement."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        timeout_s: float = 5.0,
        factory: Callable[[str, float], AIOKafkaProducer] = default_producer,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.timeout_s = timeout_s
        self._factory = factory
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def _ensure(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is not None:
                return self._producer
            producer = self._factory(self.bootstrap, self.timeout_s)
            try:
                async with asyncio.timeout(self.timeout_s):
                    await producer.start()
            except (KafkaError, OSError, TimeoutError) as exc:
                await self._abandon(producer)
                raise Unavailable(
                    "kafka", f"cannot connect to Kafka ({type(exc).__name__})"
                ) from None
            self._producer = producer
            log.info("gateway: Kafka producer connected to %s", self.bootstrap)
            return producer

    async def ready(self) -> bool:
        """True if a producer is connected (connecting one if needed)."""
        try:
            await self._ensure()
        except Unavailable:
            return False
        return True

    async def publish(self, records: Sequence[Record]) -> None:
        """Send ``records`` to the topic; return once all are acknowledged."""
        if not records:
            return
        producer = await self._ensure()
        futures: list[asyncio.Future[Any]] = []
        try:
            async with asyncio.timeout(self.timeout_s):
                for key, value in records:
                    futures.append(await producer.send(self.topic, value, key=key))
                await asyncio.gather(*futures)
        except (KafkaError, OSError, TimeoutError) as exc:
            log.warning("gateway: publish failed (%s); discarding the producer", type(exc).__name__)
            for future in futures:  # the request failed as a whole: so did each delivery
                future.add_done_callback(_retrieve)
            await self._discard(producer)
            raise Unavailable(
                "kafka", f"Kafka did not acknowledge ({type(exc).__name__})"
            ) from None

    async def _discard(self, producer: AIOKafkaProducer) -> None:
        async with self._lock:
            if self._producer is producer:
                self._producer = None
        await self._abandon(producer)

    @staticmethod
    async def _abandon(producer: AIOKafkaProducer) -> None:
        """Stop ``producer`` without delivering what it still holds.

        ``stop()`` flushes first, which never ends while the broker is down. So the sender
        task is cancelled (nothing more goes out) and every queued batch is failed before
        ``stop()``; this reaches into aiokafka's ``_sender`` and ``_message_accumulator``
        (and a batch's ``_drain_waiter``, whose failure nobody awaits: asyncio would log it
        as never retrieved; checked against aiokafka 0.14; without them this falls back to
        a bounded stop).
        """
        sender = getattr(producer, "_sender", None)
        task = getattr(sender, "sender_task", None)
        if task is not None and not task.done():
            task.cancel()
        accumulator = getattr(producer, "_message_accumulator", None)
        if accumulator is not None and hasattr(accumulator, "fail_all"):
            batches = [b for queue in getattr(accumulator, "_batches", {}).values() for b in queue]
            batches += getattr(accumulator, "_pending_batches", ())
            accumulator.fail_all(KafkaConnectionError("producer discarded after a failure"))
            for batch in batches:  # nobody drains them now: their failures are seen here
                waiter = getattr(batch, "_drain_waiter", None)
                if isinstance(waiter, asyncio.Future) and waiter.done():
                    _retrieve(waiter)
        # stop() runs in its own task: it can end *cancelled* (its Sender.close() cancels
        # the sender task again while that still awaits an in-flight produce request,
        # then awaits it), and awaiting it directly would raise that CancelledError in
        # the request handler, which aiohttp answers by dropping the connection.
        stopping = asyncio.ensure_future(producer.stop())
        stopping.add_done_callback(_log_stop)
        await asyncio.wait({stopping}, timeout=STOP_TIMEOUT_S)
        if not stopping.done():
            stopping.cancel()
            log.debug("gateway: discarded producer did not stop in %s s", STOP_TIMEOUT_S)

    async def close(self) -> None:
        """Flush (bounded by the timeout) and close the producer."""
        async with self._lock:
            producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            async with asyncio.timeout(self.timeout_s):
                await producer.stop()
        except (KafkaError, OSError, TimeoutError):
            await self._abandon(producer)


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a failed delivery's exception as seen (asyncio logs unseen ones as errors)."""
    if not future.cancelled():
        future.exception()


def _log_stop(stopping: asyncio.Future[Any]) -> None:
    """See how a discarded producer's stop ended (a broken one fails in many ways)."""
    if stopping.cancelled():
        log.debug("gateway: discarded producer's stop was cancelled")
    elif (exc := stopping.exception()) is not None:
        log.debug("gateway: discarded producer stopped with %r", exc)
