"""Backfill mapping: transforms, checks, row -> event, readers, export folders (no services)."""

from __future__ import annotations

import doctest
import importlib
import io
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from state.processor import PartitionState
from state.readout import Period, Readout
from state.rules import Rules
from streams.backfill.dryrun import dry_run
from streams.backfill.export import Export
from streams.backfill.mapping import Mapping, Transform, TransformError, ValueSpec, map_row
from streams.backfill.reader import iter_csv, iter_jsonl
from streams.backfill.validate import compact_lines, validate
from streams.schema import CrmEvent

REPO = Path(__file__).resolve().parents[3]
MAPPINGS = REPO / "deploy" / "mappings"
UTC = ZoneInfo("UTC")


def t(spec: Any) -> Transform:
    return Transform.model_validate(spec)


# --- transforms ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        ("strip", "  Won ", "Won"),
        ("lower", "Won", "won"),
        ("upper", "usd", "USD"),
        ("collapse_spaces", " a   b ", "a b"),
        ({"map": {"Won": "won"}, "other": "keep"}, "Engaging", "Engaging"),
        ({"map": {"Won": "won"}, "other": "null"}, "Engaging", None),
        ({"map": {"Won": "won"}, "other": "open"}, "Engaging", "open"),
        ({"map": {"true": "delete"}}, True, "delete"),
        ("number", "1054", 1054),
        ("number", "0", 0),
        ("number", "12.50", "12.5"),
        ({"number": {"thousands": ",", "drop": "$ "}}, "$ 1,234.00", 1234),
        ({"number": {"thousands": ".", "decimal": ","}}, "1.234,56", "1234.56"),
        ({"scale": "0.01"}, "35", "0.35"),
        ({"scale": "0.01"}, "100", 1),
        ("integer", "2822", 2822),
        ("date", "2017-03-01", "2017-03-01"),
        ({"date": "%m/%d/%Y"}, "3/1/2017", "2017-03-01"),
        ({"date": ["%d.%m.%Y", "%Y-%m-%d"]}, "2017-03-01", "2017-03-01"),
        ({"date": "%m/%d/%Y %I:%M %p"}, "3/1/2017 11:30 PM", "2017-03-01"),
        ("datetime", "2017-03-01T10:00:00Z", "2017-03-01T10:00:00+00:00"),
        ({"datetime": "%Y-%m-%d %H:%M"}, "2017-03-01 10:00", "2017-03-01T10:00:00+00:00"),
        (
            {"datetime": {"formats": ["%Y-%m-%d %H:%M"], "timezone": "America/New_York"}},
            "2017-03-01 10:00",
            "2017-03-01T10:00:00-05:00",
        ),
        ({"datetime": "epoch_ms"}, "1488362400000", "2017-03-01T10:00:00+00:00"),
        ("bool", "Yes", True),
        ("bool", "0", False),
        ({"default": "USD"}, "", "USD"),
        ({"default": "USD"}, None, "USD"),
        ({"prefix": "sf:"}, "006A", "sf:006A"),
        ({"regex": "^([^;]+)"}, "123;456", "123"),
        ({"replace": {"-": ""}}, "a-b-c", "abc"),
        ({"null_if": ["N/A", "-"]}, "N/A", None),
        ("strip", None, None),
        ("number", "", None),
    ],
)
def test_transforms(spec: Any, value: Any, expected: Any) -> None:
    assert t(spec).apply(value, UTC) == expected


@pytest.mark.parametrize(
    ("spec", "value", "message"),
    [
        ({"map": {"Won": "won"}}, "Closed", "unmapped value 'Closed'"),
        ("number", "1,054", "not a number"),
        ("number", "NaN", "not a finite number"),
        ("integer", "1.5", "not an integer"),
        ("date", "03/01/2017", "not a date"),
        ("datetime", "yesterday", "not a date-time"),
        ("bool", "maybe", "not a boolean"),
    ],
)
def test_transform_errors(spec: Any, value: Any, message: str) -> None:
    with pytest.raises(TransformError, match=message):
        t(spec).apply(value, UTC)


def test_transform_shorthand_rejects_unknown_ops() -> None:
    with pytest.raises(ValidationError, match="unknown transform"):
        t("capitalize")
    with pytest.raises(ValidationError):
        t({"map": {"a": "b"}, "bogus": 1})


def test_value_spec_needs_one_source() -> None:
    assert ValueSpec.model_validate("Stage").column == "Stage"
    with pytest.raises(ValidationError, match="exactly one"):
        ValueSpec.model_validate({"column": "a", "value": 1})
    with pytest.raises(ValidationError, match="needs key"):
        ValueSpec.model_validate({"lookup": "teams"})


# --- mapping rows to events ----------------------------------------------------------------

BASE: dict[str, Any] = {
    "name": "t",
    "source": "test",
    "export_time": "2018-01-01T00:00:00Z",
    "lookups": {"teams": {"file": "teams.csv", "key": "agent"}},
    "entities": [
        {
            "files": "deals*.csv",
            "entity": "deal",
            "id": "id",
            "occurred_at": {"column": ["closed", "engaged"], "transforms": ["date"]},
            "version": "export_time",
            "fields": {
                "status": {
                    "column": "stage",
                    "transforms": [
                        "strip",
                        "lower",
                        {"map": {"won": "won", "lost": "lost", "engaging": "open"}},
                    ],
                },
                "amount": {
                    "column": "value",
                    "transforms": ["number"],
                    "checks": [{"rule": "required", "when": {"status": ["won"]}}],
                },
                "currency": {"value": "USD"},
                "team": {"lookup": "teams", "key": "agent", "take": "manager"},
            },
            "links": {
                "owner": {
                    "column": "agent",
                    "checks": [{"rule": "in_lookup", "lookup": "teams", "level": "warning"}],
                },
                "account_id": {
                    "column": "account",
                    "transforms": ["strip"],
                    "checks": [
                        {"rule": "required", "level": "warning", "message": "blank account"}
                    ],
                },
            },
            "milestones": {
                "created_at": {"column": "engaged", "transforms": ["date"]},
                "closed_at": {
                    "column": "closed",
                    "transforms": ["date"],
                    "checks": [{"rule": "required", "when": {"status": ["won", "lost"]}}],
                },
            },
        }
    ],
}


@pytest.fixture
def mapping() -> Mapping:
    return Mapping.model_validate(BASE)


def _row(**values: str) -> dict[str, str]:
    row = {
        "id": "D1",
        "agent": "Ann",
        "account": "Acme",
        "stage": "Won",
        "engaged": "2017-01-02",
        "closed": "2017-03-01",
        "value": "1054",
    }
    return {**row, **values}


def _map(mapping: Mapping, row: dict[str, str], lookups: Any = None):
    from streams.backfill.mapping import Lookup, LookupTable

    if lookups is None:
        lookups = {
            "teams": LookupTable(
                "teams",
                Lookup(file="teams.csv", key="agent"),
                {"Ann": {"agent": "Ann", "manager": "Mel"}},
                "teams.csv",
            )
        }
    return map_row(mapping.entities[0], mapping, lookups, row, "deals.csv", 7)


def test_row_to_canonical_event(mapping: Mapping) -> None:
    event, issues = _map(mapping, _row())
    assert issues == []
    assert event is not None
    CrmEvent.model_validate(event)  # a valid canonical event
    assert event["entity"] == "deal" and event["entity_id"] == "D1"
    assert event["source"] == "test" and event["change"] == "create"
    assert event["occurred_at"] == "2017-03-01T00:00:00Z"
    assert event["version"] == 1514764800000  # the export time, in ms
    assert event["fields"] == {
        "status": "won",
        "amount": 1054,
        "currency": "USD",
        "team": "Mel",
        "owner": "Ann",
        "account_id": "Acme",
        "created_at": "2017-01-02",
        "closed_at": "2017-03-01",
    }
    assert event["event_id"].startswith("backfill:deals.csv:D1:")


def test_event_ids_are_deterministic_and_content_addressed(mapping: Mapping) -> None:
    first, _ = _map(mapping, _row())
    again, _ = _map(mapping, _row())
    changed, _ = _map(mapping, _row(value="2000"))
    assert first == again
    assert changed is not None and first is not None
    assert changed["event_id"] != first["event_id"]


def test_occurred_at_falls_back(mapping: Mapping) -> None:
    event, _ = _map(mapping, _row(stage="Engaging", closed="", value=""))
    assert event is not None and event["occurred_at"] == "2017-01-02T00:00:00Z"
    event, _ = _map(mapping, _row(stage="Engaging", closed="", engaged="", value=""))
    assert event is not None and event["occurred_at"] == "2018-01-01T00:00:00Z"


def test_blank_values_are_none_and_warnings_keep_the_row(mapping: Mapping) -> None:
    event, issues = _map(mapping, _row(account="  ", agent="Zed"))
    assert event is not None
    assert event["fields"]["account_id"] is None
    assert event["fields"]["team"] is None  # Zed is in no team
    assert [(i.level, i.line, i.field) for i in issues] == [
        ("warning", 7, "owner"),
        ("warning", 7, "account_id"),
    ]
    assert "blank account" in issues[1].message
    assert "'Zed' is not a agent of teams.csv" in issues[0].message


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        ({"stage": "Pending"}, "status", "unmapped value 'pending'"),
        ({"value": "12,5"}, "amount", "not a number"),
        ({"value": ""}, "amount", "is blank"),  # won needs an amount
        ({"closed": ""}, "closed_at", "is blank"),  # closed needs a close date
        ({"closed": "1/3/2017"}, "closed_at", "not a date"),
        ({"id": ""}, "id", "is blank"),
        ({"id": "a|b"}, "id", "contains '|'"),
    ],
)
def test_row_errors_drop_the_row(
    mapping: Mapping, row: dict[str, str], field: str, message: str
) -> None:
    event, issues = _map(mapping, _row(**row))
    assert event is None
    errors = [i for i in issues if i.level == "error"]
    assert errors and errors[0].field == field and message in errors[0].message
    assert errors[0].line == 7


def test_missing_column_is_an_error(mapping: Mapping) -> None:
    row = _row()
    del row["stage"]
    event, issues = _map(mapping, row)
    assert event is None and "no column 'stage'" in issues[0].message


def test_version_options() -> None:
    data = json.loads(json.dumps(BASE))
    spec = data["entities"][0]
    for version, expected in [("event_time", 1488326400000), (42, 42)]:
        spec["version"] = version
        event, _ = _map(Mapping.model_validate(data), _row())
        assert event is not None and event["version"] == expected
    spec["version"] = {"column": "modified", "transforms": ["datetime"]}
    event, _ = _map(Mapping.model_validate(data), _row(modified="2017-05-01T00:00:01Z"))
    assert event is not None and event["version"] == 1493596801000
    event, issues = _map(Mapping.model_validate(data), _row(modified=""))
    assert event is None and issues[0].field == "version"


def test_change_from_a_column() -> None:
    data = json.loads(json.dumps(BASE))
    data["entities"][0]["change"] = {
        "column": "deleted",
        "transforms": ["bool", {"map": {"true": "delete", "false": "update"}}],
    }
    event, _ = _map(Mapping.model_validate(data), _row(deleted="yes"))
    assert event is not None and event["change"] == "delete"


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"milestones": {"won_at": "x"}}, "unknown milestones"),
        ({"links": {"company": "x"}}, "unknown links"),
        ({"fields": {"owner": "x"}}, "mapped twice"),
        ({"fields": {"team": {"lookup": "nope", "key": "a", "take": "b"}}}, "unknown lookup"),
        ({"entity": "opportunity"}, "entity"),
    ],
)
def test_invalid_mappings_are_rejected(patch: dict[str, Any], message: str) -> None:
    data = json.loads(json.dumps(BASE))
    data["entities"][0].update(patch)
    with pytest.raises(ValidationError, match=message):
        Mapping.model_validate(data)


def test_export_time_required_when_used() -> None:
    data = json.loads(json.dumps(BASE))
    del data["export_time"]
    with pytest.raises(ValidationError, match="export_time is needed"):
        Mapping.model_validate(data)


@pytest.mark.parametrize("path", sorted(MAPPINGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_mappings_load(path: Path) -> None:
    mapping = Mapping.load(path)
    assert mapping.name == path.stem
    assert len(mapping.digest()) == 64


def test_three_mappings_are_shipped() -> None:
    assert {p.stem for p in MAPPINGS.glob("*.yaml")} >= {
        "crm-sales-opportunities",
        "hubspot-deals-export",
        "salesforce-opportunities-report",
    }


# --- readers -------------------------------------------------------------------------------


def test_csv_line_numbers_follow_physical_lines() -> None:
    text = 'id,note\n1,plain\n\n2,"two\nlines"\n3,"x"\n4\n5,a,b\n'
    rows = list(iter_csv(io.StringIO(text), file="f.csv"))
    assert [(r.line, r.values["id"]) for r in rows] == [
        (2, "1"),
        (4, "2"),
        (6, "3"),
        (7, "4"),
        (8, "5"),
    ]
    assert rows[1].values["note"] == "two\nlines"
    assert rows[3].values["note"] == ""  # short row padded
    assert rows[4].values["__extra__"] == ["b"]


def test_jsonl_rows_are_flattened_with_line_numbers() -> None:
    text = '{"id": "1", "properties": {"amount": "10", "stage": {"label": "Won"}}}\n\n[1]\n{bad\n'
    rows = list(iter_jsonl(io.StringIO(text), "d.jsonl"))
    assert rows[0].line == 1
    assert rows[0].values == {"id": "1", "properties.amount": "10", "properties.stage.label": "Won"}
    assert [(r.line, r.values["__error__"][:8]) for r in rows[1:]] == [
        (3, "not a JS"),
        (4, "not JSON"),
    ]


def test_compact_lines() -> None:
    assert compact_lines([9, 2, 3, 4, 7]) == "2-4, 7, 9"
    assert compact_lines(list(range(1, 40, 2)), limit=3) == "1, 3, 5 … (+17 more)"


# --- export folders ------------------------------------------------------------------------


def _write(folder: Path, name: str, text: str) -> None:
    (folder / name).write_text(text)


@pytest.fixture
def export_dir(tmp_path: Path) -> Path:
    _write(tmp_path, "teams.csv", "agent,manager\nAnn,Mel\nBob,Mel\n")
    _write(
        tmp_path,
        "deals-1.csv",
        "id,agent,account,stage,engaged,closed,value\n"
        "D1,Ann,Acme,Won,2017-01-02,2017-03-01,1000\n"
        "D2,Bob,,Lost,2017-01-05,2017-03-02,0\n"
        "D3,Ann,Acme,Engaging,2017-02-01,,\n",
    )
    _write(
        tmp_path,
        "deals-2.csv",
        "id,agent,account,stage,engaged,closed,value\n"
        "D4,Bob,Beta,Won,2017-02-01,2017-04-11,500\n"
        "D1,Ann,Acme,Won,2017-01-02,2017-03-01,1000\n"
        "D5,Ann,Acme,Won,2017-02-01,,7\n"
        "D4,Bob,Beta,Won,2017-02-01,2017-04-11,900\n",
    )
    _write(tmp_path, "notes.txt", "not part of the export\n")
    return tmp_path


def test_export_folder_loads_all_files_in_order(export_dir: Path, mapping: Mapping) -> None:
    export = Export.open(export_dir, mapping)
    assert [p.name for _, p in export.files] == ["deals-1.csv", "deals-2.csv"]
    items = list(export.items())
    assert [(i.file, i.line, i.event is not None) for i in items] == [
        ("deals-1.csv", 2, True),
        ("deals-1.csv", 3, True),
        ("deals-1.csv", 4, True),
        ("deals-2.csv", 2, True),
        ("deals-2.csv", 3, False),
        ("deals-2.csv", 4, False),
        ("deals-2.csv", 5, False),
    ]
    assert items[4].duplicate and "duplicate of line 2" in items[4].issues[0].message
    assert items[5].invalid and items[5].issues[0].field == "closed_at"
    assert items[6].invalid and "same version" in items[6].issues[0].message


def test_single_file_of_an_export(export_dir: Path, mapping: Mapping) -> None:
    export = Export.open(export_dir / "deals-2.csv", mapping)
    assert [p.name for _, p in export.files] == ["deals-2.csv"]
    assert "teams" in export.lookups  # lookups come from the file's folder


def test_file_name_outside_the_patterns(export_dir: Path, mapping: Mapping) -> None:
    (export_dir / "renamed.csv").write_text((export_dir / "deals-1.csv").read_text())
    export = Export.open(export_dir / "renamed.csv", mapping)  # the only entity: accepted
    assert len(list(export.events())) == 3
    assert Export.open(export_dir, mapping).files[0][1].name == "deals-1.csv"


def test_fingerprint_changes_with_any_input(export_dir: Path, mapping: Mapping) -> None:
    first = Export.open(export_dir, mapping).fingerprint()
    assert Export.open(export_dir, mapping).fingerprint() == first
    (export_dir / "teams.csv").write_text("agent,manager\nAnn,Mel\nBob,Sue\n")
    assert Export.open(export_dir, mapping).fingerprint() != first


def test_validate_report(export_dir: Path, mapping: Mapping) -> None:
    report = validate(Export.open(export_dir, mapping))
    assert not report["ok"]
    assert report["input"]["rows"] == 7 and report["input"]["events"] == 4
    assert report["input"]["invalid_rows"] == 2 and report["input"]["duplicate_rows"] == 1
    by_reason = {(g["level"], g["reason"]): g["lines"] for g in report["summary"]}
    assert by_reason[("warning", "account_id: is blank (blank account)")] == [3]
    assert any(lvl == "error" and "closed_at" in r for lvl, r in by_reason)


def test_dry_run_small_export(export_dir: Path, mapping: Mapping) -> None:
    report = dry_run(Export.open(export_dir, mapping), Rules())
    totals = report["kpis"]["totals"]
    assert totals["deals_won"] == 2 and totals["deals_lost"] == 1
    assert totals["won_revenue"] == 1500 and totals["open_deals"] == 1
    assert totals["win_rate"] == pytest.approx(2 / 3)
    assert totals["new_customers"] == 2  # Acme and Beta, through the deals' links
    assert report["kpis"]["by"]["team"]["Mel"]["won_revenue"] == 1500
    assert set(report["kpis"]["by_close_quarter"]) == {"2017-Q1", "2017-Q2"}
    assert report["engine"]["events_applied"] == 4


def test_dry_run_is_idempotent_on_the_engine(export_dir: Path, mapping: Mapping) -> None:
    events = list(Export.open(export_dir, mapping).events())
    state = PartitionState(Rules(), {})
    first = [o.status for o in state.apply_all(events)]
    again = [o.status for o in state.apply_all(events)]
    assert set(first) == {"applied"} and set(again) == {"duplicate"}
    assert Readout(state.aggregates.values).value("won_revenue", Period()) == 1500


# --- the other shipped mappings on small exports --------------------------------------------


def test_hubspot_mapping(tmp_path: Path) -> None:
    _write(tmp_path, "owners.csv", "owner,team,office\nann lee,EMEA,London\n")
    _write(
        tmp_path,
        "deals-2023.csv",
        "Record ID,Deal Name,Deal Stage,Close Date,Deal owner,Amount,Create Date,Pipeline,"
        "Last Modified Date,Associated Company IDs,Currency,Original Source Type\n"
        '101,Big,Closed Won,2023-05-17 14:03,Ann Lee,"12,500.50",2023-04-01 09:00,'
        "Sales Pipeline,2023-05-18 10:00,9001;9002,EUR,Organic Search\n"
        "102,Small,Contract Sent,2023-07-01 00:00,Ann Lee,300,2023-05-01 09:00,"
        "Sales Pipeline,2023-06-01 10:00,,,\n"
        ",,,,,,,,,,,\n",
    )
    export = Export.open(tmp_path, Mapping.load(MAPPINGS / "hubspot-deals-export.yaml"))
    items = list(export.items())
    assert [i.issues for i in items] == [[], [], []]
    won, open_ = items[0].event, items[1].event
    assert items[2].skipped
    assert won is not None and open_ is not None
    assert won["version"] == 1684418400000  # 2023-05-18 10:00 New York, in ms
    assert won["fields"]["status"] == "won" and won["fields"]["amount"] == "12500.5"
    assert won["fields"]["currency"] == "EUR" and won["fields"]["account_id"] == "9001"
    assert won["fields"]["team"] == "EMEA" and won["fields"]["office"] == "London"
    assert won["fields"]["closed_at"] == "2023-05-17T14:03:00-04:00"
    assert open_["fields"]["status"] == "open" and open_["fields"]["stage"] == "negotiation"
    assert open_["fields"]["probability"] == "0.9"
    assert open_["fields"]["currency"] == "USD"
    assert open_["fields"]["expected_close"] == "2023-07-01"
    rules = Rules(fx_rates={"EUR": {"2023-01-01": "1.10"}})
    report = dry_run(export, rules)
    assert report["kpis"]["totals"]["won_revenue"] == pytest.approx(13750.55)
    assert report["kpis"]["totals"]["weighted_pipeline"] == 270


def test_salesforce_mapping(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "opportunities.csv",
        "\ufeffOpportunity ID,Opportunity Name,Account ID,Opportunity Owner,Owner Role,Stage,"
        "Amount,Amount Currency,Probability (%),Created Date,Close Date,Lead Source,Type,"
        "Last Modified Date\n"
        "0065g00000AbCdEAAV,Deal A,0015g00000XyZ1AAK,Jane Roe,West Sales,Closed Won,"
        '"1,250.00",USD,100,1/15/2023,3/31/2023,Web,New Business,3/31/2023\n'
        "0065g00000AbCdFAAV,Deal B,,Jane Roe,West Sales,Proposal/Price Quote,"
        "800,USD,35,2/1/2023,6/30/2023,Partner,New Business,4/2/2023\n"
        "\n"
        '"Opportunities Report"\n'
        '"Copyright (c) 2000-2023 salesforce.com, inc. All rights reserved."\n'
        '"Confidential Information - Do Not Distribute"\n',
    )
    export = Export.open(tmp_path, Mapping.load(MAPPINGS / "salesforce-opportunities-report.yaml"))
    report = validate(export)
    assert report["ok"] and report["input"]["events"] == 2
    assert report["input"]["skipped_rows"] == 3  # the footer
    events = list(export.events())
    assert events[0]["entity_id"] == "0065g00000AbCdEAAV"
    assert events[0]["fields"]["amount"] == 1250
    assert events[0]["fields"]["closed_at"] == "2023-03-31"
    assert events[0]["occurred_at"] == "2023-03-31T07:00:00Z"  # midnight Los Angeles
    assert events[1]["fields"]["stage"] == "proposal"
    assert events[1]["fields"]["probability"] == "0.35"
    kpis = dry_run(export, Rules())["kpis"]["totals"]
    assert kpis["won_revenue"] == 1250 and kpis["sales_cycle"] == 75
    assert kpis["weighted_pipeline"] == 280


@pytest.mark.parametrize(
    "name", ["streams.backfill.mapping", "streams.backfill.reader", "state.snapshot_report"]
)
def test_docstring_examples_hold(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0


def test_cli_export_time_override(export_dir: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from salespulse.cli import main

    mapping_file = tmp_path / "m.yaml"
    mapping_file.write_text(json.dumps(BASE))
    out = tmp_path / "dry.json"
    args = ["backfill", str(export_dir), "--mapping", str(mapping_file), "--dry-run"]
    result = CliRunner().invoke(main, [*args, "--export-time", "2019-06-01", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["kpis"]["totals"]["deals_won"] == 2
    bad = CliRunner().invoke(
        main, ["backfill", str(export_dir), "--mapping", str(mapping_file), "--validate"]
    )
    assert bad.exit_code == 1 and "FAILED: 2 errors" in bad.output
