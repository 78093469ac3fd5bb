"""``madina service environment-api``: HTTP ingest (port 8081) and gRPC (port 50051) in one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import uvicorn

from madina.auth import load_service_credentials
from madina.bus import EventProducer, ensure_topics
from madina.grpc import AgencyAuthInterceptor, GrpcServer
from madina.http import uvicorn_tls_options
from madina.observability import configure_logging
from madina.runtime import run_until_stopped
from madina.settings import load_settings
from madina_proto.environment.v1 import environment_service_pb2_grpc as pb_grpc
from services.environment.api.grpc import REQUIRED_SCOPES, SERVICE_NAME, EnvironmentServicer
from services.environment.api.http import create_http_app
from services.environment.api.state import EnvironmentRuntime
from services.environment.domain.stations import load_stations
from services.environment.settings import EnvironmentSettings
from services.environment.topics import ALL

log = logging.getLogger(__name__)


def build_runtime(settings: EnvironmentSettings) -> EnvironmentRuntime:
    stations = {
        station.id: station
        for station in load_stations(settings.environment_stations_file, serving=settings.cities)
    }
    return EnvironmentRuntime(
        settings=settings,
        stations=stations,
        credentials=load_service_credentials(settings),
        producer=EventProducer(settings.bootstrap_servers, source="environment-api"),
    )


def build_grpc_server(runtime: EnvironmentRuntime, port: int | None = None) -> GrpcServer:
    settings = runtime.settings
    return GrpcServer(
        host=settings.bind_host,
        port=settings.environment_grpc_port if port is None else port,
        services=[
            (pb_grpc.add_EnvironmentServiceServicer_to_server, EnvironmentServicer(runtime), SERVICE_NAME)
        ],
        interceptors=[AgencyAuthInterceptor(runtime.credentials, REQUIRED_SCOPES)],
        tls_cert_file=None if settings.grpc_insecure else settings.grpc_tls_cert_file,
        tls_key_file=None if settings.grpc_insecure else settings.grpc_tls_key_file,
        tls_client_ca_file=None if settings.grpc_insecure else settings.grpc_tls_client_ca_file,
    )


async def serve(settings: EnvironmentSettings) -> None:
    runtime = build_runtime(settings)
    await ensure_topics(
        settings.bootstrap_servers,
        ALL,
        default_partitions=settings.topic_partitions,
        replication_factor=settings.topic_replication_factor,
    )
    await runtime.producer.start()
    runtime.producer_ready = True
    feed = asyncio.create_task(runtime.follow_status_feed())
    grpc_server = build_grpc_server(runtime)
    await grpc_server.start()
    http = uvicorn.Server(
        uvicorn.Config(
            create_http_app(runtime),
            host=settings.bind_host,
            port=settings.environment_http_port,
            log_config=None,
            access_log=False,
            lifespan="off",
            **uvicorn_tls_options(settings),
        )
    )
    # uvicorn would capture SIGTERM/SIGINT while serving; the process-wide runner owns them.
    http.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    try:
        await http.serve()
    finally:
        http.should_exit = True
        await grpc_server.stop()
        feed.cancel()
        await asyncio.gather(feed, return_exceptions=True)
        await runtime.producer.stop()


def main() -> int:
    settings = load_settings(EnvironmentSettings)
    configure_logging("environment-api", settings.log_level, settings.log_format)
    return run_until_stopped(lambda: serve(settings))
