"""Process helpers for the local stack: paths, pid files, detached start, stop, waits.

Every service runs detached in its own session (so it survives the CLI and its process
group can be signalled as a whole). Its pid file ``<home>/run/<name>.pid`` holds
``"<pid> <start-time>"``; the start time (from ``/proc``) guards against a recycled pid.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from salespulse.config import Settings

log = logging.getLogger("salespulse.stack")
T = TypeVar("T")

# Popen objects of the children this process started, so they are reaped (no zombies)
# and not reported as "still running" when garbage collected.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class StackError(RuntimeError):
    """A service of the local stack could not be started, reached or stopped."""


def home(settings: Settings) -> Path:
    """Absolute stack home (jars, data, logs, pid files)."""
    return settings.home.expanduser().resolve()


def run_dir(settings: Settings) -> Path:
    """Directory of the pid files."""
    return home(settings) / "run"


def logs_dir(settings: Settings) -> Path:
    """Directory of the service logs."""
    return home(settings) / "logs"


def log_path(settings: Settings, name: str) -> Path:
    """Log file of service ``name``."""
    return logs_dir(settings) / f"{name}.log"


def pid_path(settings: Settings, name: str) -> Path:
    """Pid file of service ``name``."""
    return run_dir(settings) / f"{name}.pid"


def deploy_dir() -> Path:
    """The repository's ``deploy/`` directory (override: ``SALESPULSE_DEPLOY_DIR``)."""
    override = os.environ.get("SALESPULSE_DEPLOY_DIR")
    if override:
        return Path(override).expanduser().resolve()
    return Path(__file__).resolve().parents[2] / "deploy"


def require_binary(name: str) -> str:
    """Absolute path of executable ``name``, or a :class:`StackError` with the fix."""
    found = shutil.which(name)
    if not found:
        raise StackError(f"{name!r} not found on PATH; run scripts/install-system-deps.sh")
    return found


def _start_time(pid: int) -> str | None:
    """Start time of ``pid`` in clock ticks since boot, or None if unknown/not running."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):  # zombie or dead
        return None
    return fields[19]


def pid_alive(pid: int) -> bool:
    """True if ``pid`` runs (reaping it first when it is our own exited child)."""
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        del _CHILDREN[pid]
        return False
    if Path("/proc").is_dir():
        return _start_time(pid) is not None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_pid(settings: Settings, name: str) -> int | None:
    """Pid of service ``name`` if its pid file names a live process; clears stale files."""
    path = pid_path(settings, name)
    try:
        pid_s, _, started = path.read_text().strip().partition(" ")
        pid = int(pid_s)
    except (OSError, ValueError):
        return None
    if pid_alive(pid) and (not started or _start_time(pid) in (started, None)):
        return pid
    path.unlink(missing_ok=True)
    return None


def spawn(
    settings: Settings,
    name: str,
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """Start ``argv`` detached (new session), output to its log file; write its pid file."""
    logfile = log_path(settings, name)
    logfile.parent.mkdir(parents=True, exist_ok=True)
    pid_path(settings, name).parent.mkdir(parents=True, exist_ok=True)
    with logfile.open("ab") as out:
        out.write(f"\n==== {time.strftime('%F %T')} starting: {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=None if env is None else {**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    _CHILDREN[proc.pid] = proc
    pid_path(settings, name).write_text(f"{proc.pid} {_start_time(proc.pid) or ''}\n")
    log.debug("%s: started pid %d: %s", name, proc.pid, " ".join(argv))
    return proc.pid


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to the process group led by ``pid`` (or to the pid if it leads none)."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


def stop(settings: Settings, name: str, timeout: float = 30.0) -> bool:
    """Stop service ``name``: SIGTERM its group, SIGKILL after ``timeout``. True if it ran."""
    pid = running_pid(settings, name)
    if pid is None:
        pid_path(settings, name).unlink(missing_ok=True)
        return False
    log.info("%s: stopping (pid %d)", name, pid)
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_alive(pid):
        log.warning("%s: still running after %.0fs, sending SIGKILL", name, timeout)
    # SIGKILL the group anyway: nothing of the service may outlive it.
    _signal_group(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid_alive(pid):
        raise StackError(f"{name}: pid {pid} survived SIGKILL")
    pid_path(settings, name).unlink(missing_ok=True)
    return True


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if a TCP connection to ``host:port`` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def log_tail(path: Path, lines: int = 30) -> str:
    """Last ``lines`` lines of a log file ('' if missing)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            data = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def wait_ready(
    settings: Settings,
    name: str,
    probe: Callable[[], bool],
    timeout: float,
    interval: float = 0.2,
) -> None:
    """Poll ``probe`` until true; fail early if the service died; errors carry the log tail."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if probe():
                return
        except Exception as exc:  # a probe error means "not ready yet"
            log.debug("%s: probe failed: %r", name, exc)
        pid = running_pid(settings, name)
        reason = "exited" if pid is None else f"not ready after {timeout:.0f}s"
        if pid is None or time.monotonic() >= deadline:
            tail = log_tail(log_path(settings, name))
            raise StackError(f"{name}: {reason}; last lines of {log_path(settings, name)}:\n{tail}")
        time.sleep(interval)


def run_coro(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from sync code, even inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
