"""A three-node Kafka cluster (KRaft) and Redis of their own, for the reliability tests.

Own home (``.salespulse-test/cluster``) and ports (Kafka 19392/19402/19412, controllers
19394/19404/19414, Redis 16679), so they run beside the session stack of the other
service tests. Topics have 6 partitions, replication factor 3 and ``min.insync.replicas``
2; the workers' changelog topics too (``Settings.replication_factor=3``).

``SALESPULSE_KEEP_CLUSTER=1`` leaves the cluster, workers and collectors running after
the tests (for a post-mortem; ``salespulse stack down`` with the cluster's settings, or
the next run, stops them).
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest

from salespulse import stack
from salespulse.config import Settings
from salespulse.stack import ensure_topics, kafka, process
from tests.conftest import TEST_HOME, make_test_settings
from tests.e2e.conftest import Pipeline
from tests.helpers import pipeline_settings

CLUSTER_HOME = TEST_HOME / "cluster"
PARTITIONS = 6
log = logging.getLogger("tests.reliability")


def cluster_test_settings() -> Settings:
    return make_test_settings(
        home=CLUSTER_HOME,
        kafka_port=19392,
        kafka_controller_port=19394,
        redis_port=16679,
        collector_port=18400,
        kafka_cluster_size=3,
        replication_factor=3,
        partitions=PARTITIONS,
    )


def _share_jar_cache(settings: Settings) -> None:
    """Use the jars of the session stack's home (resolved there once with Maven)."""
    shared = make_test_settings()
    kafka.resolve_jars(shared)
    mine = kafka.libs_dir(settings).parent
    if not mine.exists():
        mine.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(kafka.libs_dir(shared).parent, mine, target_is_directory=True)


@pytest.fixture(scope="session")
def cluster_settings() -> Iterator[Settings]:
    """A fresh three-broker cluster and a Redis, stopped at the end of the session."""
    settings = cluster_test_settings()
    for home in sorted((CLUSTER_HOME / "pipelines").glob("*")):  # leftovers of a kept run
        stack.down(settings.model_copy(update={"home": home}), timeout=5)
    stack.down(settings)
    stack.reset(settings)
    shutil.rmtree(CLUSTER_HOME / "pipelines", ignore_errors=True)
    _share_jar_cache(settings)
    t0 = time.monotonic()
    stack.up(settings, services=("kafka", "redis"), timeout=120)
    log.info("cluster up in %.1fs", time.monotonic() - t0)
    try:
        yield settings
    finally:
        if not os.environ.get("SALESPULSE_KEEP_CLUSTER"):  # keep it for a post-mortem
            stack.down(settings)


@pytest.fixture
def cluster_pipeline(cluster_settings: Settings) -> Iterator[Any]:
    """Make isolated pipelines (own topics, app id, Redis prefix, home) on the cluster;
    their workers and collector are stopped when the test ends."""
    made: list[Pipeline] = []

    def make(name: str, collector_port: int) -> Pipeline:
        settings = pipeline_settings(
            cluster_settings, name, CLUSTER_HOME, collector_port=collector_port
        )
        stack.down(settings)  # processes a kept (SALESPULSE_KEEP_CLUSTER) run left behind
        shutil.rmtree(settings.home, ignore_errors=True)
        process.run_coro(
            ensure_topics(
                settings,
                {settings.topic_events: PARTITIONS, settings.topic_dead_letters: 1},
                replication=3,
            )
        )
        pipeline = Pipeline(settings)
        made.append(pipeline)
        return pipeline

    yield make
    if os.environ.get("SALESPULSE_KEEP_CLUSTER"):
        return
    # In parallel and briefly: a Faust worker's clean shutdown can take tens of seconds.
    names = [(pipeline, name) for pipeline in made for name in sorted(pipeline.started)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        list(pool.map(lambda pn: process.stop(pn[0].settings, pn[1], timeout=5), names))
