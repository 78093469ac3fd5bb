"""How the environment domain plugs into Madina (entry point ``madina.domains: environment``)."""

from __future__ import annotations

from madina.domains import PUBLISHERS, READERS, Component, Domain, Scope
from services.environment.topics import ALL


def _settings():  # type: ignore[no-untyped-def]
    from madina.settings import load_settings
    from services.environment.settings import EnvironmentPorts

    return load_settings(EnvironmentPorts)


def _api_health() -> str:
    return f"http://127.0.0.1:{_settings().environment_http_port}/healthz"


def _api_urls() -> dict[str, str]:
    settings = _settings()
    return {
        "environment ingest API": f"http://127.0.0.1:{settings.environment_http_port}/docs",
        "environment gRPC (TLS)": f"127.0.0.1:{settings.environment_grpc_port}",
    }


def _processor_health() -> str:
    return f"http://127.0.0.1:{_settings().environment_processor_port}/healthz"


DOMAIN = Domain(
    name="environment",
    topics=ALL,
    components=[
        Component(
            name="environment-api",
            entry_point="services.environment.api.main:main",
            description="HTTP ingest (8081) and EnvironmentService gRPC (50051)",
            health_url=_api_health,
            urls=_api_urls,
        ),
        Component(
            name="environment-processor",
            entry_point="services.environment.processor.app:main",
            description="faust worker: rolling means, AQI, threshold and data-gap alerts",
            health_url=_processor_health,
        ),
    ],
    simulator="services.environment.simulator:create",
    start_order=10,
    scopes=[
        Scope("environment:publish", "Publish observations (HTTP ingest, PublishObservations).", PUBLISHERS),
        Scope("environment:read", "Read stations and their status (ListStations, GetStationStatus, WatchStation).",
              READERS),
    ],
)
PUBLISH = DOMAIN.scope("environment:publish")
READ = DOMAIN.scope("environment:read")
