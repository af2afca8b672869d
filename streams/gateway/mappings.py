"""Which vendor fields become which canonical fields, per source; overridable by YAML.

The defaults below follow each vendor's standard objects. A deployment overrides them
with a YAML file named by ``SALESPULSE_GATEWAY_MAPPINGS`` (deep-merged over the
defaults; a ``null`` removes an entry), e.g. to map a custom HubSpot pipeline's stage
ids or a Pipedrive custom field::

    hubspot:
      stage_status: {deal: {"12345678": won, "12345679": lost}}
    pipedrive:
      stage_values: {deal: {"1": prospecting, "2": qualification}}
      fields: {deal: {"custom_fields.9a7f3c...": team}}

Vendor field names map to one canonical field or a list of them; stage values are
compared case-insensitively with blanks removed.

>>> m = load_mappings()
>>> m["hubspot"].map_fields("deal", {"dealstage": "closedwon", "amount": "10"})
{'stage': 'closedwon', 'amount': '10', 'status': 'won'}
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

MAPPINGS_ENV = "SALESPULSE_GATEWAY_MAPPINGS"

DEFAULTS: dict[str, dict[str, Any]] = {
    "hubspot": {
        "entities": {"deal": "deal", "contact": "lead", "company": "account"},
        # objectTypeId of the generic ``object.*`` subscriptions.
        "object_type_ids": {"0-1": "contact", "0-2": "company", "0-3": "deal"},
        "fields": {
            "deal": {
                "dealstage": "stage",
                "amount": "amount",
                "deal_currency_code": "currency",
                "hubspot_owner_id": "owner",
                "closedate": ["closed_at", "expected_close"],
                "createdate": "created_at",
            },
            "lead": {
                "lifecyclestage": "stage",
                "hubspot_owner_id": "owner",
                "createdate": "created_at",
                "hs_analytics_source": "source",
            },
            "account": {"hubspot_owner_id": "owner", "createdate": "created_at"},
        },
        "stage_values": {
            "lead": {
                "subscriber": "subscriber",
                "lead": "lead",
                "marketingqualifiedlead": "mql",
                "salesqualifiedlead": "sql",
                "opportunity": "opportunity",
                "customer": "customer",
            }
        },
        "stage_status": {"deal": {"closedwon": "won", "closedlost": "lost"}},
        "associations": {"deal_to_company": "account_id", "deal_to_contact": "lead_id"},
    },
    "pipedrive": {
        "entities": {
            "deal": "deal",
            "lead": "lead",
            "person": "lead",
            "organization": "account",
            "activity": "activity",
        },
        "fields": {
            "deal": {
                "status": "status",
                "value": "amount",
                "currency": "currency",
                "owner_id": "owner",
                "user_id": "owner",
                "stage_id": "stage",
                "add_time": "created_at",
                "close_time": "closed_at",
                "won_time": "closed_at",
                "lost_time": "closed_at",
                "expected_close_date": "expected_close",
                "person_id": "lead_id",
                "org_id": "account_id",
            },
            "lead": {"owner_id": "owner", "add_time": "created_at", "source_name": "source"},
            "account": {"owner_id": "owner", "add_time": "created_at"},
            "activity": {
                "type": "type",
                "owner_id": "owner",
                "user_id": "owner",
                "done": "done",
                "marked_as_done_time": "done_at",
                "deal_id": "deal_id",
                "add_time": "created_at",
            },
        },
        "stage_values": {},
        "stage_status": {},
        "activity_types": {"call": "call", "meeting": "meeting", "email": "email",
                           "task": "task", "deadline": "task", "lunch": "meeting"},
    },
    "salesforce": {
        "entities": {
            "Opportunity": "deal",
            "Lead": "lead",
            "Account": "account",
            "Task": "activity",
            "Event": "activity",
        },
        "fields": {
            "deal": {
                "StageName": "stage",
                "Amount": "amount",
                "CurrencyIsoCode": "currency",
                "OwnerId": "owner",
                "CloseDate": ["closed_at", "expected_close"],
                "CreatedDate": "created_at",
                "AccountId": "account_id",
                "LeadSource": "source",
            },
            "lead": {
                "Status": "stage",
                "OwnerId": "owner",
                "CreatedDate": "created_at",
                "LeadSource": "source",
            },
            "account": {"OwnerId": "owner", "CreatedDate": "created_at"},
            "activity": {
                "TaskSubtype": "type",
                "EventSubtype": "type",
                "OwnerId": "owner",
                "IsClosed": "done",
                "CompletedDateTime": "done_at",
                "EndDateTime": "done_at",
                "CreatedDate": "created_at",
            },
        },
        "stage_values": {},
        "stage_status": {"deal": {"closedwon": "won", "closedlost": "lost"}},
        "activity_types": {"call": "call", "email": "email", "listemail": "email",
                           "task": "task", "event": "meeting"},
    },
}  # fmt: skip


def _key(value: Any) -> str:
    return str(value).replace(" ", "").lower()


@dataclass(frozen=True)
class SourceMapping:
    """The field, stage and entity mapping of one source."""

    entities: dict[str, str] = field(default_factory=dict)
    fields: dict[str, dict[str, Any]] = field(default_factory=dict)
    stage_values: dict[str, dict[str, str]] = field(default_factory=dict)
    stage_status: dict[str, dict[str, str]] = field(default_factory=dict)
    activity_types: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def entity(self, vendor_object: Any) -> str | None:
        """The canonical entity of a vendor object type (None: not ingested)."""
        return self.entities.get(str(vendor_object)) if vendor_object is not None else None

    def status_of_stage(self, entity: str, stage: Any) -> str | None:
        """``won``/``lost`` for a closing stage, ``open`` for any other, None if no stage."""
        if stage is None or stage == "":
            return None
        table = {_key(k): v for k, v in self.stage_status.get(entity, {}).items()}
        return table.get(_key(stage), "open")

    def map_fields(self, entity: str, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Canonical fields from vendor fields (dotted names reach into nested objects).

        A stage maps through ``stage_values`` and, for deals, also sets ``status``.
        """
        out: dict[str, Any] = {}
        for vendor, targets in self.fields.get(entity, {}).items():
            found, value = _lookup(raw, vendor)
            if not found:
                continue
            for target in [targets] if isinstance(targets, str) else list(targets or []):
                if value is None and out.get(target) is not None:
                    continue  # e.g. Pipedrive's lost_time null must not clear won_time
                out[target] = value
        if "stage" in out and out["stage"] is not None:
            raw_stage = out["stage"]
            values = {_key(k): v for k, v in self.stage_values.get(entity, {}).items()}
            out["stage"] = values.get(_key(raw_stage), raw_stage)
            if isinstance(out["stage"], int) and not isinstance(out["stage"], bool):
                out["stage"] = str(out["stage"])
            if entity == "deal" and "status" not in out:
                out["status"] = self.status_of_stage(entity, raw_stage)
        if entity == "activity" and isinstance(out.get("type"), str):
            out["type"] = self.activity_types.get(_key(out["type"]), out["type"].lower())
        return out


def _lookup(raw: Mapping[str, Any], dotted: str) -> tuple[bool, Any]:
    if dotted in raw:
        return True, raw[dotted]
    node: Any = raw
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    if isinstance(node, Mapping) and "value" in node:  # Pipedrive custom field objects
        node = node["value"]
    return True, node


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_mappings(path: str | Path | None = None) -> dict[str, SourceMapping]:
    """The mapping of every source: defaults, deep-merged with the YAML at ``path``.

    ``path`` defaults to ``$SALESPULSE_GATEWAY_MAPPINGS`` (no override when unset).
    """
    data = copy.deepcopy(DEFAULTS)
    path = path or os.environ.get(MAPPINGS_ENV)
    if path:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(loaded, Mapping):
            raise ValueError(f"{path}: expected a mapping of sources")
        data = _merge(data, loaded)
    known = {"entities", "fields", "stage_values", "stage_status", "activity_types"}
    return {
        source: SourceMapping(
            **{k: v for k, v in spec.items() if k in known},
            extra={k: v for k, v in spec.items() if k not in known},
        )
        for source, spec in data.items()
    }
