"""Dry run: the export's events through the KPI engine in process, no Kafka.

Every valid event is applied to one :class:`state.processor.PartitionState` over a plain
dict store (one store for all partitions is the same as per-partition stores summed,
since an entity lives in exactly one partition); the link facts an outcome produces (a
deal's win reaching its account and lead) are applied to the same store, as the worker
does through the topic. The report is the KPI snapshot of :func:`state.snapshot_report.
kpi_snapshot` plus the input counts (see ``docs/backfill.md``).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict, deque
from typing import Any

from state.processor import PartitionState
from state.readout import Readout
from state.rules import Rules
from state.snapshot_report import kpi_snapshot
from streams.backfill.export import Export, FileStats

MAX_ENGINE_REASONS = 20


def dry_run(export: Export, rules: Rules) -> dict[str, Any]:
    """Apply the export to an in-process engine; return the dry-run report."""
    started = time.monotonic()
    state = PartitionState(rules, {})
    files: dict[str, FileStats] = defaultdict(FileStats)
    engine: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for item in export.items():
        files[item.file].add(item)
        if item.event is None:
            continue
        queue: deque[dict[str, Any]] = deque([item.event])
        while queue:
            record = queue.popleft()
            outcome = state.apply(record)
            kind = "links" if record.get("link") == 1 else "events"
            engine[f"{kind}_{outcome.status}"] += 1
            if outcome.status == "invalid":
                reasons[f"{item.file}:{item.line}: {outcome.reason}"] += 1
            queue.extend(outcome.links)
    kpis = kpi_snapshot(Readout(dict(state.aggregates.values), rules.kpi_params), rules)
    return {
        "mode": "dry-run",
        "mapping": export.mapping.name,
        "input": input_summary(files),
        "engine": {
            "events_applied": engine["events_applied"],
            "events_duplicate": engine["events_duplicate"],
            "events_invalid": engine["events_invalid"],
            "links_applied": engine["links_applied"],
            "links_duplicate": engine["links_duplicate"],
            "entities": len(state.store),
            "invalid_reasons": [r for r, _ in reasons.most_common(MAX_ENGINE_REASONS)],
        },
        "elapsed_s": round(time.monotonic() - started, 3),
        "kpis": kpis,
    }


def input_summary(files: dict[str, FileStats]) -> dict[str, Any]:
    """Per-file and total row counts of one pass over the export."""
    per_file = {
        name: {
            "rows": s.rows,
            "events": s.events,
            "invalid_rows": s.invalid,
            "skipped_rows": s.skipped,
            "duplicate_rows": s.duplicates,
            "warnings": s.warnings,
            "errors": s.errors,
        }
        for name, s in files.items()
    }
    keys = (
        "rows",
        "events",
        "invalid_rows",
        "skipped_rows",
        "duplicate_rows",
        "warnings",
        "errors",
    )
    totals = {k: sum(f[k] for f in per_file.values()) for k in keys}
    return {**totals, "files": per_file}
