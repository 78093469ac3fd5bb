"""Consumer groups with real rebalancing: three member processes per client library, one of
them killed -9 mid-stream. Its partitions must move to the survivors within the session
timeout, and every record must be committed exactly once across the members (the killed
member's one in-flight record may have been committed without it living to say so)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import confluent_kafka
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

MEMBER_SCRIPT = Path(__file__).with_name("group_member.py")
PARTITIONS = 3
SESSION_TIMEOUT_S = 6


class MemberProcess:
    def __init__(self, client: str, bootstrap: str, topic: str, group: str):
        self.process = subprocess.Popen(
            [sys.executable, str(MEMBER_SCRIPT), client, bootstrap, topic, group],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.records: list[tuple[int, int, float]] = []  # committed (partition, offset, when)
        self.in_flight: tuple[int, int] | None = None
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            entry = json.loads(line)
            if entry["stage"] == "processing":
                self.in_flight = (entry["p"], entry["o"])
                continue
            self.in_flight = None
            if entry["stage"] == "committed":
                self.records.append((entry["p"], entry["o"], time.monotonic()))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


class SteadyProducer(threading.Thread):
    """Writes one record per partition every 30 ms until stopped, remembering what was acked."""

    def __init__(self, bootstrap: str, topic: str):
        super().__init__(daemon=True)
        self.producer = confluent_kafka.Producer(
            {"bootstrap.servers": bootstrap, "linger.ms": 1, "acks": "all"}
        )
        self.topic = topic
        self.acked: set[tuple[int, int]] = set()
        self.halt = threading.Event()

    def _delivered(self, error, message) -> None:
        assert error is None, error
        self.acked.add((message.partition(), message.offset()))

    def run(self) -> None:
        sequence = 0
        while not self.halt.is_set():
            for partition in range(PARTITIONS):
                self.producer.produce(
                    self.topic, f"r{sequence}".encode(), partition=partition, on_delivery=self._delivered
                )
                sequence += 1
            self.producer.poll(0)
            time.sleep(0.03)
        assert self.producer.flush(20) == 0


def _wait_until(condition, timeout_s: float, message: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(message)


@pytest.mark.parametrize("client", ["aiokafka", "kafka-python", "confluent"])
def test_killed_member_partitions_move_to_survivors_without_loss_or_duplicates(
    broker_bootstrap, topic_name, group_name, client
):
    admin = AdminClient({"bootstrap.servers": broker_bootstrap})
    admin.create_topics([NewTopic(topic_name, num_partitions=PARTITIONS, replication_factor=1)])[
        topic_name
    ].result(10)
    members = [MemberProcess(client, broker_bootstrap, topic_name, group_name) for _ in range(3)]
    producer = SteadyProducer(broker_bootstrap, topic_name)
    producer.start()
    try:
        # Wait for a stable three-member group: every member is committing its own partition.
        _wait_until(
            lambda: (
                all(member.records for member in members)
                and all(len({record[0] for record in member.records[-3:]}) == 1 for member in members)
            ),
            45,
            "three members never all consumed",
        )
        owned_before = {member.records[-1][0] for member in members}
        assert owned_before == set(range(PARTITIONS))
        victim, survivors = members[0], members[1:]
        victim_partition = victim.records[-1][0]
        victim.process.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        _wait_until(
            lambda: any(
                record[0] == victim_partition and record[2] > killed_at
                for survivor in survivors
                for record in survivor.records
            ),
            SESSION_TIMEOUT_S + 15,
            "the killed member's partition never moved to a survivor",
        )
        moved_after = (
            min(
                record[2]
                for survivor in survivors
                for record in survivor.records
                if record[0] == victim_partition and record[2] > killed_at
            )
            - killed_at
        )
        assert moved_after < SESSION_TIMEOUT_S + 6
        time.sleep(0.5)
    finally:
        producer.halt.set()
        producer.join(30)
    try:
        expected = producer.acked
        in_flight_at_kill = {victim.in_flight} if victim.in_flight else set()

        def committed() -> list[tuple[int, int]]:
            return [(p, o) for member in members for p, o, _when in member.records]

        _wait_until(
            lambda: set(committed()) | in_flight_at_kill >= expected,
            30,
            "not every produced record was committed",
        )
        duplicates = [entry for entry, count in Counter(committed()).items() if count > 1]
        assert not duplicates, f"committed twice: {sorted(duplicates)[:10]}"
        assert set(committed()) | in_flight_at_kill == expected
    finally:
        for member in members:
            member.stop()
