"""One CRM export on disk, read through a mapping: files, lookups, events, issues.

:class:`Export` resolves the mapping's file patterns in the export folder (or takes the
single file given), loads the lookup tables, and yields :class:`Item` s in a deterministic
order: entities in mapping order, files sorted by name, rows in file order. Every run
over the same files and mapping yields the same events with the same ids, which is what
makes the dry run reproducible and the publish checkpoint meaningful.

Duplicate entity ids within the export are checked here: an identical repeated row is a
warning (its event is dropped, the first one stands); the same id with a different
content and the same version is an error (ambiguous, dropped); a different version is a
warning (both kept, the newer version wins in the engine).
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.backfill.mapping import EntityMapping, Issue, LookupTable, Mapping, map_row
from streams.backfill.reader import ReadError, Row, count_rows, file_digest, read_rows


@dataclass(slots=True)
class Item:
    """One input row: its event (``None`` if invalid or skipped) and its issues."""

    file: str
    line: int
    event: dict[str, Any] | None
    issues: list[Issue]
    skipped: bool = False  # matched ``skip_when`` (e.g. a report's footer line)
    duplicate: bool = False  # an identical repeat of an earlier row

    @property
    def invalid(self) -> bool:
        """Dropped because of an error."""
        return self.event is None and not self.skipped and not self.duplicate


@dataclass(slots=True)
class FileStats:
    """Per-file counts of one pass."""

    rows: int = 0
    events: int = 0
    invalid: int = 0
    skipped: int = 0
    duplicates: int = 0
    warnings: int = 0
    errors: int = 0
    last_line: int = 0

    def add(self, item: Item) -> None:
        self.rows += 1
        self.last_line = item.line
        self.events += item.event is not None
        self.skipped += item.skipped
        self.duplicates += item.duplicate
        self.invalid += item.invalid
        self.warnings += sum(i.level == "warning" for i in item.issues)
        self.errors += sum(i.level == "error" for i in item.issues)


@dataclass(slots=True)
class _Seen:
    line: int
    version: int
    event_id: str


@dataclass
class Export:
    """A mapping applied to an export folder (or one file of it)."""

    mapping: Mapping
    root: Path  # the export folder
    files: list[tuple[EntityMapping, Path]]
    lookups: dict[str, LookupTable] = field(default_factory=dict)
    lookup_files: list[Path] = field(default_factory=list)

    @classmethod
    def open(cls, path: str | Path, mapping: Mapping) -> Export:
        """Resolve ``path`` (folder or file) against ``mapping``; load the lookups.

        Raises :class:`ReadError` when no file matches or a lookup file is missing.
        """
        path = Path(path)
        root = path if path.is_dir() else path.parent
        if not path.exists():
            raise ReadError(f"no such file or folder: {path}")
        files: list[tuple[EntityMapping, Path]] = []
        for spec in mapping.entities:
            if path.is_dir():
                names = sorted(p.name for p in root.iterdir() if p.is_file())
                matched = sorted({n for pat in spec.patterns for n in fnmatch.filter(names, pat)})
                files += [(spec, root / n) for n in matched]
            elif any(fnmatch.fnmatch(path.name, pat) for pat in spec.patterns):
                files.append((spec, path))
        if not files and path.is_file() and len(mapping.entities) == 1:
            files.append((mapping.entities[0], path))  # one entity: any file name will do
        if not files:
            patterns = ", ".join(p for s in mapping.entities for p in s.patterns)
            raise ReadError(f"{path}: no file matches the mapping's patterns ({patterns})")
        export = cls(mapping, root, files)
        export._load_lookups()
        return export

    def _load_lookups(self) -> None:
        for name, spec in self.mapping.lookups.items():
            file = self.root / spec.file
            table = LookupTable(name, spec, {}, spec.file)
            for row in read_rows(file, spec.file, spec.format, spec.delimiter, spec.encoding):
                if spec.key not in row.values:
                    raise ReadError(f"{spec.file}: lookup {name} has no column {spec.key!r}")
                key = table.norm(row.values[spec.key])
                if key and key not in table.rows:
                    table.rows[key] = row.values
            self.lookups[name] = table
            self.lookup_files.append(file)

    def name_of(self, path: Path) -> str:
        """How a file is called in reports and event ids (relative to the export folder)."""
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return path.name

    def fingerprint(self, extra: str = "") -> str:
        """SHA-256 over the mapping and the bytes of every input file (and ``extra``)."""
        digest = hashlib.sha256(self.mapping.digest().encode())
        for path in [*(p for _, p in self.files), *self.lookup_files]:
            digest.update(f"\n{self.name_of(path)}:{file_digest(path)}".encode())
        digest.update(extra.encode())
        return digest.hexdigest()

    def estimated_rows(self) -> int:
        """Data rows of all entity files (for progress bars)."""
        return sum(count_rows(p, s.format, s.encoding) for s, p in self.files)

    def rows(self) -> Iterator[tuple[EntityMapping, Row]]:
        """Every data row of every entity file, in the deterministic order."""
        for spec, path in self.files:
            name = self.name_of(path)
            for row in read_rows(
                path, name, spec.format, spec.delimiter, spec.encoding, spec.header_line
            ):
                yield spec, row

    def items(self) -> Iterator[Item]:
        """Map every row; duplicate ids are checked across the whole export."""
        seen: dict[tuple[str, str], _Seen] = {}
        for spec, row in self.rows():
            if _skip(spec, row.values):
                yield Item(row.file, row.line, None, [], skipped=True)
                continue
            event, issues = map_row(
                spec, self.mapping, self.lookups, row.values, row.file, row.line
            )
            duplicate = False
            if event is not None:
                key = (event["entity"], event["entity_id"])
                first = seen.get(key)
                if first is None:
                    seen[key] = _Seen(row.line, event["version"], event["event_id"])
                elif _digest(first.event_id) == _digest(event["event_id"]):
                    issues.append(
                        Issue(
                            row.file,
                            row.line,
                            "warning",
                            f"id: duplicate of line {first.line} (ignored)",
                            "id",
                        )
                    )
                    event, duplicate = None, True
                elif first.version == event["version"]:
                    issues.append(
                        Issue(
                            row.file,
                            row.line,
                            "error",
                            f"id: {event['entity_id']!r} also on line {first.line} "
                            "with the same version and other values",
                            "id",
                        )
                    )
                    event = None
                else:
                    issues.append(
                        Issue(
                            row.file,
                            row.line,
                            "warning",
                            f"id: {event['entity_id']!r} also on line {first.line} "
                            "(the newer version wins)",
                            "id",
                        )
                    )
            yield Item(row.file, row.line, event, issues, duplicate=duplicate)

    def events(self) -> Iterator[dict[str, Any]]:
        """The valid events only, in order."""
        for item in self.items():
            if item.event is not None:
                yield item.event


def _digest(event_id: str) -> str:
    """The content part of a backfill event id (equal for identical rows of any file)."""
    return event_id.rsplit(":", 1)[-1]


def _skip(spec: EntityMapping, values: dict[str, Any]) -> bool:
    for column, skip_values in spec.skip_when.items():
        value = values.get(column)
        value = value.strip() if isinstance(value, str) else value
        if value in skip_values or (value in (None, "") and None in skip_values):
            return True
    return False
