"""Adapters: vendor-documented payload shapes -> canonical events (no services)."""

from __future__ import annotations

from typing import Any

import pytest

from streams.gateway.adapters.generic import parse_generic
from streams.gateway.adapters.hubspot import parse_hubspot
from streams.gateway.adapters.pipedrive import parse_pipedrive
from streams.gateway.adapters.salesforce import parse_cdc, parse_outbound
from streams.gateway.errors import Forbidden, Invalid, Malformed
from streams.gateway.mappings import load_mappings
from streams.schema import CrmEvent
from tests.streams.gateway.payloads import (
    SF_ORG,
    T0,
    canonical,
    cdc_message,
    hubspot_event,
    outbound_xml,
    pipedrive_body,
)

M = load_mappings()


def _one(events: list[CrmEvent]) -> dict[str, Any]:
    assert len(events) == 1
    return events[0].to_wire()


# --- HubSpot ----------------------------------------------------------------------------


def test_hubspot_deal_stage_won_sets_stage_and_status() -> None:
    ev = _one(parse_hubspot([hubspot_event(1, 123)], M["hubspot"]).events)
    assert ev["event_id"] == "hubspot:1"
    assert (ev["source"], ev["entity"], ev["entity_id"], ev["change"]) == (
        "hubspot", "deal", "123", "update",
    )  # fmt: skip
    assert ev["version"] == T0
    assert ev["occurred_at"] == "2023-11-14T22:13:20Z"
    assert ev["fields"] == {"stage": "closedwon", "status": "won"}


@pytest.mark.parametrize(
    ("name", "value", "fields"),
    [
        ("dealstage", "closedlost", {"stage": "closedlost", "status": "lost"}),
        ("dealstage", "appointmentscheduled", {"stage": "appointmentscheduled", "status": "open"}),
        ("amount", "1054.50", {"amount": "1054.50"}),
        ("amount", "", {"amount": None}),
        ("hubspot_owner_id", "51234", {"owner": "51234"}),
        ("deal_currency_code", "eur", {"currency": "EUR"}),
        (
            "closedate",
            "1712102400000",
            {"closed_at": "2024-04-03T00:00:00.000Z", "expected_close": "2024-04-03T00:00:00.000Z"},
        ),
        ("createdate", "2024-01-02T03:04:05.678Z", {"created_at": "2024-01-02T03:04:05.678Z"}),
    ],
)
def test_hubspot_deal_properties_map_to_canonical_fields(
    name: str, value: str, fields: dict[str, Any]
) -> None:
    ev = _one(parse_hubspot([hubspot_event(2, 9, name=name, value=value)], M["hubspot"]).events)
    assert ev["fields"] == fields


def test_hubspot_contact_lifecycle_maps_to_lead_stage_and_company_to_account() -> None:
    body = [
        hubspot_event(3, 501, "contact.propertyChange", "lifecyclestage", "marketingqualifiedlead"),
        hubspot_event(4, 601, "company.creation", None),
        hubspot_event(5, 601, "company.propertyChange", "hubspot_owner_id", "77"),
    ]
    events = [e.to_wire() for e in parse_hubspot(body, M["hubspot"]).events]
    assert [(e["entity"], e["entity_id"], e["change"], e["fields"]) for e in events] == [
        ("lead", "501", "update", {"stage": "mql"}),
        ("account", "601", "create", {}),
        ("account", "601", "update", {"owner": "77"}),
    ]


def test_hubspot_deletion_restore_and_generic_object_subscription() -> None:
    body = [
        hubspot_event(6, 7, "deal.deletion", None),
        hubspot_event(7, 7, "deal.restore", None),
        hubspot_event(8, 8, "object.propertyChange", "amount", "5", objectTypeId="0-3"),
    ]
    events = parse_hubspot(body, M["hubspot"]).events
    assert [(e.key, e.change) for e in events] == [
        ("deal:7", "delete"), ("deal:7", "restore"), ("deal:8", "update"),
    ]  # fmt: skip


def test_hubspot_merge_makes_one_merge_event_per_merged_away_record() -> None:
    merge = hubspot_event(
        9, 100, "deal.merge", None, primaryObjectId=100, mergedObjectIds=[101, 102],
        newObjectId=100, numberOfPropertiesMoved=4,
    )  # fmt: skip
    events = [e.to_wire() for e in parse_hubspot([merge], M["hubspot"]).events]
    assert [(e["entity_id"], e["change"], e["merged_into"], e["event_id"]) for e in events] == [
        ("101", "merge", "100", "hubspot:9:101"),
        ("102", "merge", "100", "hubspot:9:102"),
    ]


def test_hubspot_merge_into_a_new_record_merges_the_primary_too() -> None:
    merge = hubspot_event(
        10, 100, "contact.merge", None, primaryObjectId=100, mergedObjectIds=[101], newObjectId=200
    )
    events = parse_hubspot([merge], M["hubspot"]).events
    assert sorted((e.entity_id, e.merged_into) for e in events) == [("100", "200"), ("101", "200")]


def test_hubspot_association_change_links_deal_to_company() -> None:
    added = hubspot_event(
        11, 5, "deal.associationChange", None, associationType="DEAL_TO_COMPANY",
        fromObjectId=5, toObjectId=601, associationRemoved=False, isPrimaryAssociation=True,
    )  # fmt: skip
    removed = {**added, "eventId": 12, "associationRemoved": True}
    other = {**added, "eventId": 13, "associationType": "DEAL_TO_LINE_ITEM"}
    parsed = parse_hubspot([added, removed, other], M["hubspot"])
    assert [e.fields for e in parsed.events] == [{"account_id": "601"}, {"account_id": None}]
    assert parsed.ignored == {"unmapped_association": 1}


def test_hubspot_unmapped_objects_and_properties_are_ignored_not_refused() -> None:
    body = [
        hubspot_event(14, 1, "ticket.creation", None),
        hubspot_event(15, 1, "deal.propertyChange", "description", "secret plans"),
        hubspot_event(16, 1, "deal.someFutureThing", None),
    ]
    parsed = parse_hubspot(body, M["hubspot"])
    assert parsed.events == []
    assert parsed.ignored == {
        "unmapped_object": 1, "unmapped_property": 1, "unknown_subscription": 1,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda e: e.pop("eventId"), "[0].eventId"),
        (lambda e: e.pop("objectId"), "[0].objectId"),
        (lambda e: e.pop("occurredAt"), "[0].occurredAt"),
        (lambda e: e.update(occurredAt="soon"), "[0].occurredAt"),
        (lambda e: e.update(subscriptionType=5), "[0].subscriptionType"),
        (lambda e: e.update(objectId="a|b"), "[0].entity_id"),
        (lambda e: e.update(propertyName="amount", propertyValue="lots"), "[0].fields.amount"),
        (
            lambda e: e.update(propertyName="closedate", propertyValue="13/13/13"),
            "[0].fields.closed_at",
        ),
        (
            lambda e: e.update(propertyName="deal_currency_code", propertyValue="euro"),
            "[0].fields.currency",
        ),
    ],
)
def test_hubspot_invalid_events_name_the_field(mutate: Any, field: str) -> None:
    event = hubspot_event(1, 2)
    mutate(event)
    with pytest.raises(Invalid) as info:
        parse_hubspot([event], M["hubspot"])
    assert info.value.field == field


def test_hubspot_body_must_be_a_non_empty_array_of_objects() -> None:
    for body, field in (([], "body"), ([1], "[0]"), ("x", "[0]")):
        with pytest.raises(Invalid) as info:
            parse_hubspot(body, M["hubspot"])
        assert info.value.field == field


# --- Pipedrive --------------------------------------------------------------------------

DEAL = {
    "id": 7,
    "title": "Big deal",
    "value": 2500.5,
    "currency": "EUR",
    "status": "open",
    "stage_id": 3,
    "pipeline_id": 1,
    "owner_id": 18487521,
    "person_id": 3,
    "org_id": 2,
    "add_time": "2023-11-01T10:00:00Z",
    "update_time": "2023-11-14T22:13:20Z",
    "close_time": None,
    "won_time": None,
    "lost_time": None,
    "expected_close_date": "2023-12-31",
}


def test_pipedrive_deal_create_maps_value_owner_stage_and_links() -> None:
    ev = _one(parse_pipedrive(pipedrive_body("create", "deal", 7, DEAL), M["pipedrive"]).events)
    assert ev["change"] == "create" and ev["entity"] == "deal" and ev["entity_id"] == "7"
    assert ev["version"] == T0
    assert ev["fields"] == {
        "status": "open", "amount": 2500.5, "currency": "EUR", "owner": "18487521",
        "stage": "3", "created_at": "2023-11-01T10:00:00Z", "closed_at": None,
        "expected_close": "2023-12-31", "lead_id": "3", "account_id": "2",
    }  # fmt: skip


def test_pipedrive_deal_won_sets_status_and_close_time() -> None:
    won = {**DEAL, "status": "won", "won_time": "2023-11-14T22:13:20Z",
           "close_time": "2023-11-14T22:13:20Z"}  # fmt: skip
    body = pipedrive_body("change", "deal", 7, won, previous={"status": "open"})
    ev = _one(parse_pipedrive(body, M["pipedrive"]).events)
    assert ev["change"] == "update"
    assert ev["fields"]["status"] == "won"
    assert ev["fields"]["closed_at"] == "2023-11-14T22:13:20Z"


def test_pipedrive_delete_and_merge_via_merged_to_id() -> None:
    deleted = parse_pipedrive(pipedrive_body("delete", "deal", 7, None, DEAL), M["pipedrive"])
    assert _one(deleted.events)["change"] == "delete"
    body = pipedrive_body("delete", "person", 12, None, {"id": 12}, merged_to_id="15")
    ev = _one(parse_pipedrive(body, M["pipedrive"]).events)
    assert (ev["entity"], ev["entity_id"], ev["change"], ev["merged_into"]) == (
        "lead", "12", "merge", "15",
    )  # fmt: skip
    in_previous = pipedrive_body("delete", "organization", 4, None, {"id": 4, "merged_to_id": 9})
    ev = _one(parse_pipedrive(in_previous, M["pipedrive"]).events)
    assert (ev["entity"], ev["change"], ev["merged_into"]) == ("account", "merge", "9")


def test_pipedrive_activity_maps_type_and_done_time() -> None:
    data = {"id": 31, "type": "deadline", "done": True, "owner_id": 5,
            "marked_as_done_time": "2023-11-14 22:00:00", "deal_id": 7}  # fmt: skip
    ev = _one(
        parse_pipedrive(pipedrive_body("change", "activity", 31, data), M["pipedrive"]).events
    )
    assert ev["entity"] == "activity"
    assert ev["fields"]["type"] == "task"
    assert ev["fields"]["done"] is True
    assert ev["fields"]["done_at"] == "2023-11-14T22:00:00Z"  # Pipedrive's naive times are UTC


@pytest.mark.parametrize(
    ("stamp", "version"),
    [(1700000000, T0), ("1700000000", T0), (T0, T0), ("2023-11-14T22:13:20Z", T0)],
)
def test_pipedrive_timestamp_forms(stamp: Any, version: int) -> None:
    body = pipedrive_body("change", "deal", 7, DEAL, timestamp=stamp)
    assert parse_pipedrive(body, M["pipedrive"]).events[0].version == version


def test_pipedrive_v1_payload_is_accepted() -> None:
    body = {
        "v": 1,
        "meta": {"v": 1, "action": "updated", "object": "deal", "id": 7, "host": "x",
                 "timestamp": 1700000000, "is_bulk_update": False},
        "current": {**DEAL, "status": "lost", "lost_time": "2023-11-14 22:13:20"},
        "previous": {"status": "open"},
        "event": "updated.deal",
    }  # fmt: skip
    ev = _one(parse_pipedrive(body, M["pipedrive"]).events)
    assert ev["event_id"] == f"pipedrive:deal:7:update:{T0}"
    assert ev["fields"]["status"] == "lost"
    assert ev["fields"]["closed_at"] == "2023-11-14T22:13:20Z"


def test_pipedrive_unmapped_entity_is_ignored_and_bad_input_names_the_field() -> None:
    assert parse_pipedrive(pipedrive_body("create", "product", 1, {}), M["pipedrive"]).ignored
    cases = [
        ({"meta": {"entity": "deal"}}, "meta.action"),
        ({"meta": {"action": "explode", "entity": "deal"}}, "meta.action"),
        ({"meta": {"action": [], "entity": "deal"}}, "meta.action"),  # found by the fuzzer
        (pipedrive_body("change", "deal", 7, {**DEAL, "value": "a lot"}), "fields.amount"),
        (pipedrive_body("change", "deal", 7, DEAL, timestamp="noon"), "meta.timestamp"),
        ({"meta": {"action": "change", "entity": "deal", "timestamp": 1}, "data": {}},
         "meta.entity_id"),
        ([], "body"),
    ]  # fmt: skip
    for body, field in cases:
        with pytest.raises(Invalid) as info:
            parse_pipedrive(body, M["pipedrive"])
        assert info.value.field == field, body


# --- Salesforce CDC ---------------------------------------------------------------------


def test_cdc_opportunity_update_to_closed_won() -> None:
    msg = cdc_message("Opportunity", "UPDATE", ["0065e000007fBvEAAU"],
                      {"StageName": "Closed Won", "IsClosed": True, "IsWon": True,
                       "LastModifiedDate": "2023-11-14T22:13:20.000Z"})  # fmt: skip
    ev = _one(parse_cdc(msg, M["salesforce"]).events)
    assert ev["entity"] == "deal" and ev["entity_id"] == "0065e000007fBvEAAU"
    assert ev["change"] == "update"
    assert ev["version"] == T0
    assert ev["event_id"] == "salesforce:0002343d-9d90-e395-ed20-cf416ba652ad:1"
    assert ev["fields"] == {"stage": "Closed Won", "status": "won"}


def test_cdc_lost_reopened_and_create_with_all_fields() -> None:
    lost = cdc_message("Opportunity", "UPDATE", ["006A"], {"IsClosed": True, "IsWon": False})
    reopened = cdc_message("Opportunity", "UPDATE", ["006A"],
                           {"StageName": "Negotiation", "IsClosed": False})  # fmt: skip
    created = cdc_message("Opportunity", "CREATE", ["006B"], {
        "Name": "Acme", "StageName": "Prospecting", "Amount": 1200.0, "CurrencyIsoCode": "USD",
        "OwnerId": "0055e000001aQEEAA2", "CloseDate": "2024-03-31", "AccountId": "0015e00000",
        "CreatedDate": "2023-11-14T22:13:20.000Z", "IsClosed": False, "IsWon": False,
    })  # fmt: skip
    events = [e.to_wire() for e in parse_cdc([lost, reopened, created], M["salesforce"]).events]
    assert events[0]["fields"] == {"status": "lost"}
    assert events[1]["fields"] == {"stage": "Negotiation", "status": "open"}
    assert events[2]["change"] == "create"
    assert events[2]["fields"] == {
        "stage": "Prospecting", "status": "open", "amount": 1200.0, "currency": "USD",
        "owner": "0055e000001aQEEAA2", "closed_at": "2024-03-31", "expected_close": "2024-03-31",
        "created_at": "2023-11-14T22:13:20.000Z", "account_id": "0015e00000",
    }  # fmt: skip


def test_cdc_one_event_per_record_id_delete_undelete_and_bare_payload() -> None:
    bulk = cdc_message("Lead", "UPDATE", ["00Q1", "00Q2"], {"Status": "Working"})
    delete = cdc_message("Account", "DELETE", ["0011"], transaction="tk2")
    undelete = cdc_message("Account", "UNDELETE", ["0011"], transaction="tk3")
    bare = cdc_message(
        "Task",
        "CREATE",
        ["00T1"],
        {"TaskSubtype": "Call", "IsClosed": True, "CompletedDateTime": "2023-11-14T22:00:00Z"},
    )
    events = parse_cdc([bulk, delete, undelete, bare["data"]["payload"]], M["salesforce"]).events
    assert [(e.key, e.change) for e in events] == [
        ("lead:00Q1", "update"), ("lead:00Q2", "update"), ("account:0011", "delete"),
        ("account:0011", "restore"), ("activity:00T1", "create"),
    ]  # fmt: skip
    assert events[0].event_id != events[1].event_id
    assert events[0].fields == {"stage": "Working"}
    assert events[2].fields == {}
    assert events[4].fields == {"type": "call", "done": True, "done_at": "2023-11-14T22:00:00Z"}


def test_cdc_nulled_fields_clear_values() -> None:
    msg = cdc_message("Opportunity", "UPDATE", ["006A"], {"Amount": None})
    msg["data"]["payload"]["ChangeEventHeader"]["nulledFields"] = ["Amount"]
    assert _one(parse_cdc(msg, M["salesforce"]).events)["fields"] == {"amount": None}


@pytest.mark.parametrize(
    "change", ["GAP_CREATE", "GAP_UPDATE", "GAP_DELETE", "GAP_UNDELETE", "GAP_OVERFLOW"]
)
def test_cdc_gap_events_are_recorded_not_guessed(change: str) -> None:
    ids = [] if change == "GAP_OVERFLOW" else ["0065e000007fBvEAAU"]
    parsed = parse_cdc(cdc_message("Opportunity", change, ids), M["salesforce"])
    assert parsed.events == []
    assert parsed.gaps == [{
        "entity_name": "Opportunity", "change_type": change, "record_ids": ids,
        "record_count": len(ids), "commit_timestamp": T0,
        "transaction_key": "0002343d-9d90-e395-ed20-cf416ba652ad",
    }]  # fmt: skip


def test_cdc_invalid_input_names_the_field() -> None:
    base = cdc_message("Opportunity", "UPDATE", ["006A"], {"Amount": 5})
    header = base["data"]["payload"]["ChangeEventHeader"]
    cases = [
        ({**header, "changeType": "EXPLODE"}, "changeType"),
        ({**header, "recordIds": []}, "recordIds"),
        ({**header, "recordIds": "006A"}, "recordIds"),
        ({**header, "commitTimestamp": None}, "commitTimestamp"),
        ({k: v for k, v in header.items() if k != "entityName"}, "entityName"),
    ]
    for bad, name in cases:
        msg = cdc_message("Opportunity", "UPDATE", ["006A"], {"Amount": 5})
        msg["data"]["payload"]["ChangeEventHeader"] = bad
        with pytest.raises(Invalid) as info:
            parse_cdc(msg, M["salesforce"])
        assert info.value.field == f"[0].data.payload.ChangeEventHeader.{name}"
    with pytest.raises(Invalid) as info:
        parse_cdc(cdc_message("Opportunity", "UPDATE", ["006A"], {"IsWon": "maybe"}),
                  M["salesforce"])  # fmt: skip
    assert info.value.field == "[0].data.payload.IsWon"


# --- Salesforce Outbound Messages -------------------------------------------------------

OPP = {
    "Id": "0065e000007fBvEAAU",
    "Amount": "1200.0",
    "StageName": "Closed Won",
    "IsWon": "true",
    "IsClosed": "true",
    "CloseDate": "2023-11-14",
    "OwnerId": "0055e000001aQEEAA2",
    "CreatedDate": "2023-11-01T10:00:00.000Z",
    "LastModifiedDate": "2023-11-14T22:13:20.000Z",
    "Description": None,
}


def test_outbound_message_maps_opportunity_fields() -> None:
    body = outbound_xml([("04l5e000001", "Opportunity", OPP)])
    ev = _one(parse_outbound(body, M["salesforce"], SF_ORG[:15]).events)
    assert (ev["entity"], ev["entity_id"], ev["change"]) == ("deal", OPP["Id"], "update")
    assert ev["event_id"] == "salesforce:om:04l5e000001"
    assert ev["version"] == T0
    assert ev["fields"] == {
        "stage": "Closed Won", "status": "won", "amount": "1200.0",
        "closed_at": "2023-11-14", "expected_close": "2023-11-14",
        "owner": "0055e000001aQEEAA2", "created_at": "2023-11-01T10:00:00.000Z",
    }  # fmt: skip


def test_outbound_message_checks_the_org_and_refuses_dtds() -> None:
    body = outbound_xml([("04l1", "Opportunity", OPP)])
    with pytest.raises(Forbidden):
        parse_outbound(body, M["salesforce"], "00D000000000001")
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><notifications>&lol2;</notifications>'
    )
    xxe = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'
    for evil in (bomb, xxe, b"<notifications>", b"not xml"):
        with pytest.raises(Malformed):
            parse_outbound(evil, M["salesforce"], SF_ORG)


def test_outbound_message_invalid_input_names_the_field() -> None:
    no_modified = {k: v for k, v in OPP.items() if k != "LastModifiedDate"}
    with pytest.raises(Invalid) as info:
        parse_outbound(outbound_xml([("n1", "Opportunity", no_modified)]), M["salesforce"], SF_ORG)
    assert info.value.field == "notifications.Notification[0].sObject.LastModifiedDate"
    parsed = parse_outbound(outbound_xml([("n2", "Campaign", OPP)]), M["salesforce"], SF_ORG)
    assert parsed.events == [] and parsed.ignored == {"unmapped_object": 1}


# --- generic ----------------------------------------------------------------------------


def test_generic_accepts_one_or_many_canonical_events() -> None:
    one = parse_generic(canonical("e1", "D1", amount=5)).events
    many = parse_generic([canonical("e1", "D1"), canonical("e2", "D2", 2)]).events
    assert [e.key for e in one] == ["deal:D1"]
    assert [e.key for e in many] == ["deal:D1", "deal:D2"]


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"entity": "spaceship"}, "[0].entity"),
        ({"version": -1}, "[0].version"),
        ({"version": 2**70}, "[0].version"),
        ({"occurred_at": "2023-11-14T22:13:20"}, "[0].occurred_at"),
        ({"occurred_at": "9999-01-01T00:00:00Z"}, "[0].occurred_at"),
        ({"entity_id": "a\tb"}, "[0].entity_id"),
        ({"fields": {"amount": "NaN"}}, "[0].fields.amount"),
        ({"fields": {"nested": {"a": 1}}}, "[0].fields.nested"),
        ({"extra": 1}, "[0].extra"),
    ],
)
def test_generic_invalid_events_name_the_field(patch: dict[str, Any], field: str) -> None:
    with pytest.raises(Invalid) as info:
        parse_generic([{**canonical("e1", "D1"), **patch}])
    assert info.value.field == field


# --- mappings ---------------------------------------------------------------------------


def test_mappings_yaml_overrides_defaults(tmp_path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        "hubspot:\n"
        "  stage_status: {deal: {'12345678': won}}\n"
        "  fields: {deal: {amount: null, hs_tcv: amount}}\n"
        "pipedrive:\n"
        "  stage_values: {deal: {'3': proposal}}\n"
        "  fields: {deal: {custom_fields.abc123: team}}\n"
    )
    m = load_mappings(path)
    ev = parse_hubspot([hubspot_event(1, 1, value="12345678")], m["hubspot"]).events[0]
    assert ev.fields == {"stage": "12345678", "status": "won"}
    assert not parse_hubspot([hubspot_event(2, 1, name="amount", value="5")], m["hubspot"]).events
    assert parse_hubspot([hubspot_event(3, 1, name="hs_tcv", value="5")], m["hubspot"]).events
    data = {**DEAL, "custom_fields": {"abc123": {"type": "varchar", "value": "EMEA"}}}
    ev = parse_pipedrive(pipedrive_body("change", "deal", 7, data), m["pipedrive"]).events[0]
    assert ev.fields["stage"] == "proposal"
    assert ev.fields["team"] == "EMEA"
