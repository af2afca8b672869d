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
def up(services: tuple[str, ...]) -> None:
    """Start the stack (idempotent); wait until every service is ready."""
    local_stack.up(get_settings(), services or local_stack.DEFAULT_SERVICES)


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
