"""``salespulse backfill``: load a CRM export through a declarative mapping.

Three modes over the same events (see ``docs/backfill.md``):

* ``--validate``: list bad rows with line numbers, errors and warnings; exit 1 on errors;
* ``--dry-run``: run the events through the KPI engine in process, print a JSON KPI
  snapshot; no Kafka needed;
* default: publish to the events topic, exactly once, resumable after an interruption.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError
from rich.console import Console

from streams.backfill.export import Export
from streams.backfill.mapping import Mapping
from streams.backfill.reader import ReadError


def _load(path: str, mapping_path: str, export_time: datetime | None) -> Export:
    if export_time is not None and export_time.tzinfo is None:
        export_time = export_time.replace(tzinfo=UTC)
    try:
        mapping = Mapping.load(mapping_path, export_time)
    except ValidationError as exc:
        raise click.ClickException(f"mapping {mapping_path} is invalid:\n{exc}") from exc
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"mapping {mapping_path}: {exc}") from exc
    try:
        return Export.open(path, mapping)
    except (ReadError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc


def _emit(document: dict[str, Any], output: str | None) -> None:
    text = json.dumps(document, indent=2, ensure_ascii=False)
    if output:
        Path(output).write_text(text + "\n")
    else:
        click.echo(text)


def _crash_hook(spec: str | None) -> Any:
    """``N:stage``: exit the process abruptly (no cleanup) at chunk N's stage. Tests only."""
    if not spec:
        return None
    number, _, stage = spec.partition(":")
    target, stage = int(number), stage or "sent"

    def hook(at: str, seq: int) -> None:
        if seq == target and at == stage:
            sys.stderr.flush()
            os._exit(75)

    return hook


@click.command("backfill")
@click.argument("path", type=click.Path(exists=True))
@click.option(
    "--mapping",
    "mapping_path",
    required=True,
    type=click.Path(exists=True),
    help="Mapping YAML (see deploy/mappings/).",
)
@click.option("--dry-run", is_flag=True, help="Compute KPIs in process; print a JSON snapshot.")
@click.option(
    "--validate",
    "validate_only",
    is_flag=True,
    help="Only check the rows; list problems with line numbers.",
)
@click.option(
    "--rules",
    "rules_path",
    default=None,
    envvar="SALESPULSE_RULES",
    type=click.Path(exists=True),
    help="Rules YAML (timezone, FX rates, stages).",
)
@click.option(
    "--output",
    "-o",
    default=None,
    type=click.Path(),
    help="Write the JSON report here instead of stdout.",
)
@click.option("--json", "as_json", is_flag=True, help="Validate: print the report as JSON.")
@click.option("--details", is_flag=True, help="Validate: list every issue, one per line.")
@click.option("--strict", is_flag=True, help="Validate: warnings fail too (exit 1).")
@click.option(
    "--export-time",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d"]),
    default=None,
    help="Override the mapping's export_time.",
)
@click.option(
    "--chunk-size",
    default=1000,
    show_default=True,
    type=click.IntRange(1),
    help="Publish: events per Kafka transaction (and per checkpoint).",
)
@click.option(
    "--checkpoint",
    "checkpoint_path",
    default=None,
    type=click.Path(),
    help="Publish: checkpoint file (default under SALESPULSE_HOME/backfill/).",
)
@click.option(
    "--restart",
    is_flag=True,
    help="Publish: ignore the checkpoint and publish the whole export again.",
)
@click.option(
    "--skip-invalid",
    is_flag=True,
    help="Publish: publish the valid rows even when some rows have errors.",
)
@click.option("--no-progress", is_flag=True, help="Publish: no progress bar.")
@click.option(
    "--crash-after",
    default=None,
    hidden=True,
    help="Tests: N:stage (sent|committed|checkpointed) exits abruptly there.",
)
def backfill_command(
    path: str,
    mapping_path: str,
    dry_run: bool,
    validate_only: bool,
    rules_path: str | None,
    output: str | None,
    as_json: bool,
    details: bool,
    strict: bool,
    export_time: datetime | None,
    chunk_size: int,
    checkpoint_path: str | None,
    restart: bool,
    skip_invalid: bool,
    no_progress: bool,
    crash_after: str | None,
) -> None:
    """Load a CRM export (a file, or a folder of files) through a mapping.

    PATH is one export file, or the folder holding the export's files (all files the
    mapping names are loaded together, joined through its lookups).
    """
    if dry_run and validate_only:
        raise click.UsageError("--dry-run and --validate are exclusive")
    export = _load(path, mapping_path, export_time)
    console = Console(stderr=True)
    if validate_only:
        from streams.backfill.validate import format_text, validate

        report = validate(export)
        if as_json or output:
            _emit(report, output)
        if not as_json:
            click.echo(format_text(report, details))
        failed = not report["ok"] or (strict and report["input"]["warnings"] > 0)
        sys.exit(1 if failed else 0)
    if dry_run:
        from state.rules import Rules
        from streams.backfill.dryrun import dry_run as run_dry

        report = run_dry(export, Rules.load(rules_path))
        _emit(report, output)
        counts = report["input"]
        console.print(
            f"dry run: {counts['events']} events from {counts['rows']} rows "
            f"({counts['invalid_rows']} invalid, {counts['warnings']} warnings) "
            f"in {report['elapsed_s']:.1f}s",
            highlight=False,
            soft_wrap=True,
        )
        return
    _publish(
        export,
        console,
        chunk_size,
        checkpoint_path,
        restart,
        skip_invalid,
        no_progress,
        crash_after,
    )


def _publish(
    export: Export,
    console: Console,
    chunk_size: int,
    checkpoint_path: str | None,
    restart: bool,
    skip_invalid: bool,
    no_progress: bool,
    crash_after: str | None,
) -> None:
    from salespulse.config import get_settings
    from salespulse.stack.process import run_coro
    from streams.backfill.publish import PublishError, format_summary, publish
    from streams.backfill.validate import format_text, validate

    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    report = validate(export)
    counts = report["input"]
    if not report["ok"] and not skip_invalid:
        click.echo(format_text(report), err=True)
        raise click.ClickException(
            f"{counts['invalid_rows']} rows have errors; fix them (see --validate) or "
            "publish the valid rows with --skip-invalid"
        )
    console.print(
        f"validated: {counts['events']} events from {counts['rows']} rows, "
        f"{counts['warnings']} warnings, {counts['invalid_rows']} invalid rows "
        "skipped",
        highlight=False,
        soft_wrap=True,
    )
    settings = get_settings()
    try:
        result = run_coro(
            publish(
                export,
                settings,
                events_total=counts["events"],
                chunk_size=chunk_size,
                checkpoint_path=Path(checkpoint_path) if checkpoint_path else None,
                restart=restart,
                on_chunk=_crash_hook(crash_after),
                console=console,
                progress=not no_progress,
            )
        )
    except PublishError as exc:
        raise click.ClickException(str(exc)) from exc
    console.print(format_summary(result), highlight=False, soft_wrap=True)
