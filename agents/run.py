"""``salespulse worker``: run one Faust worker process."""

from __future__ import annotations

import gc
import os

import click


def tune_collector() -> None:
    """Tune Python's cyclic garbage collector for a worker (also used by ``bench.engine``).

    Most objects a worker allocates die young (decoded events, snapshots); the default
    thresholds would scan the long-lived ones thousands of times a second. Freeze what
    survives start-up (imports; in ``bench.engine`` the workload) and collect the young
    generation less often.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


@click.command("worker")
@click.option("--worker-id", default="1", show_default=True, help="Names the local state dir.")
@click.option("--loglevel", default="info", show_default=True)
@click.option(
    "--rebuild-aggregates",
    is_flag=True,
    help="Rebuild every partition's aggregates from the snapshots, ignoring what the last "
    "graceful stop saved.",
)
def worker_command(worker_id: str, loglevel: str, rebuild_aggregates: bool) -> None:
    """Run a worker: consume CRM events, maintain KPI state, publish aggregates."""
    os.environ["SALESPULSE_WORKER_ID"] = worker_id
    from faust import Worker

    from agents import checkpoint
    from agents.app import ensure_changelog_topic
    from agents.events import app  # registers the agent and the timer
    from salespulse.services import allocator

    click.echo(f"worker {worker_id}: memory allocator {allocator()}", err=True)
    app.conf.datadir.mkdir(parents=True, exist_ok=True)
    checkpoint.claim(app.conf.datadir, use=not rebuild_aggregates)  # before any recovery
    ensure_changelog_topic()
    tune_collector()

    worker = Worker(app, loglevel=loglevel)
    # Faust's terminal spinner sets the root logger to DEBUG so that it spins on every log
    # record: every debug call of aiokafka and Faust was then formatted and handled (2 %
    # of the worker's time at 10,000 events/s, py-spy). Without it the root logger keeps
    # ``loglevel``.
    worker.spinner = None
    worker.execute_from_commandline()
