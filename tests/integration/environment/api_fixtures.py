"""Building blocks for the environment API integration tests: a running runtime, and a bus tap.

``running_environment_api`` builds the service the way ``services.environment.api.main`` does
(``build_runtime`` on real settings, a started producer, the status feed followed) against the
session broker, with a fresh credentials file and a self-signed TLS pair. The topics of this
service have fixed names, so tests never own a topic: ``BusTap.mark()`` records where every
partition ended before an action, and ``BusTap.records_since()`` returns only what came after,
keyed by one station. Each test also stamps its observations with its own ``observe_time``
(``moment_of(unique)``), so even a shared broker cannot mix one test's records into another's.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord

from madina.auth import write_credentials
from madina.bus import TopicSpec, ensure_topics
from madina.bus.codec import decode, header
from madina.grpc.tls import ensure_self_signed
from services.environment.api.main import build_runtime
from services.environment.api.state import EnvironmentRuntime
from services.environment.settings import EnvironmentSettings
from services.environment.topics import ALL

PUBLISH_SCOPE = "environment:publish"
READ_SCOPE = "environment:read"
PRINCIPALS = {
    "sensor-gateway": [PUBLISH_SCOPE],
    "dashboard": [READ_SCOPE],
    "partner-agency": [PUBLISH_SCOPE, READ_SCOPE],
}
SETTLE_TIMEOUT_S = 15.0


@dataclass
class EnvironmentApi:
    """A started runtime plus what a client needs to reach it."""

    runtime: EnvironmentRuntime
    settings: EnvironmentSettings
    tokens: dict[str, str]
    tls_cert: bytes

    @property
    def publisher_token(self) -> str:
        return self.tokens["sensor-gateway"]

    @property
    def reader_token(self) -> str:
        return self.tokens["dashboard"]

    @property
    def full_token(self) -> str:
        return self.tokens["partner-agency"]


@contextlib.asynccontextmanager
async def running_environment_api(
    kafka_bootstrap: str, directory: Path, **settings_overrides: Any
) -> AsyncIterator[EnvironmentApi]:
    """The environment runtime with its producer started and its status feed caught up."""
    await ensure_topics(kafka_bootstrap, ALL, default_partitions=1)
    tokens = write_credentials(directory / "credentials.yaml", PRINCIPALS)
    cert_file, key_file = ensure_self_signed(directory / "tls")
    settings = EnvironmentSettings(
        kafka_bootstrap=kafka_bootstrap,
        credentials_file=directory / "credentials.yaml",
        grpc_tls_cert_file=cert_file,
        grpc_tls_key_file=key_file,
        **settings_overrides,
    )
    runtime = build_runtime(settings)
    await runtime.producer.start()
    runtime.producer_ready = True
    feed = asyncio.create_task(runtime.follow_status_feed())
    try:
        await asyncio.wait_for(runtime.status_feed_ready.wait(), SETTLE_TIMEOUT_S)
        yield EnvironmentApi(runtime, settings, tokens, cert_file.read_bytes())
    finally:
        feed.cancel()
        await asyncio.gather(feed, return_exceptions=True)
        await runtime.producer.stop()


@contextlib.asynccontextmanager
async def serving_http(app: Any) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on a free local port; yields its base URL."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off"))
    # As in main.serve: the test process, not uvicorn, owns SIGINT/SIGTERM.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        async with asyncio.timeout(SETTLE_TIMEOUT_S):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        listener.close()


def moment_of(unique: str) -> datetime:
    """An observe_time in the recent past that no other test uses (microseconds from ``unique``)."""
    now = datetime.now(UTC).replace(microsecond=0)
    return now - timedelta(minutes=2, microseconds=int(unique[:5], 16) % 1_000_000)


def rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class BusTap:
    """Reads what an action put on this service's topics, without a consumer group."""

    def __init__(self, bootstrap: str, partitions: list[TopicPartition]) -> None:
        self._bootstrap = bootstrap
        self._partitions = partitions
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, bootstrap: str, specs: Iterable[TopicSpec]) -> AsyncIterator[BusTap]:
        names = [spec.name for spec in specs]
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            described = await admin.describe_topics(names)
        finally:
            await admin.close()
        partitions = [
            TopicPartition(topic["topic"], partition["partition"])
            for topic in described
            for partition in topic["partitions"]
        ]
        assert {tp.topic for tp in partitions} == set(names), f"topics missing on the broker: {described}"
        tap = cls(bootstrap, partitions)
        await tap._consumer.start()
        try:
            yield tap
        finally:
            await tap._consumer.stop()

    async def mark(self) -> Mapping[TopicPartition, int]:
        """Where every partition ends now; pass it to :meth:`records_since` after the action."""
        return dict(await self._consumer.end_offsets(self._partitions))

    async def published_since(
        self, mark: Mapping[TopicPartition, int], spec: TopicSpec, key: str, observe_time: datetime
    ) -> list[Published]:
        """Records of ``spec`` keyed ``key``, appended after ``mark``, holding an observation made at
        ``observe_time`` (so other tests' records for the same station never count)."""
        records = await self._records_since(mark, spec, key)
        published = [Published(r, decode(spec, r.value, r.headers)) for r in records]
        return [p for p in published if any(_moment(o) == observe_time for o in p.batch.observations)]

    async def _records_since(
        self, mark: Mapping[TopicPartition, int], spec: TopicSpec, key: str
    ) -> list[ConsumerRecord]:
        partitions = [tp for tp in self._partitions if tp.topic == spec.name]
        end = await self._consumer.end_offsets(partitions)
        wanted = [tp for tp in partitions if end[tp] > mark[tp]]
        if not wanted:
            return []
        self._consumer.assign(wanted)
        for tp in wanted:
            self._consumer.seek(tp, mark[tp])
        found: list[ConsumerRecord] = []
        try:
            async with asyncio.timeout(SETTLE_TIMEOUT_S):
                while [tp for tp in wanted if await self._consumer.position(tp) < end[tp]]:
                    batches = await self._consumer.getmany(*wanted, timeout_ms=200)
                    for tp, records in batches.items():
                        found.extend(r for r in records if r.offset < end[tp] and r.key == key.encode())
        finally:
            # An idle assignment keeps a long-poll fetch on the connection, which delays the next mark().
            self._consumer.unsubscribe()
        return found


@dataclass
class Published:
    """One record on the bus and its decoded observation batch."""

    record: ConsumerRecord
    batch: Any

    def header(self, name: str) -> bytes | None:
        return header(self.record.headers, name)


def _moment(observation: Any) -> datetime:
    return observation.observe_time.ToDatetime(tzinfo=UTC)  # type: ignore[no-any-return]
