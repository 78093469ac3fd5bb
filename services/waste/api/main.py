"""``madina service waste-api``: HTTP (port 8084) and WasteService gRPC (port 50054) in one process."""

from __future__ import annotations

from madina.auth import load_service_credentials
from madina.bus import EventProducer
from madina.bus.topics import KPIS
from madina.grpc import GrpcServer
from madina.observability import configure_logging
from madina.runtime import run_until_stopped
from madina.serving import grpc_server, serve_domain_api
from madina.settings import load_settings
from madina_proto.waste.v1 import waste_service_pb2_grpc as pb_grpc
from services.waste.api.grpc import REQUIRED_SCOPES, SERVICE_NAME, WasteServicer
from services.waste.api.http import create_http_app
from services.waste.api.state import WasteRuntime
from services.waste.domain.containers import load_containers, load_fleet
from services.waste.settings import WasteSettings
from services.waste.topics import ALL


def build_runtime(settings: WasteSettings) -> WasteRuntime:
    return WasteRuntime(
        settings=settings,
        containers={c.id: c for c in load_containers(settings.waste_containers_file, serving=settings.cities)},
        fleet=load_fleet(settings.waste_fleet_file),
        credentials=load_service_credentials(settings),
        producer=EventProducer(settings.bootstrap_servers, source="waste-api"),
    )


def build_grpc_server(runtime: WasteRuntime, port: int | None = None) -> GrpcServer:
    settings = runtime.settings
    return grpc_server(
        settings,
        port=settings.waste_grpc_port if port is None else port,
        servicers=[(pb_grpc.add_WasteServiceServicer_to_server, WasteServicer(runtime), SERVICE_NAME)],
        credentials=runtime.credentials,
        required_scopes=REQUIRED_SCOPES,
    )


async def serve(settings: WasteSettings) -> None:
    runtime = build_runtime(settings)
    await serve_domain_api(
        settings,
        runtime,
        topics=[*ALL, KPIS],
        http_app=create_http_app(runtime),
        http_port=settings.waste_http_port,
        grpc=build_grpc_server(runtime),
        followers=[runtime.follow_status_feed, runtime.follow_kpi_feed,
                   *([runtime.plan_rounds] if settings.waste_round_interval_s > 0 else [])],
    )


def main() -> int:
    settings = load_settings(WasteSettings)
    configure_logging("waste-api", settings.log_level, settings.log_format)
    return run_until_stopped(lambda: serve(settings))
