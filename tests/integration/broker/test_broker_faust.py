"""A faust-streaming worker with default settings (topic declaration on) runs an agent and a
Table against the broker: records are processed and the changelog topic gets entries."""

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
RECORDS = 20


def test_faust_worker_processes_records_and_writes_table_changelog(broker_bootstrap, tmp_path):
    app_id = f"faust-{uuid.uuid4().hex[:8]}"
    topic = f"{app_id}-source"
    # Declared up front with the Table's partition count: otherwise the consumer's metadata
    # request auto-creates it with the broker default and faust stops on PartitionsMismatch.
    admin = AdminClient({"bootstrap.servers": broker_bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])[topic].result(10)
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
            sys.executable,
            "-m",
            "faust",
            "-A",
            "tests.integration.broker.faust_app",
            "worker",
            "-l",
            "info",
            "--without-web",
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
        wait_for(lambda: any("Ready" in line for line in lines), 60, "worker not ready")
        producer = confluent_kafka.Producer({"bootstrap.servers": broker_bootstrap})
        for number in range(RECORDS):
            producer.produce(topic, f'"value-{number}"'.encode(), key=f'"key-{number % 3}"'.encode())
        assert producer.flush(10) == 0
        wait_for(
            lambda: sum("] processed " in line or line.startswith("processed ") for line in lines) >= RECORDS,
            60,
            "records not processed",
        )
        assert any("count=7" in line for line in lines)  # key-0 seen 7 times, counted in the Table

        changelog = f"{app_id}-counts-changelog"
        consumer = confluent_kafka.Consumer(
            {
                "bootstrap.servers": broker_bootstrap,
                "group.id": f"{app_id}-check",
                "auto.offset.reset": "earliest",
            }
        )
        consumer.subscribe([changelog])
        entries = []
        deadline = time.monotonic() + 30
        while len(entries) < RECORDS and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                entries.append(message)
        consumer.close()
        assert len(entries) >= RECORDS
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
