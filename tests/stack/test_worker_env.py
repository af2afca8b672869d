"""The environment the stack gives workers: jemalloc preloaded when chosen and installed."""

from __future__ import annotations

import ctypes.util
import logging
import os
import subprocess
import sys

import pytest

from salespulse import services
from salespulse.config import Settings


def test_jemalloc_is_preloaded_after_any_library_already_preloaded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: f"lib{name}.so.2")
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    jemalloc = Settings(worker_allocator="jemalloc")
    assert services.worker_env(jemalloc) == {"LD_PRELOAD": "libjemalloc.so.2"}
    monkeypatch.setenv("LD_PRELOAD", "/opt/trace.so")
    assert services.worker_env(jemalloc) == {"LD_PRELOAD": "/opt/trace.so libjemalloc.so.2"}
    assert services.worker_env(Settings()) == {}  # the default: glibc's malloc


def test_without_jemalloc_installed_workers_use_the_system_malloc_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    with caplog.at_level(logging.WARNING, logger="salespulse.services"):
        assert services.worker_env(Settings(worker_allocator="jemalloc")) == {}
    assert "libjemalloc2" in caplog.text


def test_allocator_tells_a_preloaded_jemalloc_from_the_system_malloc() -> None:
    lib = ctypes.util.find_library("jemalloc")
    if lib is None:
        pytest.skip("libjemalloc2 is not installed (scripts/install-system-deps.sh installs it)")
    code = "from salespulse.services import allocator; print(allocator())"
    for preload, expected in ((lib, "jemalloc"), ("", "system")):
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "LD_PRELOAD": preload},
            capture_output=True,
            text=True,
            check=True,
        )
        assert out.stdout.strip() == expected
    assert services.allocator(2**22 + 7) == "unknown"  # no such process
