"""Applying decoded records to one partition's state: the engine without any I/O.

:class:`PartitionState` owns a snapshot store (any mutable mapping: a Faust table in the
worker, a dict in dry-run backfill and tests) and the partition's aggregates. It validates
each event, applies it to the entity's snapshot, swaps the entity's contribution in the
aggregates, and returns what the caller must do next (link facts to send, dead letters).

>>> from state.rules import Rules
>>> ps = PartitionState(Rules(), {})
>>> ev = {"event_id": "e1", "source": "demo", "entity": "deal", "entity_id": "D1",
...       "change": "create", "occurred_at": "2017-03-01T10:00:00Z", "version": 1,
...       "fields": {"status": "won", "amount": 10, "closed_at": "2017-03-01"}}
>>> ps.apply(ev).status, ps.apply(ev).status
('applied', 'duplicate')
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from state.aggregates import PartitionAggregates
from state.contributions import Contributions, check_fields, contributions
from state.links import Targets, link_targets, target_updates
from state.rules import Rules
from state.snapshot import MilestoneRules, Snapshot, apply_event, apply_link
from streams.schema import CrmEvent, entity_key, event_time_ms, fast_event_time_ms

LINK_MARKER = "link"

# What is cached of a recently changed entity: its contribution and (deals) link targets,
# each in a dict of its own keyed by entity. The cached values are dicts of str and int
# only, which Python's cyclic garbage collector does not track. A (contribution, targets)
# tuple per entity was tracked for good (the collector never untracks a tuple that holds a
# dict): each changed entity added a long-lived tracked object, so full collections ran
# every few ten thousand events and took a fifth of the engine's time at 10^6 entities.


@dataclass(slots=True)
class Outcome:
    """What applying one record did."""

    status: Literal["applied", "duplicate", "invalid"]
    key: str = ""
    reason: str = ""
    links: list[dict[str, Any]] = field(default_factory=list)
    event_time_ms: int = 0
    source: str = ""


def link_record(target: str, source: str, token: list[Any], value: Any) -> dict[str, Any]:
    """The wire form of a derived fact sent to ``target`` (an entity key)."""
    entity, _, entity_id = target.partition(":")
    return {
        LINK_MARKER: 1,
        "entity": entity,
        "entity_id": entity_id,
        "from": source,
        "token": token,
        "value": value,
    }


def _pop(newer: dict[str, Any], older: dict[str, Any], key: str) -> Any:
    """Take ``key``'s value out of a two-generation cache (None if in neither)."""
    found = newer.pop(key, None)
    return older.pop(key, None) if found is None else found


def _validation_reason(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "event"
    return f"{where}: {first['msg']}"


class PartitionState:
    """Snapshots and aggregates of one partition.

    Keeps the contribution (and a deal's link targets) of recently changed entities (up
    to ``contribution_cache``, in two generations) so an update computes only the new
    ones; the store must be written only through this class.
    """

    def __init__(
        self, rules: Rules, store: MutableMapping[str, Snapshot], contribution_cache: int = 50_000
    ) -> None:
        self.rules = rules
        self.store = store
        self.aggregates = PartitionAggregates()
        # Two generations: the newer takes every change; when it holds half the limit it
        # becomes the older one (the older is dropped). Emptying a single cache when full
        # forgot the entities changed just before, which change again the soonest.
        self._cache: dict[str, Contributions] = {}
        self._older: dict[str, Contributions] = {}
        self._targets: dict[str, Targets] = {}  # deals' link targets, same generations
        self._older_targets: dict[str, Targets] = {}
        self._generation = max(1, contribution_cache // 2)
        self._milestones: dict[str, MilestoneRules] = {}  # by entity type

    def rebuild(self) -> None:
        """Recompute the aggregates from every snapshot in the store."""
        items = getattr(self.store, "items_decoded", self.store.items)
        for cache in (self._cache, self._older, self._targets, self._older_targets):
            cache.clear()
        self.aggregates.rebuild(
            contributions(key.partition(":")[0], snap, self.rules) for key, snap in items()
        )

    def apply(self, raw: dict[str, Any]) -> Outcome:
        """Apply one decoded record (a canonical event or a link fact)."""
        if raw.get(LINK_MARKER) == 1:
            return self._apply_link(raw)
        at_ms = fast_event_time_ms(raw)
        if at_ms is None:
            try:
                event = CrmEvent.model_validate(raw)
            except ValidationError as exc:
                return Outcome("invalid", reason=_validation_reason(exc))
            raw, at_ms = event.to_wire(), event_time_ms(event.occurred_at)
        entity = raw["entity"]
        try:
            check_fields(entity, raw.get("fields", {}), self.rules)
        except Exception as exc:  # a value no KPI can use: a dead letter, whatever the order
            return Outcome("invalid", reason=f"fields: {exc}")
        key = f"{entity}:{raw['entity_id']}"
        old = self.store.get(key)
        milestones = self._milestones.get(entity)
        if milestones is None:
            milestones = self._milestones[entity] = self.rules.milestones(entity)
        new, changed = apply_event(old, raw, milestones, at_ms)
        outcome = Outcome(
            "applied" if changed else "duplicate",
            key=key,
            event_time_ms=at_ms,
            source=raw["source"],
        )
        before: Targets = {}
        if changed:
            if not self._swap(entity, key, old, new, outcome):
                return outcome
            if entity == "deal":
                known = _pop(self._targets, self._older_targets, key)
                before = link_targets(old, self.rules.calendar) if known is None else known
        if entity == "deal":
            after = link_targets(new, self.rules.calendar)
            if changed:
                self._targets[key] = after
            outcome.links = [
                link_record(t, key, tok, v) for t, tok, v in target_updates(before, new, after)
            ]
        return outcome

    def _swap(
        self, entity: str, key: str, old: Snapshot | None, new: Snapshot, outcome: Outcome
    ) -> bool:
        """Swap the entity's contribution and write its snapshot; False (and nothing
        changed) if the new snapshot is invalid."""
        try:
            new_part = contributions(entity, new, self.rules)
        except Exception as exc:  # any value it cannot compute: a dead letter, never a crash
            outcome.status, outcome.reason = "invalid", f"fields: {exc}"
            return False
        old_part = _pop(self._cache, self._older, key)
        if old_part is None:
            old_part = contributions(entity, old, self.rules)
        self.aggregates.replace(old_part, new_part)
        self.store[key] = new
        cache = self._cache
        if len(cache) >= self._generation:
            self._older, cache = cache, {}
            self._cache = cache
            self._older_targets, self._targets = self._targets, {}
        cache[key] = new_part
        return True

    def _apply_link(self, raw: dict[str, Any]) -> Outcome:
        try:
            entity, target = str(raw["entity"]), entity_key(raw["entity"], raw["entity_id"])
            source, token, value = str(raw["from"]), list(raw["token"]), raw["value"]
        except (KeyError, TypeError) as exc:
            return Outcome("invalid", reason=f"link record: missing {exc}")
        if entity not in ("lead", "account"):
            return Outcome("invalid", reason=f"link record: entity {entity!r}")
        old = self.store.get(target)
        try:
            new, changed = apply_link(old, source, token, value)
        except TypeError as exc:  # a token not comparable with the stored one
            return Outcome("invalid", reason=f"link record: token {exc}")
        outcome = Outcome("applied" if changed else "duplicate", key=target, source="link")
        if changed:
            self._swap(entity, target, old, new, outcome)
        return outcome

    def apply_all(self, records: Iterable[dict[str, Any]]) -> list[Outcome]:
        """Apply records in order; convenient for dry runs and tests."""
        return [self.apply(r) for r in records]
