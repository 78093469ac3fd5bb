"""What every processor benchmark needs around the processor under test, written once: a durable
embedded broker, producing a pre-built workload (all at once, or paced), the processor as a
process (the domain's faust worker, or a plain loop that prints a readiness line), an observer of
the processor's applied markers and alerts (with arrival times), and a process's CPU time."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from madina.devservers.launch import BrokerProcess
from madina_proto.alerts.v1 import alerts_pb2


class OutRecord(Protocol):
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_broker(data_dir: Path, log_path: Path, partitions: int) -> BrokerProcess:
    """The embedded broker in durable mode, logging to a file."""
    return BrokerProcess.start(memory=False, data_dir=data_dir, default_partitions=partitions,
                               initial_rebalance_delay_ms=None, log_path=log_path)


async def produce_all(bootstrap: str, records: Sequence[OutRecord]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=1 << 20)
    await producer.start()
    try:
        pending = []
        for record in records:
            pending.append(await producer.send(record.topic, record.value, key=record.key, headers=record.headers))
        await producer.flush()
        for future in pending:
            await future
    finally:
        await producer.stop()


@dataclass
class Observer:
    """Reads a processor's applied markers and alerts from the beginning, noting when each arrived."""

    bootstrap: str
    applied_topic: str
    alerts_topic: str
    partitions: int
    log: Callable[[str], None] = print
    applied_ms: list[int] = field(default_factory=list)  # record timestamps, in arrival order
    alerts: list[tuple[float, str, int]] = field(default_factory=list)  # (received, source entity, event ms)

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100,
        )
        await self._consumer.start()
        assignment = [TopicPartition(topic, p) for topic in (self.applied_topic, self.alerts_topic)
                      for p in range(self.partitions)]
        self._consumer.assign(assignment)
        await self._consumer.seek_to_beginning(*assignment)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            polled = await self._consumer.getmany(timeout_ms=200)
            received = time.perf_counter()
            for tp, records in polled.items():
                if tp.topic == self.applied_topic:
                    self.applied_ms.extend(record.timestamp for record in records)
                    continue
                for record in records:
                    event = alerts_pb2.AlertEvent.FromString(record.value)
                    self.alerts.append((received, event.source.entity_id, event.event_time.ToMilliseconds()))

    async def wait_applied(self, count: int, what: str, timeout_s: float, cpu: Any = None) -> None:
        started = time.perf_counter()
        last_report = started
        seen = len(self.applied_ms)
        while len(self.applied_ms) < count:
            if self._task.done():
                self._task.result()
            now = time.perf_counter()
            if now - started > timeout_s:
                raise TimeoutError(f"{what}: {len(self.applied_ms)}/{count} records applied after {timeout_s:.0f} s")
            if now - last_report >= 5:
                applied = len(self.applied_ms)
                pace = (applied - seen) / (now - last_report)
                self.log(f"  {what}: {applied}/{count} records applied ({pace:,.0f} records/s)")
                last_report, seen = now, applied
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._consumer.stop()


@dataclass
class BenchProcessor:
    """The processor under test: where it marks records applied and where its alerts go."""

    process: subprocess.Popen[Any]
    applied_topic: str
    alerts_topic: str
    log_path: Path | None = field(default=None)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start_plain_loop(
    module: str, args: Sequence[str], *, ready_line: str, applied_topic: str, alerts_topic: str,
    cwd: Path, env: dict[str, str],
) -> BenchProcessor:
    """``python -m module args``, once it printed ``ready_line``."""
    process = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdout=subprocess.PIPE, text=True, cwd=cwd, start_new_session=True, env=env,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    processor = BenchProcessor(process, applied_topic, alerts_topic)
    if line.strip() != ready_line:
        processor.stop()
        raise RuntimeError(f"plain loop did not start: {line!r}")
    return processor


class PacedRecord(OutRecord, Protocol):
    """A record, the events an alert can name it by, and how many units (readings, reports) it
    carries: the rate is in units per second."""

    @property
    def events(self) -> Sequence[tuple[str, int]]: ...

    @property
    def weight(self) -> int: ...


async def produce_paced(
    bootstrap: str, records: Sequence[PacedRecord], rate: float
) -> tuple[dict[tuple[str, int], float], float]:
    """Send ``records`` at ``rate`` units/s; the send time of every event and the rate achieved."""
    sent: dict[tuple[str, int], float] = {}
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await producer.start()
    try:
        started = time.perf_counter()
        due = 0.0
        for record in records:
            delay = started + due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            now = time.perf_counter()
            for event in record.events:
                sent[event] = now
            await producer.send(record.topic, record.value, key=record.key, headers=record.headers)
            due += record.weight / rate
        await producer.flush()
        elapsed = time.perf_counter() - started
    finally:
        await producer.stop()
    return sent, sum(r.weight for r in records) / elapsed
