"""An MQTT reading late behind its station's newest observation (as the environment status feed
reports it) is dead-lettered with the lateness reason, as HTTP and gRPC refuse it with 422 /
INVALID_ARGUMENT; a reading within the allowed lateness, or of a station the feed has not
reported yet, is published."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from madina_proto.environment.v1 import station_pb2
from services.devices.domain.registry import DeviceEntry, DeviceRegistry
from services.devices.gateway.ingest import DomainData
from services.devices.gateway.main import MqttGateway
from services.devices.settings import DevicesSettings
from services.environment.convert import station_to_pb
from services.environment.domain.windows import DEFAULT_ALLOWED_LATENESS

STATION = "brk-air-al-quds"
TOPIC = f"madina/berkane/environment/air-quality/{STATION}"


@dataclass
class RecordingProducer:
    sent: list[tuple[str, str]] = field(default_factory=list)  # (topic, key)
    dead: list[str] = field(default_factory=list)  # reasons

    async def send(self, spec: Any, key: str, value: Any, **_: Any) -> asyncio.Future[None]:
        self.sent.append((spec.name, key))
        return self._done()

    async def send_dead_letter(self, spec: Any, *, reason: str, **_: Any) -> asyncio.Future[None]:
        self.dead.append(reason)
        return self._done()

    @staticmethod
    def _done() -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def gateway(newest_observed: datetime | None) -> tuple[MqttGateway, RecordingProducer]:
    data = DomainData(cities=["berkane"])
    if newest_observed is not None:  # the feed's record, through the same path the follower feeds it
        status = station_pb2.StationStatus(station=station_to_pb(data.stations[STATION]))
        status.last_observe_time.FromDatetime(newest_observed)
        data.station_status.on_status(STATION, station_pb2.StationStatusChanged(status=status))
    registry = DeviceRegistry({STATION: DeviceEntry(STATION, "environment", "air-quality", STATION)}, {})
    producer = RecordingProducer()
    return MqttGateway(DevicesSettings(devices_mqtt_anonymous=True), registry, producer, data), producer  # type: ignore[arg-type]


def message(observe_time: datetime) -> Any:
    payload = json.dumps({"station_id": STATION, "observe_time": observe_time.isoformat(), "pm25_ugm3": 12.0})
    return SimpleNamespace(topic=SimpleNamespace(value=TOPIC), payload=payload.encode())


async def test_a_reading_late_behind_the_stations_newest_observation_is_dead_lettered_naming_lateness() -> None:
    now = datetime.now(UTC)
    newest = now - timedelta(minutes=1)
    gw, producer = gateway(newest_observed=newest)

    await gw.handle([message(newest - DEFAULT_ALLOWED_LATENESS - timedelta(minutes=5))])

    assert producer.sent == []
    assert len(producer.dead) == 1
    assert producer.dead[0].startswith("invalid value: observe_time:")
    assert "the station's newest observation" in producer.dead[0]


async def test_a_reading_within_the_allowed_lateness_or_before_the_feed_knows_the_station_is_published() -> None:
    now = datetime.now(UTC)
    newest = now - timedelta(minutes=1)
    within = newest - DEFAULT_ALLOWED_LATENESS + timedelta(minutes=2)
    known, known_producer = gateway(newest_observed=newest)
    unknown, unknown_producer = gateway(newest_observed=None)
    long_ago = now - DEFAULT_ALLOWED_LATENESS - timedelta(minutes=20)

    await known.handle([message(within)])
    await unknown.handle([message(long_ago)])

    assert known_producer.dead == [] and known_producer.sent == [("environment.air-quality.v1", STATION)]
    assert unknown_producer.dead == [] and unknown_producer.sent == [("environment.air-quality.v1", STATION)]
