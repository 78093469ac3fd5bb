"""How the waste domain plugs into Madina (entry point ``madina.domains: waste``)."""

from __future__ import annotations

from madina.domains import CONTROLLERS, DEVICE, PUBLISHERS, READERS, Component, Domain, Scope
from madina.maplayers import MapLayer
from services.waste.topics import ALL, CONTAINER_STATUS, LATEST_COLLECTION_PLANS


def _settings():  # type: ignore[no-untyped-def]
    from madina.settings import load_settings
    from services.waste.settings import WastePorts

    return load_settings(WastePorts)


def _api_health() -> str:
    return f"http://127.0.0.1:{_settings().waste_http_port}/healthz"


def _api_urls() -> dict[str, str]:
    settings = _settings()
    return {
        "waste ingest API": f"http://127.0.0.1:{settings.waste_http_port}/docs",
        "waste gRPC (TLS)": f"127.0.0.1:{settings.waste_grpc_port}",
    }


def _processor_health() -> str:
    return f"http://127.0.0.1:{_settings().waste_processor_port}/healthz"


def _district_processor_health() -> str:
    return f"http://127.0.0.1:{_settings().waste_district_processor_port}/healthz"


DOMAIN = Domain(
    name="waste",
    topics=ALL,
    components=[
        Component(
            name="waste-api",
            entry_point="services.waste.api.main:main",
            description="HTTP ingest (8084) and WasteService gRPC (50054): readings, containers, collection plans",
            health_url=_api_health,
            urls=_api_urls,
        ),
        Component(
            name="waste-processor",
            entry_point="services.waste.processor.app:main",
            description="faust worker: fill, fire, tipped, lid, battery and data-gap alerts; fill rates; collections",
            health_url=_processor_health,
        ),
        Component(
            name="waste-district-processor",
            entry_point="services.waste.processor.app:district_main",
            description="faust worker per district: mean fill, containers full, needing collection, at fire risk",
            health_url=_district_processor_health,
        ),
    ],
    simulator="services.waste.simulator:create",
    start_order=10,
    scopes=[
        Scope("waste:publish", "Publish container readings (HTTP ingest, PublishReadings).", PUBLISHERS),
        Scope("waste:read", "Read containers, fill rates and predictions (ListContainers, GetContainer).", READERS),
        # The simulator stands for the crews too: it asks for their next round when the trucks are
        # back (services/waste/simulator.py), so rounds keep up at any speedup.
        Scope("waste:plan", "Plan collection rounds and publish them (PlanCollection).", (*CONTROLLERS, DEVICE)),
    ],
    map_layers=[
        MapLayer("Containers", CONTAINER_STATUS, "services.waste.maplayers:container_features"),
        # Compacted and keyed by depot: a depot's newest plan replaces its routes on the map, and
        # operations reads one plan per depot at start, not the 90-day history.
        MapLayer("Collection routes", LATEST_COLLECTION_PLANS, "services.waste.maplayers:collection_route_features"),
    ],
)
PUBLISH = DOMAIN.scope("waste:publish")
READ = DOMAIN.scope("waste:read")
PLAN = DOMAIN.scope("waste:plan")
