"""At-most-once publishing per delivery, with Redis: claim, publish, confirm or release.

Every event has two keys: a *delivery* key (the provider's event id together with the
entity and version, so a vendor id that is not globally unique cannot drop a different
change) and a *business* key (source, entity, id, change, version, merge target and a
hash of the fields), which catches a retry that arrives under a new provider id.

1. :meth:`Deduper.claim` sets both keys to a pending token (``SET NX PX``, short TTL).
   A key already ``done`` makes the event a duplicate; a key pending for another request
   means the same change is being published right now, so the claim waits for it.
2. After Kafka acknowledged, :meth:`Deduper.confirm` marks the keys ``done`` (long TTL).
3. If publishing failed, :meth:`Deduper.release` deletes the pending keys (only ours), so
   the provider's retry is published. A crash between 1 and 2 leaves a pending key that
   expires after ``claim_ttl_s``.

Any Redis failure raises :class:`Unavailable` (answered 503, the provider retries).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from streams.gateway.errors import Unavailable
from streams.schema import CrmEvent

DONE = b"d"
DEFAULT_TTL_S = 7 * 86400
T = TypeVar("T")

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def _digest(parts: Iterable[Any]) -> str:
    return hashlib.sha256(orjson.dumps(list(parts), option=orjson.OPT_SORT_KEYS)).hexdigest()[:40]


def delivery_key(event: CrmEvent) -> str:
    """Hash of the provider's event id, the entity and the version."""
    return _digest(["id", event.event_id, event.entity, event.entity_id, event.version])


def business_key(event: CrmEvent) -> str:
    """Hash of what the change says, whatever id the provider gave it."""
    return _digest(
        [
            "biz",
            event.source,
            event.entity,
            event.entity_id,
            event.change,
            event.version,
            event.merged_into,
            event.fields,
        ]
    )


@dataclass
class Claim:
    """An event whose keys this request holds as pending."""

    event: CrmEvent
    keys: list[str]
    token: bytes


@dataclass
class Verdict:
    """The outcome of a claim: events to publish and duplicates with the matching key."""

    fresh: list[Claim] = field(default_factory=list)
    duplicates: list[tuple[CrmEvent, str]] = field(default_factory=list)


class Deduper:
    """Redis-backed duplicate filter of the gateway (one per app, shared by requests)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        prefix: str = "salespulse",
        ttl_s: int = DEFAULT_TTL_S,
        claim_ttl_s: float = 15.0,
        wait_s: float = 5.0,
        op_timeout_s: float = 5.0,
    ) -> None:
        self.redis = redis
        self.prefix = f"{prefix}:gateway"
        self.ttl_s = ttl_s
        self.claim_ms = int(claim_ttl_s * 1000)
        self.wait_s = wait_s
        self.op_timeout_s = op_timeout_s

    def keys(self, event: CrmEvent) -> list[str]:
        """The delivery key and the business key of ``event``."""
        return [
            f"{self.prefix}:seen:id:{delivery_key(event)}",
            f"{self.prefix}:seen:biz:{business_key(event)}",
        ]

    async def _call(self, make: Callable[[], Awaitable[T]]) -> T:
        try:
            async with asyncio.timeout(self.op_timeout_s):
                return await make()
        except (RedisError, OSError, TimeoutError) as exc:
            raise Unavailable("redis", f"dedupe store unavailable ({type(exc).__name__})") from None

    async def ping(self) -> bool:
        """True if Redis answers."""
        try:
            return bool(await self._call(self.redis.ping))
        except Unavailable:
            return False

    async def claim(self, events: list[CrmEvent]) -> Verdict:
        """Claim ``events``; duplicates (within the request or already published) drop out."""
        verdict = Verdict()
        token = f"p:{uuid.uuid4().hex}".encode()
        pending: list[tuple[CrmEvent, list[str]]] = []
        seen: dict[str, str] = {}
        for event in events:
            keys = self.keys(event)
            kinds = ("provider_id", "business_key")
            hit = next((kind for key, kind in zip(keys, kinds, strict=True) if key in seen), None)
            if hit:
                verdict.duplicates.append((event, hit))
                continue
            seen.update(dict.fromkeys(keys, ""))
            pending.append((event, keys))
        deadline = time.monotonic() + self.wait_s
        while pending:
            pending = await self._claim_round(pending, token, verdict)
            if pending and time.monotonic() >= deadline:
                await self.release(verdict.fresh)
                raise Unavailable(
                    "dedupe", "the same change is being published by another request", 1
                )
            if pending:
                await asyncio.sleep(0.05)
        return verdict

    async def _claim_round(
        self, pending: list[tuple[CrmEvent, list[str]]], token: bytes, verdict: Verdict
    ) -> list[tuple[CrmEvent, list[str]]]:
        async def run() -> tuple[list[Any], list[Any]]:
            pipe = self.redis.pipeline(transaction=False)
            for _, keys in pending:
                for key in keys:
                    pipe.set(key, token, nx=True, px=self.claim_ms)
            acquired = await pipe.execute()
            pipe = self.redis.pipeline(transaction=False)
            for _, keys in pending:
                for key in keys:
                    pipe.get(key)
            return acquired, await pipe.execute()

        acquired, values = await self._call(run)
        retry: list[tuple[CrmEvent, list[str]]] = []
        to_release: list[str] = []
        to_confirm: list[str] = []
        for n, (event, keys) in enumerate(pending):
            mine = [bool(acquired[2 * n + j]) for j in range(2)]
            vals = [values[2 * n + j] for j in range(2)]
            if vals[0] == DONE:
                verdict.duplicates.append((event, "provider_id"))
                to_release += [k for k, m in zip(keys, mine, strict=True) if m]
            elif vals[1] == DONE:
                verdict.duplicates.append((event, "business_key"))
                # This delivery id now names a published change: remember it as such.
                to_confirm += [keys[0]] if mine[0] else []
            elif all(mine):
                verdict.fresh.append(Claim(event, keys, token))
            else:
                to_release += [k for k, m in zip(keys, mine, strict=True) if m]
                retry.append((event, keys))
        await self._release_keys(to_release, token)
        await self._set_done(to_confirm)
        return retry

    async def _release_keys(self, keys: list[str], token: bytes) -> None:
        if not keys:
            return

        async def run() -> None:
            pipe = self.redis.pipeline(transaction=False)
            for key in keys:
                pipe.eval(_RELEASE, 1, key, token)
            await pipe.execute()

        await self._call(run)

    async def _set_done(self, keys: list[str]) -> None:
        if not keys:
            return

        async def run() -> None:
            pipe = self.redis.pipeline(transaction=False)
            for key in keys:
                pipe.set(key, DONE, ex=self.ttl_s)
            await pipe.execute()

        await self._call(run)

    async def confirm(self, claims: list[Claim]) -> None:
        """Mark the claimed keys as published (after Kafka acknowledged)."""
        await self._set_done([key for claim in claims for key in claim.keys])

    async def release(self, claims: list[Claim]) -> None:
        """Give up claims (publishing failed) so a retry is published."""
        by_token: dict[bytes, list[str]] = {}
        for claim in claims:
            by_token.setdefault(claim.token, []).extend(claim.keys)
        for token, keys in by_token.items():
            await self._release_keys(keys, token)

    async def record_gaps(self, gaps: list[dict[str, Any]], keep: int = 10000) -> None:
        """Append Salesforce gap notices to a capped Redis list for re-sync."""
        if not gaps:
            return
        key = f"{self.prefix}:salesforce_gaps"

        async def run() -> None:
            pipe = self.redis.pipeline(transaction=False)
            for gap in gaps:
                pipe.lpush(key, orjson.dumps({**gap, "recorded_at_ms": int(time.time() * 1000)}))
            pipe.ltrim(key, 0, keep - 1)
            await pipe.execute()

        await self._call(run)
