"""``madina service operations``: alert consumer, REST/SSE and dashboard (8080), AlertService gRPC
(50055), in one asyncio process.

Start-up migrates the store, creates the alert, KPI and map layer topics (and their dead-letter twins) if
missing, then runs the consumer, the KPI reader, the map layer readers, the store follower and both servers until
SIGTERM. :class:`OperationsService` is the same thing as an object, for tests and benchmarks
that run it inside their own event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from madina.auth import load_service_credentials
from madina.bus import ALERT_ACTIONS, ALERTS, KPIS, EventProducer, ensure_topics
from madina.grpc import GrpcServer
from madina.observability import configure_logging
from madina.runtime import run_until_stopped
from madina.serving import ApiServers, grpc_server
from madina.settings import load_settings
from madina_proto.alerts.v1 import alerts_pb2_grpc as pb_grpc
from services.operations.api.grpc import REQUIRED_SCOPES, SERVICE_NAME, AlertServicer
from services.operations.api.http import create_http_app
from services.operations.api.hub import ChangeHub
from services.operations.api.ingest import AlertIngest
from services.operations.api.kpis import follow_kpis
from services.operations.api.maplayers import DomainLayer, MapBoard, discovered_layers, follow_map_layers
from services.operations.api.state import OperationsRuntime
from services.operations.settings import OperationsSettings
from services.operations.store import AlertStore, migrate

log = logging.getLogger(__name__)

TOPICS = (ALERTS, ALERT_ACTIONS, KPIS)


def build_runtime(settings: OperationsSettings, map_layers: Sequence[DomainLayer] = ()) -> OperationsRuntime:
    store = AlertStore(settings.database_url)
    producer = EventProducer(settings.bootstrap_servers, source="operations")
    hub = ChangeHub(store, queue_size=settings.operations_sse_queue_size)
    ingest = AlertIngest(settings.bootstrap_servers, store, hub, producer,
                         group_id=settings.operations_consumer_group)
    return OperationsRuntime(
        settings=settings, store=store, credentials=load_service_credentials(settings),
        producer=producer, hub=hub, ingest=ingest, map=MapBoard(layers=map_layers),
    )


def build_grpc_server(runtime: OperationsRuntime, port: int | None = None) -> GrpcServer:
    settings = runtime.settings
    return grpc_server(
        settings,
        port=settings.operations_grpc_port if port is None else port,
        servicers=[(pb_grpc.add_AlertServiceServicer_to_server, AlertServicer(runtime), SERVICE_NAME)],
        credentials=runtime.credentials,
        required_scopes=REQUIRED_SCOPES,
    )


class OperationsService:
    """The whole operations process; ``await start()``, then ``await stop()``."""

    def __init__(self, settings: OperationsSettings, map_layers: Sequence[DomainLayer] | None = None) -> None:
        """``map_layers``: what the map shows; None means every installed domain's (tests pass their own)."""
        self.settings = settings
        self.map_layers = discovered_layers() if map_layers is None else list(map_layers)
        self.runtime: OperationsRuntime | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._servers: ApiServers | None = None

    async def start(self) -> OperationsRuntime:
        settings = self.settings
        await asyncio.to_thread(migrate, settings.database_url)
        # The layers' topics too: a reader waits for a topic that does not exist yet, and the map with it.
        layer_topics = tuple({layer.layer.topic.name: layer.layer.topic for layer in self.map_layers}.values())
        await ensure_topics(settings.bootstrap_servers, (*TOPICS, *layer_topics),
                            default_partitions=settings.topic_partitions,
                            replication_factor=settings.topic_replication_factor)
        runtime = self.runtime = build_runtime(settings, self.map_layers)
        # Silences stored before RE2 may hold patterns it refuses: recorded as disabled, with a warning.
        await asyncio.to_thread(runtime.store.disable_unusable_silences)
        await runtime.producer.start()
        runtime.producer_ready = True
        await runtime.hub.start()
        self._tasks = [
            asyncio.create_task(runtime.ingest.run(), name="operations-consumer"),
            asyncio.create_task(
                follow_kpis(settings.bootstrap_servers, runtime.kpis), name="operations-kpis"
            ),
            asyncio.create_task(runtime.hub.follow_store(), name="operations-store-follower"),
            asyncio.create_task(
                follow_map_layers(settings.bootstrap_servers, runtime.map), name="operations-map-layers"
            ),
        ]
        for task in self._tasks:
            task.add_done_callback(_log_crash)
        self._servers = ApiServers(settings, http_app=create_http_app(runtime), http_port=settings.operations_http_port,
                                   grpc=build_grpc_server(runtime), graceful_shutdown_s=3)
        await self._servers.start()
        return runtime

    @property
    def http_port(self) -> int:
        """The bound HTTP port (settings may say 0: any free port)."""
        assert self._servers is not None
        return self._servers.http_port

    @property
    def grpc_port(self) -> int:
        assert self._servers is not None and self._servers.grpc is not None
        return int(self._servers.grpc.port)

    async def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Until the consumer joined its group and the KPI and map layer backlogs are read."""
        assert self.runtime is not None
        await asyncio.wait_for(
            asyncio.gather(self.runtime.ingest.ready.wait(), self.runtime.kpis.ready.wait(),
                           self.runtime.map.ready.wait()), timeout_s
        )

    async def serve_forever(self) -> None:
        assert self._servers is not None
        waiting = [self._servers.http_task, *self._tasks]
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()  # a crashed consumer stops the process, so the supervisor restarts it

    async def stop(self) -> None:
        runtime = self.runtime
        if self._servers is not None:
            self._servers.http.should_exit = True
        if runtime is not None:
            runtime.ingest.stop()
        if self._servers is not None:
            await self._servers.stop()
        consumer = self._tasks[0] if self._tasks else None
        if consumer is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(consumer, 5)
        for task in self._tasks[1:]:
            task.cancel()
        await asyncio.gather(*self._tasks[1:], return_exceptions=True)
        if runtime is not None:
            await runtime.producer.stop()
            runtime.store.close()


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task failed", exc_info=task.exception(), extra={"task": task.get_name()})


async def serve(settings: OperationsSettings) -> None:
    service = OperationsService(settings)
    try:
        await service.start()
        await service.serve_forever()
    finally:
        await service.stop()


def main() -> int:
    settings = load_settings(OperationsSettings)
    configure_logging("operations", settings.log_level, settings.log_format)
    return run_until_stopped(lambda: serve(settings))
