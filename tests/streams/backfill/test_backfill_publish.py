"""Publishing a backfill: exactly once on the topic, across crashes and resumes.

The service tests use the real local Kafka (``stack_settings``), each on a fresh topic.
The crash test runs ``salespulse backfill`` as a subprocess that exits abruptly
(``os._exit``, no cleanup, transaction left open) at a chosen chunk and stage, then
resumes it, and reads the topic back with ``read_committed``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from salespulse.config import Settings
from streams.backfill.export import Export
from streams.backfill.mapping import Mapping
from streams.backfill.publish import (
    MAX_RECORD_BYTES,
    Checkpoint,
    PublishError,
    PublishResult,
    _records,
    check_topic,
    format_summary,
    publish,
)
from streams.records import decode_record, partition_for

REPO = Path(__file__).resolve().parents[3]
DATASET = (REPO / ".." / "shared" / "data" / "crm-sales-opportunities").resolve()
MAPPING = REPO / "deploy" / "mappings" / "crm-sales-opportunities.yaml"
services = pytest.mark.services
needs_dataset = pytest.mark.skipif(
    not (DATASET / "sales_pipeline.csv").is_file(),
    reason=f"SHARED DATASET MISSING: {DATASET} not found; the publish crash test is NOT run",
)


# --- no services ---------------------------------------------------------------------------


def test_checkpoint_round_trip_and_other_exports(tmp_path: Path) -> None:
    path = tmp_path / "cp" / "x.checkpoint.json"
    cp = Checkpoint(path, "f" * 64, events=1500, files={"a.csv": 1501}, chunks=3)
    cp.save()
    loaded = Checkpoint.load(path, "f" * 64)
    assert (loaded.events, loaded.files, loaded.chunks) == (1500, {"a.csv": 1501}, 3)
    assert Checkpoint.load(path, "0" * 64).events == 0  # another export's file is ignored
    path.write_text("{not json")
    assert Checkpoint.load(path, "f" * 64).events == 0
    assert not list(path.parent.glob("*.tmp"))


def test_records_stay_below_the_message_size() -> None:
    big = "x" * 5000
    events = [{"entity": "deal", "entity_id": f"D{i}", "fields": {"note": big}} for i in range(400)]
    records = _records(events, 4)
    assert all(len(value) <= MAX_RECORD_BYTES for _, value in records)
    decoded = [e for _, value in records for e in decode_record(value)]
    assert sorted(e["entity_id"] for e in decoded) == sorted(e["entity_id"] for e in events)
    for partition, value in records:
        assert {partition_for(f"deal:{e['entity_id']}", 4) for e in decode_record(value)} == {
            partition
        }


def test_summary_text() -> None:
    result = PublishResult(
        "t",
        4,
        "tid",
        "/cp.json",
        8885,
        4500,
        events_sent=4385,
        chunks=9,
        records=36,
        bytes=1_200_000,
        elapsed_s=2.0,
        resumed_from_source="kafka",
        complete=True,
    )
    text = format_summary(result)
    assert "published 4385 events in 9 transactions" in text
    assert "resumed after 4500 events already on the topic (checkpoint from kafka)" in text
    assert "8885 of 8885 events" in text


# --- helpers for the service tests ---------------------------------------------------------


def _settings(stack_settings: Settings, tmp_path: Path, **extra: Any) -> Settings:
    topic = f"backfill-test-{uuid.uuid4().hex[:8]}"
    return stack_settings.model_copy(update={"topic_events": topic, "home": tmp_path, **extra})


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALESPULSE_")}
    env.update(
        {
            "SALESPULSE_HOST": settings.host,
            "SALESPULSE_KAFKA_PORT": str(settings.kafka_port),
            "SALESPULSE_KAFKA_BROKERS": settings.kafka_brokers,
            "SALESPULSE_TOPIC_EVENTS": settings.topic_events,
            "SALESPULSE_PARTITIONS": str(settings.partitions),
            "SALESPULSE_HOME": str(settings.home),
            "SALESPULSE_APP_ID": settings.app_id,
        }
    )
    return env


def _backfill(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        str(Path(sys.executable).with_name("salespulse")),
        "backfill",
        str(DATASET),
        "--mapping",
        str(MAPPING),
        "--chunk-size",
        "500",
        "--no-progress",
        *args,
    ]
    return subprocess.run(
        cmd, env=_env(settings), capture_output=True, text=True, timeout=120, cwd=REPO
    )


async def read_topic(
    settings: Settings, isolation: str = "read_committed"
) -> list[tuple[int, dict[str, Any]]]:
    """Every event on the topic as (partition, event), up to the current end."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        isolation_level=isolation,
    )
    await consumer.start()
    try:
        parts = [TopicPartition(settings.topic_events, p) for p in range(settings.partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        end = await consumer.end_offsets(parts)  # read_committed: the last stable offset
        out: list[tuple[int, dict[str, Any]]] = []
        while [tp for tp in parts if await consumer.position(tp) < end[tp]]:
            batch = await consumer.getmany(timeout_ms=1000)
            for tp, messages in batch.items():
                for message in messages:
                    if message.offset < end[tp]:
                        out += [(tp.partition, e) for e in decode_record(message.value)]
        return out
    finally:
        await consumer.stop()


def _checkpoint(settings: Settings) -> dict[str, Any]:
    (path,) = (Path(settings.home) / "backfill").glob("*.checkpoint.json")
    return orjson.loads(path.read_bytes())


# --- the real Kafka ------------------------------------------------------------------------


@services
@needs_dataset
async def test_interrupted_publish_resumes_exactly_once(
    stack_settings: Settings, tmp_path: Path
) -> None:
    settings = _settings(stack_settings, tmp_path)
    expected = list(Export.open(DATASET, Mapping.load(MAPPING)).events())
    assert len(expected) == 8885

    # 1. crash in chunk 4 after its records were acknowledged, before the commit
    run = _backfill(settings, "--crash-after", "4:sent")
    assert run.returncode == 75, run.stderr
    assert len(await read_topic(settings)) == 1500  # chunks 1-3 only
    assert _checkpoint(settings)["events"] == 1500

    # 2. resume; crash in chunk 9 after the commit, before the checkpoint file is written
    run = _backfill(settings, "--crash-after", "9:committed")
    assert run.returncode == 75, run.stderr
    assert len(await read_topic(settings)) == 4500
    assert _checkpoint(settings)["events"] == 4000  # the file lags Kafka by one chunk

    # 3. resume to the end: Kafka's checkpoint wins over the stale file
    run = _backfill(settings)
    assert run.returncode == 0, run.stderr
    assert "resumed after 4500 events already on the topic (checkpoint from kafka)" in run.stderr
    assert "published 4385 events" in run.stderr
    cp = _checkpoint(settings)
    assert cp["complete"] and cp["events"] == 8885
    assert cp["files"] == {"sales_pipeline.csv": 8801, "accounts.csv": 86}

    # 4. once more: nothing to do
    run = _backfill(settings)
    assert run.returncode == 0, run.stderr
    assert "nothing to do" in run.stderr

    committed = await read_topic(settings)
    counts = Counter((e["entity"], e["entity_id"]) for _, e in committed)
    assert len(counts) == 8885 and set(counts.values()) == {1}  # each entity exactly once
    assert sum(1 for entity, _ in counts if entity == "deal") == 8800
    assert sorted(e["event_id"] for _, e in committed) == sorted(e["event_id"] for e in expected)
    assert {e["event_id"]: e for _, e in committed} == {e["event_id"]: e for e in expected}
    for partition, event in committed:  # batch records went to the entity's partition
        assert partition == partition_for(
            f"{event['entity']}:{event['entity_id']}", settings.partitions
        )
    # The aborted chunk 4 is physically in the log, invisible to read_committed readers.
    everything = await read_topic(settings, "read_uncommitted")
    assert len(everything) == 8885 + 500


def _small_export(folder: Path, deals: int = 120) -> Export:
    (folder / "sales_teams.csv").write_text("sales_agent,manager,regional_office\nAnn,Mel,West\n")
    (folder / "products.csv").write_text("product,series,sales_price\nGTX Basic,GTX,550\n")
    (folder / "accounts.csv").write_text(
        "account,sector,year_established,revenue,employees,office_location,subsidiary_of\n"
        "Acme,retail,1990,1.5,10,United States,\n"
    )
    rows = [
        f"D{i:04d},Ann,GTX Basic,Acme,Won,2017-01-02,2017-03-{1 + i % 28:02d},{100 + i}"
        for i in range(deals)
    ]
    (folder / "sales_pipeline.csv").write_text(
        "opportunity_id,sales_agent,product,account,deal_stage,engage_date,close_date,"
        "close_value\n" + "\n".join(rows) + "\n"
    )
    return Export.open(folder, Mapping.load(MAPPING))


@services
async def test_failed_chunk_is_aborted_and_resumed_in_process(
    stack_settings: Settings, tmp_path: Path
) -> None:
    settings = _settings(stack_settings, tmp_path / "home")
    (tmp_path / "export").mkdir()
    export = _small_export(tmp_path / "export")
    total = len(list(export.events()))
    assert total == 121

    def fail(stage: str, seq: int) -> None:
        if (stage, seq) == ("sent", 3):
            raise RuntimeError("simulated failure")

    with pytest.raises(RuntimeError, match="simulated"):
        await publish(
            export, settings, events_total=total, chunk_size=25, on_chunk=fail, progress=False
        )
    assert len(await read_topic(settings)) == 50  # chunk 3 was aborted, not left open
    assert len(await read_topic(settings, "read_uncommitted")) == 75

    result = await publish(export, settings, events_total=total, chunk_size=25, progress=False)
    assert (result.resumed_from, result.events_sent, result.complete) == (50, 71, True)
    events = await read_topic(settings)
    assert len(events) == total
    assert len({(e["entity"], e["entity_id"]) for _, e in events}) == total

    again = await publish(export, settings, events_total=total, chunk_size=25, progress=False)
    assert again.events_sent == 0 and again.resumed_from == total
    # --restart publishes the whole export again, on purpose
    restarted = await publish(
        export, settings, events_total=total, chunk_size=25, restart=True, progress=False
    )
    assert restarted.events_sent == total
    assert len(await read_topic(settings)) == 2 * total


@services
async def test_topic_with_other_partition_count_is_refused(
    stack_settings: Settings, tmp_path: Path
) -> None:
    from salespulse.stack.topics import ensure_topics

    settings = _settings(stack_settings, tmp_path)
    await ensure_topics(settings, {settings.topic_events: 2})
    with pytest.raises(PublishError, match="has 2 partitions but SALESPULSE_PARTITIONS is 4"):
        await check_topic(settings.model_copy(update={"partitions": 4}))
