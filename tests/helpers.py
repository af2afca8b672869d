"""Helpers shared by the tests: polling waits, HTTP JSON, process checks."""

from __future__ import annotations

import asyncio
import inspect
import json
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any


def wait_until(
    predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.1, what: str = ""
) -> Any:
    """Poll ``predicate`` until it returns a truthy value (returned); AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


async def await_until(
    predicate: Callable[[], Any | Awaitable[Any]],
    timeout: float = 10.0,
    interval: float = 0.1,
    what: str = "",
) -> Any:
    """Async :func:`wait_until`; ``predicate`` may be sync or async."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(interval)


def http_json(url: str, timeout: float = 5.0) -> Any:
    """GET ``url`` and decode its JSON body."""
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def http_status(url: str, timeout: float = 5.0) -> int:
    """HTTP status of GET ``url`` (0 if unreachable)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status)
    except OSError:
        return 0


def process_exists(pid: int) -> bool:
    """True if ``pid`` is a live process (zombies awaiting their reaper count as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def pipeline_settings(base: Any, name: str, home_root: Path, **update: Any) -> Any:
    """Settings of an isolated pipeline named ``name``: its own home, topics, app id and
    Redis prefix (workers publish every 0.2 s), with ``update`` on top."""
    return base.model_copy(
        update={
            "home": home_root / "pipelines" / name,
            "topic_events": f"{name}-events",
            "topic_dead_letters": f"{name}-dead-letters",
            "app_id": f"salespulse-{name}",
            "redis_key_prefix": f"salespulse-{name}",
            "publish_interval_s": 0.2,
            **update,
        }
    )
