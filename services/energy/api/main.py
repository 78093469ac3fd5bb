"""``madina service energy-api``: HTTP ingest and control (port 8083) and gRPC (port 50053) in one process."""

from __future__ import annotations

from madina.auth import load_service_credentials
from madina.bus import EventProducer
from madina.bus.topics import ALERTS, KPIS
from madina.grpc import GrpcServer
from madina.observability import configure_logging
from madina.runtime import run_until_stopped
from madina.serving import grpc_server, serve_domain_api
from madina.settings import load_settings
from madina_proto.energy.v1 import energy_service_pb2_grpc as pb_grpc
from services.energy.api.grpc import REQUIRED_SCOPES, SERVICE_NAME, EnergyServicer
from services.energy.api.http import create_http_app
from services.energy.api.state import EnergyRuntime
from services.energy.settings import EnergySettings
from services.energy.topics import ALL


def build_runtime(settings: EnergySettings) -> EnergyRuntime:
    return EnergyRuntime(
        settings=settings,
        network=settings.network(),
        credentials=load_service_credentials(settings),
        producer=EventProducer(settings.bootstrap_servers, source="energy-api"),
        emission_factor_t_per_mwh=settings.config().grid.emission_factor_t_per_mwh,
    )


def build_grpc_server(runtime: EnergyRuntime, port: int | None = None) -> GrpcServer:
    settings = runtime.settings
    return grpc_server(
        settings,
        port=settings.energy_grpc_port if port is None else port,
        servicers=[(pb_grpc.add_EnergyServiceServicer_to_server, EnergyServicer(runtime), SERVICE_NAME)],
        credentials=runtime.credentials,
        required_scopes=REQUIRED_SCOPES,
    )


async def serve(settings: EnergySettings) -> None:
    runtime = build_runtime(settings)
    await serve_domain_api(
        settings,
        runtime,
        topics=[*ALL, ALERTS, KPIS],
        http_app=create_http_app(runtime),
        http_port=settings.energy_http_port,
        grpc=build_grpc_server(runtime),
        followers=[runtime.follow_feeds],
    )


def main() -> int:
    settings = load_settings(EnergySettings)
    configure_logging("energy-api", settings.log_level, settings.log_format)
    return run_until_stopped(lambda: serve(settings))
