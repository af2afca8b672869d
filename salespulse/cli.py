"""The ``salespulse`` command: one entry point for every routine task.

Subcommands are loaded lazily from the module that implements them, so ``salespulse
stack status`` does not import Faust.
"""

from __future__ import annotations

import importlib
import logging

import click

COMMANDS = {
    "stack": "salespulse.commands.stack:stack",
    "demo": "salespulse.commands.demo:demo",
    "worker": "agents.run:worker_command",
    "collector": "state.collector:collector_command",
    "generate-events": "streams.generator:generate_command",
    "gateway": "streams.gateway.app:gateway_command",
    "backfill": "streams.backfill.command:backfill_command",
    "generate": "salespulse.mixin.command:generate_command",
    "board": "salespulse.board:board_command",
    "rekey": "streams.rekey:rekey_command",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]
        except (ImportError, AttributeError) as exc:
            reason = f"{cmd_name} is not available: {exc}"

            def unavailable() -> None:
                raise click.ClickException(reason)

            return click.Command(cmd_name, callback=unavailable, help=f"(unavailable: {exc})")


@click.group(cls=LazyGroup)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool) -> None:
    """SalesPulse: live, exact sales KPIs from CRM change events."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


if __name__ == "__main__":
    main()
