"""``salespulse stack up|down|status``: the local stack on loopback."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from salespulse import stack as local_stack
from salespulse.config import get_settings


@click.group("stack")
def stack() -> None:
    """Start, stop and inspect the local Kafka, Redis, Prometheus and Alertmanager."""


@stack.command("up")
@click.option(
    "--service",
    "services",
    multiple=True,
    type=click.Choice(list(local_stack.SERVICES)),
    help="Only these (repeatable).",
)
@click.option(
    "--cluster",
    is_flag=True,
    help="Three Kafka nodes (KRaft quorum of 3, every topic replicated 3 times, "
    "min.insync.replicas=2) instead of one.",
)
def up(services: tuple[str, ...], cluster: bool) -> None:
    """Start the stack (idempotent); wait until every service is ready."""
    settings = get_settings()
    if cluster:
        settings = settings.model_copy(
            update={
                "kafka_cluster_size": max(3, settings.kafka_cluster_size),
                "replication_factor": max(3, settings.replication_factor),
            }
        )
    local_stack.up(settings, services or local_stack.DEFAULT_SERVICES)
    if settings.kafka_cluster_size > 1:
        click.echo(
            f"Kafka cluster of {settings.kafka_cluster_size} nodes at "
            f"{settings.kafka_bootstrap}. Run workers, the collector and the gateway with\n"
            f"  export SALESPULSE_KAFKA_CLUSTER_SIZE={settings.kafka_cluster_size} "
            f"SALESPULSE_REPLICATION_FACTOR={settings.replication_factor}"
        )


@stack.command("down")
def down() -> None:
    """Stop every process the stack started (workers and collector included)."""
    local_stack.down(get_settings())


@stack.command("status")
def status() -> None:
    """Show each process: state, pid, port, log file."""
    table = Table("service", "state", "pid", "port", "log")
    for name, info in local_stack.status(get_settings()).items():
        table.add_row(
            name, info["state"], str(info["pid"] or ""), str(info["port"] or ""), info["log"]
        )
    Console().print(table)
