"""How device connectivity plugs into Madina (entry point ``madina.domains: devices``)."""

from __future__ import annotations

from madina.domains import Component, Domain
from services.devices.topics import ALL


def _settings():  # type: ignore[no-untyped-def]
    from madina.settings import load_settings
    from services.devices.settings import DevicesPorts

    return load_settings(DevicesPorts)


def _health() -> str:
    return f"http://127.0.0.1:{_settings().devices_gateway_port}/healthz"


def _urls() -> dict[str, str]:
    settings = _settings()
    return {"MQTT broker (devices, ChirpStack, TTS)": f"mqtt://{settings.devices_mqtt_host}:{settings.devices_mqtt_port}"}


DOMAIN = Domain(
    name="devices",
    topics=ALL,
    components=[
        Component(
            name="mqtt-gateway",
            entry_point="services.devices.gateway.main:main",
            description="MQTT devices, ChirpStack and The Things Stack uplinks into every domain's ingest (8095)",
            health_url=_health,
            urls=_urls,
        ),
    ],
    start_order=20,  # after the domains whose topics and seeds it feeds
    local_servers=["services.devices.local:start_local_mqtt"],
    simulator="services.devices.simulator:create",
)
