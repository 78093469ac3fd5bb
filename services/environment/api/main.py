"""``madina service environment-api``: HTTP ingest (port 8081) and gRPC (port 50051) in one process."""

from __future__ import annotations

import logging

from madina.auth import load_service_credentials
from madina.bus import EventProducer
from madina.grpc import GrpcServer
from madina.observability import configure_logging
from madina.runtime import run_until_stopped
from madina.serving import grpc_server, serve_domain_api
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
    return grpc_server(
        settings,
        port=settings.environment_grpc_port if port is None else port,
        servicers=[(pb_grpc.add_EnvironmentServiceServicer_to_server, EnvironmentServicer(runtime), SERVICE_NAME)],
        credentials=runtime.credentials,
        required_scopes=REQUIRED_SCOPES,
    )


async def serve(settings: EnvironmentSettings) -> None:
    runtime = build_runtime(settings)
    await serve_domain_api(
        settings,
        runtime,
        topics=ALL,
        http_app=create_http_app(runtime),
        http_port=settings.environment_http_port,
        grpc=build_grpc_server(runtime),
        followers=[runtime.follow_status_feed],
    )


def main() -> int:
    settings = load_settings(EnvironmentSettings)
    configure_logging("environment-api", settings.log_level, settings.log_format)
    return run_until_stopped(lambda: serve(settings))
