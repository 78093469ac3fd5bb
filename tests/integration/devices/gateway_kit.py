"""The MQTT gateway as a separate process against a private Mosquitto and a Kafka broker, and the
device side: a real MQTT client publishing direct JSON readings and ChirpStack / TTS uplinks."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt

from madina.bus import EventProducer, ensure_topics
from madina.bus.alert_events import timestamp
from madina.devservers.launch import ServiceProcess, service_argv
from madina.devservers.mosquitto import MosquittoServer, MqttUser
from madina.devservers.ports import free_port
from madina_proto.environment.v1 import observations_pb2, station_pb2
from madina_proto.waste.v1 import container_pb2
from services.devices.topics import MQTT_MESSAGES
from services.environment.topics import STATION_STATUS
from services.waste.topics import CONTAINER_LEVELS
from tests.support.processor_kit import read_all

DLQ = MQTT_MESSAGES.dead_letter.name

# Devices of the shipped registry (services/devices/data/devices.yaml).
AIR_TOPIC = "madina/berkane/environment/air-quality/brk-air-al-quds"
CHIRPSTACK_TOPIC = "application/7/device/70b3d57ed0000001/event/up"
PARKING_TOPIC = "madina/berkane/mobility/parking-occupancy/bk-p1-counter"
TTS_TOPIC = "v3/madina-waste@berkane/devices/brk-centre-ville-h002-lora/up"


@dataclass
class Gateway:
    process: ServiceProcess
    health_url: str

    def health(self) -> tuple[int, dict[str, Any]]:
        try:
            with urllib.request.urlopen(self.health_url, timeout=2) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())


def start_gateway(tmp_path: Path, mosquitto: MosquittoServer, gateway_user: MqttUser, bootstrap: str,
                  protocol: str = "5", wait: bool = True, extra_env: Mapping[str, str] | None = None) -> Gateway:
    tmp_path.mkdir(parents=True, exist_ok=True)
    password_file = tmp_path / "gateway-password"
    password_file.write_text(gateway_user.password)
    port = free_port()
    env = {
        **os.environ,
        "MADINA_KAFKA_BOOTSTRAP": bootstrap,
        "MADINA_TOPIC_PARTITIONS": "2",
        "MADINA_DEVICES_GATEWAY_PORT": str(port),
        "MADINA_DEVICES_MQTT_PORT": str(mosquitto.port),
        "MADINA_DEVICES_MQTT_USERNAME": gateway_user.username,
        "MADINA_DEVICES_MQTT_PASSWORD_FILE": str(password_file),
        "MADINA_DEVICES_MQTT_PROTOCOL": protocol,
        "MADINA_DEVICES_RECONNECT_MAX_S": "1",
        "MADINA_LOG_FORMAT": "console",
        **(extra_env or {}),
    }
    url = f"http://127.0.0.1:{port}/healthz"
    process = ServiceProcess.start(service_argv("mqtt-gateway"), env, tmp_path / "gateway.log",
                                   health_url=url if wait else None, timeout_s=60)
    return Gateway(process, url)


def now_iso(offset_s: float = 0) -> str:
    return (datetime.now(UTC) - timedelta(seconds=offset_s)).isoformat()


async def seed_station_newest(bootstrap: str, station_id: str, newest: datetime) -> None:
    """A status on environment.station-status.v1 saying the station's newest observation is ``newest``
    (what the environment processor publishes), for the gateway's lateness check to read at start-up."""
    status = station_pb2.StationStatus(station=station_pb2.Station(station_id=station_id),
                                       last_observe_time=timestamp(newest))
    await ensure_topics(bootstrap, [STATION_STATUS], default_partitions=2)
    async with EventProducer(bootstrap, source="environment-processor") as producer:
        await producer.send_and_wait(STATION_STATUS, station_id, station_pb2.StationStatusChanged(status=status))


def air_reading(pm25: float, offset_s: float = 0) -> bytes:
    return json.dumps({"station_id": "brk-air-al-quds", "observe_time": now_iso(offset_s),
                       "pm25_ugm3": pm25, "pm10_ugm3": 20.0}).encode()


def parking_count(occupied: int) -> bytes:
    return json.dumps({"car_park_id": "BK-P1", "timestamp": now_iso(), "occupied_spaces": occupied,
                       "capacity_spaces": 180}).encode()


def chirpstack_lpp_uplink(fill_ratio: float, temperature_c: float, battery: int) -> bytes:
    # Cayenne LPP: ch1 analog input (0.01 signed), ch2 temperature (0.1 C signed), ch3 percentage.
    payload = (bytes([1, 2]) + round(fill_ratio * 100).to_bytes(2, "big", signed=True)
               + bytes([2, 103]) + round(temperature_c * 10).to_bytes(2, "big", signed=True)
               + bytes([3, 120, battery]))
    return json.dumps({
        "deduplicationId": "d1", "time": now_iso(),
        "deviceInfo": {"tenantId": "t", "applicationId": "7", "deviceName": "bin-h001", "devEui": "70b3d57ed0000001"},
        "fPort": 2, "fCnt": 1, "data": base64.b64encode(payload).decode(),
    }).encode()


def tts_fill_uplink(fill_pct: int, temperature_c: float, battery: int, lid_open: bool) -> bytes:
    # The registry's operator-defined madina-fill-v1 frame.
    frame = bytes([fill_pct]) + round(temperature_c * 10).to_bytes(2, "big", signed=True) + bytes(
        [battery, 1 if lid_open else 0])
    return json.dumps({
        "end_device_ids": {"device_id": "brk-centre-ville-h002-lora", "dev_eui": "70B3D57ED0000002",
                           "application_ids": {"application_id": "madina-waste"}},
        "received_at": now_iso(),
        "uplink_message": {"f_port": 1, "frm_payload": base64.b64encode(frame).decode(), "received_at": now_iso()},
    }).encode()


async def publish(mosquitto: MosquittoServer, user: MqttUser, messages: Sequence[tuple[str, bytes]],
                  protocol: aiomqtt.ProtocolVersion = aiomqtt.ProtocolVersion.V5, pause_s: float = 0.0,
                  tls_context: ssl.SSLContext | None = None) -> None:
    """Each message at QoS 1, acknowledged by the broker, in order (``pause_s`` apart)."""
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, username=user.username, password=user.password,
                              protocol=protocol, tls_context=tls_context) as client:
        for topic, payload in messages:
            await client.publish(topic, payload, qos=1)
            if pause_s:
                await asyncio.sleep(pause_s)


async def records(bootstrap: str, topic: str) -> list[Any]:
    return await read_all(bootstrap, topic)


async def wait_for_records(bootstrap: str, topic: str, count: int, timeout_s: float = 30.0) -> list[Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    found: list[Any] = []
    while loop.time() < deadline:
        found = await read_all(bootstrap, topic)
        if sum(_items(topic, r.value) for r in found) >= count:
            return found
        await asyncio.sleep(0.3)
    return found


def _items(topic: str, value: bytes) -> int:
    if topic == CONTAINER_LEVELS.name:
        return len(container_pb2.ContainerLevelObservedBatch.FromString(value).readings)
    if topic == "environment.air-quality.v1":
        return len(observations_pb2.AirQualityObservedBatch.FromString(value).observations)
    return 1


def container_readings(found: Sequence[Any]) -> list[container_pb2.ContainerLevelObserved]:
    return [r for record in found for r in container_pb2.ContainerLevelObservedBatch.FromString(record.value).readings]


def air_observations(found: Sequence[Any]) -> list[observations_pb2.AirQualityObserved]:
    batches = [observations_pb2.AirQualityObservedBatch.FromString(record.value) for record in found]
    return [o for batch in batches for o in batch.observations]
