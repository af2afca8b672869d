"""Reading CRM exports: CSV and JSON-lines rows, each with the line it starts on.

A row is a flat ``dict`` of column name to value. CSV values are strings exactly as in the
file (no stripping; transforms in the mapping decide). JSON-lines objects are flattened:
nested objects become dotted column names (``{"properties": {"amount": "10"}}`` gives the
column ``properties.amount``), lists are kept as values.

Line numbers are 1-based physical lines of the file: the CSV header is line 1, so the
first data row is line 2; a quoted value spanning several lines gives the line the row
starts on. JSON-lines count every line, blank ones included.

>>> import io
>>> rows = list(iter_csv(io.StringIO("id,name\\n1,Ann\\n2,\\"Bob\\nJr\\"\\n3,Cy\\n")))
>>> [(r.line, r.values["name"]) for r in rows]
[(2, 'Ann'), (3, 'Bob\\nJr'), (5, 'Cy')]
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import orjson

FORMATS = ("csv", "jsonl")


class ReadError(ValueError):
    """A file that cannot be read at all (missing, bad header, not JSON-lines)."""


@dataclass(frozen=True, slots=True)
class Row:
    """One record of an export file."""

    file: str  # file name as shown in reports (relative to the export folder)
    line: int
    values: dict[str, Any]


def detect_format(path: Path, declared: str = "auto") -> str:
    """``csv`` or ``jsonl``: the declared format, else from the file extension."""
    if declared != "auto":
        return declared
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    return "csv"


def iter_csv(
    handle: TextIO, delimiter: str = ",", file: str = "", header_line: int = 1
) -> Iterator[Row]:
    """Rows of a CSV stream (header on line ``header_line``), with their start line."""
    reader = csv.reader(handle, delimiter=delimiter)
    header: list[str] | None = None
    start = 1
    for record in reader:
        line, start = start, reader.line_num + 1
        if header is None:
            if line < header_line:
                continue
            header = [h.strip() for h in record]
            if not any(header):
                raise ReadError(f"{file}: empty header on line {line}")
            continue
        if not record or record == [""]:
            continue  # blank line
        values: dict[str, Any] = dict(zip(header, record, strict=False))
        if len(record) < len(header):
            values.update({h: "" for h in header[len(record) :]})
        elif len(record) > len(header):
            values["__extra__"] = record[len(header) :]
        yield Row(file, line, values)
    if header is None:
        raise ReadError(f"{file}: no header line")


def flatten(obj: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested objects as dotted keys: ``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def iter_jsonl(handle: TextIO, file: str = "") -> Iterator[Row]:
    """Rows of a JSON-lines stream: one object per line, blank lines skipped."""
    for line, text in enumerate(handle, start=1):
        if not text.strip():
            continue
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            yield Row(file, line, {"__error__": f"not JSON: {exc}"})
            continue
        if not isinstance(obj, dict):
            yield Row(file, line, {"__error__": "not a JSON object"})
            continue
        yield Row(file, line, flatten(obj))


def read_rows(
    path: Path,
    name: str,
    fmt: str = "auto",
    delimiter: str = ",",
    encoding: str = "utf-8-sig",
    header_line: int = 1,
) -> Iterator[Row]:
    """Rows of one export file; ``name`` is how the file is called in reports."""
    if not path.is_file():
        raise ReadError(f"{name}: no such file ({path})")
    with path.open(encoding=encoding, newline="") as handle:
        if detect_format(path, fmt) == "jsonl":
            yield from iter_jsonl(handle, name)
        else:
            yield from iter_csv(handle, delimiter, name, header_line)


def count_rows(path: Path, fmt: str = "auto", encoding: str = "utf-8-sig") -> int:
    """A quick estimate of the data rows of a file (for progress bars)."""
    with path.open(encoding=encoding, newline="") as handle:
        lines = sum(1 for text in handle if text.strip())
    return lines if detect_format(path, fmt) == "jsonl" else max(lines - 1, 0)


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
