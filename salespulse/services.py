"""Starting SalesPulse's own processes (workers, collector, generator) beside the stack.

They are spawned detached with pid files in the stack home, like the infrastructure, so
``salespulse stack down`` stops them too and leaves no process behind.
"""

from __future__ import annotations

import ctypes.util
import logging
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from salespulse.config import Settings
from salespulse.stack import process

log = logging.getLogger(__name__)


def settings_env(settings: Settings) -> dict[str, str]:
    """The ``SALESPULSE_*`` environment that reproduces ``settings`` in a child process."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[f"SALESPULSE_{name.upper()}"] = str(value)
    env["SALESPULSE_HOME"] = str(process.home(settings))
    return env


def _spawn(settings: Settings, name: str, *args: str, **env: Any) -> int:
    argv = [sys.executable, "-m", "salespulse.cli", *args]
    extra = {k: str(v) for k, v in env.items()}
    return process.spawn(settings, name, argv, env={**settings_env(settings), **extra})


def start_worker(settings: Settings, worker_id: str = "1") -> int:
    """Start (or keep) worker ``worker_id``; return its pid."""
    name = f"worker-{worker_id}"
    return process.running_pid(settings, name) or _spawn(
        settings,
        name,
        "worker",
        "--worker-id",
        worker_id,
        "--loglevel",
        "warning",
        **worker_env(settings),
    )


def worker_env(settings: Settings) -> dict[str, str]:
    """A worker's extra environment: jemalloc preloaded if chosen and installed."""
    if settings.worker_allocator != "jemalloc":
        return {}
    lib = ctypes.util.find_library("jemalloc")
    if lib is None:
        log.warning("jemalloc not installed (Debian: libjemalloc2): workers use the system malloc")
        return {}
    return {"LD_PRELOAD": " ".join(filter(None, [os.environ.get("LD_PRELOAD"), lib]))}


def allocator(pid: int | str = "self") -> str:
    """The memory allocator process ``pid`` runs on: ``jemalloc``, ``system`` (or
    ``unknown`` where ``/proc`` does not say)."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return "unknown"
    return "jemalloc" if "libjemalloc" in maps else "system"


def start_collector(settings: Settings) -> int:
    """Start (or keep) the collector; return its pid."""
    return process.running_pid(settings, "collector") or _spawn(settings, "collector", "collector")


def start_generator(settings: Settings, rate: float, seed: int = 42) -> int:
    """Start (or keep) the demo event generator; return its pid."""
    return process.running_pid(settings, "generator") or _spawn(
        settings, "generator", "generate-events", "--rate", str(rate), "--seed", str(seed)
    )


def wait_collector(settings: Settings, timeout: float = 30.0) -> None:
    """Wait until the collector answers on its port."""
    process.wait_ready(
        settings,
        "collector",
        lambda: process.port_open(settings.host, settings.collector_port),
        timeout,
    )
