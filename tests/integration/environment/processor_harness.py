"""Run the environment processor as a real process against a fresh broker, and script its input."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from madina.auth import write_credentials
from madina.bus import ensure_topics
from madina.bus.codec import standard_headers
from madina.bus.topics import ALERTS, KPIS
from madina_proto.alerts.v1 import alerts_pb2
from services.environment.convert import batches_by_station
from services.environment.domain.measurands import Observation, StationKind
from services.environment.topics import AIR_QUALITY, ALL, NOISE, WATER_QUALITY
from tests.support.processes import wait_for_http

TOPIC_OF = {StationKind.AIR: AIR_QUALITY, StationKind.WATER: WATER_QUALITY, StationKind.NOISE: NOISE}
PARTITIONS = 2


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def create_topics(bootstrap: str) -> None:
    await ensure_topics(bootstrap, [*ALL, ALERTS, KPIS], default_partitions=PARTITIONS)


@dataclass
class ProcessorProcess:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @classmethod
    def start(
        cls,
        bootstrap: str,
        workdir: Path,
        *,
        tick_interval_s: float = 3600.0,
        name: str = "processor",
        extra_env: dict[str, str] | None = None,
        argv: Sequence[str] | None = None,
        partitions: int = PARTITIONS,
        debug_trace: bool = True,
    ) -> ProcessorProcess:
        """The processor (or ``argv``, a variant of it) with its settings for ``bootstrap``, once healthy."""
        credentials = workdir / "credentials.yaml"
        if not credentials.exists():
            write_credentials(credentials, {"nobody": []})
        port = free_port()
        env = {
            # Only the settings given here: none inherited from the shell that runs the tests.
            **{k: v for k, v in os.environ.items() if not k.startswith("MADINA_")},
            "MADINA_KAFKA_BOOTSTRAP": bootstrap,
            "MADINA_CREDENTIALS_FILE": str(credentials),
            "MADINA_GRPC_INSECURE": "true",
            "MADINA_TOPIC_PARTITIONS": str(partitions),
            "MADINA_DATA_DIR": str(workdir / "data"),
            "MADINA_ENVIRONMENT_PROCESSOR_PORT": str(port),
            "MADINA_ENVIRONMENT_TICK_INTERVAL_S": str(tick_interval_s),
            "MADINA_LOG_FORMAT": "json",
            **({"MADINA_DEBUG_TRACE": "1"} if debug_trace else {}),  # a log line per record
            **(extra_env or {}),
        }
        log_path = workdir / f"{name}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                list(argv or (sys.executable, "-m", "madina", "service", "environment-processor")),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                start_new_session=True,
            )
        started = cls(process, port, log_path)
        try:
            wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout_s=60, process=process)
        except Exception as error:
            started.kill()
            raise RuntimeError(f"{error}\n--- processor log ---\n{log_path.read_text()[-4000:]}") from error
        return started

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


async def produce_observations(bootstrap: str, batches: Sequence[Sequence[Observation]]) -> None:
    """Each inner sequence becomes one record per station (the way the ingest API publishes)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        for observations in batches:
            for kind, station_id, batch in batches_by_station(observations):
                spec = TOPIC_OF[kind]
                await producer.send(
                    spec.name,
                    batch.SerializeToString(),
                    key=station_id.encode(),
                    headers=standard_headers(spec, "test"),
                )
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


def observation(station_id: str, at: datetime, kind: StationKind, **values: float) -> Observation:
    return Observation(station_id=station_id, observe_time=at, kind=kind, values=values)
