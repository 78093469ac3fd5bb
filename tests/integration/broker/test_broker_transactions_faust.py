"""faust with ``processing_guarantee="exactly_once"`` runs on the broker: its transactional
producers commit the sink records, the Table's changelog and the source offsets together,
and a read_committed reader of the sink sees every source record exactly once."""

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
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from tests.integration.broker.faust_eos_app import PARTITIONS

pytestmark = pytest.mark.timeout(600)

REPO_ROOT = Path(__file__).resolve().parents[3]
RECORDS = 40


def _read_committed(bootstrap: str, topic: str, expected: int, timeout_s: float = 30.0) -> list:
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"check-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([topic])
    seen: list = []
    deadline = time.monotonic() + timeout_s
    quiet_until = None
    while time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            seen.append(message.value())
        if len(seen) >= expected:
            quiet_until = quiet_until or time.monotonic() + 3  # anything extra shows up now
            if time.monotonic() > quiet_until:
                break
    consumer.close()
    return seen


def test_faust_exactly_once_worker_commits_sink_changelog_and_offsets(broker_bootstrap, tmp_path):
    app_id = f"faust-eos-{uuid.uuid4().hex[:8]}"
    topic = f"{app_id}-source"
    admin = AdminClient({"bootstrap.servers": broker_bootstrap})
    for name in (topic, f"{topic}-sink"):
        admin.create_topics([NewTopic(name, num_partitions=PARTITIONS, replication_factor=1)])[name].result(10)
    env = {
        **os.environ,
        "FAUST_TEST_BROKER": broker_bootstrap,
        "FAUST_TEST_APP_ID": app_id,
        "FAUST_TEST_TOPIC": topic,
        "PYTHONPATH": str(REPO_ROOT),
        "PYTHONUNBUFFERED": "1",
    }
    worker = subprocess.Popen(
        [
            *(sys.executable, "-m", "faust", "-A", "tests.integration.broker.faust_eos_app", "worker"),
            *("-l", "info", "--without-web"),
        ],
        cwd=tmp_path,  # faust keeps its data directory (<app id>-data) in the working directory
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(worker.stdout), daemon=True).start()

    def wait_for(predicate, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return
            assert worker.poll() is None, f"faust worker exited:\n{''.join(lines)[-4000:]}"
            time.sleep(0.1)
        raise AssertionError(f"{what} within {timeout_s}s:\n{''.join(lines)[-4000:]}")

    try:
        wait_for(lambda: any("Ready" in line for line in lines), 90, "worker not ready")
        producer = confluent_kafka.Producer({"bootstrap.servers": broker_bootstrap})
        for number in range(RECORDS):
            producer.produce(topic, f'"value-{number}"'.encode(), key=f'"key-{number % 4}"'.encode())
        assert producer.flush(10) == 0
        wait_for(
            lambda: sum("processed " in line for line in lines) >= RECORDS, 90, "records not processed"
        )
        sink = _read_committed(broker_bootstrap, f"{topic}-sink", RECORDS, timeout_s=60)
        assert sorted(sink) == sorted(f'"value-{number}"'.encode() for number in range(RECORDS))
        changelog = _read_committed(broker_bootstrap, f"{app_id}-counts-changelog", RECORDS, timeout_s=30)
        assert len(changelog) >= RECORDS
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
