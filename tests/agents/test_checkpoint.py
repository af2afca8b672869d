"""Aggregates saved at a graceful stop: used only when nothing can differ from a rebuild."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import orjson

from agents import checkpoint
from state.aggregates import PublishMark
from state.processor import PartitionState
from state.rules import Rules
from tests.state.strategies import event_factory

SHARDS = {"2017-03-01": {"won_count|2017-03-01|ann|||||": 2}, "": {"open_count||bob|||||": 1}}


def test_a_saved_checkpoint_is_taken_once_at_the_same_offset_and_fingerprint(
    tmp_path: Path,
) -> None:
    checkpoint.save(tmp_path, 3, b"41", "fp", None, SHARDS)
    assert checkpoint.take(tmp_path, 3, b"41", "fp", None) == checkpoint.Saved(SHARDS)
    assert checkpoint.take(tmp_path, 3, b"41", "fp", None) is None  # read at most once
    assert not list(tmp_path.iterdir())


def test_a_checkpoint_of_another_offset_fingerprint_or_an_empty_store_is_dropped(
    tmp_path: Path,
) -> None:
    for offset, mark in ((b"42", "fp"), (b"41", "other"), (None, "fp")):
        checkpoint.save(tmp_path, 0, b"41", "fp", None, SHARDS)
        assert checkpoint.take(tmp_path, 0, offset, mark, None) is None
        assert not checkpoint.path_for(tmp_path, 0).exists()
    checkpoint.save(tmp_path, 0, None, "fp", None, {})  # a store nothing was ever written to
    assert checkpoint.take(tmp_path, 0, None, "fp", None) == checkpoint.Saved({})


def test_a_torn_or_foreign_file_is_dropped(tmp_path: Path) -> None:
    path = checkpoint.path_for(tmp_path, 1)
    for data in (b'{"format": 1, "fingerprint": "fp", "offs', b"[]", b'{"format": 2}'):
        path.write_bytes(data)
        assert checkpoint.take(tmp_path, 1, b"7", "fp", None) is None
        assert not path.exists()


def test_only_the_start_right_after_the_stop_can_use_it(tmp_path: Path) -> None:
    saved, claimed = checkpoint.saved_dir(tmp_path), checkpoint.claimed_dir(tmp_path)
    checkpoint.save(saved, 0, b"5", "fp", None, SHARDS)
    checkpoint.save(saved, 1, b"9", "fp", None, SHARDS)
    checkpoint.claim(tmp_path)  # the next start
    assert not saved.exists()
    assert checkpoint.take(claimed, 0, b"5", "fp", None) == checkpoint.Saved(SHARDS)
    checkpoint.claim(tmp_path)  # a later start (say after a crash): partition 1's is gone
    assert checkpoint.take(claimed, 1, b"9", "fp", None) is None


def test_a_start_told_to_rebuild_drops_the_checkpoint(tmp_path: Path) -> None:
    checkpoint.save(checkpoint.saved_dir(tmp_path), 0, b"5", "fp", None, SHARDS)
    checkpoint.claim(tmp_path, use=False)
    assert not checkpoint.saved_dir(tmp_path).exists()
    assert checkpoint.take(checkpoint.claimed_dir(tmp_path), 0, b"5", "fp", None) is None


def test_the_fingerprint_follows_the_rules() -> None:
    rules = Rules()
    assert checkpoint.fingerprint(rules) == checkpoint.fingerprint(Rules())
    for change in (
        {"timezone": "Europe/Paris"},
        {"stage_probability": {"demo": 0.5}},
        {"qualified_lead_stages": frozenset({"sql"})},
        {"retention_days": 30},
        {"fx_rates": {"EUR": {"2017-01-01": 1.1}}},
    ):
        assert checkpoint.fingerprint(dataclasses.replace(rules, **change)) != (
            checkpoint.fingerprint(rules)
        ), change


def test_loaded_aggregates_publish_like_rebuilt_ones(tmp_path: Path) -> None:
    """What a restart loads is what it saved: the same shards, all of them published."""
    ps = PartitionState(Rules(), {})
    ps.apply(event_factory("deal", "D1", status="won", amount=10, closed_at="2017-03-01"))
    ps.apply(event_factory("deal", "D2", stage="demo", amount=7, expected_close="2017-04-02"))
    checkpoint.save(tmp_path, 0, b"1", "fp", None, ps.aggregates.shards)
    loaded = PartitionState(Rules(), ps.store)
    saved = checkpoint.take(tmp_path, 0, b"1", "fp", None)
    assert saved is not None and saved.published is None
    loaded.aggregates.load(saved.shards)
    rebuilt = PartitionState(Rules(), ps.store)
    rebuilt.rebuild()
    assert loaded.aggregates.values == rebuilt.aggregates.values == ps.aggregates.values
    assert loaded.aggregates.take_dirty() == set(rebuilt.aggregates.shards)
    assert loaded.aggregates.take_changes() is None


def _rules(cutoff: str | None) -> Rules:
    rules = Rules(retention_days=None if cutoff is None else 30)
    rules.__dict__["retention_cutoff"] = cutoff  # what the date would give
    return rules


def test_a_later_retention_cutoff_drops_the_days_before_it_as_a_rebuild_would(
    tmp_path: Path,
) -> None:
    """A worker that ran for days restarts with a later cutoff: the saved aggregates minus
    the day shards now before it are exactly what a rebuild under the new cutoff gives."""
    ps = PartitionState(_rules("2017-03-02"), {})
    for day in range(1, 7):
        ps.apply(
            event_factory("deal", f"W{day}", status="won", amount=day, closed_at=f"2017-03-0{day}")
        )
        ps.apply(
            event_factory(
                "deal", f"O{day}", stage="demo", amount=day, expected_close=f"2017-03-0{day}"
            )
        )
        ps.apply(event_factory("activity", f"A{day}", type="call", done_at=f"2017-03-0{day}"))
    checkpoint.save(tmp_path, 0, b"1", "fp", "2017-03-02", ps.aggregates.shards)
    loaded = PartitionState(_rules("2017-03-04"), ps.store)
    saved = checkpoint.take(tmp_path, 0, b"1", "fp", "2017-03-04")
    assert saved is not None
    loaded.aggregates.load(saved.shards)
    rebuilt = PartitionState(_rules("2017-03-04"), ps.store)
    rebuilt.rebuild()
    assert loaded.aggregates.values == rebuilt.aggregates.values != ps.aggregates.values
    assert any(key[1] == "" for key in rebuilt.aggregates.values)  # open deals: no day


def test_an_earlier_or_newly_set_or_cleared_cutoff_rebuilds(tmp_path: Path) -> None:
    for was, now in (("2017-03-04", "2017-03-02"), (None, "2017-03-02"), ("2017-03-02", None)):
        checkpoint.save(tmp_path, 0, b"1", "fp", was, SHARDS)
        assert checkpoint.take(tmp_path, 0, b"1", "fp", now) is None, (was, now)


def test_the_publish_mark_and_the_shards_changed_since_come_back_with_the_aggregates(
    tmp_path: Path,
) -> None:
    mark = PublishMark("e1", 7, {"2017-03-01": 5, "": 7, "2017-02-01": 3}, 6)
    checkpoint.save(tmp_path, 0, b"1", "fp", None, SHARDS, mark, {"2017-03-01"})
    saved = checkpoint.take(tmp_path, 0, b"1", "fp", None)
    assert saved == checkpoint.Saved(SHARDS, mark, frozenset({"2017-03-01"}))
    # nothing published yet, or the last publish not confirmed: the next start writes all
    for unconfirmed in (None, PublishMark()):
        checkpoint.save(tmp_path, 0, b"1", "fp", None, SHARDS, unconfirmed, {"2017-03-01"})
        assert checkpoint.take(tmp_path, 0, b"1", "fp", None) == checkpoint.Saved(SHARDS)


def test_resumed_aggregates_republish_only_what_changed_since_the_mark(tmp_path: Path) -> None:
    """Resumed under a mark: the shards changed since its last shard write and the
    published ones no longer held (a later cutoff dropped them) are written again; the
    aggregates are those saved, and no change set is claimed for the unsaved history."""
    mark = PublishMark("e1", 7, {"2017-03-01": 5, "": 7, "2017-02-01": 3}, 6)
    checkpoint.save(tmp_path, 0, b"1", "fp", "2017-02-01", SHARDS, mark, {"2017-03-01"})
    saved = checkpoint.take(tmp_path, 0, b"1", "fp", "2017-03-01")
    assert saved is not None and saved.published is not None
    ps = PartitionState(Rules(), {})
    ps.aggregates.load(saved.shards, saved.published, saved.unpublished)
    assert ps.aggregates.shards == SHARDS and ps.aggregates.published == mark
    assert ps.aggregates.take_dirty() == {"2017-03-01", "2017-02-01"}
    assert ps.aggregates.take_changes() is None


def test_a_file_of_the_previous_format_is_not_taken(tmp_path: Path, caplog: Any) -> None:
    checkpoint.save(tmp_path, 0, b"1", "fp", None, SHARDS)
    path = checkpoint.path_for(tmp_path, 0)
    body = orjson.loads(path.read_bytes())
    del body["published"]
    path.write_bytes(orjson.dumps({**body, "format": 1}))
    with caplog.at_level(logging.INFO, logger="agents.checkpoint"):
        assert checkpoint.take(tmp_path, 0, b"1", "fp", None) is None
    assert "does not match the store" in caplog.text
