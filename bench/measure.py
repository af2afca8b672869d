"""Measuring a running system: CPU and memory of its process, and progress to completion.

A system under test publishes its progress (events counted, last offsets, publish time)
to Redis; :func:`follow` polls a :data:`Poll` function every 100 ms, samples the
process with psutil, and returns a :class:`Followed`: when the first progress was
published, when the complete result was, the CPU seconds spent between the two, and the
peak resident memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil


@dataclass
class Snapshot:
    """One look at a system's published progress."""

    count: int = 0  # events counted by the system (its own unit, see each poll)
    published_at: float = 0.0  # newest publish time among its partitions (epoch s)
    published: bool = False  # anything published yet
    done: bool = False  # everything produced is reflected in what it published


Poll = Callable[[], Snapshot]


class ProcessSampler:
    """Peak RSS and CPU seconds of one process (and its children).

    Also the peak of anonymous RSS (RSS minus file-backed and shared pages): the worker
    maps its RocksDB files, whose resident pages count in RSS but are page cache the
    kernel reclaims under pressure.
    """

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak_rss = 0
        self.last_rss = 0
        self.peak_anon_rss = 0
        self.last_anon_rss = 0

    def _procs(self) -> list[psutil.Process]:
        try:
            return [self.proc, *self.proc.children(recursive=True)]
        except psutil.Error:
            return []

    def sample(self) -> None:
        rss = anon = 0
        for proc in self._procs():
            try:
                info = proc.memory_info()
            except psutil.Error:
                continue
            rss += info.rss
            anon += info.rss - getattr(info, "shared", 0)  # "shared": Linux only
        if rss:
            self.last_rss, self.last_anon_rss = rss, anon
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_anon_rss = max(self.peak_anon_rss, anon)

    def cpu_seconds(self) -> float:
        total = 0.0
        for proc in self._procs():
            try:
                t = proc.cpu_times()
            except psutil.Error:
                continue
            total += t.user + t.system
        return total


@dataclass
class Followed:
    """What :func:`follow` saw."""

    started_at: float
    first: Snapshot | None = None
    last: Snapshot = field(default_factory=Snapshot)
    cpu_at_first: float = 0.0
    cpu_at_last: float = 0.0
    wall_at_first: float = 0.0
    wall_at_last: float = 0.0
    peak_rss: int = 0
    last_rss: int = 0
    rss_at_first: int = 0
    peak_anon_rss: int = 0
    last_anon_rss: int = 0
    anon_rss_at_first: int = 0
    busy_at_first: float = 0.0
    busy_at_last: float = 0.0
    timed_out: bool = False

    def figures(self, events: int, counted_total: int | None = None) -> dict[str, Any]:
        """Throughput and resources; ``events`` CRM events were offered in all.

        The sustained rate counts the events published between the first and the
        complete publication; ``counted_total`` (the system's own count at completion,
        which may include derived events) scales its counts to CRM events.
        """
        first, last = self.first or Snapshot(), self.last
        total = counted_total or last.count or 1
        scale = events / total if last.done else 1.0
        done_events = events if last.done else last.count
        window = last.published_at - first.published_at
        counted = (last.count - first.count) * scale
        # Everything may be done by the first publication (a tiny run): no sustained rate.
        measurable = window > 0.05 and counted > 0
        cpu = self.cpu_at_last - self.cpu_at_first
        wall = self.wall_at_last - self.wall_at_first
        return {
            "complete": last.done,
            "timed_out": self.timed_out,
            "events": done_events,
            "startup_s": round(first.published_at - self.started_at, 3) if self.first else None,
            "processing_s": round(window, 3),
            "total_s": round(last.published_at - self.started_at, 3),
            "events_per_s": round(counted / window, 1) if measurable else None,
            "events_per_s_incl_startup": round(
                done_events / max(1e-9, last.published_at - self.started_at), 1
            ),
            "cpu_seconds": round(cpu, 3),
            "cpu_utilisation": round(cpu / wall, 3) if wall > 0.05 else None,
            "machine_busy_cores": round((self.busy_at_last - self.busy_at_first) / wall, 2)
            if wall > 0.05
            else None,
            "events_per_cpu_s": round(counted / cpu, 1) if measurable and cpu > 0 else None,
            "rss_at_start_mb": round(self.rss_at_first / 2**20, 1),
            "peak_rss_mb": round(self.peak_rss / 2**20, 1),
            "end_rss_mb": round(self.last_rss / 2**20, 1),
            "anon_rss_at_start_mb": round(self.anon_rss_at_first / 2**20, 1),
            "peak_anon_rss_mb": round(self.peak_anon_rss / 2**20, 1),
            "end_anon_rss_mb": round(self.last_anon_rss / 2**20, 1),
        }


def follow(
    poll: Poll,
    sampler: ProcessSampler | None,
    started_at: float,
    timeout: float,
    interval: float = 0.1,
    alive: Callable[[], bool] | None = None,
) -> Followed:
    """Poll until the system is done (or ``timeout`` seconds after ``started_at``)."""
    seen = Followed(started_at=started_at)
    while True:
        snap = poll()
        now = time.time()
        if sampler is not None:
            sampler.sample()
        if seen.first is None and snap.published:
            seen.first = snap
            seen.cpu_at_first = sampler.cpu_seconds() if sampler else 0.0
            seen.wall_at_first = now
            seen.rss_at_first = sampler.last_rss if sampler else 0
            seen.anon_rss_at_first = sampler.last_anon_rss if sampler else 0
            seen.busy_at_first = machine_busy_seconds()
        if snap.published:
            seen.last = snap
            seen.cpu_at_last = sampler.cpu_seconds() if sampler else 0.0
            seen.wall_at_last = now
            seen.busy_at_last = machine_busy_seconds()
        if snap.done:
            break
        if now - started_at > timeout:
            seen.timed_out = True
            break
        if alive is not None and not alive():
            raise RuntimeError("the system under test exited before it was done")
        time.sleep(interval)
    if sampler is not None:
        seen.peak_rss, seen.last_rss = sampler.peak_rss, sampler.last_rss
        seen.peak_anon_rss, seen.last_anon_rss = sampler.peak_anon_rss, sampler.last_anon_rss
    return seen


def listening_pid(port: int) -> int | None:
    """Pid of the local process listening on TCP ``port`` (None: none found)."""
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            return conn.pid
    return None


def machine_busy_seconds() -> float:
    """CPU seconds all processes of the machine have used (not idle, not waiting on I/O);
    its rate over a window is how many cores were busy, the measured process included."""
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "guest", 0.0))


def wait_until_quiet(
    below_cores: float = 0.35, window_s: float = 3.0, max_wait_s: float = 180.0
) -> dict[str, float]:
    """Wait until the machine used fewer than ``below_cores`` busy cores over a window
    (e.g. the broker deleting or compacting the previous phase's topics), at most
    ``max_wait_s``; returns the seconds waited and the last window's busy cores."""
    started = time.monotonic()
    while True:
        before = machine_busy_seconds()
        time.sleep(window_s)
        busy = (machine_busy_seconds() - before) / window_s
        waited = time.monotonic() - started
        if busy < below_cores or waited >= max_wait_s:
            return {"waited_s": round(waited, 1), "busy_cores": round(busy, 2)}


def dir_size_mb(path: Path) -> float:
    """Size of the files under ``path`` in MB (0 if missing)."""
    if not path.exists():
        return 0.0
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20, 1)
