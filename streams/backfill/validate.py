"""Validate mode: every problem of an export, with file, line number, level and reason.

Errors drop the row (it becomes no event); warnings keep it. The report groups issues
by (file, level, reason) with their line numbers, so 1,425 blank accounts are one line
of the summary, and lists every issue in ``issues`` for tools.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Any

from streams.backfill.dryrun import input_summary
from streams.backfill.export import Export, FileStats
from streams.backfill.mapping import Issue

MAX_VALUES = 20
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def reason_of(issue: Issue) -> tuple[str, str | None]:
    """The message without its row-specific value (for grouping), and that value."""
    match = _QUOTED.search(issue.message)
    if match is None:
        return issue.message, None
    return issue.message[: match.start()] + "…" + issue.message[match.end() :], match.group(0)


def validate(export: Export) -> dict[str, Any]:
    """Check every row of the export; return the validation report."""
    files: dict[str, FileStats] = defaultdict(FileStats)
    issues: list[Issue] = []
    for item in export.items():
        files[item.file].add(item)
        issues.extend(item.issues)
    groups: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    values: dict[tuple[str, str, str], Counter[str]] = defaultdict(Counter)
    for issue in issues:
        reason, value = reason_of(issue)
        group = (issue.file, issue.level, reason)
        groups[group].append(issue.line)
        if value is not None:
            values[group][value] += 1
    summary = [
        {
            "file": file,
            "level": level,
            "reason": reason,
            "count": len(lines),
            "values": dict(values[(file, level, reason)].most_common(MAX_VALUES)),
            "lines": lines,
        }
        for (file, level, reason), lines in sorted(
            groups.items(), key=lambda kv: (kv[0][1] != "error", kv[0][0], -len(kv[1]))
        )
    ]
    counts = input_summary(files)
    return {
        "mode": "validate",
        "mapping": export.mapping.name,
        "ok": counts["errors"] == 0,
        "input": counts,
        "summary": summary,
        "issues": [
            {
                "file": i.file,
                "line": i.line,
                "level": i.level,
                "field": i.field,
                "message": i.message,
            }
            for i in issues
        ],
    }


def compact_lines(lines: list[int], limit: int = 12) -> str:
    """``2, 5-7, 11 … (+40 more)``: a readable list of line numbers."""
    ranges: list[str] = []
    start = prev = None
    for line in sorted(set(lines)):
        if prev is not None and line == prev + 1:
            prev = line
            continue
        if start is not None:
            ranges.append(f"{start}-{prev}" if prev != start else str(start))
        start = prev = line
    if start is not None:
        ranges.append(f"{start}-{prev}" if prev != start else str(start))
    shown = ", ".join(ranges[:limit])
    more = len(ranges) - limit
    return f"{shown} … (+{more} more)" if more > 0 else shown


def format_text(report: dict[str, Any], details: bool = False) -> str:
    """The human-readable validation report."""
    counts = report["input"]
    out = [
        f"mapping {report['mapping']}: {counts['rows']} rows, {counts['events']} events, "
        f"{counts['invalid_rows']} invalid rows, {counts['errors']} errors, "
        f"{counts['warnings']} warnings"
    ]
    for name, f in counts["files"].items():
        out.append(
            f"  {name}: {f['rows']} rows, {f['events']} events, "
            f"{f['invalid_rows']} invalid, {f['skipped_rows']} skipped, "
            f"{f['duplicate_rows']} duplicate"
        )
    if report["summary"]:
        out.append("")
    for group in report["summary"]:
        out.append(
            f"{group['level'].upper():7} {group['file']}: {group['reason']} x{group['count']}"
        )
        if group["values"]:
            shown = ", ".join(f"{v} x{n}" for v, n in group["values"].items())
            out.append(f"        values {shown}")
        out.append(f"        lines {compact_lines(group['lines'])}")
    if details and report["issues"]:
        out.append("")
        out += [f"{i['file']}:{i['line']}: {i['level']}: {i['message']}" for i in report["issues"]]
    out.append("")
    out.append(
        "OK: no errors"
        if report["ok"]
        else f"FAILED: {counts['errors']} errors ({counts['invalid_rows']} rows dropped)"
    )
    return "\n".join(out)
