"""The publisher's failure path, on a stand-in for aiokafka's producer (no services).

The stand-in reproduces what aiokafka 0.14 does when the gateway discards a producer
while a produce request is in flight: the sender task, cancelled once, waits for that
request; ``stop()`` cancels it again and awaits it, so ``stop()`` itself ends cancelled.
(CI at 9704619 met this: the CancelledError reached the request handler and aiohttp
dropped the connection instead of answering 503.)
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

from streams.gateway.errors import Unavailable
from streams.gateway.publisher import Publisher


class _Sender:
    def __init__(self, in_flight: asyncio.Future[None]) -> None:
        self.sender_task = asyncio.ensure_future(self._route(in_flight))

    @staticmethod
    async def _route(in_flight: asyncio.Future[None]) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await in_flight  # like aiokafka: finish in-flight requests on cancellation


class InFlightProducer:
    """Broker gone with a produce request in flight; ``stop()`` ends cancelled."""

    def __init__(self, bootstrap: str, timeout_s: float) -> None:
        self.in_flight: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sender = _Sender(self.in_flight)
        self.stopped = False

    async def start(self) -> None:
        await asyncio.sleep(0)  # the sender task starts routing

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> Any:
        delivery = asyncio.get_running_loop().create_future()
        delivery.set_exception(KafkaConnectionError("broker gone"))
        return delivery

    async def stop(self) -> None:
        self.stopped = True
        await asyncio.sleep(0)  # the accumulator's close: the sender takes the first cancel
        task = self._sender.sender_task
        if not task.done():  # aiokafka's Sender.close()
            task.cancel()
            await task


async def test_failed_publish_is_unavailable_even_when_the_producer_stops_cancelled() -> None:
    made: list[InFlightProducer] = []

    def factory(bootstrap: str, timeout_s: float) -> Any:
        made.append(InFlightProducer(bootstrap, timeout_s))
        return made[-1]

    publisher = Publisher("127.0.0.1:1", "events", timeout_s=1, factory=factory)
    with pytest.raises(Unavailable, match="Kafka did not acknowledge"):
        await publisher.publish([(b"k", b"v")])
    await asyncio.sleep(0)
    assert made[0].stopped and made[0]._sender.sender_task.cancelled()

    # the next request gets a fresh producer, and the same clear answer
    with pytest.raises(Unavailable):
        await publisher.publish([(b"k", b"v")])
    assert len(made) == 2


async def test_a_stop_that_never_ends_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    class Hanging(InFlightProducer):
        async def stop(self) -> None:
            self.stopped = True
            await asyncio.Event().wait()

    made: list[Hanging] = []

    def factory(bootstrap: str, timeout_s: float) -> Any:
        made.append(Hanging(bootstrap, timeout_s))
        return made[-1]

    monkeypatch.setattr("streams.gateway.publisher.STOP_TIMEOUT_S", 0.05)
    publisher = Publisher("127.0.0.1:1", "events", timeout_s=1, factory=factory)
    async with asyncio.timeout(2):  # not the producer's forever
        with pytest.raises(Unavailable):
            await publisher.publish([(b"k", b"v")])
    assert made[0].stopped
    made[0].in_flight.set_result(None)  # let the stand-in's sender end
