"""What every processor benchmark needs around the processor under test, written once: a durable
embedded broker, producing a pre-built workload, an observer of the processor's applied markers
and alerts (with arrival times), and a process's CPU time."""

from __future__ import annotations

import asyncio
import contextlib
import os
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
