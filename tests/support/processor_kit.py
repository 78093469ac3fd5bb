"""Test a domain's stream processor as a real process against a real broker, and prove it exactly once.

A domain describes its processor once (:class:`ProcessorKit`: the ``madina service`` name, the
variable of its web port, its topics, its settings for tests); the kit then starts it (waiting on
``/healthz``), kills it with SIGKILL, produces its input records and reads what it published. The
kill -9 tests take the domain's records and an oracle's expectation -- the pure logic fed the same
records, e.g. :func:`expected_from_step` -- and assert each alert revision is on ``alerts.v1``
exactly once::

    KIT = ProcessorKit("waste-processor", "MADINA_WASTE_PROCESSOR_PORT", ALL)

    @pytest.mark.parametrize("broker", ["embedded", "apache-kafka"], indirect=True)
    async def test_kill_9_mid_stream_then_restart_publishes_every_alert_revision_exactly_once(broker, tmp_path):
        records = [(FILL_LEVELS, container_id, batch) for ...]  # (topic, key, message), in order
        await KIT.kill_9_mid_stream(broker, tmp_path, records, expected_from_step(processor, records))

``broker`` is the fixture of tests/integration/conftest.py (embedded, or Apache Kafka when asked).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from google.protobuf.message import Message

from madina.bus import ensure_topics
from madina.bus.codec import standard_headers
from madina.bus.topics import ALERTS, KPIS, TopicSpec
from madina.devservers.ports import free_port
from madina.streams.entities import EntityProcessor, EntityRecord
from madina_proto.alerts.v1 import alerts_pb2
from tests.support.processes import wait_for_http

PARTITIONS = 2
Record = tuple[TopicSpec, str, Message]  # topic, key (the entity id), message
APPLY_LINE = '"message": "apply"'
# Log lines that tell a worker's story around a kill: errors, assignments, sweeps, ledger loads.
NOTABLE = ('"WARNING"', '"ERROR"', '"CRITICAL"', "swept", "ledger", "assigned", "Recovery complete", "Traceback")


@dataclass
class ProcessorProcess:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def kill(self) -> None:
        """kill -9: no flush, no commit, no goodbye."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def applied(self) -> int:
        """Records this process applied so far (it runs with MADINA_DEBUG_TRACE)."""
        return self.log_path.read_text().count(APPLY_LINE)

    def summary(self, tail: int = 25) -> str:
        """What a failed test needs to tell a stall from a loss: per input partition the records
        applied and the highest offset, how many were skipped as already applied, and the log's
        last notable lines."""
        applied: dict[str, list[int]] = {}
        skipped = 0
        other: list[str] = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if APPLY_LINE in line or 'already in the stored state' in line:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry["message"] == "apply":
                    applied.setdefault(f"{entry['topic']}:{entry['partition']}", []).append(int(entry["offset"]))
                else:
                    skipped += 1
            elif any(mark in line for mark in NOTABLE):
                # The watchdog's stall report is the one long line worth reading whole.
                other.append(line[:2000] if "madina.streams.watchdog" in line else line[:300])
        partitions = ", ".join(
            f"{tp} n={len(offsets)} max={max(offsets)}" for tp, offsets in sorted(applied.items()))
        return (f"{self.log_path.name} (exit {self.process.poll()}): applied [{partitions}], skipped {skipped}\n"
                + "\n".join(other[-tail:]))

    def last_sweep_partitions(self) -> list[int]:
        """The input partitions of this worker's latest take-over (logged after every rebalance)."""
        sweeps = [line for line in self.log_path.read_text().splitlines() if '"outboxes swept"' in line]
        return list(json.loads(sweeps[-1])["partitions"]) if sweeps else []


@dataclass(frozen=True)
class ProcessorKit:
    """One domain's processor, as its tests start it."""

    service: str  # `madina service NAME`
    port_variable: str  # the setting of its /healthz and /metrics port
    topics: Sequence[TopicSpec]  # the domain's; alerts.v1 and kpis.v1 are added
    env: Mapping[str, str] = field(default_factory=dict)  # its settings for tests
    partitions: int = PARTITIONS

    async def create_topics(self, bootstrap: str) -> None:
        await ensure_topics(bootstrap, [*self.topics, ALERTS, KPIS], default_partitions=self.partitions)

    def start(
        self,
        bootstrap: str,
        workdir: Path,
        *,
        name: str = "processor",
        extra_env: Mapping[str, str] | None = None,
        argv: Sequence[str] | None = None,
        debug_trace: bool = True,
        partitions: int | None = None,
    ) -> ProcessorProcess:
        """The processor (or ``argv``, a variant of it) with its settings for ``bootstrap``, once healthy."""
        workdir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        env = {
            # Only the settings given here: none inherited from the shell that runs the tests.
            **{k: v for k, v in os.environ.items() if not k.startswith("MADINA_")},
            "MADINA_KAFKA_BOOTSTRAP": bootstrap,
            "MADINA_TOPIC_PARTITIONS": str(partitions or self.partitions),
            "MADINA_DATA_DIR": str(workdir / "data"),
            "MADINA_LOG_FORMAT": "json",
            self.port_variable: str(port),
            **({"MADINA_DEBUG_TRACE": "true"} if debug_trace else {}),  # a log line per record
            **self.env,
            **(extra_env or {}),
        }
        log_path = workdir / f"{name}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                list(argv or (sys.executable, "-m", "madina", "service", self.service)),
                env=env, stdout=log, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True,
            )
        started = ProcessorProcess(process, port, log_path)
        try:
            wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout_s=60, process=process)
        except Exception as error:
            started.kill()
            raise RuntimeError(f"{error}\n--- processor log ---\n{log_path.read_text()[-4000:]}") from error
        return started

    async def kill_9_mid_stream(
        self, bootstrap: str, workdir: Path, records: Sequence[Record], expected: Counter[tuple[str, int, int]]
    ) -> None:
        """Half the records, kill -9 once alerts flow, the rest, a new process: each revision once."""
        await self.create_topics(bootstrap)
        size = len(records) // 8 + 1
        chunks = [records[i : i + size] for i in range(0, len(records), size)]
        processor = self.start(bootstrap, workdir, name="first")
        for chunk in chunks[:4]:
            await produce(bootstrap, chunk)
        await wait_for_alerts(bootstrap, 1, timeout_s=60)
        await asyncio.sleep(0.3)
        processor.kill()  # mid-stream: offsets, changelog and alerts are cut wherever they are
        published_before_kill = len(await alert_events(bootstrap))

        for chunk in chunks[4:]:
            await produce(bootstrap, chunk)
        processor = self.start(bootstrap, workdir, name="second")
        total = sum(expected.values())
        try:
            events = await settled_alerts(bootstrap, total, timeout_s=120, settle_s=3)
        finally:
            processor.stop()
        await assert_exactly_once_or_explain(bootstrap, self.topics, events, expected, [processor])
        assert 0 < published_before_kill < total, (published_before_kill, total)

    async def kill_busy_worker(
        self,
        bootstrap: str,
        workdir: Path,
        records: Sequence[Record],
        expected: Counter[tuple[str, int, int]],
        expected_first_half: Counter[tuple[str, int, int]],
    ) -> None:
        """Two workers share the partitions; the one doing the work is killed -9 mid-stream. Its
        partitions and states move to the survivor, which must re-read alerts.v1 and publish what the
        dead worker's outboxes hold: every revision once."""
        await self.create_topics(bootstrap)
        total = sum(expected.values())
        workers = []
        for name in ("a", "b"):
            (workdir / name).mkdir()
            workers.append(self.start(bootstrap, workdir / name, name=name))
        try:
            await self._wait_until_all_work(workers)
            half = len(records) // 2
            await produce(bootstrap, records[:half])
            await wait_for_alerts(bootstrap, sum(expected_first_half.values()) // 3, timeout_s=60)
            # The entities may all hash to one partition: kill the worker that is doing the work.
            busy = max(workers, key=ProcessorProcess.applied)
            busy.kill()  # offsets, changelogs and alerts are cut wherever they are
            survivor = next(worker for worker in workers if worker is not busy)
            # Produced only now, so the survivor has work even if the first half was done by the kill.
            await produce(bootstrap, records[half:])
            events = await settled_alerts(bootstrap, total, timeout_s=120, settle_s=3)
        finally:
            for worker in workers:
                worker.stop()
        await assert_exactly_once_or_explain(bootstrap, self.topics, events, expected, workers)
        assert survivor.applied(), "the survivor never took over any work"

    async def _wait_until_all_work(self, workers: Sequence[ProcessorProcess]) -> None:
        """Until each worker's latest take-over covers partitions of its own and all are covered."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        owned: list[list[int]] = []
        while loop.time() < deadline:
            owned = [worker.last_sweep_partitions() for worker in workers]
            if all(owned) and sorted(p for partitions in owned for p in partitions) == list(range(self.partitions)):
                return
            await asyncio.sleep(0.5)
        raise TimeoutError(f"the workers did not share the partitions: {owned}")


def expected_from_step(
    processor: EntityProcessor[Any], records: Iterable[Record], now: datetime | None = None
) -> Counter[tuple[str, int, int]]:
    """The oracle: the processor's pure step fed the same records in order, one entity at a time,
    with no broker, no faust and no crash. Counts (alert id, revision, state)."""
    clock = now or datetime.now(UTC)
    states: dict[str, Any] = {}
    expected: Counter[tuple[str, int, int]] = Counter()
    for spec, key, message in records:
        state = states[key] if key in states else processor.new_state(key)
        step = processor.step(state, EntityRecord(key, spec, message, clock))
        states[key] = step.state
        for event in step.alerts:
            expected[(event.alert_id, event.revision, int(event.state))] += 1
    return expected


def assert_exactly_once(events: Sequence[alerts_pb2.AlertEvent], expected: Counter[tuple[str, int, int]]) -> None:
    published = Counter((e.alert_id, e.revision, int(e.state)) for e in events)
    doubled = {key: n for key, n in published.items() if n > 1}
    assert not doubled, f"revisions published twice: {list(doubled)[:5]}"
    assert published == expected, (
        f"missing {list((expected - published).elements())[:5]}, extra {list((published - expected).elements())[:5]}"
    )


async def assert_exactly_once_or_explain(
    bootstrap: str,
    topics: Sequence[TopicSpec],
    events: Sequence[alerts_pb2.AlertEvent],
    expected: Counter[tuple[str, int, int]],
    workers: Sequence[ProcessorProcess],
) -> None:
    """:func:`assert_exactly_once`, with the input topics' end offsets and each worker's summary
    added on failure: a CI log must say whether records were never applied or alerts never sent."""
    try:
        assert_exactly_once(events, expected)
    except AssertionError as failure:
        ends = await end_offsets(bootstrap, [spec.name for spec in topics])
        details = "\n".join(worker.summary() for worker in workers)
        raise AssertionError(f"{failure}\ninput end offsets: {ends}\n{details}") from None


async def end_offsets(bootstrap: str, topics: Sequence[str]) -> dict[str, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        partitions = [
            TopicPartition(topic, p) for topic in topics for p in sorted(consumer.partitions_for_topic(topic) or ())]
        ends = await consumer.end_offsets(partitions) if partitions else {}
        return {f"{tp.topic}:{tp.partition}": offset for tp, offset in ends.items() if offset}
    finally:
        await consumer.stop()


async def produce(bootstrap: str, records: Iterable[Record]) -> None:
    """Each record with its standard headers, in order, acknowledged by all replicas."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        for spec, key, message in records:
            await producer.send(spec.name, message.SerializeToString(), key=key.encode(),
                                headers=standard_headers(spec, "test"))
        await producer.flush()
    finally:
        await producer.stop()


async def produce_raw(bootstrap: str, topic: str, key: bytes, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def read_all(bootstrap: str, topic: str, *, timeout_s: float = 3.0) -> list:  # type: ignore[type-arg]
    """Every record on ``topic`` right now, all partitions, from the beginning."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        assignment = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not assignment:
            return []
        consumer.assign(assignment)
        await consumer.seek_to_beginning(*assignment)
        end = await consumer.end_offsets(assignment)
        records = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s + 10
        while any([await consumer.position(tp) < end[tp] for tp in assignment]) and loop.time() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


async def alert_events(bootstrap: str) -> list[alerts_pb2.AlertEvent]:
    events = [alerts_pb2.AlertEvent.FromString(r.value) for r in await read_all(bootstrap, ALERTS.name)]
    return sorted(events, key=lambda e: (e.event_time.ToDatetime(), e.alert_id, e.revision))


async def wait_for_alerts(bootstrap: str, count: int, timeout_s: float = 60.0) -> list[alerts_pb2.AlertEvent]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    events: list[alerts_pb2.AlertEvent] = []
    while loop.time() < deadline:
        events = await alert_events(bootstrap)
        if len(events) >= count:
            return events
        await asyncio.sleep(0.5)
    return events


async def settled_alerts(
    bootstrap: str, count: int, timeout_s: float = 60.0, settle_s: float = 2.0
) -> list[alerts_pb2.AlertEvent]:
    """The alerts once ``count`` are there and ``settle_s`` more has passed: a duplicate or an
    unexpected extra would show up by then."""
    await wait_for_alerts(bootstrap, count, timeout_s)
    await asyncio.sleep(settle_s)
    return await alert_events(bootstrap)
