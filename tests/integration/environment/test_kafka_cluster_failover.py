"""Failover on a three-node Apache Kafka cluster (replication factor 3, min.insync.replicas 2).

In the middle of pollution episodes, the node that leads most of the input partitions is killed
with SIGKILL. Producers (acks=all, idempotent) and the environment processor must carry on after
leader election; afterwards every acknowledged observation is on its topic exactly once, every
alert revision the oracle (the pure evaluator on the same records) expects is published exactly
once, and the killed node, restarted, rejoins the ISR of every partition.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from kafka.admin import KafkaAdminClient

from madina.bus import ensure_topics
from madina.bus.codec import standard_headers
from madina.bus.topics import ALERTS, KPIS
from madina.devservers.apache_kafka import ApacheKafkaCluster, KafkaUnavailable
from services.environment.convert import batches_by_station
from services.environment.topics import ALL, NOISE, TOPIC_OF, WATER_QUALITY
from tests.integration.environment.processor_harness import episodic_stream, expected_transitions, start_processor
from tests.support.processor_kit import assert_exactly_once, read_all, settled_alerts, wait_for_alerts

PARTITIONS = 3
INPUTS = [WATER_QUALITY.name, NOISE.name]


@pytest.fixture
def cluster(tmp_path: Path):  # type: ignore[no-untyped-def]
    try:
        started = ApacheKafkaCluster.start(tmp_path / "kafka", nodes=3, heap_mb=384, timeout_s=180)
    except KafkaUnavailable as error:
        pytest.skip(f"Apache Kafka not available: {error}")
    try:
        yield started
    finally:
        started.stop()


def _partitions(bootstrap: str, topics: list[str]) -> list[dict]:  # type: ignore[type-arg]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        return [
            {"topic": topic["name"], **partition}
            for topic in admin.describe_topics(topics)
            for partition in topic["partitions"]
        ]
    finally:
        admin.close()


class AckedProducer:
    """acks=all and idempotent, as the ingest APIs publish; counts what Kafka acknowledged."""

    def __init__(self, bootstrap: str) -> None:
        self.producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            request_timeout_ms=30000,
            retry_backoff_ms=200,
        )
        self.acknowledged: Counter[str] = Counter()

    async def send(self, chunk: list[list]) -> None:  # type: ignore[type-arg]
        futures = []
        for observations in chunk:
            for kind, station_id, batch in batches_by_station(observations):
                spec = TOPIC_OF[kind]
                future = await self.producer.send(
                    spec.name,
                    batch.SerializeToString(),
                    key=station_id.encode(),
                    headers=standard_headers(spec, "test"),
                )
                futures.append((spec.name, future))
        for topic, future in futures:
            await future  # raises if Kafka never acknowledged: the test fails there
            self.acknowledged[topic] += 1


async def test_kill_9_of_the_leading_kafka_node_mid_episode_loses_nothing_and_doubles_no_alert(
    cluster: ApacheKafkaCluster, tmp_path: Path
) -> None:
    bootstrap = cluster.bootstrap
    await ensure_topics(bootstrap, [*ALL, ALERTS, KPIS], default_partitions=PARTITIONS, replication_factor=3)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    records = episodic_stream(t0)
    expected = expected_transitions(records)
    total = sum(expected.values())
    size = len(records) // 8 + 1
    chunks = [records[i : i + size] for i in range(0, len(records), size)]

    processor = start_processor(
        bootstrap,
        tmp_path / "processor",
        partitions=PARTITIONS,
        extra_env={"MADINA_TOPIC_REPLICATION_FACTOR": "3"},
    )
    producer = AckedProducer(bootstrap)
    await producer.producer.start()
    try:
        for chunk in chunks[:4]:
            await producer.send(chunk)
        await wait_for_alerts(bootstrap, 1, timeout_s=90)

        leaders = Counter(p["leader_id"] for p in _partitions(bootstrap, INPUTS))
        victim = leaders.most_common(1)[0][0]
        cluster.kill(victim)  # mid-episode: no controlled shutdown, leadership moves by election

        for chunk in chunks[4:]:
            await producer.send(chunk)
        events = await settled_alerts(bootstrap, total, timeout_s=180, settle_s=3)
    finally:
        await producer.producer.stop()
        processor.stop()

    # Nothing acknowledged is lost, nothing is written twice (idempotent retries across the election).
    for topic in INPUTS:
        stored = await read_all(bootstrap, topic)
        assert len(stored) == producer.acknowledged[topic], topic
    assert sum(producer.acknowledged.values()) > 0
    assert_exactly_once(events, expected)
    survivors = {p["leader_id"] for p in _partitions(bootstrap, INPUTS)}
    assert victim not in survivors, "leadership moved off the killed node"

    # Restarted, the node catches up and rejoins the ISR of every partition it replicates.
    cluster.restart(victim)
    deadline = time.monotonic() + 120
    out_of_isr: list[str] = []
    while time.monotonic() < deadline:
        partitions = _partitions(bootstrap, [*INPUTS, ALERTS.name])
        out_of_isr = [f"{p['topic']}/{p['partition_index']}" for p in partitions if victim not in p["isr_nodes"]]
        if not out_of_isr:
            break
        await asyncio.sleep(1)
    assert not out_of_isr, f"node {victim} not back in the ISR of {out_of_isr}"
