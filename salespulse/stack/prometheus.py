"""Prometheus and Alertmanager (Debian binaries) for the local stack."""

from __future__ import annotations

import string
import urllib.error
import urllib.request
from pathlib import Path

from salespulse.config import Settings
from salespulse.stack import process
from salespulse.stack.process import StackError, log

PROMETHEUS = "prometheus"
ALERTMANAGER = "alertmanager"
PROMETHEUS_BIN = ("prometheus",)
ALERTMANAGER_BIN = ("prometheus-alertmanager", "alertmanager")


def prometheus_dir(settings: Settings) -> Path:
    """``<home>/prometheus``: rendered config and TSDB."""
    return process.home(settings) / PROMETHEUS


def alertmanager_dir(settings: Settings) -> Path:
    """``<home>/alertmanager``: notification log and silences."""
    return process.home(settings) / ALERTMANAGER


def render_prometheus_config(settings: Settings) -> Path:
    """Render ``deploy/prometheus/prometheus.yml.tmpl`` into the home."""
    deploy = process.deploy_dir()
    template = string.Template((deploy / "prometheus" / "prometheus.yml.tmpl").read_text())
    text = template.substitute(
        host=settings.host,
        collector_port=settings.collector_port,
        gateway_port=settings.gateway_port,
        worker_web_port=settings.worker_web_port,
        prometheus_port=settings.prometheus_port,
        alertmanager_port=settings.alertmanager_port,
        rules_dir=deploy / "prometheus" / "rules",
    )
    out = prometheus_dir(settings) / "prometheus.yml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return out


def render_alertmanager_config(settings: Settings, text: str | None = None) -> Path:
    """Write ``deploy/alertmanager/alertmanager.yml`` (or ``text``) into the home.

    Alertmanager runs from this copy, so a test can point it at its own receiver and
    ``POST /-/reload``; render again without ``text`` (and reload) to restore it.
    """
    if text is None:
        text = (process.deploy_dir() / "alertmanager" / "alertmanager.yml").read_text()
    out = alertmanager_dir(settings) / "alertmanager.yml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return out


def _binary(names: tuple[str, ...]) -> str:
    for name in names:
        try:
            return process.require_binary(name)
        except StackError:
            continue
    raise StackError(f"{names[0]!r} not found on PATH; run scripts/install-system-deps.sh")


def _check_port(settings: Settings, name: str, port: int) -> None:
    if process.port_open(settings.host, port):
        raise StackError(f"{name}: port {port} is in use by another process")


def launch_prometheus(settings: Settings) -> int | None:
    """Start Prometheus unless running; returns its new pid."""
    if process.running_pid(settings, PROMETHEUS) is not None:
        log.info("prometheus: already running")
        return None
    _check_port(settings, PROMETHEUS, settings.prometheus_port)
    config = render_prometheus_config(settings)
    argv = [
        _binary(PROMETHEUS_BIN),
        f"--config.file={config}",
        f"--storage.tsdb.path={prometheus_dir(settings) / 'data'}",
        f"--web.listen-address={settings.host}:{settings.prometheus_port}",
        "--web.enable-lifecycle",
        "--storage.tsdb.retention.time=2d",
    ]
    log.info("prometheus: starting on %s:%d", settings.host, settings.prometheus_port)
    return process.spawn(settings, PROMETHEUS, argv, cwd=prometheus_dir(settings))


def launch_alertmanager(settings: Settings) -> int | None:
    """Start Alertmanager (clustering disabled) unless running; returns its new pid."""
    if process.running_pid(settings, ALERTMANAGER) is not None:
        log.info("alertmanager: already running")
        return None
    _check_port(settings, ALERTMANAGER, settings.alertmanager_port)
    root = alertmanager_dir(settings)
    (root / "data").mkdir(parents=True, exist_ok=True)
    config = render_alertmanager_config(settings)
    url = f"http://{settings.host}:{settings.alertmanager_port}/"
    argv = [
        _binary(ALERTMANAGER_BIN),
        f"--config.file={config}",
        f"--storage.path={root / 'data'}",
        f"--web.listen-address={settings.host}:{settings.alertmanager_port}",
        f"--web.external-url={url}",
        "--cluster.listen-address=",
    ]
    log.info("alertmanager: starting on %s:%d", settings.host, settings.alertmanager_port)
    return process.spawn(settings, ALERTMANAGER, argv, cwd=root)


def http_ready(url: str, timeout: float = 1.0) -> bool:
    """True if GET ``url`` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def wait_prometheus(settings: Settings, timeout: float = 30) -> None:
    """Block until Prometheus answers ``/-/ready``."""
    url = f"http://{settings.host}:{settings.prometheus_port}/-/ready"
    process.wait_ready(settings, PROMETHEUS, lambda: http_ready(url), timeout)
    log.info("prometheus: ready on %s:%d", settings.host, settings.prometheus_port)


def wait_alertmanager(settings: Settings, timeout: float = 30) -> None:
    """Block until Alertmanager answers ``/-/ready``."""
    url = f"http://{settings.host}:{settings.alertmanager_port}/-/ready"
    process.wait_ready(settings, ALERTMANAGER, lambda: http_ready(url), timeout)
    log.info("alertmanager: ready on %s:%d", settings.host, settings.alertmanager_port)
