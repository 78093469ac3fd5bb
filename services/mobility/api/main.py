"""``madina service mobility-api``: HTTP (port 8082: ingest, feeds out) and gRPC (port 50052) in one process.

Start-up loads the GTFS Schedule feeds (it keys entities by route and checks trips); a broken feed
stops it with the loader's message.
"""

from __future__ import annotations

from madina.auth import load_service_credentials
from madina.bus import EventProducer
from madina.grpc import GrpcServer
from madina.observability import configure_logging
from madina.runtime import run_until_stopped
from madina.serving import grpc_server, serve_domain_api
from madina.settings import load_settings
from madina_proto.mobility.v1 import mobility_service_pb2_grpc as pb_grpc
from services.mobility.api.grpc import REQUIRED_SCOPES, SERVICE_NAME, MobilityServicer
from services.mobility.api.http import create_http_app
from services.mobility.api.state import MobilityRuntime
from services.mobility.domain.gtfs import load_feeds
from services.mobility.domain.parking import load_car_parks
from services.mobility.settings import MobilitySettings
from services.mobility.topics import ALL


def build_runtime(settings: MobilitySettings) -> MobilityRuntime:
    return MobilityRuntime(
        settings=settings,
        schedule=load_feeds(settings.mobility_gtfs_feeds),
        credentials=load_service_credentials(settings),
        producer=EventProducer(settings.bootstrap_servers, source="mobility-api"),
        car_parks=load_car_parks(settings.mobility_car_parks_file),
    )


def build_grpc_server(runtime: MobilityRuntime, port: int | None = None) -> GrpcServer:
    settings = runtime.settings
    return grpc_server(
        settings,
        port=settings.mobility_grpc_port if port is None else port,
        servicers=[(pb_grpc.add_MobilityServiceServicer_to_server, MobilityServicer(runtime), SERVICE_NAME)],
        credentials=runtime.credentials,
        required_scopes=REQUIRED_SCOPES,
    )


async def serve(settings: MobilitySettings) -> None:
    runtime = build_runtime(settings)
    await serve_domain_api(
        settings,
        runtime,
        topics=ALL,
        http_app=create_http_app(runtime),
        http_port=settings.mobility_http_port,
        grpc=build_grpc_server(runtime),
        followers=[runtime.follow_status_feed, runtime.follow_car_park_feed, runtime.follow_ridership_feed,
                   runtime.follow_pushed_entities, runtime.poll_producer_feeds],
    )


def main() -> int:
    settings = load_settings(MobilitySettings)
    configure_logging("mobility-api", settings.log_level, settings.log_format)
    return run_until_stopped(lambda: serve(settings))
