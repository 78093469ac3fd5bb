"""How the energy domain plugs into Madina (entry point ``madina.domains: energy``)."""

from __future__ import annotations

from madina.domains import CONTROLLERS, PUBLISHERS, READERS, Component, Domain, Scope
from madina.maplayers import MapLayer
from services.energy.topics import ALL, CIRCUIT_STATUS


def _settings():  # type: ignore[no-untyped-def]
    from madina.settings import load_settings
    from services.energy.settings import EnergyPorts

    return load_settings(EnergyPorts)


def _api_health() -> str:
    return f"http://127.0.0.1:{_settings().energy_http_port}/healthz"


def _api_urls() -> dict[str, str]:
    settings = _settings()
    return {
        "energy ingest and control API": f"http://127.0.0.1:{settings.energy_http_port}/docs",
        "energy gRPC (TLS)": f"127.0.0.1:{settings.energy_grpc_port}",
    }


def _processor_health() -> str:
    return f"http://127.0.0.1:{_settings().energy_processor_port}/healthz"


def _pv_processor_health() -> str:
    return f"http://127.0.0.1:{_settings().energy_pv_processor_port}/healthz"


def _district_processor_health() -> str:
    return f"http://127.0.0.1:{_settings().energy_district_processor_port}/healthz"


DOMAIN = Domain(
    name="energy",
    topics=ALL,
    components=[
        Component(
            name="energy-api",
            entry_point="services.energy.api.main:main",
            description="HTTP ingest and dimming control (8083), EnergyService gRPC (50053)",
            health_url=_api_health,
            urls=_api_urls,
        ),
        Component(
            name="energy-processor",
            entry_point="services.energy.processor.app:main",
            description="faust worker per circuit: lamp and circuit alerts, commands, kWh and savings KPIs",
            health_url=_processor_health,
        ),
        Component(
            name="energy-pv-processor",
            entry_point="services.energy.processor.app:pv_main",
            description="faust worker per PV site: underperformance and data-gap alerts, generation KPIs",
            health_url=_pv_processor_health,
        ),
        Component(
            name="energy-district-processor",
            entry_point="services.energy.processor.app:district_main",
            description="faust worker per district: district kWh, savings and CO2 KPIs from the circuits' totals",
            health_url=_district_processor_health,
        ),
    ],
    simulator="services.energy.simulator:create",
    start_order=30,
    scopes=[
        Scope("energy:publish", "Publish street-light and PV telemetry (HTTP ingest, PublishTelemetry).", PUBLISHERS),
        Scope("energy:read", "Read lamp status, faults, consumption and generation.", READERS),
        Scope("energy:control", "Set dimming schedules (SetDimmingSchedule): commands to street lights.",
              CONTROLLERS),
    ],
    map_layers=[MapLayer("Street lights", CIRCUIT_STATUS, "services.energy.maplayers:streetlight_features")],
)
PUBLISH = DOMAIN.scope("energy:publish")
READ = DOMAIN.scope("energy:read")
CONTROL = DOMAIN.scope("energy:control")
