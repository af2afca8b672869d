"""Hypothesis strategies: plausible vendor payloads, then mutated, re-encoded and re-signed.

Most draws are valid (so the parsers, the dedupe store and the publisher are exercised),
the rest carry edge values, wrong types, missing keys, broken encodings.
"""

from __future__ import annotations

import json
import time
from typing import Any
from xml.sax.saxutils import escape

from hypothesis import strategies as st

from tests.streams.gateway import payloads as p

NOW_MS = int(time.time() * 1000)
# Values that sit on the edges of what the adapters and the normalizer accept.
TRICKY = [
    "", " ", "0", "-1", "1e3", "1E400", "NaN", "Infinity", "1054.50", "won", "lost", "open",
    "closedwon", "closedlost", "Closed Won", "2023-11-14", "2023-11-14T22:13:20Z",
    "2023-11-14 22:13:20", "2023-02-30", "99999-01-01", "1700000000", "1700000000000",
    "99999999999999999999", "a|b", "line\nbreak", "\x00", "é", "💰", "true", "false",
    "EUR", "eur", "euro", 0, -1, 1, 2**31, 2**53 + 1, 2**63, 2**64 + 7, -(2**70), 1e308,
    -0.0, 0.1, True, False, None, [], {}, [1], {"value": 3},
]  # fmt: skip
# Plausible values per vendor or canonical field name.
GOOD: dict[str, list[Any]] = {
    "dealstage": ["closedwon", "closedlost", "appointmentscheduled"],
    "lifecyclestage": ["marketingqualifiedlead", "lead", "customer"],
    "StageName": ["Closed Won", "Closed Lost", "Prospecting"],
    "stage": ["proposal", "demo"],
    "Status": ["Working", "Qualified"],
    "status": ["won", "lost", "open"],
    "amount": ["1054.50", "12", 99.5],
    "Amount": [1200.0, 5],
    "value": [2500, 10.5],
    "mrr": [99, "19.90"],
    "currency": ["EUR", "usd"],
    "deal_currency_code": ["EUR", "usd"],
    "CurrencyIsoCode": ["EUR", "JPY"],
    "closedate": ["1712102400000", "2024-04-03T00:00:00Z"],
    "createdate": ["1712102400000"],
    "closed_at": ["2023-11-14", "2023-11-14T22:13:20Z"],
    "CloseDate": ["2023-11-14"],
    "CreatedDate": ["2023-11-14T22:13:20.000Z"],
    "CompletedDateTime": ["2023-11-14T22:13:20.000Z"],
    "add_time": ["2023-11-14T22:13:20Z", "2023-11-14 22:13:20"],
    "won_time": ["2023-11-14T22:13:20Z", None],
    "lost_time": [None],
    "close_time": ["2023-11-14 22:13:20"],
    "expected_close_date": ["2023-12-31"],
    "marked_as_done_time": ["2023-11-14 22:00:00"],
    "IsWon": [True, False, "true"],
    "IsClosed": [True, False, "false"],
    "done": [True, False],
    "type": ["call", "meeting", "deadline"],
    "TaskSubtype": ["Call", "Email"],
}
GOOD_DEFAULT = ["51234", 18487521, "x", None]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**72), max_value=2**72),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=24),
    st.sampled_from(TRICKY),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=5,
)
bad_values = st.one_of(st.sampled_from(TRICKY), scalars)


def often(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``good`` about three times in four."""
    return st.one_of(good, good, good, bad)


def value_for(name: str) -> st.SearchStrategy[Any]:
    """A plausible value for field ``name`` about seven times in eight."""
    good = st.sampled_from(GOOD.get(name, GOOD_DEFAULT))
    return st.one_of(*[good] * 7, bad_values)


ids = often(
    st.integers(min_value=0, max_value=10**12) | st.uuids().map(str),
    st.sampled_from(["", "a|b", "x\ny", 2**64, None, 1.5]) | st.text(max_size=18),
)
times_ms = often(
    st.integers(min_value=NOW_MS - 10**11, max_value=NOW_MS + 10**9),
    st.sampled_from([0, -1, 2**63, "soon", None, "1700000000000", -(10**15)]),
)
rare = st.sampled_from([False] * 19 + [True])


@st.composite
def mutated(draw: st.DrawFn, base: Any, depth: int = 0) -> Any:
    """``base`` as is about half the time; else with random edits at random depth."""
    choice = draw(st.sampled_from(["keep"] * 5 + ["edit"] * 4 + ["replace"]))
    if choice == "keep" or depth > 4:
        return base
    if choice == "replace":
        return draw(json_values)
    if isinstance(base, dict) and base:
        out = dict(base)
        key = draw(st.sampled_from(sorted(out, key=str)))
        action = draw(st.sampled_from(["drop", "value", "add", "deeper"]))
        if action == "drop":
            del out[key]
        elif action == "value":
            out[key] = draw(bad_values)
        elif action == "add":
            out[draw(st.text(max_size=10))] = draw(json_values)
        else:
            out[key] = draw(mutated(out[key], depth + 1))
        return out
    if isinstance(base, list) and base:
        items = list(base)
        i = draw(st.integers(0, len(items) - 1))
        items[i] = draw(mutated(items[i], depth + 1))
        if draw(rare):
            items.append(draw(json_values))
        return items
    return draw(bad_values)


def _fields(draw: st.DrawFn, names: list[str], max_size: int) -> dict[str, Any]:
    chosen = draw(st.lists(st.sampled_from(names), max_size=max_size, unique=True))
    return {name: draw(value_for(name)) for name in chosen}


# --- plausible payloads -----------------------------------------------------------------

HUBSPOT_TYPES = [
    "deal.creation", "deal.propertyChange", "deal.propertyChange", "deal.deletion",
    "deal.restore", "deal.merge", "deal.associationChange", "contact.creation",
    "contact.propertyChange", "contact.merge", "company.propertyChange",
    "object.propertyChange", "ticket.creation", "deal.privacyDeletion",
]  # fmt: skip
HUBSPOT_PROPS = ["dealstage", "amount", "hubspot_owner_id", "closedate", "createdate",
                 "deal_currency_code", "lifecyclestage", "description"]  # fmt: skip


@st.composite
def hubspot_payload(draw: st.DrawFn) -> Any:
    events = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(HUBSPOT_TYPES))
        extra: dict[str, Any] = {}
        if kind.endswith("merge"):
            extra = {
                "primaryObjectId": draw(ids),
                "mergedObjectIds": draw(st.lists(ids, max_size=3)),
                "newObjectId": draw(ids),
            }
        if kind.endswith("associationChange"):
            kinds = ["DEAL_TO_COMPANY", "DEAL_TO_CONTACT", "COMPANY_TO_DEAL"]
            extra = {
                "associationType": draw(st.sampled_from(kinds)),
                "toObjectId": draw(ids),
                "associationRemoved": draw(st.booleans()),
            }
        if kind.startswith("object."):
            extra["objectTypeId"] = draw(st.sampled_from(["0-1", "0-2", "0-3", "2-999"]))
        name = draw(st.sampled_from([*HUBSPOT_PROPS, None]))
        value = draw(value_for(name or ""))
        events.append(p.hubspot_event(draw(ids), draw(ids), kind, name, value, draw(times_ms),
                                      **extra))  # fmt: skip
    return events


PIPEDRIVE_DATA_KEYS = ["status", "value", "currency", "owner_id", "user_id", "stage_id",
                       "add_time", "close_time", "won_time", "lost_time", "expected_close_date",
                       "person_id", "org_id", "type", "done", "marked_as_done_time", "id",
                       "custom_fields"]  # fmt: skip


@st.composite
def pipedrive_payload(draw: st.DrawFn) -> Any:
    data = draw(often(st.builds(dict), st.none()))
    if data is not None:
        data.update(_fields(draw, PIPEDRIVE_DATA_KEYS, 8))
    meta_extra = {}
    if draw(rare):
        meta_extra["merged_to_id"] = draw(ids)
    stamp = draw(often(
        st.sampled_from(["2023-11-14T22:13:20.000Z", 1700000000, 1700000000123]),
        st.sampled_from(["noon", -5, None, 10**20]),
    ))  # fmt: skip
    return p.pipedrive_body(
        draw(often(st.sampled_from(["create", "change", "delete"]),
                   st.sampled_from(["added", "updated", "merged", "x", 5]))),
        draw(often(st.sampled_from(["deal", "person", "organization", "activity", "lead"]),
                   st.sampled_from(["product", "", None]))),
        draw(ids), data, draw(st.none() | st.just({"status": "open"})),
        delivery_id=str(draw(ids)), timestamp=stamp, **meta_extra,
    )  # fmt: skip


SF_FIELDS = ["StageName", "Amount", "CurrencyIsoCode", "OwnerId", "CloseDate", "CreatedDate",
             "IsWon", "IsClosed", "Status", "TaskSubtype", "CompletedDateTime", "AccountId",
             "LeadSource", "Name"]  # fmt: skip
SF_ENTITIES = ["Opportunity", "Lead", "Account", "Task", "Event", "Contact"]
SF_CHANGES = ["CREATE", "UPDATE", "UPDATE", "DELETE", "UNDELETE", "GAP_UPDATE", "GAP_OVERFLOW",
              "BOOM"]  # fmt: skip
sf_ids = often(st.integers(0, 10**9).map(lambda n: f"006{n}"), ids)


@st.composite
def cdc_payload(draw: st.DrawFn) -> Any:
    messages = [
        p.cdc_message(
            draw(st.sampled_from(SF_ENTITIES)),
            draw(st.sampled_from(SF_CHANGES)),
            draw(often(st.lists(sf_ids, min_size=1, max_size=3), st.lists(ids, max_size=3))),
            _fields(draw, SF_FIELDS, 6),
            commit_ts=draw(times_ms),
            transaction=draw(often(st.uuids().map(str), st.text(max_size=12))),
            sequence=draw(st.integers(0, 5)),
        )
        for _ in range(draw(st.integers(1, 3)))
    ]
    return messages if draw(st.booleans()) else messages[0]


@st.composite
def outbound_body(draw: st.DrawFn) -> bytes:
    notifications = []
    for _ in range(draw(st.integers(0, 3))):
        fields: dict[str, Any] = {
            "Id": f"006{draw(st.integers(0, 10**9))}",
            "LastModifiedDate": draw(st.sampled_from(["2023-11-14T22:13:20.000Z", "2024-02-29"])),
        }
        for name, value in _fields(draw, [*SF_FIELDS, "Id", "LastModifiedDate"], 6).items():
            fields[name] = None if value is None else str(value)
        if not draw(rare):
            fields = {k: escape(v) if isinstance(v, str) else v for k, v in fields.items()}
        nid = draw(often(st.integers(0, 10**9).map(lambda n: f"04l{n}"), st.text(max_size=12)))
        notifications.append((escape(nid), draw(st.sampled_from(SF_ENTITIES)), fields))
    org = draw(often(st.sampled_from([p.SF_ORG, p.SF_ORG[:15]]),
                     st.sampled_from(["00D000000000001AAA", "", "x"])))  # fmt: skip
    body = p.outbound_xml(notifications, org=org)
    if draw(rare):
        cut = draw(st.integers(0, len(body)))
        body = body[:cut] + draw(st.binary(max_size=20))
    return body


GENERIC_FIELDS = ["amount", "currency", "status", "closed_at", "owner", "stage", "mrr", "done",
                  "lead_id", "x"]  # fmt: skip


@st.composite
def generic_payload(draw: st.DrawFn) -> Any:
    events = []
    for _ in range(draw(st.integers(1, 3))):
        event = p.canonical(
            str(draw(ids)), str(draw(ids)), draw(often(st.integers(0, 2**62), st.integers()))
        )
        event["entity"] = draw(often(
            st.sampled_from(["deal", "lead", "activity", "account", "subscription", "spend",
                             "quota"]), st.sampled_from(["ship", "", None])))  # fmt: skip
        event["change"] = draw(st.sampled_from(["create", "update", "delete", "merge", "restore"]))
        event["fields"] = _fields(draw, GENERIC_FIELDS, 5)
        events.append(event)
    return events if draw(st.booleans()) else events[0]


def encode(draw: st.DrawFn, payload: Any) -> bytes:
    """JSON, sometimes truncated, with a stray byte, or replaced by random bytes."""
    mode = draw(st.sampled_from(["json"] * 17 + ["binary", "truncated", "stray"]))
    if mode == "binary":
        return draw(st.binary(max_size=200))
    body = json.dumps(draw(mutated(payload))).encode()
    if mode == "truncated":
        return body[: draw(st.integers(0, len(body)))]
    if mode == "stray":
        return body + b"\xff"
    return body
