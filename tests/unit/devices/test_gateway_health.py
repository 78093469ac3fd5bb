"""The gateway's /healthz: 200 only when connected and, if it feeds the environment domain, once the
station-status feed has read its backlog (until then a late reading would pass the lateness check)."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from services.devices.domain.registry import DeviceEntry, DeviceRegistry
from services.devices.gateway.ingest import DomainData
from services.devices.gateway.main import MqttGateway, web_app
from services.devices.settings import DevicesSettings

STATION = "brk-air-al-quds"
CONTAINER = "brk-centre-ville-h001"


def gateway(*devices: DeviceEntry) -> MqttGateway:
    registry = DeviceRegistry({d.device_id: d for d in devices}, {})
    return MqttGateway(DevicesSettings(devices_mqtt_anonymous=True), registry, producer=None,  # type: ignore[arg-type]
                       data=DomainData(cities=["berkane"]))


async def healthz(subject: MqttGateway) -> tuple[int, dict[str, Any]]:
    async with TestClient(TestServer(web_app(subject))) as client:
        response = await client.get("/healthz")
        return response.status, await response.json()


async def test_healthz_is_503_until_the_station_status_feed_has_caught_up_then_200() -> None:
    subject = gateway(DeviceEntry(STATION, "environment", "air-quality", STATION))
    subject.connected = True

    starting = await healthz(subject)
    subject.data.station_status.ready.set()  # what StationStatusFeed.follow does once the backlog is read
    caught_up = await healthz(subject)

    assert starting == (503, {"status": "degraded", "mqtt": "ok", "status_feed": "starting", "devices": 1})
    assert caught_up == (200, {"status": "ok", "mqtt": "ok", "status_feed": "ok", "devices": 1})


async def test_healthz_is_503_while_disconnected_even_with_the_feed_caught_up() -> None:
    subject = gateway(DeviceEntry(STATION, "environment", "air-quality", STATION))
    subject.data.station_status.ready.set()
    subject.last_error = "connection refused"

    status, body = await healthz(subject)

    assert status == 503
    assert body["mqtt"] == "disconnected: connection refused" and body["status_feed"] == "ok"


async def test_a_gateway_without_environment_devices_has_no_status_feed_check() -> None:
    subject = gateway(DeviceEntry("bin-1", "waste", "container-level", CONTAINER))
    subject.connected = True

    assert await healthz(subject) == (200, {"status": "ok", "mqtt": "ok", "devices": 1})
