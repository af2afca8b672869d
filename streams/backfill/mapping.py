"""The declarative backfill mapping: how the rows of a CRM export become canonical events.

A mapping is a YAML file (see ``docs/backfill.md`` and ``deploy/mappings/``) loaded into
:class:`Mapping`. It names the *lookups* (small tables joined by key, e.g. sales teams)
and the *entities*: for each file (pattern) the entity type, the id column, the event
time, the ordering key (``version``) and the fields, links and milestones of the event.

Every value is produced by a :class:`ValueSpec`: a column (or the first non-blank of
several), a constant, or a lookup, then a list of transforms. A blank result (``""``) is
``None``. Checks attached to a value report rows as warnings (kept) or errors (dropped).

>>> m = Mapping.model_validate({"name": "t", "export_time": "2018-01-01T00:00:00Z",
...     "entities": [{"files": "deals.csv", "entity": "deal", "id": "Id",
...                   "fields": {"stage": {"column": "Stage", "transforms": ["strip", "lower"]},
...                              "amount": {"column": "Amount", "transforms": ["number"]}}}]})
>>> spec = m.entities[0]
>>> row = {"Id": "7", "Stage": " Won ", "Amount": "1,054"}
>>> ctx = RowContext(spec, m, {}, row, "deals.csv", 2)
>>> ctx.value(spec.fields["stage"]), ctx.value(spec.fields["amount"], "amount")
('won', None)
>>> ctx.issues[0].message
"amount: not a number: '1,054'"
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import orjson
import yaml
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from streams.schema import ChangeType, EntityType

Level = Literal["error", "warning"]
TransformOp = Literal[
    "strip",
    "lower",
    "upper",
    "title",
    "collapse_spaces",
    "map",
    "replace",
    "regex",
    "prefix",
    "suffix",
    "default",
    "number",
    "integer",
    "scale",
    "date",
    "datetime",
    "bool",
    "null_if",
]
# Ops written as a bare word in YAML (``- strip``); the others take an argument.
TRANSFORM_OPS: tuple[str, ...] = TransformOp.__args__  # type: ignore[attr-defined]
BARE_OPS = {
    "strip",
    "lower",
    "upper",
    "title",
    "collapse_spaces",
    "number",
    "integer",
    "date",
    "datetime",
    "bool",
}

MILESTONE_FIELDS = frozenset(
    {
        "created_at",
        "closed_at",
        "expected_close",
        "qualified_at",
        "converted_at",
        "done_at",
        "started_at",
        "ended_at",
        "churned_at",
        "spent_at",
        "period_start",
        "modified_at",
    }
)
LINK_FIELDS = frozenset(
    {"account_id", "lead_id", "owner", "contact_id", "deal_id", "parent_account_id", "merged_into"}
)
EVENT_ID_MAX = 200


class TransformError(ValueError):
    """A value a transform cannot convert (reported as a row error)."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Transform(Strict):
    """One step of a value pipeline. YAML: ``strip`` or ``{map: {...}}``, ``{date: "%d/%m/%Y"}``.

    ``map``: ``table`` old -> new, ``other`` for values not in the table: ``error``
    (default), ``keep``, ``null`` or any constant; keys are compared as strings.
    ``number``: decimal with optional ``thousands`` separator, ``decimal`` mark and
    characters to ``drop`` (currency symbols); integral numbers become ``int``, others a
    decimal string (never a float, so amounts stay exact).
    ``date``/``datetime``: ``formats`` (strptime; ``iso`` = ISO 8601, ``epoch_ms``,
    ``epoch_s``), ``timezone`` for naive datetimes (default: the mapping's).
    ``scale``: multiply a number by ``value`` exactly (``0.01`` turns percent into 0..1).
    ``default``: ``value`` when blank. ``null_if``: ``values`` that mean blank.
    ``regex``: the first group of ``pattern`` (or the whole match); no match is blank.
    ``replace``: substrings, ``table`` old -> new. ``prefix``/``suffix``: add ``value``.
    """

    op: TransformOp
    table: dict[str, Any] = Field(default_factory=dict)
    other: Any = "error"
    value: Any = None
    values: list[Any] = Field(default_factory=list)
    pattern: str = ""
    formats: list[str] = Field(default_factory=list)
    timezone: str | None = None
    thousands: str = ""
    decimal: str = "."
    drop: str = ""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            if data not in BARE_OPS:
                raise ValueError(f"unknown transform {data!r}")
            return {"op": data}
        ops = [k for k in data if k in TRANSFORM_OPS] if isinstance(data, dict) else []
        if isinstance(data, dict) and "op" not in data and len(ops) == 1:
            op, arg = ops[0], data[ops[0]]
            options = {k: v for k, v in data.items() if k != op}
            if op == "map":
                arg = arg if "table" in (arg or {}) else {"table": arg}
            elif op in ("replace",):
                arg = {"table": arg}
            elif op in ("regex",):
                arg = arg if isinstance(arg, dict) else {"pattern": arg}
            elif op in ("prefix", "suffix", "default", "scale"):
                arg = {"value": arg}
            elif op == "null_if":
                arg = {"values": arg if isinstance(arg, list) else [arg]}
            elif op in ("date", "datetime"):
                if isinstance(arg, str):
                    arg = {"formats": [arg]}
                elif isinstance(arg, list):
                    arg = {"formats": arg}
            return {"op": op, **(arg or {}), **options}
        return data

    def apply(self, value: Any, tz: tzinfo) -> Any:
        """Transform one value; ``None`` passes through all but ``default``."""
        if value is None or value == "":
            return self.value if self.op == "default" else None
        handler = getattr(self, f"_{self.op}")
        return handler(value, tz)

    def _strip(self, v: Any, tz: tzinfo) -> Any:
        return v.strip() if isinstance(v, str) else v

    def _lower(self, v: Any, tz: tzinfo) -> Any:
        return v.lower() if isinstance(v, str) else v

    def _upper(self, v: Any, tz: tzinfo) -> Any:
        return v.upper() if isinstance(v, str) else v

    def _title(self, v: Any, tz: tzinfo) -> Any:
        return v.title() if isinstance(v, str) else v

    def _collapse_spaces(self, v: Any, tz: tzinfo) -> Any:
        return " ".join(v.split()) if isinstance(v, str) else v

    def _map(self, v: Any, tz: tzinfo) -> Any:
        key = str(v).lower() if isinstance(v, bool) else str(v)
        if key in self.table:
            return self.table[key]
        if self.other == "error":
            known = ", ".join(sorted(map(str, self.table)))
            raise TransformError(f"unmapped value {v!r} (known: {known})")
        if self.other == "keep":
            return v
        if self.other == "null":
            return None
        return self.other

    def _replace(self, v: Any, tz: tzinfo) -> Any:
        text = str(v)
        for old, new in self.table.items():
            text = text.replace(old, str(new))
        return text

    def _regex(self, v: Any, tz: tzinfo) -> Any:
        """Keep the first group of ``pattern`` (or the whole match); no match is blank."""
        match = re.search(self.pattern, str(v))
        if match is None:
            return None
        return match.group(1) if match.groups() else match.group(0)

    def _prefix(self, v: Any, tz: tzinfo) -> Any:
        return f"{self.value}{v}"

    def _suffix(self, v: Any, tz: tzinfo) -> Any:
        return f"{v}{self.value}"

    def _default(self, v: Any, tz: tzinfo) -> Any:
        return v

    def _null_if(self, v: Any, tz: tzinfo) -> Any:
        return None if v in self.values or str(v) in map(str, self.values) else v

    def _number(self, v: Any, tz: tzinfo) -> Any:
        if isinstance(v, bool):
            raise TransformError(f"not a number: {v!r}")
        if isinstance(v, int):
            return v
        text = str(v).strip()
        for ch in self.drop:
            text = text.replace(ch, "")
        if self.thousands:
            text = text.replace(self.thousands, "")
        if self.decimal != ".":
            text = text.replace(self.decimal, ".")
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise TransformError(f"not a number: {v!r}") from None
        if not number.is_finite():
            raise TransformError(f"not a finite number: {v!r}")
        if number == number.to_integral_value():
            return int(number)
        return format(number.normalize(), "f")

    def _scale(self, v: Any, tz: tzinfo) -> Any:
        number = self._number(v, tz)
        scaled = Decimal(str(number)) * Decimal(str(self.value))
        if scaled == scaled.to_integral_value():
            return int(scaled)
        return format(scaled.normalize(), "f")

    def _integer(self, v: Any, tz: tzinfo) -> Any:
        number = self._number(v, tz)
        if not isinstance(number, int):
            raise TransformError(f"not an integer: {v!r}")
        return number

    def _bool(self, v: Any, tz: tzinfo) -> Any:
        if isinstance(v, bool):
            return v
        text = str(v).strip().lower()
        if text in ("true", "t", "yes", "y", "1"):
            return True
        if text in ("false", "f", "no", "n", "0"):
            return False
        raise TransformError(f"not a boolean: {v!r}")

    def _date(self, v: Any, tz: tzinfo) -> Any:
        """An ISO date string (``YYYY-MM-DD``): a local business day, no time."""
        parsed = self._parse_time(v, tz, date_only=True)
        return (
            parsed
            if isinstance(parsed, date) and not isinstance(parsed, datetime)
            else parsed.date()
        ).isoformat()

    def _datetime(self, v: Any, tz: tzinfo) -> Any:
        """An ISO 8601 instant with offset; naive values are in the mapping's timezone."""
        parsed = self._parse_time(v, tz, date_only=False)
        if not isinstance(parsed, datetime):
            parsed = datetime.combine(parsed, datetime.min.time())
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=ZoneInfo(self.timezone) if self.timezone else tz)
        return parsed.isoformat()

    def _parse_time(self, v: Any, tz: tzinfo, date_only: bool) -> date | datetime:
        formats = self.formats or (["%Y-%m-%d"] if date_only else ["iso"])
        text = str(v).strip()
        for fmt in formats:
            try:
                if fmt == "iso":
                    if len(text) == 10:
                        return date.fromisoformat(text)
                    return datetime.fromisoformat(text.replace("Z", "+00:00"))
                if fmt == "%Y-%m-%d" and len(text) == 10 and text[4] == text[7] == "-":
                    return date.fromisoformat(text)  # fast path, same result as strptime
                if fmt in ("epoch_ms", "epoch_s"):
                    seconds = Decimal(text) / (1000 if fmt == "epoch_ms" else 1)
                    return datetime.fromtimestamp(0, UTC) + timedelta(seconds=float(seconds))
                parsed = datetime.strptime(text, fmt)
                return (
                    parsed.date() if date_only and "%H" not in fmt and "%I" not in fmt else parsed
                )
            except (ValueError, InvalidOperation, OverflowError):
                continue
        raise TransformError(
            f"not a {'date' if date_only else 'date-time'} ({' or '.join(formats)}): {v!r}"
        )


class Check(Strict):
    """A rule on a mapped value; failing rows are reported with the check's level.

    ``required``: not blank. ``in_lookup``: blank, or a key of ``lookup``. ``one_of``:
    blank, or one of ``values``. ``non_negative``: blank, or a number >= 0. ``when``
    limits the check to rows whose already-mapped fields have one of the given values,
    e.g. ``{status: [won, lost]}``.
    """

    rule: Literal["required", "in_lookup", "one_of", "non_negative"]
    level: Level = "error"
    lookup: str | None = None
    values: list[Any] = Field(default_factory=list)
    when: dict[str, list[Any]] = Field(default_factory=dict)
    message: str | None = None

    @model_validator(mode="after")
    def _arguments(self) -> Check:
        if self.rule == "in_lookup" and not self.lookup:
            raise ValueError("in_lookup needs lookup")
        if self.rule == "one_of" and not self.values:
            raise ValueError("one_of needs values")
        return self


class ValueSpec(Strict):
    """Where a value comes from. YAML shorthand: a bare string is a column name.

    Exactly one of ``column`` (a name, or a list: first non-blank wins), ``value`` (a
    constant) or ``lookup`` (a join: ``key`` is the column of this row looked up in the
    lookup table, ``take`` the lookup column returned).
    """

    column: str | list[str] | None = None
    value: Any = None
    lookup: str | None = None
    key: str | None = None
    take: str | None = None
    transforms: list[Transform] = Field(default_factory=list)
    checks: list[Check] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"column": data}
        return data

    @model_validator(mode="after")
    def _one_source(self) -> ValueSpec:
        sources = [self.column is not None, self.value is not None, self.lookup is not None]
        if sum(sources) != 1:
            raise ValueError("give exactly one of column, value, lookup")
        if self.lookup is not None and (not self.key or not self.take):
            raise ValueError("a lookup needs key (column of this row) and take (lookup column)")
        return self

    @property
    def columns(self) -> list[str]:
        """The input columns this value reads."""
        if self.column is not None:
            return [self.column] if isinstance(self.column, str) else list(self.column)
        return [self.key] if self.key else []


class Lookup(Strict):
    """A table joined by key, read from a file of the export (e.g. ``sales_teams.csv``)."""

    file: str
    key: str
    format: Literal["auto", "csv", "jsonl"] = "auto"
    delimiter: str = ","
    encoding: str = "utf-8-sig"
    case_sensitive: bool = True


VersionSource = Literal["event_time", "export_time"]


class EntityMapping(Strict):
    """How the rows of one file (or file pattern) become events of one entity type."""

    files: str | list[str]
    entity: EntityType
    id: ValueSpec
    change: ChangeType | ValueSpec = "create"
    occurred_at: ValueSpec | None = None
    occurred_at_fallback: Literal["export_time", "error"] = "export_time"
    version: VersionSource | int | ValueSpec = "event_time"
    fields: dict[str, ValueSpec] = Field(default_factory=dict)
    links: dict[str, ValueSpec] = Field(default_factory=dict)
    milestones: dict[str, ValueSpec] = Field(default_factory=dict)
    skip_when: dict[str, list[Any]] = Field(default_factory=dict)
    format: Literal["auto", "csv", "jsonl"] = "auto"
    delimiter: str = ","
    encoding: str = "utf-8-sig"
    header_line: int = 1

    @model_validator(mode="before")
    @classmethod
    def _file_alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and "file" in data and "files" not in data:
            data = {**data, "files": data["file"]}
            del data["file"]
        return data

    @model_validator(mode="after")
    def _sections(self) -> EntityMapping:
        unknown = set(self.milestones) - MILESTONE_FIELDS
        if unknown:
            raise ValueError(
                f"unknown milestones {sorted(unknown)}; known: {sorted(MILESTONE_FIELDS)}"
            )
        bad_links = set(self.links) - LINK_FIELDS
        if bad_links:
            raise ValueError(f"unknown links {sorted(bad_links)}; known: {sorted(LINK_FIELDS)}")
        seen: set[str] = set()
        for section in (self.fields, self.links, self.milestones):
            clash = seen & set(section)
            if clash:
                raise ValueError(f"fields mapped twice: {sorted(clash)}")
            seen |= set(section)
        return self

    @property
    def patterns(self) -> list[str]:
        return [self.files] if isinstance(self.files, str) else list(self.files)

    def all_fields(self) -> dict[str, ValueSpec]:
        """Fields, links and milestones in one dict (the order checks may rely on)."""
        return {**self.fields, **self.links, **self.milestones}


class Mapping(Strict):
    """A complete backfill mapping (one CRM export layout)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=60)
    description: str = ""
    source: str = Field("backfill", min_length=1, max_length=40)
    timezone: str = "UTC"
    export_time: AwareDatetime | None = None
    lookups: dict[str, Lookup] = Field(default_factory=dict)
    entities: list[EntityMapping] = Field(min_length=1)

    @model_validator(mode="after")
    def _references(self) -> Mapping:
        ZoneInfo(self.timezone)
        for spec in self.entities:
            values = [spec.id, *spec.all_fields().values()]
            values += [
                v for v in (spec.change, spec.version, spec.occurred_at) if isinstance(v, ValueSpec)
            ]
            for v in values:
                names: list[str | None] = [v.lookup] if v.lookup else []
                names += [c.lookup for c in v.checks if c.rule == "in_lookup"]
                for name in names:
                    if name not in self.lookups:
                        raise ValueError(f"unknown lookup {name!r}")
            needs_export_time = spec.version == "export_time" or (
                spec.occurred_at_fallback == "export_time"
            )
            if needs_export_time and self.export_time is None:
                raise ValueError(
                    f"entity {spec.entity}: export_time is needed (version or occurred_at fallback)"
                )
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def load(cls, path: str | Path, export_time: datetime | None = None) -> Mapping:
        """Read a mapping YAML file (``export_time`` overrides the file's)."""
        data = yaml.safe_load(Path(path).read_text()) or {}
        if export_time is not None:
            data["export_time"] = export_time
        return cls.model_validate(data)

    def digest(self) -> str:
        """SHA-256 of the mapping's canonical JSON (part of a backfill's fingerprint)."""
        return hashlib.sha256(
            orjson.dumps(self.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
        ).hexdigest()


@dataclass(slots=True)
class Issue:
    """A problem with one row (or one file, ``line`` 0)."""

    file: str
    line: int
    level: Level
    message: str
    field: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.level}: {self.message}"


class LookupTable:
    """Rows of a lookup file indexed by key."""

    def __init__(self, name: str, spec: Lookup, rows: dict[str, dict[str, Any]], file: str) -> None:
        self.name, self.spec, self.rows, self.file = name, spec, rows, file

    def norm(self, key: Any) -> str:
        text = "" if key is None else str(key).strip()
        return text if self.spec.case_sensitive else text.casefold()

    def get(self, key: Any) -> dict[str, Any] | None:
        return self.rows.get(self.norm(key))

    def __contains__(self, key: Any) -> bool:
        return self.norm(key) in self.rows


@dataclass(slots=True)
class RowContext:
    """Mapping one row: collects values and issues."""

    spec: EntityMapping
    mapping: Mapping
    lookups: dict[str, LookupTable]
    row: dict[str, Any]
    file: str
    line: int
    issues: list[Issue] = field(default_factory=list)
    mapped: dict[str, Any] = field(default_factory=dict)

    def issue(self, level: Level, message: str, name: str = "") -> None:
        self.issues.append(Issue(self.file, self.line, level, message, name))

    @property
    def has_errors(self) -> bool:
        return any(i.level == "error" for i in self.issues)

    def raw(self, spec: ValueSpec, name: str) -> Any:
        if spec.value is not None:
            return spec.value
        if spec.lookup is not None:
            table = self.lookups[spec.lookup]
            found = table.get(self.row.get(spec.key or ""))
            if found is None:
                return None
            if spec.take not in found:
                self.issue(
                    "error", f"{name}: lookup {spec.lookup} has no column {spec.take!r}", name
                )
                return None
            return found[spec.take]
        for column in spec.columns:
            if column not in self.row:
                self.issue("error", f"{name}: no column {column!r} in {self.file}", name)
                return None
            value = self.row[column]
            if value is not None and value != "":
                return value
        return None

    def value(self, spec: ValueSpec, name: str = "") -> Any:
        """The mapped value (transforms applied, blank as ``None``) after its checks."""
        value = self.raw(spec, name)
        for transform in spec.transforms:
            try:
                value = transform.apply(value, self.mapping.tz)
            except TransformError as exc:
                self.issue("error", f"{name}: {exc}", name)
                return None
        if value == "":
            value = None
        for check in spec.checks:
            self._check(check, name, value)
        return value

    def _check(self, check: Check, name: str, value: Any) -> None:
        for other, allowed in check.when.items():
            if self.mapped.get(other) not in allowed:
                return
        failed = ""
        if check.rule == "required":
            failed = "" if value is not None else "is blank"
        elif value is None:
            return
        elif check.rule == "in_lookup":
            table = self.lookups[check.lookup or ""]
            if value not in table:
                failed = f"{value!r} is not a {table.spec.key} of {table.file}"
        elif check.rule == "one_of":
            if value not in check.values:
                failed = f"{value!r} is not one of {check.values}"
        elif check.rule == "non_negative":
            try:
                negative = Decimal(str(value)) < 0
            except InvalidOperation:
                negative = True
            failed = f"{value!r} is negative" if negative else ""
        if failed:
            text = f"{name}: {failed}" + (f" ({check.message})" if check.message else "")
            self.issue(check.level, text, name)


def _time_value(value: Any, tz: tzinfo) -> datetime | None:
    """An aware datetime from an ISO date (local midnight) or ISO date-time string."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=tz)
    text = str(value)
    if len(text) == 10:
        return datetime.combine(date.fromisoformat(text), datetime.min.time(), tz)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def event_id_for(file: str, entity_id: str, body: dict[str, Any]) -> str:
    """Deterministic event id: same file, id and content give the same id on every run."""
    digest = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]
    name = file.replace("|", "/").replace("\n", " ")
    event_id = f"backfill:{name}:{entity_id}:{digest}"
    if len(event_id) > EVENT_ID_MAX:
        short = hashlib.sha256(f"{name}:{entity_id}".encode()).hexdigest()[:24]
        event_id = f"backfill:{short}:{digest}"
    return event_id


def map_row(
    spec: EntityMapping,
    mapping: Mapping,
    lookups: dict[str, LookupTable],
    row: dict[str, Any],
    file: str,
    line: int,
) -> tuple[dict[str, Any] | None, list[Issue]]:
    """One row to one wire event (``None`` if the row has errors), with its issues."""
    ctx = RowContext(spec, mapping, lookups, row, file, line)
    if "__error__" in row:
        ctx.issue("error", str(row["__error__"]))
        return None, ctx.issues
    if "__extra__" in row:
        ctx.issue("warning", f"{len(row['__extra__'])} more values than header columns")
    entity_id = ctx.value(spec.id, "id")
    if entity_id is None and not ctx.has_errors:
        ctx.issue("error", "id: is blank", "id")
    for name, value_spec in spec.all_fields().items():
        value = ctx.value(value_spec, name)
        if name in MILESTONE_FIELDS and value is not None:
            try:
                _time_value(value, mapping.tz)
            except (ValueError, TypeError):
                ctx.issue(
                    "error",
                    f"{name}: not a date or date-time: {value!r} "
                    "(add a date or datetime transform)",
                    name,
                )
        ctx.mapped[name] = value
    change = spec.change if isinstance(spec.change, str) else ctx.value(spec.change, "change")
    occurred = _occurred_at(ctx)
    version = _version(ctx, occurred)
    if ctx.has_errors:
        return None, ctx.issues
    entity_id = str(entity_id)
    if "|" in entity_id or "\n" in entity_id:
        ctx.issue("error", f"id: {entity_id!r} contains '|' or a newline", "id")
        return None, ctx.issues
    assert occurred is not None and version is not None
    body: dict[str, Any] = {
        "entity": spec.entity,
        "entity_id": entity_id,
        "change": change,
        "occurred_at": occurred.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "version": version,
        "fields": ctx.mapped,
    }
    merged = ctx.mapped.get("merged_into")
    if change == "merge" and merged:
        body["merged_into"] = str(merged)
    event = {
        "v": 1,
        "event_id": event_id_for(file, entity_id, body),
        "source": mapping.source,
        **body,
    }
    return event, ctx.issues


def _occurred_at(ctx: RowContext) -> datetime | None:
    spec, mapping = ctx.spec, ctx.mapping
    value = ctx.value(spec.occurred_at, "occurred_at") if spec.occurred_at else None
    try:
        moment = _time_value(value, mapping.tz)
    except (ValueError, TypeError):
        ctx.issue("error", f"occurred_at: not a date or date-time: {value!r}", "occurred_at")
        return None
    if moment is None:
        if spec.occurred_at_fallback == "export_time" and mapping.export_time is not None:
            return mapping.export_time
        ctx.issue("error", "occurred_at: is blank", "occurred_at")
    return moment


def _version(ctx: RowContext, occurred: datetime | None) -> int | None:
    spec, mapping = ctx.spec, ctx.mapping
    if isinstance(spec.version, int) and not isinstance(spec.version, bool):
        return spec.version
    if spec.version == "event_time":
        return None if occurred is None else _ms(occurred)
    if spec.version == "export_time":
        assert mapping.export_time is not None
        return _ms(mapping.export_time)
    assert isinstance(spec.version, ValueSpec)
    value = ctx.value(spec.version, "version")
    if value is None:
        ctx.issue("error", "version: is blank", "version")
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        moment = _time_value(value, mapping.tz)
    except (ValueError, TypeError):
        moment = None
    if moment is None:
        ctx.issue("error", f"version: not an integer or a date-time: {value!r}", "version")
        return None
    return _ms(moment)
