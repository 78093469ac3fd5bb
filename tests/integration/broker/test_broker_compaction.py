"""Log compaction through real clients: a consumer from the beginning sees the latest value per
key at its original offset, cleaned segments survive kill -9, and a faust Table restores its
state from a compacted changelog."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import confluent_kafka
from confluent_kafka.admin import AdminClient, NewTopic

from tests.integration.broker.faust_app import PARTITIONS

REPO_ROOT = Path(__file__).resolve().parents[3]
KEYS = 5
UPDATES = 400
CLEANER = ("--cleaner-interval-s", "0.2")
COMPACTED = {"cleanup.policy": "compact", "segment.bytes": "2000", "min.cleanable.dirty.ratio": "0.01"}


def _create(bootstrap: str, topic: str, partitions: int = 1, **config: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1, config=config)])[
        topic
    ].result(10)


def _produce_updates(bootstrap: str, topic: str) -> dict[bytes, tuple[int, bytes]]:
    producer = confluent_kafka.Producer(
        {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 1, "enable.idempotence": True}
    )
    latest: dict[bytes, tuple[int, bytes]] = {}

    def delivered(error, message):
        assert error is None, error
        latest[message.key()] = max(latest.get(message.key(), (-1, b"")), (message.offset(), message.value()))

    for number in range(UPDATES):
        key = f"key-{number % KEYS}".encode()
        producer.produce(topic, f"value-{number:05d}".encode(), key=key, on_delivery=delivered)
        if number % 10 == 9:
            producer.flush(10)  # small batches, so that segments of segment.bytes=2000 roll
    # A last, big record rolls the segment so that every update above sits in a closed one.
    producer.produce(topic, b"x" * 3000, key=b"roll", on_delivery=delivered)
    assert producer.flush(30) == 0
    return latest


def _read_from_beginning(bootstrap: str, topic: str, timeout_s: float = 20) -> list[tuple[int, bytes, bytes]]:
    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4().hex[:6]}", "enable.auto.commit": False}
    )
    consumer.assign([confluent_kafka.TopicPartition(topic, 0, confluent_kafka.OFFSET_BEGINNING)])
    _low, high = consumer.get_watermark_offsets(confluent_kafka.TopicPartition(topic, 0), timeout=10)
    received: list[tuple[int, bytes, bytes]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                received.append((message.offset(), message.key(), message.value()))
                if message.offset() == high - 1:
                    break
    finally:
        consumer.close()
    return received


def _wait_until_compacted(bootstrap: str, topic: str, expected: list, timeout_s: float = 30) -> list:
    deadline = time.monotonic() + timeout_s
    seen: list = []
    while time.monotonic() < deadline:
        seen = _read_from_beginning(bootstrap, topic)
        if seen == expected:
            return seen
        time.sleep(0.3)
    return seen


def test_consumers_see_the_latest_value_per_key_and_it_survives_kill_9(own_broker_factory, tmp_path, topic_name):
    data_dir = str(tmp_path / "data")
    broker = own_broker_factory("--data-dir", data_dir, *CLEANER)
    _create(broker.bootstrap, topic_name, **COMPACTED)
    latest = _produce_updates(broker.bootstrap, topic_name)
    expected = sorted((offset, key, value) for key, (offset, value) in latest.items())
    assert expected[-1][0] == UPDATES  # the roll record
    assert _wait_until_compacted(broker.bootstrap, topic_name, expected) == expected
    assert "cleaned " + topic_name in broker.log_text()

    broker.kill()
    restarted = own_broker_factory("--data-dir", data_dir, *CLEANER)
    assert _read_from_beginning(restarted.bootstrap, topic_name) == expected
    # The idempotent producer state and offsets continue where they were.
    producer = confluent_kafka.Producer({"bootstrap.servers": restarted.bootstrap, "enable.idempotence": True})
    offsets: list[int] = []
    producer.produce(topic_name, b"after", key=b"key-0", on_delivery=lambda e, m: offsets.append(m.offset()))
    assert producer.flush(10) == 0
    assert offsets == [UPDATES + 1]


def test_tombstones_disappear_after_delete_retention(own_broker_factory, topic_name):
    broker = own_broker_factory("--memory", *CLEANER)
    _create(broker.bootstrap, topic_name, **COMPACTED, **{"delete.retention.ms": "3000"})
    producer = confluent_kafka.Producer({"bootstrap.servers": broker.bootstrap})
    written = time.monotonic()
    for key, value in ((b"gone", b"v"), (b"stays", b"v"), (b"gone", None), (b"roll", b"x" * 3000)):
        producer.produce(topic_name, value, key=key)
        assert producer.flush(10) == 0  # one batch each, so the big one rolls the segment
    with_tombstone = [(1, b"stays", b"v"), (2, b"gone", None), (3, b"roll", b"x" * 3000)]
    assert _wait_until_compacted(broker.bootstrap, topic_name, with_tombstone, timeout_s=10) == with_tombstone
    assert time.monotonic() - written < 3, "too slow to see the tombstone within its retention"
    time.sleep(max(0.0, 3.2 - (time.monotonic() - written)))
    # New data makes the log dirty again; that cleaning drops the expired tombstone.
    producer.produce(topic_name, b"y" * 3000, key=b"roll-2")
    assert producer.flush(10) == 0
    expected = [(1, b"stays", b"v"), (3, b"roll", b"x" * 3000), (4, b"roll-2", b"y" * 3000)]
    assert _wait_until_compacted(broker.bootstrap, topic_name, expected, timeout_s=10) == expected


def _faust_worker(bootstrap: str, app_id: str, topic: str, workdir: Path) -> tuple[subprocess.Popen, list[str]]:
    """``workdir``: where faust keeps its data directory (``<app id>-data``)."""
    env = {
        **os.environ,
        "FAUST_TEST_BROKER": bootstrap,
        "FAUST_TEST_APP_ID": app_id,
        "FAUST_TEST_TOPIC": topic,
        "PYTHONPATH": str(REPO_ROOT),
        "PYTHONUNBUFFERED": "1",
    }
    argv = [sys.executable, "-m", "faust", "-A", "tests.integration.broker.faust_app", "worker", "-l", "info"]
    worker = subprocess.Popen(
        [*argv, "--without-web"], cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(worker.stdout), daemon=True).start()  # type: ignore[arg-type]
    return worker, lines


def _wait_for(worker: subprocess.Popen, lines: list[str], predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        assert worker.poll() is None, f"faust worker exited:\n{''.join(lines)[-4000:]}"
        time.sleep(0.1)
    raise AssertionError(f"{what} within {timeout_s}s:\n{''.join(lines)[-4000:]}")


def _stop(worker: subprocess.Popen) -> None:
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(20)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def _changelog_size(bootstrap: str, topic: str) -> int:
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": "sizer"})
    total = 0
    for partition in range(PARTITIONS):
        _low, high = consumer.get_watermark_offsets(confluent_kafka.TopicPartition(topic, partition), timeout=10)
        total += high
    consumer.close()
    return total


def test_faust_table_recovers_its_state_from_a_compacted_changelog(own_broker_factory, tmp_path):
    # Small segments for compacted topics the broker did not get configs for: faust creates
    # the changelog itself with cleanup.policy=compact only.
    broker = own_broker_factory("--memory", *CLEANER, "--compact-segment-bytes", "300")
    app_id = f"faust-{uuid.uuid4().hex[:8]}"
    topic = f"{app_id}-source"
    _create(broker.bootstrap, topic, PARTITIONS)
    producer = confluent_kafka.Producer({"bootstrap.servers": broker.bootstrap})

    worker, lines = _faust_worker(broker.bootstrap, app_id, topic, tmp_path)
    try:
        _wait_for(worker, lines, lambda: any("Ready" in line for line in lines), 60, "worker not ready")
        for number in range(30):
            producer.produce(topic, f'"value-{number}"'.encode(), key=f'"key-{number % 3}"'.encode())
        assert producer.flush(10) == 0
        # All three keys: one key's tenth record can be processed before the other partition's
        # records are, when the worker is first assigned both partitions with all 30 waiting.
        _wait_for(
            worker, lines, lambda: sum("count=10" in line for line in lines) == 3, 60, "records not processed"
        )
    finally:
        _stop(worker)

    changelog = f"{app_id}-counts-changelog"
    assert _changelog_size(broker.bootstrap, changelog) >= 30
    deadline = time.monotonic() + 30
    while "cleaned " + changelog not in broker.log_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "cleaned " + changelog in broker.log_text()

    worker, lines = _faust_worker(broker.bootstrap, app_id, topic, tmp_path)
    try:
        _wait_for(worker, lines, lambda: any("Ready" in line for line in lines), 60, "worker not ready again")
        for number in range(3):
            producer.produce(topic, b'"again"', key=f'"key-{number}"'.encode())
        assert producer.flush(10) == 0
        _wait_for(
            worker,
            lines,
            lambda: sum("processed again count=11" in line for line in lines) == 3,
            60,
            "counts not restored from the compacted changelog",
        )
    finally:
        _stop(worker)
